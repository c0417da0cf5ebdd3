"""Acquisti-style re-identification experiments: the pipeline that chains the stages.

:func:`run_experiment` takes an :class:`ExperimentConfig` (TOML file or defaults) and an output
folder, and runs

- E1 online to online: pseudonymous photos (probes) against identified profile photos (gallery),
  open set: a share of probe subjects is not in the gallery;
- E2 offline to online: probes degraded into street / webcam captures, several shots fused;
- E3 accretion: what a stranger learns from each re-identified person's synthetic profile;
- scaling: identification against galleries padded with model distractors, measured to 10^6
  and extrapolated to 10^9.

It writes ``results.json``, ``probes.csv``, plots and ``report.html`` (via :mod:`privrisk.report`).
Each stage lives in :mod:`privrisk.stages` and returns a frozen dataclass; this module holds the
settings and chains the stages, and ``results.json`` is their serialisation
(:data:`privrisk.stages.schema.RESULTS_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import FaceSettings, GallerySettings, load_toml, setting, to_dict
from .countermeasures import CountermeasureSettings
from .degrade import Degradation
from .embeddings import EmbeddingCache
from .errors import ConfigError
from .fairness import FairnessSettings  # noqa: I001 - kept apart from lines other branches change
from .fileio import stderr_log, sweep_temp_files
from .manifest import read_manifest
from .models import library_versions, machine_info
from .samples import dataset_dir, sample_manifest
from .stages.accretion import AccretionResult, accretion
from .stages.common import Log, Searches
from .stages.differentials import differentials
from .stages.offline import OfflineResult, offline_to_online, upsample_rule
from .stages.online import OnlineResult, online_to_online
from .stages.scaling import ScalingInputs, ScalingResult, scaling_study
from .stages.split import Enrolled, enrol, model_id, split_subjects
from .stages.timing import Timing, timing

# What every default level shares: a hand-held snapshot's roll, head turn, light from one side,
# a little motion and focus blur, each drawn per shot.
_SNAPSHOT: dict[str, Any] = dict(
    rotation_deg=[-8.0, 8.0],
    yaw_deg=[-20.0, 20.0],
    light_strength=[0.0, 0.4],
    motion_blur_px=[0.0, 1.5],
    defocus_px=[0.0, 0.8],
)
DEFAULT_LEVELS = [
    Degradation(name="webcam", face_width_px=80, blur_sigma=[0.6, 1.4], jpeg_quality=[30, 60], **_SNAPSHOT),
    Degradation(name="street", face_width_px=40, blur_sigma=[0.8, 1.6], jpeg_quality=[25, 45], **_SNAPSHOT),
    Degradation(name="far", face_width_px=24, blur_sigma=[1.0, 2.0], jpeg_quality=[25, 45], **_SNAPSHOT),
    Degradation(
        name="sunglasses",
        face_width_px=80,
        blur_sigma=[0.6, 1.4],
        jpeg_quality=[30, 60],
        occlusion="sunglasses",
        **_SNAPSHOT,
    ),
    Degradation(
        name="mask", face_width_px=80, blur_sigma=[0.6, 1.4], jpeg_quality=[30, 60], occlusion="mask", **_SNAPSHOT
    ),
]


@dataclass(frozen=True)
class OfflineSettings:
    shots: int = setting(
        3, "captures per person, fused by taking each candidate's best distance (the paper took 3)", min=1, max=20
    )
    levels: list[Degradation] = setting(
        DEFAULT_LEVELS, "capture conditions, from mild to harsh ([[offline.levels]] tables)"
    )
    headline: str = setting("webcam", "level reported as experiments.offline_to_online")
    detectors: list[str] = setting(
        ["hog", "cnn"],
        "detectors every level reports side by side (detection rate and rank-1, exact intervals), each with "
        "its upsampling rule; faces.detector's numbers feed everything else",
        choices=("hog", "cnn"),
    )
    detector_people: int = setting(
        0,
        "the detectors other than faces.detector run on a seeded subset of this many mated people (0 = everyone; "
        "the demo uses 30: dlib's cnn detector costs about 1 s per capture on a CPU)",
        min=0,
    )
    timing_probes: int = setting(5, "probes timed uncached (detect / embed / search split)", min=1, max=1000)


@dataclass(frozen=True)
class ScalingSettings:
    sizes: list[int] = setting([100, 1_000, 10_000, 100_000, 1_000_000], "gallery sizes measured with distractors")
    extrapolate: list[int] = setting([10_000_000, 100_000_000, 1_000_000_000], "gallery sizes predicted by the model")
    validation_distractors: int = setting(2000, "distractors drawn to compare impostor distances (KS test)", min=100)
    tail_bootstrap: int = setting(
        100,
        "subject-bootstrap refits of each tail model in each fold (the spread of the "
        "simulated and extrapolated ranges)",
        min=5,
        max=10_000,
    )
    calibration: str = setting(
        "",
        "a calibration saved by `privrisk calibrate --save FILE` on faces the model never saw: where it was not "
        "within its interval, simulated and extrapolated ranges widen (rule in the report)",
    )


@dataclass(frozen=True)
class AccretionSettings:
    visibility: dict = setting({}, "override visibility distributions: field = [only_me, friends, fof, public]")
    birth_countries: dict = setting({}, "override birth-country shares, e.g. {US = 0.8, KR = 0.1, GB = 0.1}")


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = setting(2011, "seed for every random choice (gallery split, degradations, profiles, distractors)")
    dataset_dir: str = setting("", "folder the manifests' image paths are relative to (default: the sample set)")
    gallery_manifest: str = setting("", "manifest of identified photos (default: sample neutral photos)")
    probe_manifest: str = setting("", "manifest of pseudonymous photos (default: sample smiling photos)")
    unseen_share: float = setting(0.2, "share of probe subjects left out of the gallery (open set)", min=0.0, max=0.9)
    top_k: int = setting(10, "candidates kept per probe (the paper returned 10)", min=1, max=100)
    fpir: list[float] = setting([0.01, 0.001], "false-positive identification rates for TPIR")
    bootstrap: int = setting(1000, "bootstrap resamples for 95% intervals", min=50)
    workers: int = setting(0, "worker processes for embedding (0 = all cores)", min=0)
    ray_address: str = setting(
        "", "embed the photo files on this Ray cluster ('host:port', or 'local'); empty = this machine"
    )
    faces: FaceSettings = setting(FaceSettings(), "[faces] table: detection and encoding")
    gallery: GallerySettings = setting(GallerySettings(), "[gallery] table: index and threshold")
    offline: OfflineSettings = setting(OfflineSettings(), "[offline] table: E2 capture conditions")
    scaling: ScalingSettings = setting(ScalingSettings(), "[scaling] table: distractor galleries")
    accretion: AccretionSettings = setting(AccretionSettings(), "[accretion] table: synthetic profiles")
    fairness: FairnessSettings = setting(FairnessSettings(), "[fairness] table: demographic differentials")
    countermeasures: CountermeasureSettings = setting(
        CountermeasureSettings(), "[countermeasures] table: E4, what protects a public photo (opt-in)"
    )


def load_config(path: str | os.PathLike | None) -> ExperimentConfig:
    """The config in ``path`` (TOML), or the defaults when None. Errors name the file and the key."""
    cfg = ExperimentConfig() if path is None else load_toml(path, ExperimentConfig)
    try:
        _check_consistency(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return cfg


def _check_consistency(cfg: ExperimentConfig) -> None:
    names = [lv.name for lv in cfg.offline.levels]
    if cfg.offline.headline not in names:
        raise ConfigError(f"offline.headline: {cfg.offline.headline!r} is not one of the levels ({', '.join(names)})")
    if len(set(names)) != len(names):
        raise ConfigError("offline.levels: level names must be unique")
    for key in ("sizes", "extrapolate"):
        values = getattr(cfg.scaling, key)
        if any(v < 1 for v in values) or list(values) != sorted(values):
            raise ConfigError(f"scaling.{key}: must be increasing positive sizes")
    if any(not 0 < f < 1 for f in cfg.fpir):
        raise ConfigError("fpir: each rate must be between 0 and 1")
    if cfg.countermeasures.enabled and cfg.countermeasures.snapshot_level not in names:
        raise ConfigError(
            f"countermeasures.snapshot_level: {cfg.countermeasures.snapshot_level!r} is not one of the levels ({', '.join(names)})"
        )


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    log: Log | None = stderr_log,
    overwrite: bool = False,
) -> dict:
    """Run E1-E3 and the scaling study; write every output into ``out_dir``; return results.
    A non-empty ``out_dir`` that is not a previous privrisk run is refused unless ``overwrite``."""
    log = log or (lambda _m: None)
    from .fileio import claim_output_dir  # noqa: PLC0415 - a local line, apart from lines other branches change

    claim_output_dir(out_dir, overwrite=overwrite)  # OutputNotEmpty for a folder that is no privrisk run
    cfg = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out)  # what a killed earlier run into this folder could not remove
    t_start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    root = Path(cfg.dataset_dir) if cfg.dataset_dir else dataset_dir()
    g_manifest = read_manifest(cfg.gallery_manifest or sample_manifest("neutral"), root)
    p_manifest = read_manifest(cfg.probe_manifest or sample_manifest("smiling"), root)

    split = split_subjects(cfg, root, g_manifest, p_manifest, rng, log)
    enrolled = enrol(cfg, split, out, cache, progress, log)
    if enrolled.threshold["value"] != cfg.gallery.threshold:  # chosen by rule 'fmr' on held-out people
        cfg = dataclasses.replace(cfg, gallery=dataclasses.replace(cfg.gallery, threshold=enrolled.threshold["value"]))
    e1 = online_to_online(cfg, enrolled, log)
    e2 = offline_to_online(cfg, enrolled, cache, progress, log)
    timed = timing(cfg, enrolled, log)
    e3 = _accretion_stage(cfg, enrolled, e1, log)
    scaled = scaling_study(cfg, ScalingInputs.of(enrolled, e1, e2), cache, progress, log)
    if cfg.scaling.calibration:  # ranges widened by a calibration on never-seen faces (issue 11)
        from . import tailmodel  # noqa: PLC0415

        calibration = tailmodel.load_calibration(cfg.scaling.calibration)
        scaled = ScalingResult(tailmodel.apply_calibration(scaled.detail, calibration))
    results = _results(cfg, enrolled, _Stages(e1, e2, timed, e3, scaled))
    results["seconds_total"] = time.perf_counter() - t_start
    results["fairness"] = differentials(cfg, enrolled, e2.fused, cache, progress, log).summary
    if cfg.countermeasures.enabled:  # E4 (opt-in): its logic lives in privrisk.countermeasures
        from .countermeasures import run_on_experiment

        e4 = run_on_experiment(cfg, enrolled, e1, e2.fused, scaled.detail, cache, log, progress)
        results["experiments"]["countermeasures"] = e4.to_dict()
    from .report import write_outputs

    write_outputs(out, results, e1.per_probe + e2.per_probe, e3.rows)
    log(f"done in {results['seconds_total']:.0f} s: {out / 'report.html'}")
    return results


def _accretion_stage(cfg: ExperimentConfig, enrolled: Enrolled, e1: OnlineResult, log: Log) -> AccretionResult:
    e3 = accretion(cfg, enrolled.names, Searches(e1.truth, e1.mated, e1.cand, e1.dist), enrolled.meta_by_subject)
    m = e3.metrics
    log(
        f"E3 accretion: {m['n_people_identified']} of {m['n_mated_people']} people re-identified, "
        f"{m['wrong_person']['n_probes_wrong']} wrong-person identifications; SSN first 5 predictable for "
        f"{m['ssn_predictable_fraction']:.0%}, mean {m['mean_fields_learned']:.1f} fields learned"
    )
    return e3


def attacker(cfg: ExperimentConfig, enrolled: Enrolled) -> dict:
    """The attacker behind every number of a run: detector, embedder and decision rule."""
    return {
        "detector": cfg.faces.detector,
        "upsample_rule": upsample_rule(cfg.faces),
        "embedder": cfg.faces.embedder,
        "model_id": model_id(enrolled.gallery_dir),
        "embedding_dim": int(enrolled.gal_vecs.shape[1]),
        "threshold": enrolled.threshold,
        "decision": f"match when the nearest face is at Euclidean distance <= {enrolled.threshold['value']:.4g}",
    }


@dataclass(frozen=True)
class _Stages:
    """The stages' results that results.json is made of."""

    e1: OnlineResult
    e2: OfflineResult
    timed: Timing
    e3: AccretionResult
    scaled: ScalingResult


def _results(cfg: ExperimentConfig, enrolled: Enrolled, stages: _Stages) -> dict:
    """results.json (before ``seconds_total`` and ``fairness``): the stages' results serialised, with
    the config, seed and versions that produced them (:data:`privrisk.stages.schema.RESULTS_SCHEMA`)."""
    e1, e2, timed, e3, scaled = stages.e1, stages.e2, stages.timed, stages.e3, stages.scaled
    split = enrolled.split
    g_manifest, p_manifest = split.gallery_manifest, split.probe_manifest
    headline = e2.levels[cfg.offline.headline] | {"level_name": cfg.offline.headline} | timed.offline_fields()
    return {
        "privrisk_version": library_versions().get("privrisk", "0"),
        "seed": cfg.seed,
        "config": to_dict(cfg),
        "versions": library_versions()
        | {"model_id": model_id(enrolled.gallery_dir), "python": sys.version.split()[0], "machine": machine_info()},
        "attacker": attacker(cfg, enrolled),
        "dataset": {
            "root": str(split.root),
            "gallery_manifest": str(g_manifest.path),
            "probe_manifest": str(p_manifest.path),
            "refused_rows": [str(r) for r in (*g_manifest.refused, *p_manifest.refused)],
        },
        "experiments": {
            "online_to_online": e1.metrics | timed.online_fields(),
            "offline_to_online": headline | {"levels": e2.levels},
            "accretion": e3.metrics,
        },
        "scaling": scaled.measured,
        "scaling_detail": scaled.detail,
    }
