"""Demographic differentials estimated the way NIST FRVT Part 3 (NISTIR 8280) measures them: the pair
scan and the per-group tables of :func:`analyse`.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..config import DEFAULT_THRESHOLDS
from ..errors import PrivriskError
from .cells import (
    ImpostorPairs,
    Resamples,
    clustered_zero_bound,
    design_effect,
    intracluster_correlation,
    make_cell,
    pair_weight_sum,
    stratified_weights,
    tkey,
)
from .ratios import fmr_ratio

SPLITS = ("same", "cross", "all")


@dataclass(frozen=True)
class FaceSet:
    """One side of the comparison: photo embeddings ((n, 128)) and the subject of each."""

    vectors: Any
    subjects: Sequence[str] | np.ndarray


@dataclass(frozen=True)
class AnalysisOptions:
    """How :func:`analyse` groups, thresholds and resamples. ``columns`` and ``combine`` name the
    group attributes (:func:`group_labels`); the operating threshold is always added to ``thresholds``;
    ``n_boot`` subject resamples drawn from ``seed``; cells with fewer than ``small_subjects`` are flagged.
    A parameter object, not a user setting: the experiment fills it from
    :class:`privrisk.config.FairnessSettings` and the run's bootstrap count, seed and threshold."""

    columns: Sequence[str] = ("gender", "ethnicity")
    combine: bool = True
    operating_threshold: float = 0.6
    thresholds: Sequence[float] = tuple(DEFAULT_THRESHOLDS)
    n_boot: int = 1000
    seed: int = 0
    small_subjects: int = 10


@dataclass(frozen=True)
class E2Inputs:
    """E2 for :func:`analyse`: ``shots`` maps a capture level to (shot embeddings, the subject of each
    shot); ``rank1`` maps a level to (subject of each mated person, whether rank 1 was right)."""

    shots: Mapping[str, tuple[np.ndarray, Sequence[str]]] = field(default_factory=dict)
    rank1: Mapping[str, tuple[Sequence[str], Sequence[bool]]] = field(default_factory=dict)


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


# --- the analysis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coded:
    """The photos as subject codes: what every attribute's tables are computed from."""

    names: list[str]
    probe_codes: np.ndarray
    n_gallery_photos: int
    pairs: ImpostorPairs
    genuine: tuple[np.ndarray, np.ndarray]  # each genuine pair's subject code and distance
    nonmated_best: np.ndarray  # each probe's nearest non-mate distance
    shots: dict  # E2 level -> (genuine capture pairs' subject codes, their distances, shots per subject)
    rank1: dict  # E2 level -> (mated persons' subject codes, whether rank 1 was right)


def _code(probes: FaceSet, gallery: FaceSet, e2: E2Inputs, max_threshold: float) -> _Coded:
    """Subject ids to codes (sorted names), and the one pair scan of probes (and E2 shots) x gallery."""
    p_sub, g_sub = [str(s) for s in probes.subjects], [str(s) for s in gallery.subjects]
    names = sorted(
        set(p_sub)
        | set(g_sub)
        | {str(s) for _, (_, ss) in e2.shots.items() for s in ss}
        | {str(s) for _, (ss, _) in e2.rank1.items() for s in ss}
    )
    code = {s: i for i, s in enumerate(names)}
    S = len(names)
    pc = np.array([code[s] for s in p_sub], np.int64)
    gc = np.array([code[s] for s in g_sub], np.int64)
    scan = scan_pairs(probes.vectors, pc, gallery.vectors, gc, max_threshold)
    np_s = np.bincount(pc, minlength=S).astype(float)  # probe photos per subject
    ng_s = np.bincount(gc, minlength=S).astype(float)  # gallery photos per subject
    shots = {}
    for level, (vecs, subs) in e2.shots.items():
        sc = np.array([code[str(s)] for s in subs], np.int64)
        sscan = scan_pairs(vecs, sc, gallery.vectors, gc, max_threshold)
        shots[level] = (sc[sscan.gen_probe], sscan.gen_dist, np.bincount(sc, minlength=S).astype(float))
    rank1 = {
        level: (np.array([code[str(s)] for s in subs], np.int64), np.asarray(hits, bool))
        for level, (subs, hits) in e2.rank1.items()
    }
    pairs = ImpostorPairs(pc[scan.imp_probe], gc[scan.imp_gallery], scan.imp_dist, np_s, ng_s)
    return _Coded(names, pc, len(g_sub), pairs, (pc[scan.gen_probe], scan.gen_dist), scan.nonmated_best, shots, rank1)


def _header(coded: _Coded, options: AnalysisOptions, thr: list[float]) -> dict[str, Any]:
    """The result's counts and settings, before any attribute's tables."""
    np_s, ng_s = coded.pairs.probe_photos, coded.pairs.gallery_photos
    S = len(coded.names)
    return {
        "method": (__doc__ or "").split("\n\n", 1)[1].strip(),
        "thresholds": thr,
        "operating_threshold": float(options.operating_threshold),
        "n_subjects": S,
        "n_probe_photos": len(coded.probe_codes),
        "n_gallery_photos": coded.n_gallery_photos,
        "n_impostor_pairs": int(sum(np_s[a] * (ng_s.sum() - ng_s[a]) for a in range(S))),
        "n_genuine_pairs": int((np_s * ng_s).sum()),
        "nonmated_searches": "mate removed: each probe searched against the gallery without its own person",
        "bootstrap": int(options.n_boot),
        "seed": int(options.seed),
        "small_subjects": int(options.small_subjects),
        "group_columns": list(options.columns),
        "attributes": {},
        "note": None,
    }


def analyse(
    probes: FaceSet,
    gallery: FaceSet,
    attributes: Mapping[str, Mapping[str, str]],
    options: AnalysisOptions | None = None,
    e2: E2Inputs | None = None,
) -> dict:
    """Per-group FMR (same- and cross-group), FNMR, FPIR and E2 rank-1 with counts and 95% intervals.

    ``attributes`` maps subject id -> {column: value}; ``options`` says how (:class:`AnalysisOptions`);
    ``e2`` adds E2's per-group FNMR and rank-1 (:class:`E2Inputs`). Returns a JSON-ready dict;
    ``attributes`` in it is empty (and ``note`` says why) when no subject has a value in any of the
    options' ``columns``.
    """
    opts = options or AnalysisOptions()
    thr = sorted({float(t) for t in opts.thresholds} | {float(opts.operating_threshold)})
    coded = _code(probes, gallery, e2 or E2Inputs(), max(thr))
    result = _header(coded, opts, thr)
    labels_by_attr = group_labels(coded.names, attributes, opts.columns, opts.combine)
    if not labels_by_attr:
        result["note"] = (
            f"no subject has a value in the group columns ({', '.join(opts.columns) or 'none configured'}); "
            "demographic differentials cannot be measured on this set"
        )
        return result
    rng = np.random.default_rng(opts.seed)
    for attr, labels in labels_by_attr.items():
        W = stratified_weights(labels, opts.n_boot, rng)
        masks = {g: (labels == g).astype(float) for g in sorted(set(labels.tolist()))}
        boot = Resamples(W, masks, opts.small_subjects)
        result["attributes"][attr] = _attribute_tables(coded, boot, thr, opts.operating_threshold)
    return result


def _attribute_tables(coded: _Coded, boot: Resamples, thr: list[float], operating_threshold: float) -> dict:
    """One attribute's tables: FMR per group and pooled, the headline ratio, FNMR, E2 FNMR, FPIR, E2 rank-1."""
    fmr, overall = _fmr_tables(coded.pairs, boot, thr)
    return {
        "groups": {g: int(boot.masks[g].sum()) for g in boot.groups},
        "fmr": fmr,
        "fmr_overall": overall,
        "fmr_ratio": fmr_ratio(fmr, coded.pairs, boot, operating_threshold),
        **_subject_tables(coded, boot, thr),
    }


class _Pool:
    """The groups' impostor-pair cells summed per split and threshold (numerator and denominator,
    point then bootstrap) and their subjects: the attribute's pooled cells."""

    def __init__(self, thr: list[float], n_boot: int):
        self.sums: dict[str, dict[str, list[Any]]] = {
            k: {tkey(t): [0.0, 0.0, np.zeros(n_boot), np.zeros(n_boot)] for t in thr} for k in SPLITS
        }
        self.subjects = {k: 0 for k in SPLITS}

    def add(self, split: str, key: str, num: tuple, den: tuple) -> None:
        a = self.sums[split][key]
        a[0] += num[0]
        a[1] += den[0]
        a[2] = a[2] + num[1]
        a[3] = a[3] + den[1]


def _pair_den(pairs: ImpostorPairs, boot: Resamples, A: np.ndarray, B: np.ndarray) -> tuple:
    """Impostor pairs between probe subjects in A and gallery subjects in B (a person's own pairs aside)."""
    np_s, ng_s = pairs.probe_photos, pairs.gallery_photos
    return boot.both(lambda w: (w @ (np_s * A)) * (w @ (ng_s * B)) - (w**2) @ (np_s * ng_s * A * B))


def _pair_subjects(pairs: ImpostorPairs, A: np.ndarray, B: np.ndarray) -> int:
    """Probe subjects in A with a probe photo and a gallery photo of someone else in B."""
    np_s, ng_s = pairs.probe_photos, pairs.gallery_photos
    others = (ng_s * B).sum() - ng_s * B  # gallery photos of other subjects in B
    return int(((A > 0) & (np_s > 0) & (others > 0)).sum())


def _fmr_row(pairs: ImpostorPairs, boot: Resamples, group: str, thr: list[float], pool: _Pool) -> dict:
    """A group's FMR cells: same-group, cross-group and all impostor pairs, per threshold."""
    A = boot.masks[group]
    row: dict[str, dict] = {}
    for split, B in (("same", A), ("cross", 1.0 - A), ("all", np.ones(len(A)))):
        den = _pair_den(pairs, boot, A, B)
        n_subj = _pair_subjects(pairs, A, B)
        pool.subjects[split] += n_subj
        row[split] = {}
        in_cell = (A[pairs.probe] > 0) & (B[pairs.gallery] > 0)
        for t in thr:
            sel = in_cell & (pairs.dist <= t)
            a, b = pairs.probe[sel], pairs.gallery[sel]
            num = boot.both(partial(pair_weight_sum, a=a, b=b))
            row[split][tkey(t)] = make_cell(num, den, n_subj, "impostor pairs", boot.small_subjects)
            pool.add(split, tkey(t), num, den)
    return row


def _fmr_tables(pairs: ImpostorPairs, boot: Resamples, thr: list[float]) -> tuple[dict, dict]:
    """Per group and pooled FMR cells; zero-event pair cells get the design-effect adjusted bound."""
    pool = _Pool(thr, len(boot.weights))
    fmr = {g: _fmr_row(pairs, boot, g, thr, pool) for g in boot.groups}
    overall: dict[str, dict] = {k: {} for k in SPLITS}
    for split in overall:
        for t in thr:
            num_p, den_p, num_b, den_b = pool.sums[split][tkey(t)]
            overall[split][tkey(t)] = make_cell(
                (num_p, num_b), (den_p, den_b), pool.subjects[split], "impostor pairs", boot.small_subjects
            )
    m_pool = pool.sums["all"][tkey(thr[0])][1] / max(pool.subjects["all"], 1)  # pairs per probe subject
    deffs = {tkey(t): intracluster_correlation(design_effect(*pool.sums["all"][tkey(t)]), m_pool) for t in thr}
    for row in [*fmr.values(), overall]:
        for split in row:
            for key, cell in row[split].items():
                clustered_zero_bound(cell, deffs, key)
    return fmr, overall


def _subject_cell(boot: Resamples, ev_codes: np.ndarray, trial_counts: np.ndarray, A: np.ndarray, unit: str) -> dict:
    """A rate whose events and trials belong to one subject each (weight w_s)."""
    ev = np.bincount(ev_codes, minlength=len(A)).astype(float) * A
    tr = trial_counts * A
    return make_cell(
        boot.both(lambda w: w @ ev), boot.both(lambda w: w @ tr), int((tr > 0).sum()), unit, boot.small_subjects
    )


def _per_threshold(boot: Resamples, thr: list[float], events_at, trials: np.ndarray, unit: str) -> dict:
    """{group: {threshold: cell}} of a per-subject rate; ``events_at(t)`` gives the events' subject codes."""
    return {
        g: {tkey(t): _subject_cell(boot, events_at(t), trials, boot.masks[g], unit) for t in thr} for g in boot.groups
    }


def _subject_tables(coded: _Coded, boot: Resamples, thr: list[float]) -> dict:
    """FNMR (clean photos and E2 captures), FPIR (mate removed) and E2 rank-1, per group."""
    np_s, ng_s = coded.pairs.probe_photos, coded.pairs.gallery_photos
    gen_s, gen_d = coded.genuine
    pc, best = coded.probe_codes, coded.nonmated_best
    S = len(coded.names)
    searchers = np_s * ((ng_s.sum() - ng_s) > 0)
    return {
        "fnmr": _per_threshold(boot, thr, lambda t: gen_s[gen_d > t], np_s * ng_s, "genuine pairs"),
        "fnmr_e2": {
            level: _per_threshold(boot, thr, lambda t, c=c, d=d: c[d > t], n_shots * ng_s, "genuine capture pairs")
            for level, (c, d, n_shots) in coded.shots.items()
        },
        "fpir": _per_threshold(boot, thr, lambda t: pc[best <= t], searchers, "non-mated searches"),
        "e2_rank1": {
            level: {
                g: _subject_cell(
                    boot, sc[h], np.bincount(sc, minlength=S).astype(float), boot.masks[g], "mated persons"
                )
                for g in boot.groups
            }
            for level, (sc, h) in coded.rank1.items()
        },
    }
