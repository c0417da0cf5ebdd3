"""The tail model itself: its parameters, the distribution of a residual and of one random other
face's distance to a probe, and the closed-form chances built on it (rank-1 and rank-10 survival
in a gallery of N others, per person and per replicate, cross-fitted by fold). The method is
described in :mod:`privrisk.tailmodel`; fitting is :mod:`~privrisk.tailmodel.fitting`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import special, stats

from .text import NAMES

THRESHOLDS = (0.45, 0.50, 0.55, 0.60)


TAIL_SHARE = 0.05  # share of residuals below the peaks-over-threshold threshold u


SHIFT_QUANTILE = 0.10  # per-probe quantile that measures how crowded a probe's neighbourhood is


N_NODES = 24  # Gauss-Hermite nodes for the unknown shift of a new face


# informativeness limit (upper / lower end of the model's interval) per threshold
INFORMATIVE_RATIO = {0.45: 10.0, 0.50: 10.0, 0.55: 3.0, 0.60: 3.0}


KINDS = ("gpd", "normal")


@dataclass(frozen=True)
class Standardizer:
    """Scalar moments of the reference population that centre a squared distance per probe."""

    mu: np.ndarray  # (d,)
    T: float  # mean ||X - mu||^2
    V0: float  # variance of ||X - mu||^2
    c_mean: float  # mean and sd of ||v||^2 over the reference faces (covariate scale)
    c_sd: float

    @classmethod
    def fit(cls, faces: np.ndarray) -> Standardizer:
        x = np.asarray(faces, np.float64)
        mu = x.mean(axis=0)
        q = ((x - mu) ** 2).sum(axis=1)
        return cls(mu=mu, T=float(q.mean()), V0=float(q.var()), c_mean=float(q.mean()), c_sd=float(q.std() or 1.0))

    def moments(self, probes: np.ndarray):
        """(centre, unit) of D^2 to a random reference face, and the standardised covariate, per probe.
        The centre is the exact mean ``||p - mu||^2 + T``; the unit is one global scale ``2 sqrt(V0)``."""
        v = np.atleast_2d(np.asarray(probes, np.float64)) - self.mu
        c = (v**2).sum(axis=1)
        return c + self.T, np.full(len(c), 2 * np.sqrt(max(self.V0, 1e-24))), (c - self.c_mean) / self.c_sd


@dataclass(frozen=True)
class TailParams:
    """Shift and residual-tail parameters (refitted in every bootstrap replicate)."""

    kind: str
    u: float
    a: float  # gpd: shape xi; normal: loc
    b: float  # gpd: scale sigma; normal: scale
    body: np.ndarray  # residual quantiles at BODY_P
    alpha: float
    beta: float
    tau: float
    group_shift: dict = field(default_factory=dict)  # old fits only (a shrunk per-group shift)
    group_tail: dict = field(default_factory=dict)  # per-group multiplier of the tail mass (empirical Bayes)


BODY_P = np.linspace(TAIL_SHARE, 1.0, 191)


@dataclass(frozen=True)
class TailModel:
    """The fitted model: standardiser, point parameters and bootstrap replicates."""

    kind: str
    std: Standardizer
    params: TailParams
    boot: tuple  # of TailParams
    n_subjects: int
    n_pairs: int
    seed: int = 0

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    def replicates(self):
        """The point fit followed by every bootstrap replicate."""
        return (self.params, *self.boot)


def residual_cdf(p: TailParams, e, mult=None) -> np.ndarray:
    """P(residual <= e): the fitted tail below u, the empirical body above.

    ``mult`` (broadcastable to ``e``; default 1) multiplies the tail mass below u (a group's
    :attr:`TailParams.group_tail`); the body above u is rescaled so the distribution still ends at 1."""
    e = np.asarray(e, np.float64)
    out = np.interp(e, p.body, BODY_P, left=TAIL_SHARE, right=1.0)
    below = e < p.u
    if np.any(below):
        eb = e[below]
        if p.kind == "gpd":
            tail = TAIL_SHARE * gpd_sf(p.u - eb, p.a, p.b)
        else:
            tail = TAIL_SHARE * np.exp(special.log_ndtr((eb - p.a) / p.b) - special.log_ndtr((p.u - p.a) / p.b))
        out[below] = tail
    if mult is not None:
        m = np.broadcast_to(np.asarray(mult, np.float64), e.shape)
        body = m * TAIL_SHARE + (1 - m * TAIL_SHARE) * (out - TAIL_SHARE) / (1 - TAIL_SHARE)
        out = np.where(below, m * out, body)
    return out


#: share of the fit pairs at or under the point where each group's tail mass is compared with the
#: model's: deep in the tail, where platform-scale identification is decided, yet with about a hundred
#: pairs among ~10^4 (a fixed share, not chosen on any sample)
GROUP_TAIL_SHARE = 0.01


#: largest group multiplier of the tail mass (so the tail below u stays under 90% of the residuals)
MAX_GROUP_TAIL = 0.9 / TAIL_SHARE


#: key of the pooled multiplier in :attr:`TailParams.group_tail` (what a group the fit never saw gets)
POOLED_GROUP = "*"


def group_multipliers(p: TailParams, groups, n: int) -> np.ndarray | None:
    """(n,) tail-mass multiplier of each probe's group (the pooled one for groups the fit did not
    see), or None."""
    if groups is None or not p.group_tail:
        return None
    pooled = p.group_tail.get(POOLED_GROUP, 1.0)
    return np.array([p.group_tail.get(str(g), pooled) for g in groups], np.float64).reshape(n)


@lru_cache(maxsize=1)
def _node_arrays():
    x, w = np.polynomial.hermite_e.hermegauss(N_NODES)
    x.flags.writeable = False
    w = w / w.sum()
    w.flags.writeable = False
    return x, w


def gpd_sf(x, xi: float, sigma: float) -> np.ndarray:
    """Survival function of a generalised Pareto (location 0, shape ``xi``, scale ``sigma``) at
    ``x >= 0``: ``(1 + xi x / sigma)^(-1 / xi)``, 0 past the end point when ``xi < 0``,
    ``exp(-x / sigma)`` at ``xi = 0``. Closed form (same values as ``scipy.stats.genpareto.sf``,
    tested), without scipy's per-call overhead: the scaling study calls it some 10^5 times."""
    x = np.asarray(x, np.float64)
    if abs(xi) < 1e-12:
        return np.exp(-x / sigma)
    t = xi * x / sigma
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.exp(-np.log1p(t) / xi)
    return np.where(t > -1.0, out, 0.0)


def nodes():
    """Gauss-Hermite nodes and weights (summing to 1) for the unknown shift of a new face."""
    return _node_arrays()


def _shifts(p: TailParams, cstd: np.ndarray, groups) -> np.ndarray:
    """(n, N_NODES) shift values of each probe at the quadrature nodes."""
    x, _ = nodes()
    base = p.alpha + p.beta * cstd
    if groups is not None:
        base = base + np.array([p.group_shift.get(str(g), 0.0) for g in groups])
    return base[:, None] + p.tau * x[None, :]


def node_cdf(model: TailModel, probes: np.ndarray, radius, groups=None, params: TailParams | None = None):
    """(n, R, N_NODES) chance that one random other face lies within ``radius`` of each probe, at
    each quadrature node of the probe's unknown shift. ``radius`` is (n,) or (n, R) or scalar."""
    p = params or model.params
    m, sd, cstd = model.std.moments(probes)
    r = np.asarray(radius, np.float64)
    r = r.reshape(1, 1) if r.ndim == 0 else (r[:, None] if r.ndim == 1 else r)
    r = np.broadcast_to(r, (len(m), r.shape[1]))
    z = (r**2 - m[:, None]) / sd[:, None]
    a = _shifts(p, cstd, groups)
    gm = group_multipliers(p, groups, len(m))
    mult = None if gm is None else gm[:, None, None]
    f = residual_cdf(p, z[:, :, None] - a[:, None, :], mult)
    # A distance cannot be negative: the fitted tail is truncated at distance 0 and renormalised, so
    # no probability sits on faces closer than identical (an unbounded tail would otherwise put a
    # few "identical faces" into every billion and decide platform-scale rank-1 by itself).
    f0 = residual_cdf(p, (-m / sd)[:, None, None] - a[:, None, :], mult)
    return np.clip((f - f0) / np.maximum(1.0 - f0, 1e-300), 0.0, 1.0)


def pair_cdf(model: TailModel, probes: np.ndarray, radius, groups=None, params: TailParams | None = None):
    """F_p(r), (n, R): the per-distractor probability, averaged over the unknown shift."""
    _, w = nodes()
    return node_cdf(model, probes, radius, groups, params) @ w


def interval(values: np.ndarray, point: np.ndarray):
    """The 2.5-97.5% quantiles of ``values`` over replicates, widened to include ``point``."""
    lo, hi = np.quantile(values, [0.025, 0.975], axis=0)
    return np.minimum(lo, point), np.maximum(hi, point)


def predict_pair_rate(model: TailModel, thresholds, probes: np.ndarray, groups=None) -> dict:
    """Predicted share of (probe, random other face) pairs within each threshold, with a 95%
    bootstrap interval; with ``groups`` (one label per probe), also per group.

    Returns ``{"thresholds", "rate", "rate_ci95", "by_group": {g: {"n", "rate", "rate_ci95"}}}``."""
    thr = np.asarray(thresholds, np.float64)
    reps = np.array([pair_cdf(model, probes, thr[None, :], groups, p) for p in model.replicates()])  # (B+1, n, R)

    def summary(sel):
        vals = reps[:, sel, :].mean(axis=1)
        lo, hi = interval(vals[1:], vals[0]) if len(vals) > 1 else (vals[0], vals[0])
        return {
            "n": int(np.sum(sel)),
            "rate": vals[0].tolist(),
            "rate_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)],
        }

    out = {"thresholds": thr.tolist(), **summary(np.ones(len(reps[0]), bool))}
    if groups is not None:
        g = np.array([str(x) for x in groups])
        out["by_group"] = {k: summary(g == k) for k in sorted(set(g))}
    return out


@dataclass(frozen=True)
class Captures:
    """The rows a search is made with, one capture each, and the person each belongs to.

    ``vecs`` (rows, d); ``owners`` (rows,) the person index of each row (default: one person per
    row); ``n_persons`` (default: the largest owner + 1; persons without rows get survival 1);
    ``groups`` one label per row for group-conditional models (or None)."""

    vecs: np.ndarray
    owners: np.ndarray | None = None
    n_persons: int | None = None
    groups: object = None

    def owner_index(self) -> np.ndarray:
        return np.arange(len(self.vecs)) if self.owners is None else np.asarray(self.owners, np.int64)

    def persons(self) -> int:
        if self.n_persons is not None:
            return int(self.n_persons)
        owners = self.owner_index()
        return int(owners.max()) + 1 if len(owners) else 0

    def subset(self, sel: np.ndarray) -> tuple[np.ndarray, Captures]:
        """The persons owning rows ``sel`` and those rows as their own Captures (owners renumbered)."""
        persons, local = np.unique(self.owner_index()[sel], return_inverse=True)
        groups = None if self.groups is None else np.asarray(self.groups, dtype=object)[sel]
        return persons, Captures(np.asarray(self.vecs)[sel], local, len(persons), groups)


#: one survival asked of :func:`survivals`: each row's radius, and each person's allowed number of
#: other faces within it (None: none allowed, rank-1)
Query = tuple  # (radius (rows,), allowed (persons,) | None)


def survivals(model: TailModel, rows: Captures, queries, n_other, params: TailParams | None = None) -> list:
    """Per query (radius per row, allowed per person), per person and gallery size, P(at most
    ``allowed`` of ``n_other`` random other faces lie within the person's radius), averaged over the
    unknown shift. One :func:`node_cdf` serves every query (their radii are its columns).

    A distractor beats a person if it is within radius of any of their captures (per-distractor
    chance ``1 - prod(1 - F_row)``, captures sharing one shift). ``allowed`` = 0 (or None) gives
    rank-1 survival ``(1 - F)^N``; ``9 - k_p`` gives rank-10. Each result is (persons, sizes)."""
    n_other = np.atleast_1d(np.asarray(n_other, np.float64))
    owners, n_persons = rows.owner_index(), rows.persons()
    if len(owners) == 0:
        return [np.ones((n_persons, len(n_other))) for _ in queries]
    radii = np.stack([np.asarray(r, np.float64) for r, _ in queries], axis=1)
    f_all = np.clip(node_cdf(model, rows.vecs, radii, rows.groups, params), 0, 1)
    has = np.bincount(owners, minlength=n_persons) > 0
    out = []
    for c, (_, allowed) in enumerate(queries):
        allowed = np.zeros(n_persons) if allowed is None else np.asarray(allowed, np.float64)
        log_surv = np.zeros((n_persons, N_NODES))
        np.add.at(log_surv, owners, np.log1p(-np.minimum(f_all[:, c, :], 1 - 1e-16)))
        out.append(_survival(log_surv, allowed, has, n_other))
    return out


def _survival(log_surv: np.ndarray, allowed: np.ndarray, has: np.ndarray, n_other: np.ndarray) -> np.ndarray:
    """(persons, sizes) from each person's log chance, per node, that one other face is not ahead."""
    _, w = nodes()
    out = np.ones((len(log_surv), len(n_other)))
    pos = np.where(n_other > 0)[0]
    if len(pos):
        n = n_other[pos][:, None, None]
        if np.all(allowed == 0):
            val = np.exp(n * log_surv[None])
        else:  # per-distractor chance of beating the person, (persons, nodes); persons allowed < 0 get 0
            live = allowed >= 0
            val = np.zeros((len(pos), *log_surv.shape))
            q = np.clip(-np.expm1(log_surv[live]), 0, 1)
            val[:, live] = stats.binom.cdf(allowed[live][None, :, None], n, q[None])
        for i, j in enumerate(pos):
            out[:, j] = np.where(has, val[i] @ w, 1.0)
    return np.where(allowed[:, None] < 0, 0.0, out)


def rank_probabilities(
    model: TailModel, rows: Captures, radius, n_other, *, allowed=None, params: TailParams | None = None
) -> np.ndarray:
    """Per person and gallery size, P(at most ``allowed`` of ``n_other`` random other faces lie within
    the person's radius) (:func:`survivals` with one query). ``rows`` holds one row per capture
    (:class:`Captures`), ``radius`` (rows,). Returns (persons, sizes)."""
    return survivals(model, rows, [(radius, allowed)], n_other, params)[0]


def with_params(model: TailModel, params: TailParams) -> TailModel:
    """The same model with other (e.g. bootstrap) parameters as its point fit."""
    return replace(model, params=params)


def replicate_params(model: TailModel, rep: int) -> TailParams:
    """Replicate ``rep``: 0 is the point fit, 1.. the bootstrap refits (cycled if fewer)."""
    if rep == 0 or not model.boot:
        return model.params
    return model.boot[(rep - 1) % len(model.boot)]


@dataclass(frozen=True)
class CrossFit:
    """Per-fold models (``models[k]`` never saw fold k's people) and the fold of each row."""

    models: dict
    row_fold: np.ndarray


def crossfit_survivals(cf: CrossFit, rows: Captures, queries, n_other, rep: int = 0) -> list:
    """:func:`survivals` with each person's rows scored by the model of their fold, replicate
    ``rep`` (:func:`replicate_params`). All rows of one person must share a fold. Each result is
    (n_persons, sizes); persons without rows get 1."""
    n_other = np.atleast_1d(np.asarray(n_other, np.float64))
    n_persons = rows.persons()
    out = [np.ones((n_persons, len(n_other))) for _ in queries]
    row_fold = np.asarray(cf.row_fold)
    for k, model in cf.models.items():
        sel = row_fold == k
        if not sel.any():
            continue
        persons, local = rows.subset(sel)
        asked = [
            (np.asarray(r, np.float64)[sel], None if a is None else np.asarray(a, np.float64)[persons])
            for r, a in queries
        ]
        for o, s in zip(out, survivals(model, local, asked, n_other, replicate_params(model, rep))):
            o[persons] = s
    return out


def crossfit_survival(cf: CrossFit, rows: Captures, radius, n_other, *, allowed=None, rep: int = 0) -> np.ndarray:
    """:func:`crossfit_survivals` with one query: (n_persons, sizes)."""
    return crossfit_survivals(cf, rows, [(radius, allowed)], n_other, rep)[0]
