"""Field sensitivities: the documented defaults with where each comes from, your own from a file
(:func:`load_sensitivity`), checked when scored (:func:`sensitivities`), or estimated from a population
with item response theory (:func:`estimate_sensitivity`, after Liu and Terzi, ACM TKDD 2010).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import ExposureSettings
from ..errors import ConfigError, EstimationError
from ..fileio import read_json
from ..profiles import FIELDS, LEVELS, UserProfile

#: Sensitivity of each field (0 = harmless, 1 = most harmful in a stranger's hands). The numbers
#: are assumptions (see :data:`SENSITIVITY_SOURCES`); override them with ``--sensitivity FILE`` or
#: estimate them from a population with :func:`estimate_sensitivity`.
DEFAULT_SENSITIVITY = {
    "real_name": 0.5,
    "profile_photo": 0.2,
    "birth_date": 0.6,
    "hometown": 0.4,
    "current_city": 0.4,
    "workplace": 0.6,
    "school": 0.4,
    "interests": 0.2,
    "relationship_status": 0.3,
    "email": 0.6,
    "phone": 0.9,
    "tagged_photos": 0.3,
    "checkins": 0.6,
    "current_location": 0.9,
    "travel_plans": 0.7,
}

_ASSUMED = "assumption (our number)"
_TARASZOW = (
    "ordering consistent with Taraszow et al., Int. J. Media & Cultural Politics 6(1) 2010: most young "
    "Facebook users disclose full name, face pictures, hometown and e-mail; fewer disclose mobile phone "
    "and home address (less disclosed = more sensitive, as in Liu & Terzi, ACM TKDD 2010)"
)
#: Where each default sensitivity comes from. Only orderings are supported by studies; every number is ours.
SENSITIVITY_SOURCES = {
    "real_name": f"{_ASSUMED}; {_TARASZOW}",
    "profile_photo": f"{_ASSUMED}; {_TARASZOW}. Low because its risk is carried by P(linked), not by this weight",
    "birth_date": f"{_ASSUMED}; raised because birth date is a key to the national-ID inference (Acquisti & Gross, "
    "PNAS 2009)",
    "hometown": f"{_ASSUMED}; {_TARASZOW}",
    "current_city": _ASSUMED,
    "workplace": _ASSUMED,
    "school": _ASSUMED,
    "interests": f"{_ASSUMED}: the least sensitive item",
    "relationship_status": _ASSUMED,
    "email": f"{_ASSUMED}; {_TARASZOW}",
    "phone": f"{_ASSUMED}; {_TARASZOW}",
    "tagged_photos": f"{_ASSUMED}. Its main risk (more photos of your face) is carried by P(linked)",
    "checkins": _ASSUMED,
    "current_location": f"{_ASSUMED}: where you are now, ranked with the phone number as most sensitive",
    "travel_plans": _ASSUMED,
}


def sensitivities(settings: ExposureSettings) -> dict:
    """Every field's sensitivity: the defaults with ``settings.sensitivity`` over them, each checked."""
    unknown = set(settings.sensitivity) - set(FIELDS)
    if unknown:
        raise ConfigError(f"sensitivity: unknown field(s) {', '.join(sorted(unknown))}")
    out = dict(DEFAULT_SENSITIVITY)
    for k, v in settings.sensitivity.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ConfigError(f"sensitivity.{k}: expected a number between 0 and 1, got {v!r}")
        out[k] = float(v)
    return out


def load_sensitivity(path: str | Path) -> dict:
    """Field sensitivities from a JSON file ``{"phone": 1.0, ...}`` (validated when scored)."""
    path = Path(path)
    data = read_json(path, "sensitivity")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping field -> sensitivity")
    try:
        sensitivities(ExposureSettings(sensitivity=data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data


def estimate_irt(responses: np.ndarray, *, quadrature: int = 41) -> dict:
    """Two-parameter logistic IRT fitted by marginal maximum likelihood.

    ``responses`` is (people, items) of 0/1: 1 when the person shows the item beyond friends.
    P(shows) = sigmoid(alpha_i * (theta - beta_i)), with each person's openness theta integrated
    over a standard normal (Gauss-Hermite quadrature). ``beta`` is the item's sensitivity (higher =
    fewer people show it), ``alpha`` its discrimination; ``theta`` is returned as each person's
    posterior mean. Returns alpha, beta, theta and whether the optimiser converged."""
    from scipy.optimize import minimize
    from scipy.special import expit, logsumexp

    r = np.asarray(responses, dtype=np.float64)
    m = r.shape[1]
    nodes, weights = np.polynomial.hermite_e.hermegauss(quadrature)
    log_w = np.log(weights / weights.sum())

    def posterior(x):
        beta, a = x[:m], np.exp(x[m:])
        z = a[None, :] * (nodes[:, None] - beta[None, :])  # (Q, m)
        ll = r @ (-np.logaddexp(0, -z)).T + (1 - r) @ (-np.logaddexp(0, z)).T + log_w  # (n, Q)
        lse = logsumexp(ll, axis=1)
        return beta, a, z, lse, np.exp(ll - lse[:, None])

    def loss(x):
        beta, a, z, lse, post = posterior(x)
        resid = post.T @ r - post.sum(0)[:, None] * expit(z)  # (Q, m): expected observed - predicted
        d_beta = (a[None, :] * resid).sum(0)  # d(-loglik)/d beta
        d_loga = -(a[None, :] * (nodes[:, None] - beta[None, :]) * resid).sum(0)
        return -lse.sum(), np.concatenate([d_beta, d_loga])

    res = minimize(
        loss,
        np.zeros(2 * m),
        jac=True,
        method="L-BFGS-B",
        bounds=[IRT_BOUNDS["beta"]] * m + [IRT_BOUNDS["log_alpha"]] * m,
        options={"maxiter": 1000},
    )
    beta, alpha, _, _, post = posterior(res.x)
    return {"alpha": alpha, "beta": beta, "theta": post @ nodes, "converged": bool(res.success)}


#: Bounds of the IRT optimiser: difficulties in [-8, 8], log-discriminations in [-3, 3].
IRT_BOUNDS = {"beta": (-8.0, 8.0), "log_alpha": (-3.0, 3.0)}


def estimate_sensitivity(profiles: list[UserProfile], *, margin: float = 0.05) -> dict[str, float]:
    """Field sensitivities in (0, 1) estimated from a population (Liu-Terzi style): each field's IRT
    difficulty, mapped through the logistic function. Use as ``ExposureSettings(sensitivity=...)``.

    The fit is refused (:class:`~privrisk.errors.EstimationError`) when the optimiser did not
    converge, or when any difficulty or discrimination sits within ``margin`` of its bound: that is
    what a population without a shared openness trait (fields shown independently of each other)
    produces, and difficulties stuck at a bound are not sensitivities."""
    fields = list(FIELDS)
    if len(profiles) < 50:
        raise EstimationError(f"estimate_sensitivity: {len(profiles)} profiles are too few (need at least 50)")
    responses = np.array([[LEVELS.index(p.visibility[f]) >= 2 for f in fields] for p in profiles], dtype=float)
    fit = estimate_irt(responses)
    if not fit["converged"]:
        raise EstimationError("estimate_sensitivity: the IRT fit did not converge; no sensitivities estimated")
    (b_lo, b_hi), (a_lo, a_hi) = IRT_BOUNDS["beta"], IRT_BOUNDS["log_alpha"]
    log_a = np.log(fit["alpha"])
    stuck = [
        f
        for f, b, la in zip(fields, fit["beta"], log_a)
        if b <= b_lo + margin or b >= b_hi - margin or la <= a_lo + margin or la >= a_hi - margin
    ]
    if stuck:
        raise EstimationError(
            f"estimate_sensitivity: parameters at their bounds for {', '.join(stuck)}: the population shows no "
            "common openness trait for these fields (or shows them to everyone or no one), so IRT cannot rank "
            "their sensitivity; use the documented defaults or your own"
        )
    return {f: float(1 / (1 + math.exp(-b))) for f, b in zip(fields, fit["beta"])}
