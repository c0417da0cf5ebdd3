"""Identification and verification metrics: pure functions of ranks, distances and labels.

Conventions: smaller distance = more similar; a probe whose face was not detected has
rank ``inf`` (a miss at every rank) and best distance ``inf`` (never accepted).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def cmc(ranks: Sequence[float], max_rank: int = 20) -> np.ndarray:
    """Cumulative match characteristic: element k-1 is the share of mated probes whose true
    subject is at rank <= k (ranks are 1-based; ``inf`` = never found)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return np.zeros(max_rank)
    return np.array([(r <= k).mean() for k in range(1, max_rank + 1)])


def rank_k(ranks: Sequence[float], k: int) -> float:
    r = np.asarray(ranks, dtype=np.float64)
    return float((r <= k).mean()) if r.size else float("nan")


def true_rank(candidate_labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of ``truth[i]`` in row i of ``candidate_labels`` (n, k); ``inf`` when absent."""
    hits = candidate_labels == np.asarray(truth)[:, None]
    first = hits.argmax(axis=1).astype(np.float64) + 1
    first[~hits.any(axis=1)] = np.inf
    return first


def open_set_threshold(nonmated_best: Sequence[float], fpir: float) -> float:
    """The largest threshold t with FPIR(t) <= ``fpir``, where a non-mated probe is a false
    alarm when its best distance is < t. With n non-mated probes, floor(fpir * n) alarms are allowed."""
    d = np.sort(np.asarray(nonmated_best, dtype=np.float64))
    d = d[np.isfinite(d)]
    allowed = math.floor(fpir * len(nonmated_best) + 1e-9)
    return float(d[allowed]) if allowed < len(d) else float("inf")


def tpir_at_fpir(mated_rank: Sequence[float], mated_dist: Sequence[float], nonmated_best: Sequence[float],
                 fpir: float) -> dict:
    """Open-set true-positive identification rate at a false-positive identification rate.

    A mated probe counts when its true subject is at rank 1 with distance below the threshold
    that keeps non-mated false alarms at or under ``fpir``. Returns tpir, the threshold and the
    FPIR actually reached (which can be below the target with few non-mated probes).
    """
    t = open_set_threshold(nonmated_best, fpir)
    rank = np.asarray(mated_rank, dtype=np.float64)
    dist = np.asarray(mated_dist, dtype=np.float64)
    nm = np.asarray(nonmated_best, dtype=np.float64)
    tpir = float(((rank == 1) & (dist < t)).mean()) if rank.size else float("nan")
    reached = float((nm < t).mean()) if nm.size else float("nan")
    return {"tpir": tpir, "threshold": t, "fpir": reached, "n_nonmated": int(nm.size)}


def det_curve(mated_rank, mated_dist, nonmated_best, thresholds: Sequence[float] | None = None) -> dict:
    """FNIR against FPIR over thresholds (open-set identification's DET curve)."""
    rank = np.asarray(mated_rank, dtype=np.float64)
    dist = np.asarray(mated_dist, dtype=np.float64)
    nm = np.asarray(nonmated_best, dtype=np.float64)
    if thresholds is None:
        finite = np.concatenate([dist[np.isfinite(dist)], nm[np.isfinite(nm)]])
        thresholds = np.unique(np.concatenate([finite, finite + 1e-6, [0.0, 2.0]]))
    t = np.asarray(thresholds, dtype=np.float64)
    fnir = 1.0 - ((rank[None, :] == 1) & (dist[None, :] <= t[:, None])).mean(axis=1) if rank.size else np.full(len(t), np.nan)
    fpir = (nm[None, :] <= t[:, None]).mean(axis=1) if nm.size else np.full(len(t), np.nan)
    return {"threshold": t.tolist(), "fpir": fpir.tolist(), "fnir": fnir.tolist()}


def roc(genuine: Sequence[float], impostor: Sequence[float]) -> dict:
    """Verification ROC from genuine and impostor pair distances: FAR and TAR at every threshold
    (accept when distance <= threshold), plus the equal error rate."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    t = np.unique(np.concatenate([g, i, [-np.inf, np.inf]]))
    tar = np.searchsorted(g, t, side="right") / max(len(g), 1)
    far = np.searchsorted(i, t, side="right") / max(len(i), 1)
    return {"threshold": t.tolist(), "far": far.tolist(), "tar": tar.tolist(), "eer": eer(g, i)}


def eer(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """Equal error rate: where false rejection (genuine > t) equals false acceptance (impostor <= t),
    interpolated linearly between the two thresholds where they cross."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    if not len(g) or not len(i):
        return float("nan")
    t = np.unique(np.concatenate([g, i]))
    frr = 1.0 - np.searchsorted(g, t, side="right") / len(g)
    far = np.searchsorted(i, t, side="right") / len(i)
    diff = far - frr  # rises with t
    k = int(np.searchsorted(diff, 0.0))
    if k == 0:
        return float((frr[0] + far[0]) / 2) if diff[0] > 0 else 0.0
    if k >= len(t):
        return float((frr[-1] + far[-1]) / 2)
    # interpolate between t[k-1] (far < frr) and t[k] (far >= frr)
    d0, d1 = diff[k - 1], diff[k]
    w = d0 / (d0 - d1) if d1 != d0 else 0.0
    return float(frr[k - 1] + w * (frr[k] - frr[k - 1]) if abs(d1) > 0 else far[k])


def tar_at_far(genuine, impostor, far: float) -> float:
    """Share of genuine pairs accepted at the strictest threshold whose FAR is at most ``far``."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    allowed = math.floor(far * len(i) + 1e-9)
    t = i[allowed] if allowed < len(i) else np.inf
    return float((g < t).mean()) if g.size else float("nan")


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean, *,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    stats = np.array([statistic(v[row]) for row in idx]) if statistic is not np.mean else v[idx].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def breakdown(hits: Sequence[bool], groups: Sequence[str]) -> dict[str, dict]:
    """Rank-1 (or any hit rate) per group, with the count behind each cell."""
    hits = np.asarray(hits, dtype=bool)
    groups = np.asarray(groups, dtype=object)
    out = {}
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        out[str(g)] = {"n": int(mask.sum()), "rate": float(hits[mask].mean()) if mask.any() else float("nan")}
    return out
