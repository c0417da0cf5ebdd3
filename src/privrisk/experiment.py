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
Each stage lives in :mod:`privrisk.stages` and returns a frozen dataclass; the settings are
declared in :mod:`privrisk.config` (:class:`~privrisk.config.ExperimentConfig`). This module chains
the stages and carries their typed results (:class:`privrisk.stages.schema.ExperimentResults`) to the
JSON edge, where ``results.json`` is made from them in one place
(:meth:`~privrisk.stages.schema.ExperimentResults.to_json`, :data:`privrisk.stages.schema.RESULTS_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from .config import ExperimentConfig, load_toml
from .embeddings import EmbeddingCache
from .errors import ConfigError
from .fileio import stderr_log, sweep_temp_files
from .manifest import read_manifest
from .models import library_versions, machine_info
from .samples import dataset_dir, sample_manifest
from .stages.accretion import AccretionResult, accretion
from .stages.common import Log, Searches
from .stages.differentials import differentials
from .stages.offline import offline_to_online, upsample_rule
from .stages.online import OnlineResult, online_to_online
from .stages.scaling import ScalingInputs, ScalingResult, scaling_study
from .stages.schema import Dataset, ExperimentResults, Provenance
from .stages.split import Enrolled, enrol, model_id, split_subjects
from .stages.timing import timing


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
    provenance = _provenance(cfg, enrolled)
    seconds_total = time.perf_counter() - t_start
    fairness = differentials(cfg, enrolled, e2.fused, cache, progress, log)
    e4 = None
    if cfg.countermeasures.enabled:  # E4 (opt-in): its logic lives in privrisk.stages.countermeasures
        from .stages.countermeasures import E4Inputs, run_on_experiment

        e4 = run_on_experiment(cfg, enrolled, E4Inputs(e1, e2.fused, scaled.detail), cache, log, progress)
    results = ExperimentResults(provenance, e1, e2, timed, e3, scaled, seconds_total, fairness, e4).to_json()
    from .report import write_outputs

    write_outputs(out, results, e1.per_probe + e2.per_probe, e3.rows, cache)
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


def _provenance(cfg: ExperimentConfig, enrolled: Enrolled) -> Provenance:
    """The config as run, the versions and machine, the attacker and the data behind a run's numbers."""
    split = enrolled.split
    g_manifest, p_manifest = split.gallery_manifest, split.probe_manifest
    return Provenance(
        privrisk_version=library_versions().get("privrisk", "0"),
        config=cfg,
        versions=library_versions()
        | {"model_id": model_id(enrolled.gallery_dir), "python": sys.version.split()[0], "machine": machine_info()},
        attacker=attacker(cfg, enrolled),
        dataset=Dataset(
            root=str(split.root),
            gallery_manifest=str(g_manifest.path),
            probe_manifest=str(p_manifest.path),
            refused_rows=[str(r) for r in (*g_manifest.refused, *p_manifest.refused)],
        ),
    )
