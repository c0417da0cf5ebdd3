"""The tail models' plain-language text: their names, the caveat shown with their ranges, and the
rules and verdicts their checks print (:mod:`privrisk.tailmodel`)."""

from __future__ import annotations

import numpy as np

# Shown wherever a person's own chance of rank 1 comes from the shipped (group-blind) tail models:
# `privrisk protect` / `findability` and the app's "Which photos" page.
GROUP_BLIND_CAVEAT = (
    "Caveat: the range comes from a group-blind tail model that fits the sample's average person (its "
    "per-probe PIT check fails); people from groups with fewer look-alikes in the sample may be more "
    "findable than the range says, so 'safe' is a statement about an average person."
)


NAMES = {
    "gpd": "squared distances centred by their exact per-probe mean, per-probe shift (covariate + empirical-Bayes spread), "
    "generalised Pareto lower tail below the 5% quantile (MLE)",
    "normal": "squared distances centred by their exact per-probe mean, per-probe shift (covariate + empirical-Bayes spread), "
    "normal lower tail matched to the residuals below the 5% quantile (probability-plot least squares)",
    "gaussian": "Gaussian distractors (mean + Ledoit-Wolf covariance), saddlepoint tail (distractors.py)",
}


BACKTEST_RULE = (
    "Backtest of the tail model: it is refitted on the real impostor pairs farther apart than a cut only "
    "(the cut: the distance with 0.5% of the pairs under it), so it never sees the closest pairs, just as "
    "the shipped model never sees pairs closer than the sample's closest; it then predicts how many pairs "
    "lie under the cut and under each lower threshold. Real counts carry their exact Poisson 95% interval, "
    "predictions the 2.5-97.5% quantiles of the subject-bootstrap refits; a threshold passes when the two "
    "meet and the prediction is informative: its interval's upper end at most 3x its lower end at 0.55 and "
    "0.60 and at most 10x elsewhere (the held-out validation's limits). A prediction interval wider than that meets "
    "almost any count and so checks nothing: those thresholds fail as uninformative, not as passes."
)


WIDEN_RULE = (
    "Where a calibration on faces the model never saw finds the real impostor count outside the model's 95% "
    "interval, every modelled and extrapolated range widens as if each model face's chance of landing within a "
    "distance were scaled by k: k_up = the upper end of the observed/predicted ratio (real count's exact Poisson "
    "upper end over the model's lower end) where the model was too low, k_down = the model's upper end over the "
    "real count's Poisson lower end where it was too high, the largest over the judged thresholds (0.50, 0.55, "
    "0.60) and tail models. A chance of no model face ahead, s = (1 - F)^N, becomes s^k: the lower end of rank-1 "
    "and rank-10 goes to lo^k_up and their upper end to hi^(1/k_down); for FPIR and the wrong-person share "
    "(1 - s) the upper end goes to 1 - (1 - hi)^k_up and the lower end to 1 - (1 - lo)^(1/k_down). Measured "
    "values are never changed; the unwidened range is kept beside each widened one. The rule assumes the "
    "error ratio measured at 0.50-0.60 holds all the way down to the genuine distances the predictions use, "
    "which no calibration can check. Where the real count is 0 and the model too high, k_down is unbounded: "
    "rank-1 and rank-10 upper ends go to 1 and FPIR and wrong-person lower ends to 0 (with an unbounded k_up "
    "too, every widened range becomes [0, 1]), so the calibration then bounds nothing on that side."
)


def widening_verdict(misses: list, vague: list, k_up: float, k_down: float) -> str:
    """The plain verdict of :func:`privrisk.tailmodel.calibration.calibration_widening`: which
    thresholds were not within (and the factors), or that the ranges stay as they are."""
    caveat = (
        f"; but its interval is uninformative (wider than the 10x / 3x limit) at {', '.join(f'{t:g}' for t in vague)}, "
        "so this says little: its ranges there are already that wide"
        if vague
        else ""
    )
    verdict = (
        "within its 95% interval at every judged threshold: ranges unchanged" + caveat
        if not misses
        else "NOT within its 95% interval at "
        + ", ".join(f"{x['threshold']:g} ({x['model']}, {x['side']})" for x in misses)
        + f": ranges widen (k_up = {k_up:.3g}, k_down = {k_down:.3g})"
        + (
            "; the real count is 0 where the model was too high, so k_down is unbounded: rank-1 and rank-10 "
            "ranges now reach 1 and FPIR and wrong-person ranges reach 0"
            + (" (with k_up unbounded too, every widened range is [0, 1])" if not np.isfinite(k_up) else "")
            if not np.isfinite(k_down)
            else ""
        )
        + ". This assumes the error ratio measured at 0.50-0.60 holds down to the genuine distances"
    )
    return verdict
