"""Identification and verification metrics: pure functions of ranks, distances and labels.

Conventions: smaller distance = more similar; a probe whose face was not detected has
rank ``inf`` (a miss at every rank) and best distance ``inf`` (never accepted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike


def cmc(ranks: ArrayLike, max_rank: int = 20) -> np.ndarray:
    """Cumulative match characteristic: element k-1 is the share of mated probes whose true
    subject is at rank <= k (ranks are 1-based; ``inf`` = never found)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return np.zeros(max_rank)
    return np.array([(r <= k).mean() for k in range(1, max_rank + 1)])


def rank_k(ranks: ArrayLike, k: int) -> float:
    r = np.asarray(ranks, dtype=np.float64)
    return float((r <= k).mean()) if r.size else float("nan")


def true_rank(candidate_labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of ``truth[i]`` in row i of ``candidate_labels`` (n, k); ``inf`` when absent."""
    hits = candidate_labels == np.asarray(truth)[:, None]
    first = hits.argmax(axis=1).astype(np.float64) + 1
    first[~hits.any(axis=1)] = np.inf
    return first


def open_set_threshold(nonmated_best: ArrayLike, fpir: float) -> float:
    """The largest threshold t with FPIR(t) <= ``fpir``, where a non-mated probe is a false
    alarm when its best distance is < t. With n non-mated probes, floor(fpir * n) alarms are allowed."""
    raw = np.asarray(nonmated_best, dtype=np.float64)
    d = np.sort(raw)
    d = d[np.isfinite(d)]
    allowed = math.floor(fpir * len(raw) + 1e-9)
    return float(d[allowed]) if allowed < len(d) else float("inf")


def tpir_at_fpir(mated_rank: ArrayLike, mated_dist: ArrayLike, nonmated_best: ArrayLike, fpir: float) -> dict:
    """Open-set true-positive identification rate at a false-positive identification rate.

    A mated probe counts when its true subject is at rank 1 with distance below the threshold
    that keeps non-mated false alarms at or under ``fpir``. Returns tpir, the threshold and the
    FPIR actually reached (which can be below the target with few non-mated probes), with counts
    and exact 95% intervals.

    With fewer than 3 / ``fpir`` non-mated probes the target is not resolvable (``resolvable``
    False): the sample cannot tell an FPIR of ``fpir`` from one several times larger, and the
    threshold is a single extreme order statistic of the same probes it then scores. Then
    ``fpir_upper95`` (the one-sided 95% upper bound on the FPIR at that threshold, 13.9% for 0 of
    20) is what to show instead of the TPIR; ``display`` holds that sentence.
    """
    t = open_set_threshold(nonmated_best, fpir)
    rank = np.asarray(mated_rank, dtype=np.float64)
    dist = np.asarray(mated_dist, dtype=np.float64)
    nm = np.asarray(nonmated_best, dtype=np.float64)
    hits = int(((rank == 1) & (dist < t)).sum())
    alarms = int((nm < t).sum())
    tpir = hits / rank.size if rank.size else float("nan")
    reached = alarms / nm.size if nm.size else float("nan")
    need = min_nonmated_for_fpir(fpir)
    bound = clopper_pearson_upper(alarms, nm.size)
    resolvable = bool(nm.size >= need)
    out = {
        "tpir": tpir,
        "threshold": t,
        "fpir": reached,
        "n_nonmated": int(nm.size),
        "n_mated": int(rank.size),
        "n_tpir_hits": hits,
        "n_false_alarms": alarms,
        "tpir_ci95": list(clopper_pearson(hits, rank.size)),
        "fpir_ci95": list(clopper_pearson(alarms, nm.size)),
        "fpir_upper95": bound,
        "resolvable": resolvable,
        "n_nonmated_needed": need,
    }
    out["display"] = (
        f"TPIR {tpir:.1%} ({hits} of {rank.size})"
        if resolvable
        else f"FPIR <= {_pct(bound)} (one-sided 95% upper bound, {alarms} of {nm.size} non-mated); "
        f"FPIR {fpir:g} needs >= {need} non-mated probes"
    )
    return out


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.1%}"


def min_nonmated_for_fpir(fpir: float) -> int:
    """Non-mated probes needed before a TPIR at ``fpir`` means anything: 3 / fpir (the rule of three:
    0 false alarms in n bounds the FPIR at about 3 / n with 95% confidence)."""
    return int(math.ceil(3.0 / fpir - 1e-9))


# --- intervals for rates ---------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial rate k / n; (nan, nan) for n = 0.
    82 of 82 gives (0.956, 1)."""
    from scipy.stats import beta

    k, n = int(k), int(n)
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n (k={k}, n={n})")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return (lo, hi)


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided exact upper bound for a binomial rate: 0 of 20 gives 0.139 at 95%."""
    from scipy.stats import beta

    k, n = int(k), int(n)
    if n <= 0:
        return float("nan")
    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def proportion_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The one interval privrisk gives for a share of things counted (people, probes, photos, pairs
    taken as independent): exact (Clopper-Pearson), two-sided. Every table, point and page that
    shows k of n calls this, so the same counts always read the same: 82 of 82 is 95.6-100%,
    5 of 20 is 8.7-49.1%. (Event counts over an exposure, such as impostor pairs under a distance,
    use the exact Poisson interval; rates over people with several captures use the subject
    bootstrap.)"""
    return clopper_pearson(k, n, level)


def rate(k: int, n: int, level: float = 0.95) -> dict:
    """A rate with its count and exact interval: {rate, k, n, ci95, method}."""
    return {
        "rate": k / n if n else float("nan"),
        "k": int(k),
        "n": int(n),
        "ci95": list(clopper_pearson(k, n, level)),
        "method": "Clopper-Pearson (exact)",
    }


def format_rate(r: dict) -> str:
    """'100.0% (95% CI 95.6-100.0%, n=82)' from :func:`rate`'s dict."""
    if not r["n"]:
        return "n/a (n=0)"
    lo, hi = r["ci95"]
    return f"{r['rate']:.1%} (95% CI {100 * lo:.1f}-{hi:.1%}, {r['k']} of {r['n']})"


# --- subject-level bootstrap -------------------------------------------------------------------------


def _subject_counts(n_subjects: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_subjects) multiplicities of subjects drawn with replacement."""
    if n_subjects <= 0:
        return np.zeros((n_boot, 0))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    return np.stack([np.bincount(d, minlength=n_subjects) for d in draws]).astype(np.float64)


def _percentile(values: ArrayLike, level: float) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return [float("nan"), float("nan")]
    return [float(x) for x in np.quantile(v, [(1 - level) / 2, 1 - (1 - level) / 2])]


@dataclass(frozen=True)
class VerificationPairs:
    """Pair distances with who is in each pair: genuine pairs (the subject of each) and impostor pairs (the
    probe's and the gallery photo's subject of each). Arrays of one length per kind of pair."""

    genuine: ArrayLike
    genuine_subject: ArrayLike
    impostor: ArrayLike
    impostor_probe_subject: ArrayLike
    impostor_gallery_subject: ArrayLike


@dataclass(frozen=True)
class OpenSetProbes:
    """An open-set search's probes: each mated probe's true rank, distance and subject, and each non-mated
    probe's best distance and subject."""

    mated_rank: ArrayLike
    mated_dist: ArrayLike
    mated_subject: ArrayLike
    nonmated_best: ArrayLike
    nonmated_subject: ArrayLike


def bootstrap_verification(
    pairs: VerificationPairs,
    fars: Sequence[float] = (0.01, 0.001),
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Subject-level bootstrap of the EER and TAR at each FAR, the threshold re-chosen in each resample.

    Subjects (not pairs) are drawn with replacement. A subject drawn m times contributes its genuine
    pairs m times; an impostor pair of subjects a and b counts m_a * m_b times (the pairs between
    copies of one subject are not impostor pairs and are left out). Returns the percentile intervals
    ``eer_ci95`` and ``tar_at_far_ci95`` (by FAR, keys formatted ``{far:g}``), with n_subjects.
    """
    g = np.asarray(pairs.genuine, np.float64)
    i = np.asarray(pairs.impostor, np.float64)
    subjects, inv = np.unique(
        np.concatenate(
            [
                np.asarray(pairs.genuine_subject),
                np.asarray(pairs.impostor_probe_subject),
                np.asarray(pairs.impostor_gallery_subject),
            ]
        ),
        return_inverse=True,
    )
    gs = inv[: len(g)]
    ia, ib = inv[len(g) : len(g) + len(i)], inv[len(g) + len(i) :]
    go, io = np.argsort(g, kind="stable"), np.argsort(i, kind="stable")  # sorted once: resamples sort in O(n)
    g, gs, i, ia, ib = g[go], gs[go], i[io], ia[io], ib[io]
    counts = _subject_counts(len(subjects), n_boot, seed)
    eers: list[float] = []
    tars: dict[str, list[float]] = {f"{f:g}": [] for f in fars}
    for c in counts:
        wg, wi = c[gs], c[ia] * c[ib]
        eers.append(eer(g, i, wg, wi))
        for f in fars:
            tars[f"{f:g}"].append(tar_at_far(g, i, f, wg, wi))
    return {
        "eer_ci95": _percentile(eers, level),
        "tar_at_far_ci95": {k: _percentile(v, level) for k, v in tars.items()},
        "n_subjects": int(len(subjects)),
        "n_boot": int(n_boot),
        "method": "subject bootstrap (subjects resampled, threshold re-chosen in each resample), percentile",
    }


def bootstrap_tpir(
    probes: OpenSetProbes,
    fpirs: Sequence[float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Subject-level bootstrap of TPIR at each FPIR, the threshold re-chosen from each resample's
    non-mated probes. Mated and non-mated subjects are resampled separately (the open-set split is
    part of the design); a subject's probes stay together. The gallery is held fixed. Returns
    {f"{fpir:g}": [lo, hi]}."""
    rank = np.asarray(probes.mated_rank, np.float64)
    dist = np.asarray(probes.mated_dist, np.float64)
    nm = np.asarray(probes.nonmated_best, np.float64)
    _, m_inv = np.unique(np.asarray(probes.mated_subject), return_inverse=True)
    _, n_inv = np.unique(np.asarray(probes.nonmated_subject), return_inverse=True)
    m_counts = _subject_counts(int(m_inv.max()) + 1 if len(m_inv) else 0, n_boot, seed)
    n_counts = _subject_counts(int(n_inv.max()) + 1 if len(n_inv) else 0, n_boot, seed + 1)
    order = np.argsort(nm, kind="stable")
    nm_sorted = nm[order]
    out: dict[str, list[float]] = {f"{f:g}": [] for f in fpirs}
    for mc, nc in zip(m_counts, n_counts):
        wm = mc[m_inv] if len(m_inv) else np.zeros(0)
        cw = np.cumsum((nc[n_inv] if len(n_inv) else np.zeros(0))[order])
        for f in fpirs:
            t = _rate_threshold(nm_sorted, cw, f)
            out[f"{f:g}"].append(float((wm * ((rank == 1) & (dist < t))).sum() / wm.sum()) if wm.sum() else np.nan)
    return {k: _percentile(v, level) for k, v in out.items()}


def det_curve(mated_rank, mated_dist, nonmated_best, thresholds: ArrayLike | None = None) -> dict:
    """FNIR against FPIR over thresholds (open-set identification's DET curve)."""
    rank = np.asarray(mated_rank, dtype=np.float64)
    dist = np.asarray(mated_dist, dtype=np.float64)
    nm = np.asarray(nonmated_best, dtype=np.float64)
    if thresholds is None:
        finite = np.concatenate([dist[np.isfinite(dist)], nm[np.isfinite(nm)]])
        thresholds = np.unique(np.concatenate([finite, finite + 1e-6, [0.0, 2.0]]))
    t = np.asarray(thresholds, dtype=np.float64)
    fnir = (
        1.0 - ((rank[None, :] == 1) & (dist[None, :] <= t[:, None])).mean(axis=1)
        if rank.size
        else np.full(len(t), np.nan)
    )
    fpir = (nm[None, :] <= t[:, None]).mean(axis=1) if nm.size else np.full(len(t), np.nan)
    return {"threshold": t.tolist(), "fpir": fpir.tolist(), "fnir": fnir.tolist()}


def roc(genuine: ArrayLike, impostor: ArrayLike) -> dict:
    """Verification ROC from genuine and impostor pair distances: FAR and TAR at every threshold
    (accept when distance <= threshold), plus the equal error rate."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    t = np.unique(np.concatenate([g, i, [-np.inf, np.inf]]))
    tar = np.searchsorted(g, t, side="right") / max(len(g), 1)
    far = np.searchsorted(i, t, side="right") / max(len(i), 1)
    return {"threshold": t.tolist(), "far": far.tolist(), "tar": tar.tolist(), "eer": eer(g, i)}


def eer(
    genuine: ArrayLike,
    impostor: ArrayLike,
    genuine_weights: ArrayLike | None = None,
    impostor_weights: ArrayLike | None = None,
) -> float:
    """Equal error rate: where false rejection (genuine > t) equals false acceptance (impostor <= t),
    interpolated linearly between the two thresholds where they cross. Optional non-negative weights
    count each pair that many times (a subject bootstrap's multiplicities)."""
    g, wg = _sorted_weighted(genuine, genuine_weights)
    i, wi = _sorted_weighted(impostor, impostor_weights)
    if not len(g) or not len(i) or wg[-1] <= 0 or wi[-1] <= 0:
        return float("nan")
    t = np.unique(np.concatenate([g, i]))
    frr = 1.0 - _cum_at(g, wg, t) / wg[-1]
    far = _cum_at(i, wi, t) / wi[-1]
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


def _sorted_weighted(values, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """``values`` sorted, with the cumulative sum of their weights (1 each when None)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    return v[order], np.cumsum(w[order])


def _cum_at(
    v_sorted: np.ndarray, cw: np.ndarray, t: np.ndarray, side: Literal["left", "right"] = "right"
) -> np.ndarray:
    """Total weight of values <= t (side 'right') or < t (side 'left'), from :func:`_sorted_weighted`."""
    k = np.searchsorted(v_sorted, t, side=side)
    return np.where(k > 0, cw[np.maximum(k - 1, 0)], 0.0)


def _rate_threshold(v_sorted: np.ndarray, cw: np.ndarray, rate: float) -> float:
    """The strictest threshold t such that the weight of values < t is at most ``rate`` of the total:
    the first sorted value whose cumulative weight exceeds rate * total (inf when none does)."""
    if not len(v_sorted) or cw[-1] <= 0:
        return float("inf")
    k = int(np.searchsorted(cw, rate * cw[-1] + 1e-9, side="right"))
    return float(v_sorted[k]) if k < len(v_sorted) else float("inf")


def tar_at_far(genuine, impostor, far: float, genuine_weights=None, impostor_weights=None) -> float:
    """Share of genuine pairs accepted at the strictest threshold whose FAR is at most ``far``
    (optional weights as in :func:`eer`)."""
    g = np.asarray(genuine, dtype=np.float64)
    wg = np.ones(len(g)) if genuine_weights is None else np.asarray(genuine_weights, dtype=np.float64)
    t = _rate_threshold(*_sorted_weighted(impostor, impostor_weights), far)
    return float((wg * (g < t)).sum() / wg.sum()) if g.size and wg.sum() > 0 else float("nan")


def bootstrap_ci(
    values: ArrayLike,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    stats = np.array([statistic(v[row]) for row in idx]) if statistic is not np.mean else v[idx].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def breakdown(hits: ArrayLike, groups: ArrayLike) -> dict[str, dict]:
    """Rank-1 (or any hit rate) per group, with the count behind each cell."""
    hit = np.asarray(hits, dtype=bool)
    group = np.asarray(groups, dtype=object)
    out = {}
    for g in sorted(set(group.tolist())):
        mask = group == g
        out[str(g)] = {"n": int(mask.sum()), "rate": float(hit[mask].mean()) if mask.any() else float("nan")}
    return out


def threshold_at_fmr(
    vectors: ArrayLike, labels: ArrayLike, fmr: float, *, max_faces: int = 2000, seed: int = 0, who: str = "people"
) -> dict:
    """A match threshold chosen at false-match rate ``fmr`` on the impostor pairs of ``vectors``
    (every pair of faces with different ``labels``; at most ``max_faces`` faces, a seeded sample).

    The threshold sits just below the impostor distance ranked ``floor(fmr * n_pairs) + 1``, so at
    most that share of impostor pairs are at or below it. Returns ``value``, the rule, the counts
    and whether the pairs can resolve ``fmr`` (at least 3 / fmr pairs); the people these faces
    belong to must not be the ones the threshold then scores."""
    x = np.asarray(vectors, np.float64)
    lab = np.asarray(labels)
    if len(x) > max_faces:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_faces, replace=False))
        x, lab = x[keep], lab[keep]
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    iu = np.triu_indices(len(x), 1)
    impostor = np.sort(d[iu][lab[iu[0]] != lab[iu[1]]])
    n = int(len(impostor))
    n_people = int(len(np.unique(lab)))
    if n == 0:
        raise ValueError("no impostor pairs (faces of at least two people are needed) to choose a threshold")
    k = int(math.floor(fmr * n))
    value = float(np.nextafter(impostor[k], -np.inf)) if k < n else float(impostor[-1])
    at_or_below = int(np.searchsorted(impostor, value, side="right"))
    resolvable = n >= 3 / fmr
    return {
        "value": value,
        "rule": "fmr",
        "fmr_target": fmr,
        "n_impostor_pairs": n,
        "n_people": n_people,
        "n_faces": int(len(x)),
        "impostor_pairs_at_or_below": at_or_below,
        "fmr_on_these_pairs": at_or_below / n,
        "resolvable": bool(resolvable),
        "statement": (
            f"chosen at false-match rate {fmr:g} on {n:,} impostor pairs of {n_people} {who} "
            f"({at_or_below} at or below it)"
            + ("" if resolvable else f"; {n:,} pairs cannot resolve {fmr:g} (3 / FMR = {3 / fmr:,.0f} needed)")
        ),
    }
