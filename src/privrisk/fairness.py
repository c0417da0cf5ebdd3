"""Demographic differentials, measured the way NIST FRVT Part 3 (NISTIR 8280) measures them.

Pure functions: embeddings, subject ids and per-subject group attributes in; plain dicts out.
Nothing here reads files, embeds photos or imports a later stage.

:func:`analyse` compares every probe photo with every gallery photo (in row blocks, so memory
stays bounded) and reports, for each group of each attribute (self-reported ``gender``,
``ethnicity`` and their combination by default):

- **FMR**: the share of impostor pairs (probe and gallery photo of different people) at or under
  each distance threshold, split by the *probe's* group into same-group pairs (the gallery person
  shares the attribute value; for a combined attribute, every value) and cross-group pairs;
- **FNMR**: the share of genuine pairs (same person) over the threshold, on the clean photos and,
  when given, on E2 captures;
- **FPIR**: the share of non-mated searches whose nearest gallery face of another person is at or
  under the threshold. A probe whose person is enrolled is searched with its own photos removed
  ("mate removed"), so every probe gives one non-mated search against a gallery of everyone else;
- **E2 rank-1** per capture level, when given.

Each cell carries its counts (events, trials, subjects) and a 95% interval from a bootstrap over
subjects: subjects are resampled with replacement within each group of the attribute (so every
group keeps its size) and a pair of subjects (a, b) counts w_a * w_b times. Where the point
estimate has 0 or all events, a percentile bootstrap cannot move, and the interval is the
one-sided exact (Clopper-Pearson) 95% bound with n = the cell's subject count. Cells with fewer
than ``small_subjects`` subjects are reported and flagged ``small: indicative only``.

A match is declared at distance <= threshold (as the experiment's decisions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import setting
from .errors import PrivriskError
from .metrics import proportion_interval

DEFAULT_THRESHOLDS = [0.45, 0.5, 0.55, 0.6]
SMALL_FLAG = "small: indicative only"
ALPHA = 0.05


@dataclass(frozen=True)
class FairnessSettings:
    group_columns: list[str] = setting(
        ["gender", "ethnicity"],
        "manifest columns holding self-reported group attributes; each is analysed for demographic differentials",
    )
    combine: bool = setting(True, "also analyse the combination of all group columns (e.g. gender+ethnicity)")
    thresholds: list[float] = setting(
        DEFAULT_THRESHOLDS,
        "distance thresholds at which per-group false match "
        "rates are reported (the operating threshold is always added)",
    )
    small_subjects: int = setting(
        10, "cells with fewer subjects are still shown, flagged 'small: indicative only'", min=1
    )


# --- exact bounds and cells -------------------------------------------------------------------------


def clopper_pearson_one_sided(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """One-sided exact interval for k events in n trials: [0, upper] when k = 0, [lower, 1] when
    k = n, and the two-sided exact interval otherwise (each side at ``alpha / 2``)."""
    from scipy.stats import beta

    if n <= 0:
        return (float("nan"), float("nan"))
    if k <= 0:
        return (0.0, float(1.0 - alpha ** (1.0 / n)))
    if k >= n:
        return (float(alpha ** (1.0 / n)), 1.0)
    return (float(beta.ppf(alpha / 2, k, n - k + 1)), float(beta.ppf(1 - alpha / 2, k + 1, n - k)))


def _cell(
    events: float,
    trials: float,
    num_boot: np.ndarray,
    den_boot: np.ndarray,
    subjects: int,
    unit: str,
    small_subjects: int,
) -> dict:
    """A table cell: counts, rate, 95% interval (subject bootstrap, exact fallback) and the small flag."""
    events, trials = int(round(events)), int(round(trials))
    cell = {
        "events": events,
        "trials": trials,
        "unit": unit,
        "subjects": int(subjects),
        "rate": None,
        "ci95": None,
        "ci_method": None,
        "n_boot_valid": 0,
        "flag": SMALL_FLAG if subjects < small_subjects else None,
    }
    if trials <= 0 or subjects <= 0:
        cell["ci_method"] = "no trials"
        return cell
    cell["rate"] = events / trials
    valid = den_boot > 0
    cell["n_boot_valid"] = int(valid.sum())
    if events == 0 or events == trials:
        cell["ci95"] = list(
            proportion_interval(subjects, subjects) if events else clopper_pearson_one_sided(0, subjects)
        )
        cell["ci_method"] = (
            f"exact (Clopper-Pearson) {'two-sided 95% interval' if events else 'one-sided 95% bound'} on {subjects} subjects: "
            f"{'no' if events == 0 else 'all'} {unit} were events"
        )
        return cell
    if subjects < 2 or not valid.any():
        # one person: a bootstrap over people cannot move; the exact interval over the trials treats
        # them as independent, which understates the uncertainty
        cell["ci95"] = list(clopper_pearson_one_sided(events, trials))
        cell["ci_method"] = (
            f"exact (Clopper-Pearson) over {trials} {unit} of {subjects} subject(s): "
            "too few people to resample; treats the trials as independent (optimistic)"
        )
        return cell
    stats = num_boot[valid] / den_boot[valid]
    lo, hi = np.quantile(stats, [ALPHA / 2, 1 - ALPHA / 2])
    cell["ci95"] = [float(lo), float(hi)]
    cell["ci_method"] = f"percentile bootstrap over subjects ({int(valid.sum())} resamples)"
    return cell


# --- the pair scan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairScan:
    """What one blockwise pass over probe x gallery keeps: impostor pairs at or under ``max_threshold``
    (photo indices and distance), every genuine pair, and each probe's nearest non-mate distance."""

    imp_probe: np.ndarray
    imp_gallery: np.ndarray
    imp_dist: np.ndarray
    gen_probe: np.ndarray
    gen_gallery: np.ndarray
    gen_dist: np.ndarray
    nonmated_best: np.ndarray
    max_threshold: float


def _as_vectors(x, what: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        if v.size == 0:
            return np.zeros((0, v.shape[-1] if v.ndim == 2 and v.shape[-1] else 128))
        raise PrivriskError(f"{what}: expected an (n, d) array of embeddings, got shape {v.shape}")
    return v


def scan_pairs(
    probe_vectors,
    probe_codes,
    gallery_vectors,
    gallery_codes,
    max_threshold: float,
    *,
    max_block_elements: int = 1 << 22,
) -> PairScan:
    """Euclidean distances of every probe to every gallery vector, computed in row blocks as
    sqrt(|a|^2 + |b|^2 - 2 a.b) (never a P x G x 128 array; at most ``max_block_elements``
    distances in memory at once). Pairs with equal codes are genuine, others impostor."""
    p = _as_vectors(probe_vectors, "probe embeddings")
    g = _as_vectors(gallery_vectors, "gallery embeddings")
    pc, gc = np.asarray(probe_codes, np.int64), np.asarray(gallery_codes, np.int64)
    if len(pc) != len(p) or len(gc) != len(g):
        raise PrivriskError("each embedding needs exactly one subject id")
    gn = (g**2).sum(1)
    rows = max(1, int(max_block_elements // max(len(g), 1)))
    imp, gen = [], []
    nonmated = np.full(len(p), np.inf)
    for s in range(0, len(p), rows):
        a = p[s : s + rows]
        d = np.sqrt(np.maximum((a**2).sum(1)[:, None] + gn[None, :] - 2.0 * (a @ g.T), 0.0))
        same = pc[s : s + rows, None] == gc[None, :]
        gi, gj = np.nonzero(same)
        gen.append((gi + s, gj, d[gi, gj]))
        ii, jj = np.nonzero((d <= max_threshold) & ~same)
        imp.append((ii + s, jj, d[ii, jj]))
        if len(g):
            nonmated[s : s + rows] = np.where(same, np.inf, d).min(axis=1)

    def cat(parts, k, dt):
        return np.concatenate([x[k] for x in parts]).astype(dt) if parts else np.zeros(0, dt)

    return PairScan(
        cat(imp, 0, np.int64),
        cat(imp, 1, np.int64),
        cat(imp, 2, np.float64),
        cat(gen, 0, np.int64),
        cat(gen, 1, np.int64),
        cat(gen, 2, np.float64),
        nonmated,
        float(max_threshold),
    )


# --- groups ---------------------------------------------------------------------------------------------


def group_labels(
    subjects: Sequence[str], attributes: Mapping[str, Mapping[str, str]], columns: Sequence[str], combine: bool = True
) -> dict[str, np.ndarray]:
    """Per attribute name, each subject's group label. A missing or empty value is 'unknown'.
    Columns no subject has are left out; with ``combine`` and two or more columns present, their
    combination (e.g. 'gender+ethnicity', labels 'female / white') is added."""
    present = [c for c in columns if any(str(attributes.get(s, {}).get(c, "") or "").strip() for s in subjects)]
    out = {}
    for c in present:
        out[c] = np.array(
            [str(attributes.get(s, {}).get(c, "") or "").strip() or "unknown" for s in subjects], dtype=object
        )
    if combine and len(present) >= 2:
        out["+".join(present)] = np.array(
            [" / ".join(out[c][i] for c in present) for i in range(len(subjects))], dtype=object
        )
    return out


def _pair_weight_sum(w: np.ndarray, a: np.ndarray, b: np.ndarray, max_elements: int = 1 << 22) -> np.ndarray:
    """sum_k w[:, a_k] * w[:, b_k] per bootstrap row, over event chunks (bounded memory)."""
    out = np.zeros(len(w))
    step = max(1, max_elements // max(len(w), 1))
    for s in range(0, len(a), step):
        out += (w[:, a[s : s + step]] * w[:, b[s : s + step]]).sum(1)
    return out


def _stratified_weights(labels: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, S) bootstrap multiplicities: subjects resampled with replacement within each group."""
    w = np.zeros((n_boot, len(labels)))
    for g in sorted(set(labels.tolist())):
        idx = np.where(labels == g)[0]
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return w


# --- the analysis -------------------------------------------------------------------------------------


def _tkey(t: float) -> str:
    return f"{t:g}"


def analyse(
    probe_vectors,
    probe_subjects: Sequence[str],
    gallery_vectors,
    gallery_subjects: Sequence[str],
    attributes: Mapping[str, Mapping[str, str]],
    *,
    columns: Sequence[str] = ("gender", "ethnicity"),
    combine: bool = True,
    operating_threshold: float = 0.6,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    e2_shots: Mapping[str, tuple[np.ndarray, Sequence[str]]] | None = None,
    e2_rank1: Mapping[str, tuple[Sequence[str], Sequence[bool]]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    small_subjects: int = 10,
) -> dict:
    """Per-group FMR (same- and cross-group), FNMR, FPIR and E2 rank-1 with counts and 95% intervals.

    ``attributes`` maps subject id -> {column: value}. ``e2_shots`` maps a capture level to
    (shot embeddings, the subject of each shot); ``e2_rank1`` maps a level to (subject of each
    mated person, whether rank 1 was right). Returns a JSON-ready dict; ``attributes`` in it is
    empty (and ``note`` says why) when no subject has a value in any of ``columns``.
    """
    thr = sorted({float(t) for t in thresholds} | {float(operating_threshold)})
    p_sub, g_sub = [str(s) for s in probe_subjects], [str(s) for s in gallery_subjects]
    e2_shots, e2_rank1 = dict(e2_shots or {}), dict(e2_rank1 or {})
    names = sorted(
        set(p_sub)
        | set(g_sub)
        | {str(s) for _, (_, ss) in e2_shots.items() for s in ss}
        | {str(s) for _, (ss, _) in e2_rank1.items() for s in ss}
    )
    code = {s: i for i, s in enumerate(names)}
    S = len(names)
    pc = np.array([code[s] for s in p_sub], np.int64)
    gc = np.array([code[s] for s in g_sub], np.int64)
    scan = scan_pairs(probe_vectors, pc, gallery_vectors, gc, max(thr))
    np_s = np.bincount(pc, minlength=S).astype(float)  # probe photos per subject
    ng_s = np.bincount(gc, minlength=S).astype(float)  # gallery photos per subject
    imp_a, imp_b, imp_d = pc[scan.imp_probe], gc[scan.imp_gallery], scan.imp_dist
    gen_s, gen_d = pc[scan.gen_probe], scan.gen_dist
    shots = {}
    for level, (vecs, subs) in e2_shots.items():
        sc = np.array([code[str(s)] for s in subs], np.int64)
        sscan = scan_pairs(vecs, sc, gallery_vectors, gc, max(thr))
        shots[level] = (sc[sscan.gen_probe], sscan.gen_dist, np.bincount(sc, minlength=S).astype(float))

    labels_by_attr = group_labels(names, attributes, columns, combine)
    result: dict[str, Any] = {
        "method": __doc__.split("\n\n", 1)[1].strip(),
        "thresholds": thr,
        "operating_threshold": float(operating_threshold),
        "n_subjects": S,
        "n_probe_photos": len(p_sub),
        "n_gallery_photos": len(g_sub),
        "n_impostor_pairs": int(sum(np_s[a] * (ng_s.sum() - ng_s[a]) for a in range(S))),
        "n_genuine_pairs": int((np_s * ng_s).sum()),
        "nonmated_searches": "mate removed: each probe searched against the gallery without its own person",
        "bootstrap": int(n_boot),
        "seed": int(seed),
        "small_subjects": int(small_subjects),
        "group_columns": list(columns),
        "attributes": {},
        "note": None,
    }
    if not labels_by_attr:
        result["note"] = (
            f"no subject has a value in the group columns ({', '.join(columns) or 'none configured'}); "
            "demographic differentials cannot be measured on this set"
        )
        return result

    rng = np.random.default_rng(seed)
    ones = np.ones((1, S))
    for attr, labels in labels_by_attr.items():
        W = _stratified_weights(labels, n_boot, rng)
        groups = sorted(set(labels.tolist()))
        masks = {g: (labels == g).astype(float) for g in groups}

        def both(vec_fn, W=W):  # point (weights 1) and bootstrap values of a linear statistic
            return float(vec_fn(ones)[0]), vec_fn(W)

        def pair_den(A, B):
            return both(lambda w: (w @ (np_s * A)) * (w @ (ng_s * B)) - (w**2) @ (np_s * ng_s * A * B))

        def pair_num(sel):
            a, b = imp_a[sel], imp_b[sel]
            return both(lambda w: _pair_weight_sum(w, a, b))

        def pair_subjects(A, B):
            others = (ng_s * B).sum() - ng_s * B  # gallery photos of other subjects in B
            return int(((A > 0) & (np_s > 0) & (others > 0)).sum())

        fmr: dict[str, dict] = {}
        overall: dict[str, dict] = {k: {} for k in ("same", "cross", "all")}
        acc: dict[str, dict[str, list[Any]]] = {  # numerators and denominators: pairs, then bootstrap
            k: {_tkey(t): [0.0, 0.0, np.zeros(n_boot), np.zeros(n_boot)] for t in thr} for k in ("same", "cross", "all")
        }
        subj_acc = {"same": 0, "cross": 0, "all": 0}
        for g in groups:
            A = masks[g]
            row: dict[str, dict] = {}
            for split, B in (("same", A), ("cross", 1.0 - A), ("all", np.ones(S))):
                den_p, den_b = pair_den(A, B)
                n_subj = pair_subjects(A, B)
                subj_acc[split] += n_subj
                row[split] = {}
                in_cell = (A[imp_a] > 0) & (B[imp_b] > 0)
                for t in thr:
                    num_p, num_b = pair_num(in_cell & (imp_d <= t))
                    row[split][_tkey(t)] = _cell(num_p, den_p, num_b, den_b, n_subj, "impostor pairs", small_subjects)
                    a = acc[split][_tkey(t)]
                    a[0] += num_p
                    a[1] += den_p
                    a[2] = a[2] + num_b
                    a[3] = a[3] + den_b
            fmr[g] = row
        for split in overall:
            for t in thr:
                num_p, den_p, num_b, den_b = acc[split][_tkey(t)]
                overall[split][_tkey(t)] = _cell(
                    num_p, den_p, num_b, den_b, subj_acc[split], "impostor pairs", small_subjects
                )
        m_pool = acc["all"][_tkey(thr[0])][1] / max(subj_acc["all"], 1)  # pairs per probe subject
        deffs = {_tkey(t): intracluster_correlation(design_effect(*acc["all"][_tkey(t)]), m_pool) for t in thr}
        for row in [*fmr.values(), overall]:
            for split in row:
                for key, cell in row[split].items():
                    clustered_zero_bound(cell, deffs, key)

        def subject_cell(ev_codes, trial_counts, A, unit):
            """A rate whose events and trials belong to one subject each (weight w_s)."""
            ev = np.bincount(ev_codes, minlength=S).astype(float) * A
            tr = trial_counts * A
            num_p, num_b = both(lambda w: w @ ev)
            den_p, den_b = both(lambda w: w @ tr)
            return _cell(num_p, den_p, num_b, den_b, int((tr > 0).sum()), unit, small_subjects)

        fnmr = {
            g: {_tkey(t): subject_cell(gen_s[gen_d > t], np_s * ng_s, masks[g], "genuine pairs") for t in thr}
            for g in groups
        }
        fnmr_e2 = {
            level: {
                g: {
                    _tkey(t): subject_cell(s_codes[s_dist > t], n_shots * ng_s, masks[g], "genuine capture pairs")
                    for t in thr
                }
                for g in groups
            }
            for level, (s_codes, s_dist, n_shots) in shots.items()
        }
        searchers = np_s * ((ng_s.sum() - ng_s) > 0)
        fpir = {
            g: {
                _tkey(t): subject_cell(pc[scan.nonmated_best <= t], searchers, masks[g], "non-mated searches")
                for t in thr
            }
            for g in groups
        }
        rank1 = {}
        for level, (subs, hits) in e2_rank1.items():
            sc = np.array([code[str(s)] for s in subs], np.int64)
            h = np.asarray(hits, bool)
            n_pers = np.bincount(sc, minlength=S).astype(float)
            rank1[level] = {g: subject_cell(sc[h], n_pers, masks[g], "mated persons") for g in groups}

        result["attributes"][attr] = {
            "groups": {g: int(masks[g].sum()) for g in groups},
            "fmr": fmr,
            "fmr_overall": overall,
            "fmr_ratio": fmr_ratio(fmr, W, imp_a, imp_b, imp_d, masks, np_s, ng_s, operating_threshold, small_subjects),
            "fnmr": fnmr,
            "fnmr_e2": fnmr_e2,
            "fpir": fpir,
            "e2_rank1": rank1,
        }
    return result


#: fewest events in the pooled cell from which a design effect is estimated
MIN_DEFF_EVENTS = 5


def design_effect(num_p: float, den_p: float, num_b: np.ndarray, den_b: np.ndarray) -> float | None:
    """Variance of a pair rate under the subject bootstrap over its variance were the pairs
    independent (``p (1 - p) / n``), floored at 1: how much clustering by person inflates it. None
    with fewer than MIN_DEFF_EVENTS events (too few to estimate a variance)."""
    if den_p <= 0 or num_p < MIN_DEFF_EVENTS or num_p >= den_p:
        return None
    ok = den_b > 0
    if ok.sum() < 10:
        return None
    p = num_p / den_p
    return float(max(1.0, np.var(num_b[ok] / den_b[ok], ddof=1) / (p * (1 - p) / den_p)))


def intracluster_correlation(deff: float | None, pairs_per_subject: float) -> float | None:
    """Kish: ``deff = 1 + (m - 1) rho`` with m pairs per person, so ``rho = (deff - 1) / (m - 1)``,
    kept in [0, 1]."""
    if deff is None:
        return None
    if pairs_per_subject <= 1:
        return 1.0
    return float(min(1.0, max(0.0, (deff - 1.0) / (pairs_per_subject - 1.0))))


def clustered_zero_bound(cell: dict, rhos: Mapping[str, float | None], key: str) -> None:
    """For a pair cell with no events: an approximate one-sided 95% bound, the Clopper-Pearson bound
    on the effective number of independent pairs (design-effect adjusted, Kish). It is not exact: the
    design effect is an approximation, and its ``rho`` is borrowed from another cell. The intra-person
    correlation ``rho`` comes from the subject bootstrap of the attribute's pooled cell at the same
    threshold (or the nearest threshold whose pooled cell has at least MIN_DEFF_EVENTS events), via
    :func:`design_effect` and :func:`intracluster_correlation`; the cell's own design effect is
    ``1 + (m - 1) rho`` with ``m`` = its pairs per person, and ``n_eff = pairs / deff``. Since rho is
    in [0, 1], ``n_eff`` lies between the subject count and the pair count, so the bound lies between
    the bound on the subjects alone and the bound that treats every pair as independent. Without any
    usable pooled cell the exact bound on the subject count stays. That bound is kept beside it
    (``ci95_subject_bound``), and ``ci_method`` says "approximate (design-effect adjusted)"."""
    if cell.get("unit") != "impostor pairs" or cell.get("events") != 0 or not cell.get("trials"):
        return
    if (cell.get("subjects") or 0) < 2:  # one person: no correlation within people to borrow; keep the bound
        return
    usable = {k: r for k, r in rhos.items() if r is not None}
    if not usable:
        return
    src = key if key in usable else min(usable, key=lambda k: abs(float(k) - float(key)))
    m = cell["trials"] / cell["subjects"]
    deff = 1.0 + (m - 1.0) * usable[src]
    n_eff = cell["trials"] / deff
    cell["ci95_subject_bound"] = cell["ci95"]
    cell["ci95"] = [0.0, float(1.0 - ALPHA ** (1.0 / n_eff))]
    cell["design_effect"] = deff
    cell["n_effective"] = float(n_eff)
    cell["ci_method"] = (
        f"one-sided approximate (design-effect adjusted) Clopper-Pearson 95% bound on {n_eff:,.0f} effective "
        f"pairs = {cell['trials']:,} pairs / design effect {deff:.1f} (rho borrowed from the subject bootstrap "
        f"of the attribute's pooled cell at {float(src):g}): no impostor pairs were events; the exact bound on "
        f"the {cell['subjects']} subjects alone is {cell['ci95_subject_bound'][1]:.2%}"
    )


def fmr_ratio(
    fmr: Mapping[str, dict],
    W: np.ndarray,
    imp_a,
    imp_b,
    imp_d,
    masks: Mapping[str, np.ndarray],
    np_s,
    ng_s,
    threshold: float,
    small_subjects: int,
) -> dict:
    """:func:`_highest_over_lowest`, plus ``small_cells``: every group with fewer than
    ``small_subjects`` subjects, its FMR over the reference group's (the lowest-FMR group among the
    large ones), with the percentile interval over the same subject resamples, its counts and the
    small flag. Small cells are not left out of the picture; they are only indicative."""
    out = _highest_over_lowest(fmr, W, imp_a, imp_b, imp_d, masks, np_s, ng_s, threshold, small_subjects)
    key = _tkey(threshold)
    cells = {g: row["all"][key] for g, row in fmr.items() if row["all"][key]["trials"] > 0}
    big = {g: c for g, c in cells.items() if c["subjects"] >= small_subjects and c["rate"]}
    small = {g: c for g, c in cells.items() if c["subjects"] < small_subjects}
    out["small_cells"] = []
    out["reference"] = None
    if not big or not small:
        return out
    ref = min(big, key=lambda g: (big[g]["rate"], g))
    out["reference"] = ref

    def boot_rate(g):
        A = masks[g]
        sel = (A[imp_a] > 0) & (imp_d <= threshold)
        num = _pair_weight_sum(W, imp_a[sel], imp_b[sel])
        den = (W @ (np_s * A)) * (W @ ng_s) - (W**2) @ (np_s * ng_s * A)
        return num, den

    nr, dr = boot_rate(ref)
    for g in sorted(small):
        c = small[g]
        ng, dg = boot_rate(g)
        ok = (dr > 0) & (dg > 0) & ((nr > 0) | (ng > 0))  # 0 / 0 tells nothing; x / 0 is unbounded
        with np.errstate(divide="ignore"):
            ratios = (ng[ok] / dg[ok]) / (nr[ok] / dr[ok])
        row = {
            "group": g,
            "subjects": c["subjects"],
            "events": c["events"],
            "pairs": c["trials"],
            "rate": c["rate"],
            "rate_ci95": c["ci95"],
            "ratio_to_reference": float(c["rate"] / big[ref]["rate"]),
            "ratio_ci95": None,
            "flag": SMALL_FLAG,
            "note": None,
        }
        if len(ratios) >= 10 and c["subjects"] >= 2:
            r_lo = float(np.quantile(ratios, ALPHA / 2, method="lower"))
            r_hi = float(np.quantile(ratios, 1 - ALPHA / 2, method="higher"))
            row["ratio_ci95"] = [r_lo, r_hi if math.isfinite(r_hi) else None]
            if not math.isfinite(r_hi):
                row["note"] = f"in more than 2.5% of subject resamples '{ref}' had no false match: no upper end"
            if c["events"] == 0:
                # a resample cannot show events the cell never had: bound the ratio by the cell's own
                # upper bound (approximate, design-effect adjusted) over the reference rate instead
                row["ratio_ci95"] = [0.0, float(c["ci95"][1] / big[ref]["rate"])]
                row["note"] = (
                    "no false match: upper end = the cell's approximate (design-effect adjusted) upper bound / "
                    "the reference rate"
                    if "design_effect" in c
                    else "no false match: upper end = the cell's exact upper bound / the reference rate"
                )
        else:
            row["ratio_ci95"] = [float(c["ci95"][0] / big[ref]["rate"]), float(c["ci95"][1] / big[ref]["rate"])]
            row["note"] = (
                "too few people to resample: the cell's own interval over the reference rate "
                "(the reference's own uncertainty not included)"
            )
        out["small_cells"].append(row)
    return out


def _highest_over_lowest(
    fmr: Mapping[str, dict],
    W: np.ndarray,
    imp_a,
    imp_b,
    imp_d,
    masks: Mapping[str, np.ndarray],
    np_s,
    ng_s,
    threshold: float,
    small_subjects: int,
) -> dict:
    """Highest over lowest group FMR (all impostor pairs of the probe's group) at ``threshold``,
    with a bootstrap interval on the same subject resamples. This headline compares only groups with
    at least ``small_subjects`` subjects (10 by default) when two or more have them; otherwise every
    group with impostor pairs (and the ratio is flagged small). The larger differentials can sit in
    the small groups it leaves out: :func:`fmr_ratio` lists those after it (``small_cells``). A
    lowest rate of 0 makes the ratio unbounded: then only a lower bound is given (the highest
    group's lower 95% end over the lowest group's upper bound, exact or, for a clustered zero-event
    cell, approximate)."""
    key = _tkey(threshold)
    cells = {g: row["all"][key] for g, row in fmr.items() if row["all"][key]["trials"] > 0}
    big = {g: c for g, c in cells.items() if c["subjects"] >= small_subjects}
    use, flag = (big, None) if len(big) >= 2 else (cells, SMALL_FLAG)
    out = {
        "threshold": float(threshold),
        "groups_compared": sorted(use),
        "flag": flag,
        "highest": None,
        "lowest": None,
        "ratio": None,
        "ci95": None,
        "unbounded": False,
        "lower_bound": None,
        "note": None,
    }
    if len(use) < 2:
        out["note"] = "fewer than two groups with impostor pairs: no ratio"
        return out
    hi = max(use, key=lambda g: (use[g]["rate"], g))
    lo = min(use, key=lambda g: (use[g]["rate"], g))
    out.update(highest=hi, lowest=lo)
    if use[hi]["rate"] == 0:
        out["note"] = "no false matches in any compared group at this threshold: no ratio"
        return out

    def boot_rate(g):
        A = masks[g]
        sel = (A[imp_a] > 0) & (imp_d <= threshold)
        num = _pair_weight_sum(W, imp_a[sel], imp_b[sel])
        den = (W @ (np_s * A)) * (W @ ng_s) - (W**2) @ (np_s * ng_s * A)
        return num, den

    nh, dh = boot_rate(hi)
    nl, dl = boot_rate(lo)
    ok = (dh > 0) & (dl > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(nl[ok] > 0, (nh[ok] / dh[ok]) / np.where(nl[ok] > 0, nl[ok] / dl[ok], 1.0), np.inf)
    if use[lo]["rate"] == 0:
        out["unbounded"] = True
        lo_up = use[lo]["ci95"][1]
        out["lower_bound"] = float(use[hi]["ci95"][0] / lo_up) if lo_up else None
        out["note"] = (
            f"'{lo}' has no false match in {use[lo]['trials']} impostor pairs: the ratio is unbounded; "
            "lower bound = the highest group's lower 95% end / the lowest group's "
            + ("approximate (design-effect adjusted)" if "design_effect" in use[lo] else "exact")
            + " upper bound"
        )
        return out
    out["ratio"] = float(use[hi]["rate"] / use[lo]["rate"])
    r_lo = float(np.quantile(ratios, ALPHA / 2, method="lower"))
    r_hi = float(np.quantile(ratios, 1 - ALPHA / 2, method="higher"))
    out["ci95"] = [r_lo, r_hi if math.isfinite(r_hi) else None]
    if not math.isfinite(r_hi):
        out["unbounded"] = True
        out["lower_bound"] = r_lo
        out["note"] = (
            f"in more than 2.5% of subject resamples '{lo}' had no false match: the interval's upper end is unbounded"
        )
    return out


def same_cross_table(result: Mapping, attribute: str | None = None) -> list[dict]:
    """Rows of the overall same-group / cross-group FMR table for ``attribute`` (default: the
    combined attribute when present, else the first), one row per split and threshold."""
    attrs = result.get("attributes") or {}
    if not attrs:
        return []
    attribute = attribute or next((a for a in attrs if "+" in a), next(iter(attrs)))
    rows = []
    for split in ("same", "cross"):
        for t, c in attrs[attribute]["fmr_overall"][split].items():
            rows.append({"attribute": attribute, "split": split, "threshold": float(t)} | c)
    return rows


# --- the tail model, group by group --------------------------------------------------------------------


def tail_check(result: Mapping, attribute: str, predicted: Mapping, *, tail_model: str = "", note: str = "") -> dict:
    """Per group, does a model's predicted impostor rate match the real one?

    ``predicted`` = ``{"thresholds": [...], "by_group": {group: {"rate": [...], "rate_ci95": [[lo, hi], ...]}}}``
    (the shape of ``tailmodel.predict_pair_rate``; ``rate_ci95`` may be left out), rates parallel to
    ``thresholds``: the model's chance that a probe of the group lies within the threshold of one
    random face of someone else. The real rate is the group's FMR cell over all impostor pairs
    (``fmr[group]["all"]``) of :func:`analyse`'s ``result``, with its 95% interval.

    A row is "within" when the model's interval (or its point, without one) meets the real 95%
    interval; "model too low" / "model too high" otherwise; "not judged" when neither side has a
    pair (no real event and the model's upper end under one pair in the cell). Thresholds that the
    analysis did not compute are skipped."""
    attrs = result.get("attributes") or {}
    if attribute not in attrs:
        raise PrivriskError(
            f"tail check: attribute {attribute!r} is not in the fairness result (has: {', '.join(attrs) or 'none'})"
        )
    fmr = attrs[attribute]["fmr"]
    thr = [float(t) for t in predicted["thresholds"]]
    rows = []
    for group, pred in predicted["by_group"].items():
        if group not in fmr:
            raise PrivriskError(f"tail check: group {group!r} has no real cells under {attribute!r}")
        rates = np.asarray(pred["rate"], np.float64)
        cis = pred.get("rate_ci95")
        if len(rates) != len(thr) or (cis is not None and len(cis) != len(thr)):
            raise PrivriskError(f"tail check: group {group!r} needs one predicted rate per threshold ({len(thr)})")
        for j, t in enumerate(thr):
            real = fmr[group]["all"].get(_tkey(t))
            if real is None or real["rate"] is None:
                continue
            m_lo, m_hi = (float(cis[j][0]), float(cis[j][1])) if cis is not None else (float(rates[j]),) * 2
            r_lo, r_hi = real["ci95"]
            if real["events"] == 0 and m_hi * real["trials"] < 1.0:
                verdict = "not judged (no pair on either side)"
            elif m_hi < r_lo:
                verdict = "model too low"
            elif m_lo > r_hi:
                verdict = "model too high"
            else:
                verdict = "within"
            rows.append(
                {
                    "group": group,
                    "threshold": t,
                    "real_rate": real["rate"],
                    "real_ci95": [r_lo, r_hi],
                    "events": real["events"],
                    "pairs": real["trials"],
                    "subjects": real["subjects"],
                    "flag": real["flag"],
                    "model_rate": float(rates[j]),
                    "model_ci95": [m_lo, m_hi],
                    "verdict": verdict,
                }
            )
    judged = [r for r in rows if not r["verdict"].startswith("not judged")]
    bad = [r for r in judged if r["verdict"] != "within"]
    summary = (
        f"the model's per-group impostor rate is within the real 95% interval in {len(judged) - len(bad)} of "
        f"{len(judged)} judged cells"
    )
    if bad:
        summary += "; not within for " + ", ".join(f"{r['group']} at {r['threshold']:g} ({r['verdict']})" for r in bad)
    return {
        "attribute": attribute,
        "tail_model": tail_model,
        "thresholds": thr,
        "rows": rows,
        "all_within": not bad,
        "n_judged": len(judged),
        "summary": summary,
        "note": note,
    }


def group_rates_from_replicates(reps: np.ndarray, pairs_per_probe, probe_labels) -> dict:
    """Per-group predicted impostor rates from per-probe predictions.

    ``reps`` (R + 1, n_probes, T): each probe's predicted chance of lying within each of T thresholds
    of one random face of someone else, under the point fit (row 0) and R bootstrap refits. A group's
    rate is the pair-weighted mean over its probes (``pairs_per_probe`` = impostor pairs per probe);
    its interval the 2.5-97.5% quantiles over the refits, widened to contain the point.
    Returns ``{group: {"n", "rate", "rate_ci95"}}``, the ``by_group`` input of :func:`tail_check`."""
    reps = np.asarray(reps, np.float64)
    w = np.asarray(pairs_per_probe, np.float64)
    labels = np.asarray([str(x) for x in probe_labels], dtype=object)
    if reps.ndim != 3 or reps.shape[1] != len(w) or len(labels) != len(w):
        raise PrivriskError(
            "predicted rates: expected (replicates, probes, thresholds) with one weight and label per probe"
        )
    out = {}
    for g in sorted(set(labels.tolist())):
        sel = labels == g
        if w[sel].sum() <= 0:
            continue
        v = (reps[:, sel, :] * w[None, sel, None]).sum(axis=1) / w[sel].sum()
        if len(v) > 1:
            lo, hi = np.quantile(v[1:], [ALPHA / 2, 1 - ALPHA / 2], axis=0)
            lo, hi = np.minimum(lo, v[0]), np.maximum(hi, v[0])
        else:
            lo = hi = v[0]
        out[g] = {
            "n": int(sel.sum()),
            "rate": v[0].tolist(),
            "rate_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)],
        }
    return out


def _envelope(by_kind: Mapping[str, dict]) -> dict:
    """One ``by_group`` from several tail models' ``by_group``: the first model's rate, the union
    (lowest lower end, highest upper end) of every model's interval."""
    first = next(iter(by_kind.values()))
    out = {}
    for g, v in first.items():
        lo = np.min([np.asarray(bk[g]["rate_ci95"])[:, 0] for bk in by_kind.values() if g in bk], axis=0)
        hi = np.max([np.asarray(bk[g]["rate_ci95"])[:, 1] for bk in by_kind.values() if g in bk], axis=0)
        out[g] = {"n": v["n"], "rate": v["rate"], "rate_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)]}
    return out


def _fold_pair_reps(tailmodel, cv: dict, p: np.ndarray, thr, groups) -> np.ndarray:
    """(replicates, probes, thresholds): each probe's predicted pair rate from its fold's model."""
    models, fold_of = cv["fold_models"], np.asarray(cv["fold_of"])
    n_rep = min(len(m.replicates()) for m in models.values())
    reps = np.full((n_rep, len(p), len(thr)), np.nan)
    for k, model in models.items():
        sel = fold_of == k
        g = None if groups is None else np.asarray(groups, dtype=object)[sel]
        for b, params in enumerate(model.replicates()[:n_rep]):
            reps[b, sel] = tailmodel.pair_cdf(model, p[sel], np.asarray(thr)[None, :], g, params)
    return reps


def scale_by_group(
    cvs: Mapping[str, dict],
    probe_vectors,
    probe_subjects: Sequence[str] | np.ndarray,
    gallery_vectors,
    gallery_subjects: Sequence[str] | np.ndarray,
    probe_groups: Sequence[str],
    labels_for: Mapping[str, Sequence[str]],
    *,
    threshold: float,
    sizes: Sequence[int] = (10**6, 10**9),
    small_subjects: int = 10,
) -> dict:
    """Per group: predicted rank-1 and FPIR at ``threshold`` in galleries of ``sizes`` faces, as ranges.

    ``cvs`` maps a tail-model kind to its :func:`privrisk.tailmodel.cross_validate` result fitted with
    ``probe_groups`` (group-conditional tail mass), so each probe is predicted by the model of the fold
    that left its person out, with its own group's tail. Every probe is a search: mated against the
    real gallery plus ``N - n_real`` model faces (rank 1 = first among the real gallery and no model
    face within the genuine distance), and mate removed for FPIR (a false alarm = the nearest real
    non-mate or any model face within ``threshold``). ``labels_for`` maps attribute name -> each
    probe's group under it. The range spans every bootstrap refit (2.5-97.5%) of every kind; the
    value is the first kind's point fit. All such values are extrapolated: the per-face probabilities
    that decide them lie far below what the real pairs can check."""
    from . import tailmodel

    p = np.asarray(probe_vectors, np.float64)
    g = np.asarray(gallery_vectors, np.float64)
    ps, gs = np.asarray(probe_subjects).astype(str), np.asarray(gallery_subjects).astype(str)
    d = np.sqrt(np.maximum((p**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2 * p @ g.T, 0))
    same = ps[:, None] == gs[None, :]
    genuine = np.where(same, d, np.inf).min(axis=1)
    nonmate = np.where(same, np.inf, d).min(axis=1)
    hit = np.isfinite(genuine) & (genuine < nonmate)
    n_real = len(g)
    n_other = np.array([max(int(s) - n_real, 0) for s in sizes], np.float64)
    owners = np.arange(len(p))
    vals = {}  # kind -> (reps, 2 quantities, probes, sizes)
    for kind, cv in cvs.items():
        models, fold = cv["fold_models"], np.asarray(cv["fold_of"])
        n_rep = min(len(m.replicates()) for m in models.values())
        out = np.zeros((n_rep, 2, len(p), len(sizes)))
        for rep in range(n_rep):
            s1 = tailmodel.crossfit_survival(
                models, fold, p, np.where(hit, genuine, 0.0), owners, len(p), n_other, rep=rep, groups=probe_groups
            )
            sth = tailmodel.crossfit_survival(
                models, fold, p, np.full(len(p), threshold), owners, len(p), n_other, rep=rep, groups=probe_groups
            )
            out[rep, 0] = hit[:, None] * s1
            out[rep, 1] = 1 - (nonmate > threshold)[:, None] * sth
        vals[kind] = out
    first = next(iter(vals))
    subj_of = dict(zip(range(len(ps)), ps))
    result = {}
    for attr, attr_labels in labels_for.items():
        labels = np.asarray([str(x) for x in attr_labels], dtype=object)
        rows = []
        for grp in sorted(set(labels.tolist())):
            sel = labels == grp
            n_subj = len({subj_of[i] for i in np.where(sel)[0]})
            for q, what in enumerate(("rank1", "fpir_at_threshold")):
                per_kind = {k: v[:, q, sel, :].mean(axis=1) for k, v in vals.items()}  # (reps, sizes)
                lo = np.min([np.quantile(v[1:], 0.025, axis=0) if len(v) > 1 else v[0] for v in per_kind.values()], 0)
                hi = np.max([np.quantile(v[1:], 0.975, axis=0) if len(v) > 1 else v[0] for v in per_kind.values()], 0)
                pt = per_kind[first][0]
                lo, hi = np.minimum(lo, pt), np.maximum(hi, pt)
                for j, size in enumerate(sizes):
                    rows.append(
                        {
                            "group": grp,
                            "quantity": what,
                            "gallery_size": int(size),
                            "kind": "extrapolated",
                            "value": float(pt[j]),
                            "range": [float(lo[j]), float(hi[j])],
                            "probes": int(sel.sum()),
                            "subjects": n_subj,
                            "flag": SMALL_FLAG if n_subj < small_subjects else None,
                            "note": (
                                f"{n_subj} people are too few to fit this group's own tail: its multiplier is "
                                "pulled towards the pool, so the range says more about the pool than the group"
                                if n_subj < small_subjects
                                else None
                            ),
                        }
                    )
        result[attr] = rows
    return {
        "threshold": float(threshold),
        "sizes": [int(s) for s in sizes],
        "n_real_gallery": n_real,
        "rows": result,
        "method": (
            "every probe searched against the real gallery plus N - n_real model faces; per-face chances from the "
            "group-conditional tail model of the fold that left the person out; ranges over every bootstrap "
            f"refit of {', '.join(cvs)}"
        ),
        "composition": (
            "the group multipliers are relative to the fit faces' mix of groups; a platform whose faces are "
            "mixed differently (more faces of your own group) puts more look-alikes near you than these figures say"
        ),
    }


def tail_check_cross_validated(
    result: Mapping,
    probe_vectors,
    probe_subjects: Sequence[str],
    gallery_vectors,
    gallery_subjects: Sequence[str],
    attributes: Mapping[str, Mapping[str, str]],
    *,
    kind: str = "gpd",
    k_folds: int = 5,
    n_boot: int = 100,
    seed: int = 0,
    group_conditional: bool = True,
    kinds: Sequence[str] | None = None,
    sizes: Sequence[int] = (10**6, 10**9),
) -> dict:
    """The validated tail model (:mod:`privrisk.tailmodel`, issue 11), checked group by group.

    The model is fitted by subject-level K-fold cross-validation, so every probe's prediction comes
    from a model that never saw that person. With ``group_conditional`` (default) the fit is given
    each probe's group under the finest attribute (the combination, e.g. gender+ethnicity, when
    present): each group's tail mass gets an empirical-Bayes multiplier
    (:func:`privrisk.tailmodel._group_tail`), and each probe is predicted with its group's. Per group
    of every attribute, the predicted impostor rate (the range over ``kinds``' bootstrap refits) is
    compared with the real FMR (all impostor pairs) by :func:`tail_check`. The same check without
    groups is kept under ``without_groups`` (before/after). Also per group: rank-1 and FPIR at the
    operating threshold in galleries of ``sizes`` (:func:`scale_by_group`)."""
    from . import tailmodel  # same stage (a model of impostor distances); imported lazily

    thr = [float(t) for t in result["thresholds"]]
    p = np.asarray(probe_vectors, np.float64)
    gv = np.asarray(gallery_vectors, np.float64)
    ps, gs = np.asarray(probe_subjects).astype(str), np.asarray(gallery_subjects).astype(str)
    names = sorted(set(ps) | set(gs))
    attrs = list(result.get("attributes", {}))
    labels_for = {}
    for attr in attrs:
        labels = group_labels(
            names, attributes, [c for c in result["group_columns"] if c in attr.split("+")], combine="+" in attr
        )[attr]
        by_subject = dict(zip(names, labels))
        labels_for[attr] = [by_subject[s] for s in ps]
    finest = next((a for a in attrs if "+" in a), attrs[0] if attrs else None)
    fit_groups = labels_for[finest] if (group_conditional and finest) else None
    kinds = list(kinds or ([kind, *[k for k in tailmodel.KINDS if k != kind]] if group_conditional else [kind]))
    opts: dict[str, Any] = {"thresholds": thr, "k_folds": k_folds, "n_boot": n_boot, "seed": seed}
    cvs = {k: tailmodel.cross_validate(p, ps, gv, gs, kind=k, probe_groups=fit_groups, **opts) for k in kinds}
    pairs = (ps[:, None] != gs[None, :]).sum(axis=1)
    reps = {k: _fold_pair_reps(tailmodel, cv, p, thr, fit_groups) for k, cv in cvs.items()}
    n_rep = min(len(m.replicates()) for m in cvs[kinds[0]]["fold_models"].values())
    how = (
        f"{k_folds}-fold subject cross-validation (each probe predicted by a model fitted without its person; "
        f"{n_rep - 1} bootstrap refits per fold)"
    )
    checks = {}
    for attr in attrs:
        by_kind = {k: group_rates_from_replicates(r, pairs, labels_for[attr]) for k, r in reps.items()}
        checks[attr] = tail_check(
            result,
            attr,
            {"thresholds": thr, "by_group": _envelope(by_kind)},
            tail_model=cvs[kinds[0]]["tail_model"],
            note=how
            + (
                f"; group-conditional: each {finest} group's tail mass gets an empirical-Bayes multiplier; "
                f"intervals span {' and '.join(kinds)} tails"
                if fit_groups is not None
                else "; no group labels in the fit"
            ),
        )
    out = {
        "tail_model": cvs[kinds[0]]["tail_model"],
        "kind": kinds[0],
        "kinds": kinds,
        "group_conditional": fit_groups is not None,
        "fit_groups": finest if fit_groups is not None else None,
        "overall_validation_pass": cvs[kinds[0]]["pass"],
        "overall_verdict": cvs[kinds[0]]["verdict"],
        "pit_ks_p": cvs[kinds[0]]["pit_ks_p"],
        "by_attribute": checks,
    }
    if fit_groups is not None:
        fm = cvs[kinds[0]]["fold_models"]
        out["multipliers_by_fold"] = {int(k): dict(m.params.group_tail) for k, m in fm.items()}
        plain = tailmodel.cross_validate(p, ps, gv, gs, kind=kinds[0], **opts)
        r0 = _fold_pair_reps(tailmodel, plain, p, thr, None)
        out["without_groups"] = {
            "overall_validation_pass": plain["pass"],
            "pit_ks_p": plain["pit_ks_p"],
            "by_attribute": {
                a: tail_check(
                    result,
                    a,
                    {"thresholds": thr, "by_group": group_rates_from_replicates(r0, pairs, labels_for[a])},
                    tail_model=plain["tail_model"],
                    note=how + "; no group labels in the fit",
                )["summary"]
                for a in attrs
            },
        }
        out["scale"] = scale_by_group(
            cvs,
            p,
            ps,
            gv,
            gs,
            fit_groups,
            labels_for,
            threshold=float(result["operating_threshold"]),
            sizes=sizes,
            small_subjects=int(result.get("small_subjects", 10)),
        )
    return out


# --- in plain words ----------------------------------------------------------------------------------------


def _pct_words(x: float) -> str:
    p = 100 * x
    return "0%" if p == 0 else (f"{p:.0f}%" if p >= 10 else f"{p:#.2g}".rstrip(".") + "%")


def plain_words(result: Mapping) -> dict:
    """The differential in plain words for a lay audience (the trainer page): who gets mistaken for
    someone else more often, and why that matters when a stranger searches a platform. Every number
    is measured and comes with its count; small groups are said to be small."""
    attrs = result.get("attributes") or {}
    t = float(result["operating_threshold"])
    key = _tkey(t)
    out: dict[str, Any] = {
        "source": (
            f"measured on {result['n_subjects']} consenting people's photos (every photo against every "
            f"other person's photo, {result['n_impostor_pairs']:,} pairs), face matcher threshold {t:g}"
        ),
        "threshold": t,
        "same_vs_cross": None,
        "by_group": [],
        "why": None,
    }
    if not attrs:
        out["note"] = result.get("note") or "no group columns: no differential can be measured"
        return out
    main = next((a for a in attrs if "+" in a), next(iter(attrs)))
    same, cross = attrs[main]["fmr_overall"]["same"][key], attrs[main]["fmr_overall"]["cross"][key]
    label = " and ".join(main.split("+"))
    if same["rate"] is not None and cross["rate"] is not None:
        out["same_vs_cross"] = (
            f"Two different people who share their {label} were mistaken for each other in "
            f"{_pct_words(same['rate'])} of comparisons ({same['events']} of {same['trials']:,}; 95% interval "
            f"{_pct_words(same['ci95'][0])} to {_pct_words(same['ci95'][1])}). People who differ in {label}: "
            f"{_pct_words(cross['rate'])} ({cross['events']} of {cross['trials']:,}; 95% "
            f"{_pct_words(cross['ci95'][0])} to {_pct_words(cross['ci95'][1])})."
        )
    for name, at in attrs.items():
        if "+" in name:
            continue
        cells = {g: c[key] for g, c in at["fpir"].items() if c[key]["rate"] is not None}
        big = {g: c for g, c in cells.items() if c["subjects"] >= result["small_subjects"]}
        cells = big if len(big) >= 2 else cells
        if len(cells) < 2:
            continue
        hi = max(cells, key=lambda g: (cells[g]["rate"], g))
        lo = min(cells, key=lambda g: (cells[g]["rate"], g))
        if cells[hi]["rate"] == cells[lo]["rate"]:
            continue

        def who(g, cells=cells):
            c = cells[g]
            small = ", few people: indicative only" if c["flag"] else ""
            return (
                f"{_pct_words(c['rate'])} of the time for people recorded as {g.replace('_', ' ')} "
                f"({c['events']} of {c['subjects']} people{small})"
            )

        overlap = cells[hi]["ci95"][0] <= cells[lo]["ci95"][1]
        out["by_group"].append(
            f"By {name}: searched among everyone else's photos, a face was matched to someone "
            f"else {who(hi)}, against {who(lo)}."
            + (" The 95% intervals overlap: this sample shows no clear difference." if overlap else "")
        )
    out["why"] = (
        "A stranger who searches a platform with your photo gets the closest faces back. If faces like "
        "yours are mistaken for each other more often, you are more likely to be 'identified' as someone "
        "you are not, and someone else's name, address or history gets attached to you, or yours to them. "
        "The bigger the platform, the more look-alikes it holds, so the gap grows with its size."
    )
    return out
