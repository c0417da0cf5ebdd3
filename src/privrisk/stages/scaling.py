"""The scaling study: identification against galleries of the real subjects plus other faces, as
labelled points: measured on real faces at the real gallery size; modelled (within reach of the real
impostor pairs) and extrapolated (beyond) by the tail model (:mod:`privrisk.tailmodel`) in closed
form. Ranges cover a subject bootstrap with refitting and two tail models, each part reported apart
(:data:`RANGE_SPANS`). The exact search over Gaussian model distractors, which fails held-out
validation, is kept beside the points as a comparison (``gaussian_search``), never in a range. The
tail models are also backtested (:func:`privrisk.tailmodel.backtest`: refitted on the real impostor
pairs above a distance, they predict the closer ones; ``distractor_model.backtest``). Cached (:func:`.common.memo`): a run with the same inputs and code reads it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import metrics, tailmodel
from ..config import ExperimentConfig
from ..distractors import DistractorModel, Searchers, impostor_distances, predicted_rank1, validate
from ..embeddings import EmbeddingCache
from ..progress import reporter
from .common import Log, Searches, memo
from .offline import FusedLevel, OfflineResult, fused_arrays
from .online import OnlineResult
from .split import Enrolled

__all__ = ["KIND_RULE", "SEED_SIZE", "ScalingInputs", "ScalingResult", "scaling", "scaling_study"]


@dataclass(frozen=True)
class ScalingInputs:
    """What the study reads: the E1 gallery (embeddings, subject codes), the probes' embeddings,
    E1's per-probe truth, mated flags, candidates and distances (probes without a face last), and
    E2's fused searches by level."""

    gal_vecs: np.ndarray
    gal_codes: np.ndarray
    probe_vecs: np.ndarray
    truth: np.ndarray
    mated: np.ndarray
    cand: np.ndarray
    dist: np.ndarray
    fused: dict[str, FusedLevel]

    @classmethod
    def of(cls, enrolled: Enrolled, e1: OnlineResult, e2: OfflineResult) -> ScalingInputs:
        """The study's inputs from the enrolled gallery, E1's searches and E2's fused searches."""
        return cls(
            enrolled.gal_vecs,
            enrolled.gal_codes,
            enrolled.probes.vectors,
            e1.truth,
            e1.mated,
            e1.cand,
            e1.dist,
            e2.fused,
        )


@dataclass(frozen=True)
class ScalingResult:
    """``scaling_detail`` in results.json; ``scaling`` is its E1 points (:attr:`measured`)."""

    detail: dict

    @property
    def measured(self) -> list:
        return self.detail["measured"]


@dataclass(frozen=True)
class _TailModels:
    """The tail models cross-validated on held-out people (by kind), those fitted on everyone
    (shipped for reuse), the number of real impostor pairs and each probe's fold."""

    cvs: dict
    full: list
    n_pairs: int
    probe_fold: np.ndarray


@dataclass(frozen=True)
class _Grid:
    """The gallery sizes: the real gallery's, those searched exactly, and every size reported."""

    n_real: int
    sizes: list[int]
    all_sizes: list[int]
    n_other: np.ndarray
    n_pairs: int

    def kind_of(self, size: int) -> str:
        if size <= self.n_real:
            return "measured"
        if (size - self.n_real) <= self.n_pairs:
            return "modelled"
        return "extrapolated"


@dataclass(frozen=True)
class _Exact:
    """The exact search over Gaussian distractors: per curve the 10 smallest distractor ids within
    each person's genuine radius, the rates of the three distractor seeds, and the search time."""

    ids: dict
    seed_runs: dict
    seed_size: int | None
    search_s: float


@dataclass(frozen=True)
class _Predictions:
    """Closed-form predictions per curve and tail kind, (reps, 4, sizes), and the threshold for
    FPIR 1% per size with its range."""

    pred: dict
    thr_point: np.ndarray
    thr_lo: np.ndarray
    thr_hi: np.ndarray


@dataclass(frozen=True)
class _Study:
    """The searched and predicted parts every curve reads: the grid, the exact search, the predictions."""

    grid: _Grid
    exact: _Exact
    preds: _Predictions


@dataclass(frozen=True)
class _CurveData:
    """One curve's per-person arrays (:func:`_curve_spec`), its exact-search ids, its predictions by
    tail kind and the spread (rank-1, rank-10) of the distractor seeds."""

    spec: dict
    ids: np.ndarray
    reps: dict
    spread: tuple


def scaling_study(
    cfg: ExperimentConfig, inp: ScalingInputs, cache: EmbeddingCache | None, progress, log: Log
) -> ScalingResult:
    """:func:`scaling` through :func:`.common.memo`: every input it depends on is in the key
    (``inp``: :meth:`ScalingInputs.of` the enrolled gallery, E1 and E2)."""
    key = (
        inp.gal_vecs,
        inp.gal_codes,
        inp.probe_vecs,
        np.asarray(inp.truth),
        np.asarray(inp.mated),
        np.asarray(inp.cand),
        np.asarray(inp.dist, np.float64),
        fused_arrays(inp.fused),
        cfg.scaling,
        cfg.seed,
        cfg.gallery.threshold,
        cfg.top_k,
    )

    def compute():
        log("scaling: fitting the distractor model and searching padded galleries")
        return scaling(cfg, inp, log, progress)

    return ScalingResult(memo(cache, log, "scaling", key, compute))


def scaling(cfg: ExperimentConfig, inp: ScalingInputs, log: Log, progress: bool = False) -> dict:
    """Identification against galleries of the real subjects plus other faces, as labelled points
    (see the module's docstring)."""
    model = DistractorModel.fit(np.vstack([inp.gal_vecs, inp.probe_vecs]))
    n_vec = len(inp.probe_vecs)
    probe_codes = np.array([inp.truth[i] for i in range(n_vec)])
    real = impostor_distances(inp.probe_vecs, probe_codes, inp.gal_vecs, inp.gal_codes)
    check = validate(model, real, inp.probe_vecs, cfg.scaling.validation_distractors, seed=cfg.seed + 7)
    n_real = len(inp.gal_vecs)
    # The exact search (drawing 10^6 distractors and matrix products that release the GIL) needs
    # neither the tail models nor their predictions, and they need nothing from it: it runs in a
    # thread of its own while this one fits and predicts, so both cores stay busy. Each part draws
    # from its own seeded generator, so the numbers are the same as one after the other.
    with ThreadPoolExecutor(max_workers=1) as background:
        searching = background.submit(
            _exact_search, cfg, model, _specs(cfg, inp, np.zeros(n_vec, np.int64)), n_real, progress, log
        )
        tails = _tail_models(cfg, inp, probe_codes, check, log)
        grid = _grid(cfg, n_real, tails.n_pairs)
        specs = _specs(cfg, inp, tails.probe_fold)
        preds = _predictions(cfg, specs, tails, inp.probe_vecs, grid)
        gaussian = {name: _gaussian_prediction(model, spec, grid.sizes, cfg, n_real) for name, spec in specs.items()}
        study = _Study(grid, searching.result(), preds)
    curves = {name: _curve(cfg, name, spec, study, gaussian[name]) for name, spec in specs.items()}
    return _summary(cfg, curves, study, check, tails)


def held_out_tail_models(
    cfg: ExperimentConfig, enrolled: Enrolled, e1: OnlineResult
) -> tuple[list[dict], np.ndarray] | None:
    """The tail models' per-fold fits, one dict (fold -> model that never saw that fold's people) per
    kind in :data:`tailmodel.KINDS` order, and each probe's fold: the same cross-fit as the scaling
    study's (same inputs, seed and folds), for a later stage that must not score people with a model
    fitted on them. None when there are too few people or pairs for a tail model."""
    probe_vecs = enrolled.probes.vectors
    pairs = tailmodel.Pairs(probe_vecs, np.asarray(e1.truth)[: len(probe_vecs)], enrolled.gal_vecs, enrolled.gal_codes)
    try:
        cvs = {kind: tailmodel.cross_validate(pairs, **_tail_options(cfg, kind)) for kind in tailmodel.KINDS}
    except ValueError:
        return None
    return [cvs[k]["fold_models"] for k in tailmodel.KINDS], np.asarray(cvs["gpd"]["fold_of"])


def _tail_options(cfg: ExperimentConfig, kind: str) -> dict:
    return {"kind": kind, "n_boot": cfg.scaling.tail_bootstrap, "seed": cfg.seed}


def _tail_models(cfg: ExperimentConfig, inp: ScalingInputs, probe_codes, check: dict, log: Log) -> _TailModels:
    """Tail models cross-validated on held-out people, and fitted on everyone for reuse; their
    validation goes into ``check``. Too few people or pairs: no tail model."""
    log("scaling: fitting and cross-validating the tail models (2 kinds x 5 folds, subject bootstrap)")
    cvs, full = {}, []
    try:
        pairs = tailmodel.Pairs(inp.probe_vecs, probe_codes, inp.gal_vecs, inp.gal_codes)
        for kind in tailmodel.KINDS:
            opts = _tail_options(cfg, kind)
            cvs[kind] = tailmodel.cross_validate(pairs, **opts)  # held-out checks and per-fold models
            full.append(tailmodel.to_json(tailmodel.fit(pairs, **opts)))  # on everyone, shipped for reuse
    except ValueError as exc:  # too few people or pairs: no tail model, so nothing past the searched sizes
        log(f"scaling: no tail model ({exc}); sizes past the exact search get no prediction")
        cvs, full = {}, []
        check["validation"] = {"error": str(exc), "tail_model": "none"}
    if cvs:
        validation = tailmodel.validation_json(cvs["gpd"])
        validation["other_models"] = [tailmodel.validation_json(cvs[k]) for k in tailmodel.KINDS if k != "gpd"]
        check["validation"] = validation
        log("scaling: backtesting the tail models (fit above a distance, predict the pairs below it)")
        check["backtest"] = [
            tailmodel.backtest(pairs, kind=k, n_boot=cfg.scaling.tail_bootstrap, seed=cfg.seed) for k in tailmodel.KINDS
        ]
        n_pairs = validation["n_real_pairs"]
        probe_fold = cvs["gpd"]["fold_of"]  # same folds for every kind (same seed and subjects)
    else:
        n_pairs = int((probe_codes[:, None] != inp.gal_codes[None, :]).sum())
        probe_fold = np.zeros(len(inp.probe_vecs), np.int64)
    return _TailModels(cvs, full, n_pairs, probe_fold)


def _grid(cfg: ExperimentConfig, n_real: int, n_pairs: int) -> _Grid:
    sizes = [s for s in cfg.scaling.sizes if s >= n_real] or [n_real]
    all_sizes = sorted(set([n_real] + [int(s) for s in sizes] + [int(s) for s in cfg.scaling.extrapolate]))
    n_other = np.array([s - n_real for s in all_sizes], np.float64)
    return _Grid(n_real, sizes, all_sizes, n_other, n_pairs)


def _specs(cfg: ExperimentConfig, inp: ScalingInputs, probe_fold) -> dict[str, dict]:
    """Per curve (E1, and each E2 level with a mated person) the per-person arrays it needs."""
    n_vec = len(inp.probe_vecs)
    specs = {}
    m_idx = np.arange(n_vec)
    online = Searches(inp.truth[:n_vec], inp.mated[:n_vec], inp.cand[:n_vec], inp.dist[:n_vec])
    specs["online_to_online"] = _curve_spec(inp.probe_vecs, m_idx, probe_fold, online, cfg.top_k)
    for name, f in inp.fused.items():
        fused = Searches(f.truth, f.mated, f.fused_c, f.fused_d)
        specs[f"offline_to_online/{name}"] = _curve_spec(
            f.shot_vecs, f.shot_owner, probe_fold[f.shot_probe()], fused, cfg.top_k
        )
    return specs


def _radii(spec) -> np.ndarray:
    """Each row's genuine radius (its person's), nan where the person has none."""
    radii = spec["g"][spec["owner"]]
    return np.where(np.isfinite(radii), radii, np.nan)


def _exact_rates(spec, ids, n_other) -> tuple[float, float]:
    m = spec["mated"]
    rank = spec["rank"][m]
    ahead = (ids[m] < n_other).sum(axis=1)
    return float(((rank == 1) & (ahead == 0)).mean()), float((rank - 1 + ahead <= 9).mean())


def _exact_search(cfg: ExperimentConfig, model, specs, n_real: int, progress, log: Log) -> _Exact:
    """Every curve's persons searched exactly among distractors drawn from ``model`` up to the
    largest searched size (:func:`_grid`'s ``sizes`` for a real gallery of ``n_real``); at SEED_SIZE
    (or the largest searched size below it) two more draws give the seed spread. It reads each
    spec's rows, owners, genuine radii, ranks and mated flags, never its fold. Every curve's rows
    are searched together, chunk by chunk as the distractors are drawn (:func:`_smallest_ids`)."""
    sizes = _grid(cfg, n_real, 0).sizes
    n_max = max(sizes) - n_real
    n_vec = len(specs["online_to_online"]["mated"])  # E1's probes
    names = list(specs)
    vecs = np.vstack([np.asarray(specs[n]["vecs"], np.float32) for n in names])
    radii = np.concatenate([_radii(specs[n]) for n in names])
    ends = np.cumsum([0] + [len(specs[n]["vecs"]) for n in names])
    seed_size = max([s for s in sizes if n_real < s <= SEED_SIZE], default=None)
    n_queries = int(np.isfinite(radii).sum())
    bar = reporter(progress, n_queries * (3 if seed_size else 1), desc="scaling: exact range searches", unit="query")

    def person_ids(ids: np.ndarray, size_cap: int) -> dict:
        return {
            n: _person_ids(ids[ends[i] : ends[i + 1]], specs[n]["owner"], len(specs[n]["mated"]), size_cap)
            for i, n in enumerate(names)
        }

    searched = _smallest_ids(model.chunks(n_max, seed=cfg.seed + 11), n_max, vecs, radii, report=bar)
    exact_ids = person_ids(searched.ids, n_max)
    search_s = searched.seconds / max(len(specs), 1) / max(n_vec, 1)
    # seed spread: two more draws at SEED_SIZE (or the largest searched size below it)
    seed_runs = {n: [_exact_rates(specs[n], exact_ids[n], seed_size - n_real)] if seed_size else [] for n in names}
    if seed_size:
        n_x = seed_size - n_real
        for extra in (12, 13):
            ids_x = person_ids(
                _smallest_ids(model.chunks(n_x, seed=cfg.seed + extra), n_x, vecs, radii, report=bar).ids, n_x
            )
            for n in names:
                seed_runs[n].append(_exact_rates(specs[n], ids_x[n], n_x))
        log(f"scaling: 3 distractor seeds searched at {seed_size:,}")
    bar(0, close=True)
    return _Exact(exact_ids, seed_runs, seed_size, search_s)


def _predictions(cfg: ExperimentConfig, specs, tails: _TailModels, probe_vecs, grid: _Grid) -> _Predictions:
    """Closed-form predictions for every size, model and replicate, and the threshold for FPIR 1%."""
    cvs, n_other, theta = tails.cvs, grid.n_other, cfg.gallery.threshold
    rng = np.random.default_rng(cfg.seed + 17)
    kinds = list(cvs)
    nan_rep = np.full((2, 4, len(grid.all_sizes)), np.nan)
    pred = {
        name: {
            kind: np.array(
                [
                    _closed_form(spec, cvs[kind]["fold_models"], n_other, theta, rep, rng)
                    for rep in range(cfg.scaling.tail_bootstrap + 1)
                ]
            )
            for kind in kinds
        }
        or {"gpd": nan_rep}
        for name, spec in specs.items()
    }  # (reps, 4, sizes)
    thr_fpir = {
        kind: np.array(
            [
                _threshold_for_fpir(cvs[kind]["fold_models"], probe_vecs, tails.probe_fold, n_other, rep=rep)
                for rep in range(0, cfg.scaling.tail_bootstrap + 1, 20)
            ]
        )
        for kind in kinds
    } or {"gpd": np.full((1, len(grid.all_sizes)), np.nan)}
    thr_point = thr_fpir["gpd"][0]
    thr_lo = np.min([v.min(axis=0) for v in thr_fpir.values()], axis=0)
    thr_hi = np.max([v.max(axis=0) for v in thr_fpir.values()], axis=0)
    return _Predictions(pred, thr_point, thr_lo, thr_hi)


def _curve(cfg: ExperimentConfig, name: str, spec, study: _Study, predicted: dict) -> dict:
    """One curve: a labelled point per gallery size, the old readers' ``measured`` and
    ``predicted`` (:func:`_gaussian_prediction`), and the seed spread."""
    exact, grid = study.exact, study.grid
    name_ids, seeds = exact.ids[name], exact.seed_runs[name]
    spread = (np.ptp([r[0] for r in seeds]), np.ptp([r[1] for r in seeds])) if len(seeds) > 1 else (0.0, 0.0)
    data = _CurveData(spec, name_ids, study.preds.pred[name], spread)
    points = [_point(cfg, data, study.preds, grid, j) for j in range(len(grid.all_sizes))]
    n_m = int(spec["mated"].sum())
    old = [
        {"gallery_size": int(s), "rank1": _exact_rates(spec, name_ids, s - grid.n_real)[0] if n_m else 0.0}
        for s in grid.sizes
    ]
    return {
        "measured": old,
        "predicted": predicted,
        "points": points,
        "seed_spread": {
            "gallery_size": exact.seed_size,
            "seeds": [cfg.seed + 11, cfg.seed + 12, cfg.seed + 13][: len(seeds)],
            "rank1": [r[0] for r in seeds],
            "rank10": [r[1] for r in seeds],
        },
    }


def _point(cfg: ExperimentConfig, curve: _CurveData, preds: _Predictions, grid: _Grid, j: int) -> dict:
    """The point at the ``j``-th gallery size of the grid: rank-1, rank-10, FPIR at the
    threshold and the wrong-person share, each with its range and what that range spans (the
    sampling spread and the tail-model spread apart), and the threshold for FPIR 1%. Where the
    size was searched among Gaussian model distractors, that search's rank-1 and rank-10 are
    given beside (``gaussian_search``), a comparison only: it fails the held-out validation and
    sets no value and no end of any range."""
    spec, size = curve.spec, grid.all_sizes[j]
    m = spec["mated"]
    n_m, n_nm = int(m.sum()), int((~m).sum())
    kind = grid.kind_of(size)
    pt = {"gallery_size": int(size), "kind": kind, "n_persons": n_m, "n_nonmated": n_nm}
    if kind == "measured":
        out = _measured_values(spec, cfg.gallery.threshold)
        spans = {"range_spans": RANGE_SPANS["measured"]}
    else:
        out = _model_values(curve.reps, j)
        spans = {"range_spans": RANGE_SPANS["model"]}
        if size in grid.sizes and n_m:
            r1, r10 = _exact_rates(spec, curve.ids, size - grid.n_real)
            pt["gaussian_search"] = {
                "rank1": r1,
                "rank10": r10,
                "seed_spread": [float(curve.spread[0]), float(curve.spread[1])],
                "note": GAUSSIAN_NOTE,
            }
    (pt["rank1"], pt["rank1_range"]), (pt["rank10"], pt["rank10_range"]) = out[0][:2], out[1][:2]
    (pt["fpir_at_threshold"], pt["fpir_range"]) = out[2][:2]
    (pt["wrong_top_under_threshold"], pt["wrong_top_range"]) = out[3][:2]
    if kind != "measured":
        for name, o in zip(("rank1", "rank10", "fpir", "wrong_top"), out):
            spans[f"{name}_sampling_range"], spans[f"{name}_model_spread"] = o[2], o[3]
    pt.update(spans)
    # the threshold is solved on a gallery of model faces only: at the real gallery's own size
    # (no model faces) it would describe a gallery of one face, so it is not given there
    ok = np.isfinite(preds.thr_point[j]) and grid.n_other[j] > 0
    pt["threshold_for_fpir_1pct"] = float(preds.thr_point[j]) if ok else None
    pt["threshold_for_fpir_1pct_range"] = [float(preds.thr_lo[j]), float(preds.thr_hi[j])] if ok else None
    return pt


def _measured_values(spec, theta) -> list:
    """Rank-1, rank-10, FPIR and wrong-top share on the real faces alone, with exact
    (Clopper-Pearson) intervals (:func:`privrisk.metrics.proportion_interval`)."""
    m = spec["mated"]
    n_m, n_nm = int(m.sum()), int((~m).sum())
    rank = spec["rank"]
    k1 = int((rank[m] == 1).sum())
    k10 = int((rank[m] <= 10).sum())
    kf = int((spec["best"][~m] <= theta).sum())
    kw = int(((spec["imp_best"][m] < np.nan_to_num(spec["g"][m], nan=np.inf)) & (spec["imp_best"][m] <= theta)).sum())
    vals = [(k1, n_m), (k10, n_m), (kf, n_nm), (kw, n_m)]
    return [(k / n if n else None, list(metrics.proportion_interval(k, n)) if n else None) for k, n in vals]


def _finite_range(values) -> list[float] | None:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return [max(0.0, float(v.min())), min(1.0, float(v.max()))] if len(v) else None


def _model_values(reps: dict, j: int) -> list:
    """The tail model's values at the ``j``-th size: per metric (value, range, sampling range,
    model spread). The value is the main tail model's (``gpd``) fit; the sampling range is the
    2.5-97.5% quantiles of its subject-bootstrap refits; the model spread is the point values of
    every tail model; the range is the envelope of both (each tail model's bootstrap quantiles and
    point values). Nothing from the Gaussian distractor search enters."""
    out: list[tuple] = []
    for q in range(4):
        main = reps["gpd"]
        v = float(main[0][q, j]) if np.isfinite(main[0][q, j]) else None
        if v is None:
            out.append((None, None, None, None))
            continue
        boot = main[1:, q, j]
        boot = boot[np.isfinite(boot)]
        sampling = (
            [max(0.0, float(np.quantile(boot, 0.025))), min(1.0, float(np.quantile(boot, 0.975)))]
            if len(boot)
            else None
        )
        spread = _finite_range([r[0][q, j] for r in reps.values()])
        ends = [r[0][q, j] for r in reps.values()]
        for r in reps.values():
            b = r[1:, q, j]
            b = b[np.isfinite(b)]
            if len(b):
                ends += [np.quantile(b, 0.025), np.quantile(b, 0.975)]
        rng = _finite_range(ends + [v]) or [v, v]
        out.append((v, rng, sampling, spread))
    return out


def _summary(cfg: ExperimentConfig, curves, study: _Study, check, tails: _TailModels) -> dict:
    preds, grid, exact = study.preds, study.grid, study.exact
    online = curves["online_to_online"]
    gpd_online = preds.pred["online_to_online"]["gpd"][0][0]
    all_sizes = grid.all_sizes
    err = [
        abs(gpd_online[all_sizes.index(o["gallery_size"])] - o["rank1"])
        for o in online["measured"]
        if np.isfinite(gpd_online[all_sizes.index(o["gallery_size"])])
    ]
    return {
        "measured": online["points"],
        "curves": curves,
        "distractor_model": check,
        "tail_models": {"models": tails.full},
        "kind_rule": KIND_RULE,
        "n_real_pairs": tails.n_pairs,
        "threshold": cfg.gallery.threshold,
        "model_max_abs_error_measured_sizes": float(max(err)) if err else None,
        "search_seconds_per_probe_at_max": exact.search_s,
        "model": (
            "rank-1 at N = mean over mated people of 1[rank 1 among the real gallery] * E_a[(1 - F_p(g_p))^(N - "
            "n_real)], rank-10 = mean of P(Binomial(N - n_real, F_p) <= 10 - real rank); F_p from the tail model "
            "of the fold that left the person out (" + tailmodel.NAMES["gpd"] + "); the range spans that and "
            "a second tail model ("
            + tailmodel.NAMES["normal"]
            + "), each over "
            + str(cfg.scaling.tail_bootstrap)
            + " subject-bootstrap refits with people resampled, the exact search over Gaussian distractors and "
            "the spread of three distractor seeds. " + KIND_RULE
        ),
    }


SEED_SIZE = 100_000  # gallery size at which three distractor seeds are searched exactly
KIND_RULE = (
    "measured: real faces only (gallery size <= the real gallery); modelled: the tail model's closed form at "
    "sizes where the deciding per-face probability 1/(N - n_real) is at least 1/(number of real impostor "
    "pairs), i.e. still checkable on real pairs; extrapolated: the tail model's closed form beyond that. "
    "The exact search over Gaussian model distractors is reported beside the points (gaussian_search) as a "
    "comparison only: the Gaussian model fails the held-out validation, so it sets no value and no range end"
)
GAUSSIAN_NOTE = (
    "exact search among Gaussian model distractors: a comparison only; the Gaussian distractor model fails "
    "the held-out validation (its lower tail is too thin), so this is no end of any range"
)
#: What each kind of point's range spans (``range_spans`` on every point).
RANGE_SPANS = {
    "measured": "exact (Clopper-Pearson) 95% interval over the people counted (sampling only)",
    "model": (
        "envelope of two tail models (generalised Pareto and normal), each its point fit and the 2.5-97.5% "
        "quantiles of its subject-bootstrap refits (people resampled); *_sampling_range: the main tail "
        "model's bootstrap quantiles alone (sampling spread); *_model_spread: the tail models' point fits "
        "(spread from the choice of tail model); no end from the Gaussian distractor search"
    ),
}


@dataclass(frozen=True)
class _Found:
    """:func:`_smallest_ids`' answer: (rows, k) ids, and the seconds spent searching (not drawing)."""

    ids: np.ndarray
    seconds: float


#: Distractors compared with every query at once in one block of :func:`_smallest_ids`.
_BLOCK = 8192
#: How far (in squared distance) past its radius a float32 estimate still counts as a candidate that
#: the exact float64 distance decides: many times float32's error on these sums (about 1e-5 at most).
_MARGIN = 1e-3


def _smallest_ids(
    chunks: Iterable[tuple[int, np.ndarray]],
    n_max: int,
    vecs: np.ndarray,
    radii: np.ndarray,
    k: int = 10,
    report: Callable[[int], None] | None = None,
) -> _Found:
    """(n, k): the k smallest distractor ids (= positions in the draw) within each query's radius
    (exact float64 squared distance at most the float32 radius squared; FAISS's range search, used
    before, compared its float32 distance, so a pair within float32 rounding of the radius, about
    1e-6, could be counted differently: none was on the demo, whose numbers did not change),
    padded with n_max; queries with a non-finite radius get no ids. ``chunks`` yields the draw as
    ``(start, (m, d) float32)`` (:meth:`DistractorModel.chunks`), searched as it comes, in blocks on
    every core: one float32 matrix product per block finds the candidates (within the radius plus
    :data:`_MARGIN`), and their exact float64 distances decide. Ids come in order, so each query keeps
    the first k it meets."""
    out = np.full((len(vecs), k), n_max, np.int64)
    finite = np.where(np.isfinite(radii))[0]
    if n_max == 0 or not len(finite):
        return _Found(out, 0.0)
    x32 = np.ascontiguousarray(vecs[finite], np.float32)
    x64 = x32.astype(np.float64)
    r2 = radii[finite].astype(np.float32) ** 2  # the float32 threshold; the float64 distance is compared with it
    bound = ((x64**2).sum(axis=1) - r2 - _MARGIN).astype(np.float32)  # candidate: 2 x.y >= bound + |y|^2
    found: list[list[int]] = [[] for _ in finite]

    def block(args) -> tuple[np.ndarray, np.ndarray]:
        first, y = args
        ip2 = x32 @ y.T
        ip2 *= 2
        q, j = np.nonzero(ip2 >= bound[:, None] + (y.astype(np.float64) ** 2).sum(axis=1).astype(np.float32))
        d2 = ((x64[q] - y[j].astype(np.float64)) ** 2).sum(axis=1)
        keep = d2 <= r2[q]
        return q[keep], j[keep] + first

    seconds, done = 0.0, 0
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:  # numpy releases the GIL
        for start, part in chunks:
            t0 = time.perf_counter()
            blocks = [(start + b, part[b : b + _BLOCK]) for b in range(0, len(part), _BLOCK)]
            for q, inside in pool.map(block, blocks):  # in id order; within a block, by query then id
                for qi, i in zip(q.tolist(), inside.tolist()):
                    if len(found[qi]) < k:
                        found[qi].append(i)
            seconds += time.perf_counter() - t0
            if report is not None:
                now = len(finite) * (start + len(part)) // n_max
                report(now - done)
                done = now
    for qi, first in zip(finite, found):
        out[qi, : len(first)] = first
    return _Found(out, seconds)


def _person_ids(shot_ids: np.ndarray, owner: np.ndarray, n_persons: int, n_max: int, k: int = 10) -> np.ndarray:
    """Union over each person's captures of the distractor ids within radius: the k smallest."""
    out = np.full((n_persons, k), n_max, np.int64)
    for p_ in range(n_persons):
        ids = np.unique(shot_ids[owner == p_])
        ids = ids[ids < n_max][:k]
        out[p_, : len(ids)] = ids
    return out


def _curve_spec(vecs, owner, row_fold, searches: Searches, top_k: int) -> dict:
    """Per-person arrays a curve needs: genuine radius, real rank, real best impostor / best distance.
    ``searches`` holds one fused search per person (``mated``: whether the person is enrolled)."""
    truth, cand, dist, mated_person = searches.truth, searches.cand, searches.dist, searches.mated
    ranks = metrics.true_rank(cand, truth)
    n = len(truth)
    g = np.full(n, np.nan)
    imp_best = np.full(n, np.inf)
    for i in range(n):
        if np.isfinite(ranks[i]):
            g[i] = dist[i, int(ranks[i]) - 1]
        wrong = np.where((cand[i] >= 0) & (cand[i] != truth[i]))[0]
        if len(wrong):
            imp_best[i] = dist[i, wrong[0]]
    return {
        "vecs": vecs,
        "owner": owner,
        "fold": row_fold,
        "rank": ranks,
        "g": g,
        "imp_best": imp_best,
        "best": np.where(cand[:, 0] >= 0, dist[:, 0], np.inf),
        "mated": mated_person,
        "top_k": top_k,
    }


def _closed_form(spec, fold_models, n_other, theta, rep, rng):
    """Rank-1, rank-10, FPIR at theta and wrong-top-under-theta for one tail model and replicate,
    (4, sizes); rep > 0 also resamples persons (sampling uncertainty)."""
    m = spec["mated"]
    radius_row = np.nan_to_num(spec["g"][spec["owner"]], nan=0.0)
    mp = np.where(m)[0]
    nm = np.where(~m)[0]
    if rep > 0:
        mp = rng.choice(mp, len(mp)) if len(mp) else mp
        nm = rng.choice(nm, len(nm)) if len(nm) else nm
    rank = spec["rank"]
    allowed = np.where(np.isfinite(rank), 10 - np.nan_to_num(rank, posinf=99), -1)
    rw = np.minimum(np.nan_to_num(spec["g"], nan=theta), theta)
    rows = tailmodel.Captures(spec["vecs"], spec["owner"], len(m))
    queries = [
        (radius_row, None),
        (radius_row, allowed),
        (np.full(len(spec["owner"]), theta), None),
        (rw[spec["owner"]], None),
    ]
    s1, s10, sth, sw = tailmodel.crossfit_survivals(
        tailmodel.CrossFit(fold_models, spec["fold"]), rows, queries, n_other, rep=rep
    )
    none = np.full(len(n_other), np.nan)
    r1 = ((rank == 1)[:, None] * s1)[mp].mean(axis=0) if len(mp) else none
    r10 = ((rank <= 10)[:, None] * s10)[mp].mean(axis=0) if len(mp) else none
    fpir = (1 - (spec["best"] > theta)[:, None] * sth)[nm].mean(axis=0) if len(nm) else none
    wrong = (1 - (spec["imp_best"] > rw)[:, None] * sw)[mp].mean(axis=0) if len(mp) else none
    return np.array([r1, r10, fpir, wrong])


def _threshold_for_fpir(fold_models, probe_vecs, probe_fold, n_other_sizes, target=0.01, rep=0):
    """Distance threshold at which a share ``target`` of searches by people not enrolled would have a
    candidate under it, in a gallery of N others drawn from the model (every real probe as a searcher).
    One bisection per size, all sizes stepped together (one model evaluation per step)."""
    rows = tailmodel.Captures(probe_vecs)
    cf = tailmodel.CrossFit(fold_models, probe_fold)
    sizes = [max(n, 1) for n in n_other_sizes]
    lo, hi = np.zeros(len(sizes)), np.full(len(sizes), 1.5)
    for _ in range(24):
        mid = (lo + hi) / 2
        queries = [(np.full(len(probe_vecs), m), None) for m in mid]
        s = tailmodel.crossfit_survivals(cf, rows, queries, sizes, rep=rep)
        over = np.array([(1 - s[j][:, j]).mean() > target for j in range(len(sizes))], bool)
        hi, lo = np.where(over, mid, hi), np.where(over, lo, mid)
    return (lo + hi) / 2


def _gaussian_prediction(model, spec, sizes, cfg: ExperimentConfig, n_real) -> dict:
    """The old readers' ``predicted``: the Gaussian distractor model's saddlepoint rank-1 (unchanged
    from before the tail model; it fails the held-out validation, so ``points`` supersede it)."""
    m = spec["mated"]
    persons = np.where(m)[0]
    hit = spec["rank"][persons] == 1
    g = np.where(hit, spec["g"][persons], np.inf)
    gp = {p_: k for k, p_ in enumerate(persons)}
    rows = [r for r in range(len(spec["owner"])) if spec["owner"][r] in gp]
    owners = np.array([gp[spec["owner"][r]] for r in rows], np.int64)
    radii = np.array([g[k] for k in owners]) if rows else np.zeros(0)
    vecs = spec["vecs"][rows] if rows else np.zeros((0, spec["vecs"].shape[1]), np.float32)
    single = len(rows) == len(persons) and np.array_equal(owners, np.arange(len(persons)))
    searchers = Searchers(
        vecs, np.where(np.isfinite(radii), radii, 1e-6), hit.astype(float), None if single else owners
    )
    pred = predicted_rank1(
        model, searchers, [int(s) for s in sizes] + list(cfg.scaling.extrapolate), n_real, seed=cfg.seed
    )
    pred["note"] = "Gaussian distractor model (fails the held-out validation); kept for old readers, see points"
    return pred
