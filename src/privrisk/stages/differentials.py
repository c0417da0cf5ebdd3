"""Demographic differentials (:mod:`privrisk.fairness`) over all pairs: every probe photo against
every photo of the gallery manifest, cached like the scaling study."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ExperimentConfig
from ..embeddings import EmbeddingCache
from .common import Embedded, Log, embed_rows, memo
from .offline import FusedLevel, fused_arrays
from .split import Enrolled

__all__ = ["FairnessResult", "differentials", "e2_by_subject"]


@dataclass(frozen=True)
class FairnessResult:
    """``fairness`` in results.json (:func:`privrisk.fairness.analyse`'s summary, with the pairs
    it covers and the gallery photos it skipped)."""

    summary: dict


def differentials(
    cfg: ExperimentConfig,
    enrolled: Enrolled,
    fused: dict[str, FusedLevel],
    cache: EmbeddingCache | None,
    progress: bool,
    log: Log,
) -> FairnessResult:
    """Every probe photo against every photo of the gallery manifest (all its subjects, not only the
    E1 gallery), so every person's photos meet every other person's. E2 false non-matches use the
    E2 captures against the same photos; E2 rank-1 per group is the experiment's own (against the
    E1 gallery)."""
    log("demographic differentials: every probe photo against every gallery-manifest photo")
    probes, meta_by_subject = enrolled.probes, enrolled.meta_by_subject
    identified = embed_rows(enrolled.split.gallery_manifest.rows, cfg, cache, progress)
    groups = {
        s: {c: (meta_by_subject.get(s) or {}).get(c) for c in cfg.fairness.group_columns}
        for s in sorted(set(probes.subjects) | set(identified.subjects))
    }
    inputs = (
        probes.vectors,
        probes.subjects,
        identified.vectors,
        identified.subjects,
        groups,
        fused_arrays(fused),
        cfg.fairness,
        cfg.bootstrap,
        cfg.seed,
        cfg.gallery.threshold,
    )
    summary = memo(cache, log, "fairness", inputs, lambda: _compute(cfg, probes, fused, meta_by_subject, identified))
    return FairnessResult(summary)


def e2_by_subject(fused: dict[str, FusedLevel], probe_subjects: list[str]) -> tuple[dict, dict]:
    """E2 as :func:`privrisk.fairness.analyse` reads it, per level: every detected shot's embedding
    with the subject of the probe it was made from, and each mated person's subject with whether
    the fused search put them at rank 1."""
    e2_shots = {name: (f.shot_vecs, [probe_subjects[p] for p in f.shot_probe()]) for name, f in fused.items()}
    e2_rank1 = {}
    for name, f in fused.items():
        idx = np.where(f.mated)[0]
        e2_rank1[name] = ([probe_subjects[p] for p in f.probe_index[idx]], f.fused_c[idx, 0] == f.truth[idx])
    return e2_shots, e2_rank1


def _compute(
    cfg: ExperimentConfig,
    probes: Embedded,
    fused: dict[str, FusedLevel],
    meta_by_subject: dict[str, dict],
    identified: Embedded,
) -> dict:
    from ..fairness import AnalysisOptions, E2Inputs, FaceSet, TailCheckOptions, analyse, tail_check_cross_validated

    e2_shots, e2_rank1 = e2_by_subject(fused, probes.subjects)
    fs = cfg.fairness
    options = AnalysisOptions(
        columns=fs.group_columns,
        combine=fs.combine,
        operating_threshold=cfg.gallery.threshold,
        thresholds=fs.thresholds,
        n_boot=cfg.bootstrap,
        seed=cfg.seed + 31,
        small_subjects=fs.small_subjects,
    )
    probe_set, gallery_set = FaceSet(probes.vectors, probes.subjects), FaceSet(identified.vectors, identified.subjects)
    res = analyse(probe_set, gallery_set, meta_by_subject, options, E2Inputs(e2_shots, e2_rank1))
    res["pairs"] = (
        "all pairs: every probe photo against every photo of the gallery manifest "
        f"({len(identified.subjects)} photos of {len(set(identified.subjects))} people), not only the "
        "E1 gallery; E2 rank-1 per group is against the E1 gallery"
    )
    res["skipped_gallery_photos"] = [{"image": i, "reason": r} for i, r in identified.skipped]
    if res["attributes"]:
        try:
            res["tail_check"] = tail_check_cross_validated(
                res, probe_set, gallery_set, meta_by_subject, TailCheckOptions(seed=cfg.seed + 37)
            )
        except ImportError as exc:  # the validated tail model (issue 11) is not part of this build
            res["tail_check"] = {"note": f"per-group tail-model check not run: {exc}"}
    return res
