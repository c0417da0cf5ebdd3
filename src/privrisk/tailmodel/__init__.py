"""A model of the lower tail of impostor distances, validated on held-out people.

Identification at platform scale is decided by one number per probe: ``F_p(r)``, the chance that
one random face of someone else lands within distance ``r`` of probe ``p``. Rank-1 in a gallery
of ``N`` (``n`` real people + ``N - n`` others) is ``(1 - F_p(g_p))^(N - n)`` at the probe's genuine
distance ``g_p``; rank-10 is ``P(Binomial(N - n, F_p(g_p)) <= 9 - k_p)`` with ``k_p`` real impostors
already ahead. This module models ``F_p`` far into its lower tail.

Method. It was revised once after seeing held-out results, so the sample set's cross-validation is
not an independent test of the final method: :func:`calibrate` on faces the model has never seen
is. The first version standardised each probe's squared distances by a per-probe variance from the
128 x 128 second moment of the fit faces; held out, it predicted about 4x too few close pairs and
failed at 0.55 and 0.60. The reason given for the change (a few hundred faces estimate scalar
moments well and a 128 x 128 second moment badly, which is also why the Gaussian model's tail is
too thin) holds a priori, but the choice was made after the result was seen. The final method:

1. **Centring by the exact mean.** For a reference population of faces ``X`` (mean ``mu``), the
   squared distance ``D^2 = ||p - X||^2`` has mean ``||p - mu||^2 + T`` (``T`` = mean
   ``||X - mu||^2``) whatever the population's shape. Every pair becomes
   ``z = (D^2 - mean_p) / (2 sqrt(V0))`` with ``V0`` the variance of ``||X - mu||^2``: only scalar
   moments, which a few hundred faces estimate well. (A per-probe variance needs the 128 x 128
   second moment, which they do not: that is why the Gaussian model's tail fails; the first
   version of this module did, and was replaced, as said above.)
2. **Probe-level heterogeneity.** Some faces sit in crowded regions. Each probe gets a shift
   ``a_p`` of its lower tail: on the fit data, ``a_p`` = the probe's 10% quantile of ``z`` minus the
   pooled 10% quantile, regressed on the probe's standardised distance from the centre
   (``alpha + beta * c_p``); the residual spread ``tau`` is the between-probe variance minus the
   sampling noise of a quantile (empirical Bayes). Optional group labels (self-reported, e.g.
   gender+ethnicity) give each group a multiplier of its tail mass, measured at the pooled 1% point
   and shrunk by empirical Bayes (:func:`_group_tail`): faces of a group with many close look-alikes
   get a heavier tail. The multipliers are relative to the fit faces' mix of groups. For a new face ``a`` is unknown and integrated out (Gauss-Hermite): probabilities are
   ``E_a[...]``, never plug-in.
3. **Tail of the residual** ``e = z - a_p``: below ``u`` = its 5% quantile (a fixed share), either
   a generalised Pareto fitted by maximum likelihood to ``u - e`` (``kind="gpd"``, the primary
   model) or a normal matched to the same exceedances by a probability-plot least-squares fit
   (``kind="normal"``, the second tail model: thin, unbounded tail, where the GPD's may end). Above ``u`` the empirical distribution.
   Both tails are truncated at squared distance 0 (:func:`node_cdf`): no probability on negative
   distances. Far below the smallest rate the real pairs can check (about 1 / their number), the
   tails are extrapolations: the predictions that depend on them are labelled so and shown as ranges.
4. **Uncertainty.** A subject-level bootstrap: people are resampled with replacement and the
   shift and tail parameters refitted (the standardising moments stay at the full fit). Each
   prediction is computed for every replicate; intervals are their 2.5-97.5% quantiles.

:func:`cross_validate` checks the model on people it never saw: K folds over subjects, each fold's
probes scored by a model fitted on the other folds' people only. :func:`calibrate` checks a
stored model on a new face set. Models are saved as plain JSON (:func:`to_json`, :func:`from_json`).

By role: :mod:`~privrisk.tailmodel.model` (the parameters, the distributions and the closed-form
chances), :mod:`~privrisk.tailmodel.fitting` (fitting and the bootstrap),
:mod:`~privrisk.tailmodel.validation` (cross-validation and the backtest),
:mod:`~privrisk.tailmodel.calibration` (calibration on never-seen faces and the widening it implies),
:mod:`~privrisk.tailmodel.storage` (plain JSON) and :mod:`~privrisk.tailmodel.text` (the names,
rules and verdicts in plain words). The names below are re-exported here.

Pure numpy/scipy; imports nothing from later stages.
"""

from __future__ import annotations

from .calibration import (
    CALIBRATION_FORMAT,
    WIDEN_THRESHOLDS,
    apply_calibration,
    calibrate,
    calibrate_manifest,
    calibration_record,
    calibration_widening,
    load_calibration,
    widen_curves,
    widen_points,
)
from .fitting import MIN_TAIL_POINTS, Pairs, fit, gpd_mle
from .model import (
    BODY_P,
    GROUP_TAIL_SHARE,
    INFORMATIVE_RATIO,
    KINDS,
    MAX_GROUP_TAIL,
    N_NODES,
    POOLED_GROUP,
    SHIFT_QUANTILE,
    TAIL_SHARE,
    THRESHOLDS,
    Captures,
    CrossFit,
    Standardizer,
    TailModel,
    TailParams,
    crossfit_survival,
    crossfit_survivals,
    gpd_sf,
    group_multipliers,
    node_cdf,
    pair_cdf,
    predict_pair_rate,
    rank_probabilities,
    replicate_params,
    residual_cdf,
    survivals,
    with_params,
)
from .storage import default_model_path, from_json, load, load_models, to_json
from .text import BACKTEST_RULE, GROUP_BLIND_CAVEAT, NAMES, WIDEN_RULE
from .validation import BACKTEST_SHARE, backtest, cross_validate, judge, poisson_ci, validation_json

__all__ = [
    "BACKTEST_RULE", "BACKTEST_SHARE", "BODY_P", "CALIBRATION_FORMAT", "GROUP_BLIND_CAVEAT", "GROUP_TAIL_SHARE",
    "INFORMATIVE_RATIO", "KINDS", "MAX_GROUP_TAIL", "MIN_TAIL_POINTS", "NAMES", "N_NODES", "POOLED_GROUP",
    "SHIFT_QUANTILE", "TAIL_SHARE", "THRESHOLDS", "WIDEN_RULE", "WIDEN_THRESHOLDS", "Captures", "CrossFit", "Pairs",
    "Standardizer", "TailModel", "TailParams", "apply_calibration", "backtest", "calibrate", "calibrate_manifest",
    "calibration_record", "calibration_widening", "cross_validate", "crossfit_survival", "crossfit_survivals",
    "default_model_path", "fit", "from_json", "gpd_mle", "gpd_sf", "group_multipliers", "judge", "load",
    "load_calibration", "load_models", "node_cdf", "pair_cdf", "poisson_ci", "predict_pair_rate", "rank_probabilities",
    "replicate_params", "residual_cdf", "survivals", "to_json", "validation_json", "widen_curves", "widen_points",
    "with_params",
]  # fmt: skip
