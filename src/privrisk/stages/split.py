"""The split: which probe subjects have an identified photo in the gallery (open set: a share of
them is left out), the gallery built from the consent manifest beside the results, and the probe
photos embedded. Every later stage starts from :class:`Enrolled`."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ExperimentConfig
from ..embeddings import EmbeddingCache, EmbedRun
from ..errors import ConfigError
from ..gallery import Gallery, build_gallery
from ..manifest import Manifest, ManifestRow
from ..metrics import threshold_at_fmr
from .common import Embedded, Log, embed_rows

__all__ = ["Enrolled", "Split", "enrol", "model_id", "split_subjects", "subject_of"]


@dataclass(frozen=True)
class Split:
    """Subjects in both manifests, those left out of the gallery, and the gallery rows enrolled."""

    root: Path
    gallery_manifest: Manifest
    probe_manifest: Manifest
    common: list[str]
    unseen: frozenset[str]
    gallery_rows: tuple[ManifestRow, ...]
    calibration: frozenset[str] = frozenset()  # people held out to choose the threshold (rule 'fmr'), never scored


@dataclass(frozen=True)
class Enrolled:
    """The E1 gallery (embeddings and subject codes, as stored in ``gallery_dir``) and the probes.

    ``names`` lists every subject of the gallery and the probe manifest; a subject's code is its
    position there (``code``)."""

    split: Split
    gallery_dir: Path
    gallery_skipped: list[tuple[str, str]]
    gal_vecs: np.ndarray
    gal_codes: np.ndarray
    gal_subjects: list[str]
    names: list[str]
    code: dict[str, int]
    probes: Embedded
    meta_by_subject: dict[str, dict]
    threshold: dict = dataclasses.field(default_factory=dict)  # the threshold used, its rule and counts

    @property
    def in_gallery_subjects(self) -> set[str]:
        return set(self.gal_subjects)


def split_subjects(
    cfg: ExperimentConfig, root: Path, g_manifest: Manifest, p_manifest: Manifest, rng: np.random.Generator, log: Log
) -> Split:
    """Leave ``cfg.unseen_share`` of the subjects in both manifests out of the gallery (seeded)."""
    common = sorted(set(g_manifest.subjects) & set(p_manifest.subjects))
    calibration: frozenset[str] = frozenset()
    if cfg.gallery.resolved_rule(cfg.faces.embedder) == "fmr":  # never with dlib's defaults: its rng draws stay
        n_cal = max(2, int(round(cfg.gallery.threshold_holdout * len(common))))
        calibration = frozenset(rng.permutation(common)[:n_cal].tolist())
        common = [s for s in common if s not in calibration]
        log(
            f"threshold: {len(calibration)} people held out (never scored); the threshold is chosen at "
            f"false-match rate {cfg.gallery.threshold_fmr:g} on their impostor pairs"
        )
    if len(common) < 3:
        raise ConfigError("fewer than 3 subjects appear in both manifests; nothing to measure")
    n_unseen = int(round(cfg.unseen_share * len(common)))
    unseen = set(rng.permutation(common)[:n_unseen].tolist())
    gallery_rows = tuple(r for r in g_manifest.rows if r.subject_id not in unseen | calibration)
    log(
        f"E1 split: {len(common) - n_unseen} subjects in the gallery, {n_unseen} probe subjects left out (seed {cfg.seed})"
    )
    return Split(root, g_manifest, p_manifest, common, frozenset(unseen), gallery_rows, calibration)


def enrol(
    cfg: ExperimentConfig, split: Split, out: Path, cache: EmbeddingCache | None, progress: bool, log: Log
) -> Enrolled:
    """Build the gallery of the split's rows in ``out/gallery`` (replacing an earlier one), read
    its embeddings back, and embed the probe photos."""
    g_manifest, p_manifest = split.gallery_manifest, split.probe_manifest
    gdir = out / "gallery"
    if gdir.exists():
        shutil.rmtree(gdir)
    sub_manifest = dataclasses.replace(g_manifest, rows=split.gallery_rows)
    threshold = _threshold(cfg, split, cache, progress, log)
    log("embedding gallery photos")
    build = build_gallery(
        sub_manifest,
        gdir,
        face_settings=cfg.faces,
        settings=dataclasses.replace(cfg.gallery, threshold=threshold["value"], threshold_rule="given"),
        run=EmbedRun(cache=cache, workers=cfg.workers or None, progress=progress, ray_address=cfg.ray_address or None),
    )
    with Gallery.open(gdir) as gallery:
        gallery.set_threshold(threshold["value"], threshold["statement"])
        gal_ids, gal_vecs = gallery.embeddings()
        gal_meta = gallery.faces()
    gal_subjects = [gal_meta[int(i)]["subject_id"] for i in gal_ids]
    names = sorted(set(gal_subjects) | set(p_manifest.subjects))
    code = {s: i for i, s in enumerate(names)}
    gal_codes = np.array([code[s] for s in gal_subjects], np.int64)

    log("embedding probe photos")
    probe_rows = [r for r in p_manifest.rows if r.subject_id not in split.calibration]
    probes = embed_rows(probe_rows, cfg, cache, progress)
    meta_by_subject = {r.subject_id: r.meta for r in (*g_manifest.rows, *p_manifest.rows)}
    return Enrolled(
        split,
        gdir,
        list(build.skipped),
        gal_vecs,
        gal_codes,
        gal_subjects,
        names,
        code,
        probes,
        meta_by_subject,
        threshold,
    )


def _threshold(cfg: ExperimentConfig, split: Split, cache: EmbeddingCache | None, progress: bool, log: Log) -> dict:
    """The match threshold and its rule: as given, or (rule 'fmr') chosen at ``gallery.threshold_fmr``
    on the impostor pairs of the people held out in ``split.calibration``, whom nothing scores."""
    if not split.calibration:
        return {
            "value": cfg.gallery.threshold,
            "rule": "given",
            "statement": cfg.gallery.given_statement(cfg.faces.embedder),
        }
    rows = [r for r in (*split.gallery_manifest.rows, *split.probe_manifest.rows) if r.subject_id in split.calibration]
    log(f"embedding the {len(rows)} photos of the people held out to choose the threshold")
    held = embed_rows(rows, cfg, cache, progress)
    try:
        chosen = threshold_at_fmr(
            held.vectors,
            np.array(held.subjects),
            cfg.gallery.threshold_fmr,
            seed=cfg.seed,
            who="people held out of this experiment (never scored)",
        )
    except ValueError as exc:
        raise ConfigError(f"gallery.threshold_rule 'fmr': {exc}") from None
    log(f"threshold {chosen['value']:.4f}: {chosen['statement']}")
    return chosen


def subject_of(manifest: Manifest, image: str) -> str:
    for r in manifest.rows:
        if str(r.image) == image:
            return r.subject_id
    return "?"


def model_id(gdir: Path) -> str:
    with Gallery.open(gdir) as g:
        return g.model_id
