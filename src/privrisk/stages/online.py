"""E1 online to online: pseudonymous photos (probes) against identified profile photos (the
gallery), open set; plus the verification ROC over every probe-gallery pair, and what the genuine
pairs are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..config import ExperimentConfig
from ..index import pairwise_distances
from .common import Log, ProbeSearch, identification, probe_row, rank_against
from .split import Enrolled, subject_of

__all__ = ["OnlineResult", "genuine_pairs", "online_to_online"]


@dataclass(frozen=True)
class OnlineResult:
    """E1's metrics (``experiments.online_to_online`` without its timings) and the per-probe arrays
    the later stages read: subject codes of the truth, whether the subject is in the gallery, and
    the subject-level candidates and distances (probes without a face are misses: -1 / inf)."""

    metrics: dict
    p_subjects: list[str]
    truth: np.ndarray
    mated: np.ndarray
    cand: np.ndarray
    dist: np.ndarray
    per_probe: list[dict]


def online_to_online(cfg: ExperimentConfig, enrolled: Enrolled, log: Log) -> OnlineResult:
    probes, code = enrolled.probes, enrolled.code
    cand, dist, _ = rank_against(enrolled.gal_vecs, enrolled.gal_codes, probes.vectors, cfg.top_k)
    # probes whose face was not found are misses: add them as empty rows
    p_subjects = list(probes.subjects) + [subject_of(enrolled.split.probe_manifest, n) for n, _ in probes.skipped]
    cand = np.vstack([cand, np.full((len(probes.skipped), cfg.top_k), -1)])
    dist = np.vstack([dist, np.full((len(probes.skipped), cfg.top_k), np.inf, np.float32)])
    truth = np.array([code[s] for s in p_subjects], np.int64)
    in_gallery_subjects = enrolled.in_gallery_subjects
    mated = np.array([s in in_gallery_subjects for s in p_subjects])
    e1 = identification(truth, mated, cand, dist, cfg, cfg.seed)
    e1.update(
        n_gallery=len(enrolled.gal_vecs),
        skipped=[{"image": i, "reason": r} for i, r in [*enrolled.gallery_skipped, *probes.skipped]],
    )
    e1.update(_breakdowns(enrolled, p_subjects, truth, mated, cand))
    e1["verification"], genuine, impostor = _verification(cfg, enrolled)
    split = enrolled.split
    e1["genuine_pairs"] = genuine_pairs(genuine, impostor, e1, cfg, split.gallery_manifest, split.probe_manifest)
    per_probe = [
        probe_row(
            "online_to_online",
            p,
            enrolled.names,
            ProbeSearch(truth[i], mated[i], cand[i], dist[i]),
            cfg.gallery.threshold,
        )
        for i, p in enumerate(list(probes.names) + [n for n, _ in probes.skipped])
    ]
    log(f"E1 online to online: rank-1 {e1['rank1']:.3f} over {e1['n_mated']} mated probes")
    return OnlineResult(e1, p_subjects, truth, mated, cand, dist, per_probe)


def _breakdowns(
    enrolled: Enrolled, p_subjects: list[str], truth: np.ndarray, mated: np.ndarray, cand: np.ndarray
) -> dict:
    """Rank-1 of the mated probes by self-reported gender and ethnicity."""
    meta_by_subject = enrolled.meta_by_subject
    ranks1 = metrics.true_rank(cand, truth)
    return {
        "by_gender": metrics.breakdown(
            ranks1[mated] == 1,
            [meta_by_subject.get(s, {}).get("gender", "unknown") for s in np.array(p_subjects)[mated]],
        ),
        "by_ethnicity": metrics.breakdown(
            ranks1[mated] == 1,
            [meta_by_subject.get(s, {}).get("ethnicity", "unknown") for s in np.array(p_subjects)[mated]],
        ),
    }


def _verification(cfg: ExperimentConfig, enrolled: Enrolled) -> tuple[dict, np.ndarray, np.ndarray]:
    """Verification ROC: every probe against every gallery face; with the genuine and impostor
    distances it was drawn from."""
    probes, code, gal_vecs, gal_codes = enrolled.probes, enrolled.code, enrolled.gal_vecs, enrolled.gal_codes
    allpairs = pairwise_distances(probes.vectors, gal_vecs)
    same = np.array([code[s] for s in probes.subjects])[:, None] == gal_codes[None, :]
    genuine, impostor = allpairs[same], allpairs[~same]
    roc = metrics.roc(genuine, impostor)
    far0 = np.flatnonzero(np.asarray(roc["far"]) == 0)  # keep the last FAR-0 point: TAR at FAR 0 (plots)
    pick = np.unique(np.r_[np.linspace(0, len(roc["far"]) - 1, 300).astype(int), far0[-1:]])
    verification = {
        "eer": roc["eer"],
        "curve": {"far": [roc["far"][j] for j in pick], "tar": [roc["tar"][j] for j in pick]},
        "n_genuine": int(genuine.size),
        "n_impostor": int(impostor.size),
        "tar_at_far": {f"{f:g}": metrics.tar_at_far(genuine, impostor, f) for f in (0.01, 0.001)},
    }
    pair_p = np.broadcast_to(np.array([code[s] for s in probes.subjects])[:, None], allpairs.shape)
    pair_g = np.broadcast_to(gal_codes[None, :], allpairs.shape)
    verification.update(
        metrics.bootstrap_verification(
            metrics.VerificationPairs(genuine, pair_p[same], impostor, pair_p[~same], pair_g[~same]),
            (0.01, 0.001),
            n_boot=cfg.bootstrap,
            seed=cfg.seed + 3,
        )
    )
    return verification, genuine, impostor


def genuine_pairs(genuine, impostor, e1, cfg: ExperimentConfig, g_manifest, p_manifest) -> dict:
    """What E1's genuine pairs are, how far apart, and what follows from that: the wording is
    derived from the distances (a claim of separation is made only when it holds)."""
    default = not cfg.gallery_manifest and not cfg.probe_manifest
    g_src = sorted({r.meta.get("source", "") for r in g_manifest.rows} - {""})
    p_src = sorted({r.meta.get("source", "") for r in p_manifest.rows} - {""})
    if default:
        what = (
            "same-session studio photos (London set): each person's neutral photo (gallery) against their "
            "smiling photo (probe), taken in one session under the same light and camera"
        )
    else:
        what = (
            f"gallery photos ({', '.join(g_src) or 'source not recorded'}) against probe photos "
            f"({', '.join(p_src) or 'source not recorded'}); whether they come from one session is not recorded"
        )
    g = np.sort(np.asarray(genuine, np.float64))
    closest = float(np.min(impostor)) if len(impostor) else float("nan")
    out = {
        "what": what,
        "same_session_studio": default,
        "n_genuine": int(g.size),
        "n_impostor": int(len(impostor)),
        "closest_impostor": closest,
    }
    if not g.size or not len(impostor):
        return out | {
            "statement": "no genuine pairs (no probe subject has a gallery photo)"
            if not g.size
            else "no impostor pairs (one subject only): nothing to compare the genuine distances with"
        }
    q = np.quantile(g, [0.0, 0.05, 0.5, 0.95, 1.0])
    out["quantiles"] = dict(zip(("min", "p05", "median", "p95", "max"), map(float, q)))
    out["mean"] = float(g.mean())
    n_over = int((g >= closest).sum())
    out["n_genuine_not_closer_than_closest_impostor"] = n_over
    eer, r1 = e1["verification"]["eer"], e1["rank1"]
    if n_over == 0:
        s = (
            f"Every genuine pair (max {g[-1]:.3f}) is closer than the closest impostor pair ({closest:.3f}), so any "
            f"threshold between the two separates them: EER = {eer:.3f} and rank-1 = {r1:.1%} follow from the set-up"
        )
        if r1 < 1:
            s += " (the rank-1 misses are probes whose face was not found)"
    else:
        s = (
            f"{n_over} of {g.size} genuine pairs are at least as far apart as the closest impostor pair "
            f"({closest:.3f}); EER = {eer:.3f}, rank-1 = {r1:.1%}"
        )
    if default:
        s += (
            ". These are same-session studio photos; the paper matched wild photos (dating-site and Facebook "
            "pictures taken at different times) with a 2011 recogniser, so these rates describe far easier "
            "conditions than the paper's."
        )
    else:
        s += "."
    out["statement"] = s
    return out
