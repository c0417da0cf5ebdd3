"""Checking the tail model on pairs it never saw: subject-level cross-validation (with the PIT of
each probe's nearest impostor) and the backtest (fitted above a distance, it predicts the closer
pairs), with their exact Poisson verdicts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .fitting import Pairs, fit, pair_distances
from .model import INFORMATIVE_RATIO, THRESHOLDS, TailModel, interval, node_cdf, nodes, pair_cdf
from .text import BACKTEST_RULE, NAMES


def poisson_ci(k: int, level: float = 0.95):
    """Exact (Garwood) interval for a Poisson mean from a count k."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.chi2.ppf(a, 2 * k) / 2)
    return lo, float(stats.chi2.ppf(1 - a, 2 * k + 2) / 2)


def judge(real_count: int, model_ci, threshold: float):
    """True / False, or None when neither side has a pair (no real pair and the model's upper end
    is below one pair): the real count's exact Poisson interval must meet the model's interval,
    and the model's interval must be informative (upper / lower within INFORMATIVE_RATIO)."""
    lo, hi = model_ci
    if real_count == 0 and hi < 1.0:
        return None, "neither side has a pair"
    plo, phi = poisson_ci(real_count)
    meets = plo <= hi and lo <= phi
    limit = INFORMATIVE_RATIO.get(round(float(threshold), 2), 10.0)
    informative = lo > 0 and hi / lo <= limit
    if not meets:
        return False, f"real {real_count} (Poisson 95% {plo:.1f}-{phi:.1f}) outside model {lo:.1f}-{hi:.1f}"
    if not informative:
        return False, f"model interval {lo:.2g}-{hi:.2g} is wider than {limit:g}x"
    return True, "within"


@dataclass(frozen=True)
class _HeldOut:
    """The pairs a cross-validation scores: arrays, each face's fold, distances and impostor counts."""

    pairs: Pairs
    p: np.ndarray
    g: np.ndarray
    pf: np.ndarray
    gf: np.ndarray
    thr: np.ndarray
    d: np.ndarray
    imp: np.ndarray

    @property
    def n_imp(self) -> np.ndarray:
        return self.imp.sum(axis=1)

    @property
    def nearest(self) -> np.ndarray:
        return np.where(self.imp, self.d, np.inf).min(axis=1)

    def groups(self, sel):
        return None if self.pairs.probe_groups is None else np.asarray(self.pairs.probe_groups, dtype=object)[sel]


def cross_validate(
    pairs: Pairs, *, thresholds=THRESHOLDS, k_folds: int = 5, kind: str = "gpd", n_boot: int = 200, seed: int = 0
) -> dict:
    """Subject-level K-fold validation. Each fold's people are held out: the model is fitted on the
    pairs among the other people only, then predicts how many (held-out probe, gallery face of
    someone else) pairs fall under each threshold. Counts and bootstrap replicates are summed over
    folds. Also the PIT of each probe's nearest impostor (KS test against uniform).

    ``kind`` is "gpd", "normal" or "gaussian" (today's DistractorModel, for comparison);
    ``pairs.probe_groups`` fits group-conditional models. Returns a JSON-ready dict; ``fold_models``
    and ``fold_of`` (kept out of JSON) hold the fitted models and each probe's fold, for predictions
    that must not see the probe."""
    p, ps, g, gs = pairs.arrays()
    subjects = np.array(sorted(set(ps) | set(gs)))
    rng = np.random.default_rng(seed)
    fold_id = dict(zip(rng.permutation(subjects), np.arange(len(subjects)) % k_folds))
    pf = np.array([fold_id[s] for s in ps])
    gf = np.array([fold_id[s] for s in gs])
    d = pair_distances(p, g)
    h = _HeldOut(pairs, p, g, pf, gf, np.asarray(thresholds, np.float64), d, ps[:, None] != gs[None, :])
    total_point, total_boot = np.zeros(len(h.thr)), None
    pit = np.full(len(p), np.nan)
    fold_models = {}
    for k in range(k_folds):
        if not (pf == k).any():
            continue
        if kind == "gaussian":
            point, boots = _gaussian_fold(h, k, min(n_boot, 20), rng, pit)
        else:
            fold_models[k] = fit(_train_pairs(h, ps, gs, k), kind=kind, n_boot=n_boot, seed=seed + 101 * (k + 1))
            point, boots = _tail_fold(h, k, fold_models[k], pit)
        total_point += point
        nb = min(len(boots), len(total_boot)) if total_boot is not None else len(boots)
        total_boot = boots[:nb] if total_boot is None else total_boot[:nb] + boots[:nb]
    out = _cv_json(h, total_point, total_boot, pit)
    out.update(k_folds=k_folds, n_boot=n_boot, tail_model=NAMES[kind], kind=kind, fold_models=fold_models, fold_of=pf)
    return out


def _train_pairs(h: _HeldOut, ps: np.ndarray, gs: np.ndarray, k: int) -> Pairs:
    """The pairs among the people outside fold ``k``."""
    tr_p, tr_g = h.pf != k, h.gf != k
    return Pairs(h.p[tr_p], ps[tr_p], h.g[tr_g], gs[tr_g], h.groups(tr_p))


def _tail_fold(h: _HeldOut, k: int, model: TailModel, pit: np.ndarray):
    """Fold ``k``'s predicted pair counts (point, bootstrap replicates) under each threshold; fills
    the PIT of its probes' nearest impostors into ``pit``."""
    test = h.pf == k
    n_imp, nearest = h.n_imp, h.nearest
    reps = np.array([pair_cdf(model, h.p[test], h.thr[None, :], h.groups(test), par) for par in model.replicates()])
    counts = (reps * n_imp[test][None, :, None]).sum(axis=1)  # (B+1, R)
    fin = np.isfinite(nearest[test])
    idx = np.where(test)[0][fin]
    pit[idx] = 1 - _min_survival(model, h.p[idx], nearest[idx], n_imp[idx], h.groups(idx))
    return counts[0], counts[1:]


def _gaussian_fold(h: _HeldOut, k: int, n_boot: int, rng, pit: np.ndarray):
    """Expected held-out pair counts under today's Gaussian DistractorModel, with a bootstrap over
    faces; fills the PIT of fold ``k``'s probes into ``pit``."""
    from ..distractors import DistractorModel  # same stage: the model this one replaces

    test = h.pf == k
    faces = np.vstack([h.p[h.pf != k], h.g[h.gf != k]])
    probes, n_gallery = h.p[test], h.n_imp[test]

    def counts(train):
        model = DistractorModel.fit(train)
        f = np.array([model.tail_cdf(probes, np.full(len(probes), t)) for t in h.thr]).T
        return (f * n_gallery[:, None]).sum(axis=0)

    point = counts(faces)
    boots = [counts(faces[rng.integers(0, len(faces), len(faces))]) for _ in range(n_boot)]
    fn = DistractorModel.fit(faces).tail_cdf(probes, h.nearest[test])
    pit[test] = 1 - (1 - np.clip(fn, 0, 1)) ** n_gallery
    return point, np.array(boots)


def _cv_json(h: _HeldOut, total_point: np.ndarray, total_boot, pit: np.ndarray) -> dict:
    """Real against predicted counts under each threshold, with verdicts and the PIT check."""
    lo, hi = (
        interval(total_boot, total_point) if total_boot is not None and len(total_boot) else (total_point, total_point)
    )
    n_pairs = int(h.imp.sum())
    real = np.array([(h.d[h.imp] <= t).sum() for t in h.thr])
    verdicts = [judge(int(r), (a, b), t) for r, a, b, t in zip(real, lo, hi, h.thr)]
    ok = pit[np.isfinite(pit)]
    return {
        "thresholds": h.thr.tolist(),
        "n_real_pairs": n_pairs,
        "real_count": real.astype(int).tolist(),
        "real_count_ci95": [list(poisson_ci(int(r))) for r in real],
        "real_rate": (real / n_pairs).tolist(),
        "model_count": total_point.tolist(),
        "model_rate": (total_point / n_pairs).tolist(),
        "model_rate_ci95": [[float(a / n_pairs), float(b / n_pairs)] for a, b in zip(lo, hi)],
        "pass": [v for v, _ in verdicts],
        "verdict": [why for _, why in verdicts],
        "pit_ks_p": float(stats.kstest(ok, "uniform").pvalue) if len(ok) > 1 else None,
        "pit_share_below_0.01": float((ok < 0.01).mean()) if len(ok) else None,
        "pit_share_above_0.99": float((ok > 0.99).mean()) if len(ok) else None,
        "n_pit": int(len(ok)),
    }


def _min_survival(model: TailModel, probes, nearest, n_imp, groups=None):
    """P(no one of n_imp other faces is nearer than ``nearest``) per probe, averaged over the shift."""
    _, w = nodes()
    f = np.clip(node_cdf(model, probes, np.asarray(nearest)[:, None], groups)[:, 0, :], 0, 1 - 1e-16)
    return np.exp(n_imp[:, None] * np.log1p(-f)) @ w


def validation_json(cv: dict) -> dict:
    """The JSON part of a :func:`cross_validate` result."""
    return {k: v for k, v in cv.items() if k not in ("fold_models", "fold_of")}


#: The backtest's cut: the distance under which this share of the real impostor pairs lies (a fixed
#: share, chosen before any backtest was run; about 1 in 200 pairs, so there are pairs to predict).
BACKTEST_SHARE = 0.005


def backtest(
    pairs: Pairs,
    *,
    kind: str = "gpd",
    share: float = BACKTEST_SHARE,
    thresholds=THRESHOLDS,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Fit on the real impostor pairs above a distance, predict the counts below it, compare.

    Without ``pairs.gallery``, every pair of different people among the probes counts once (a
    calibration set); with it, every (probe, gallery face) pair of different people (the
    experiment's pairs). The cut is the distance with ``share`` of the pairs under it
    (:data:`~privrisk.tailmodel.text.BACKTEST_RULE`); the thresholds compared are the cut and every
    one of ``thresholds`` below it. JSON-ready."""
    p, ps, g, gs = pairs.arrays()
    pair_d = _sorted_pair_distances(p, ps, g, gs, pairs.one_set)
    n_pairs = len(pair_d)
    if n_pairs < 200:
        raise ValueError(f"need at least 200 impostor pairs for a backtest, got {n_pairs}")
    k_cut = max(1, int(round(share * n_pairs)))
    cut = float((pair_d[k_cut - 1] + pair_d[k_cut]) / 2)  # halfway between the k-th and next pair
    thr = np.array([cut] + [t for t in thresholds if t < cut], np.float64)
    model = fit(Pairs(p, ps, g, gs), kind=kind, n_boot=n_boot, seed=seed, min_distance=cut)
    n_other = (ps[:, None] != gs[None, :]).sum(axis=1)
    half = 2.0 if pairs.one_set else 1.0
    reps = np.array(
        [
            (pair_cdf(model, p, thr[None, :], None, par) * n_other[:, None]).sum(axis=0) / half
            for par in model.replicates()
        ]
    )
    point = reps[0]
    lo, hi = interval(reps[1:], point) if len(reps) > 1 else (point, point)
    real = np.array([(pair_d <= t).sum() for t in thr])
    verdicts = [judge(int(r), (a, b), t) for r, a, b, t in zip(real, lo, hi, thr)]
    return {
        "tail_model": NAMES[kind],
        "kind": kind,
        "rule": BACKTEST_RULE,
        "n_pairs": int(n_pairs),
        "n_pairs_fitted": int(n_pairs - (pair_d <= cut).sum()),
        "cut": cut,
        "cut_share": share,
        "closest_pair": float(pair_d[0]),
        "thresholds": thr.tolist(),
        "real_count": real.astype(int).tolist(),
        "real_count_ci95": [list(poisson_ci(int(r))) for r in real],
        "predicted_count": point.tolist(),
        "predicted_count_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)],
        "pass": [v for v, _ in verdicts],
        "verdict": [why for _, why in verdicts],
        "n_boot": len(model.boot),
    }


def _sorted_pair_distances(p, ps, g, gs, one_set: bool) -> np.ndarray:
    """The impostor pairs' distances, sorted; within one set, each unordered pair once."""
    imp = ps[:, None] != gs[None, :]
    if one_set:
        imp &= np.triu(np.ones_like(imp), 1).astype(bool)  # each unordered pair once
    return np.sort(pair_distances(p, g)[imp])
