"""Demographic differentials' counting: a table cell's rate with its 95% interval (subject
bootstrap, exact and design-effect adjusted bounds), and the subject resamples they are drawn from.

Pure functions of counts and weights; nothing here knows about photos or groups' names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..metrics import proportion_interval

SMALL_FLAG = "small: indicative only"
ALPHA = 0.05
#: fewest events in the pooled cell from which a design effect is estimated
MIN_DEFF_EVENTS = 5

#: a linear statistic's value with every subject weighted 1 (the point) and under every resample
Estimate = tuple[float, np.ndarray]


def tkey(t: float) -> str:
    """A threshold as the key of its cells ('0.6')."""
    return f"{t:g}"


@dataclass(frozen=True)
class ImpostorPairs:
    """What a pair rate is computed from: every impostor pair at or under the largest threshold as
    (probe subject code, gallery subject code, distance), and the photos per subject on each side."""

    probe: np.ndarray
    gallery: np.ndarray
    dist: np.ndarray
    probe_photos: np.ndarray
    gallery_photos: np.ndarray


@dataclass(frozen=True)
class Resamples:
    """One attribute's subject bootstrap: the (n_boot, S) multiplicities (subjects resampled within
    their group), each group's 0/1 mask over the subjects, and the small-cell limit."""

    weights: np.ndarray
    masks: Mapping[str, np.ndarray]
    small_subjects: int

    @property
    def groups(self) -> list[str]:
        return list(self.masks)

    def both(self, statistic: Callable[[np.ndarray], np.ndarray]) -> Estimate:
        """Point (weights 1) and bootstrap values of a statistic linear in the subject weights."""
        ones = np.ones((1, self.weights.shape[1]))
        return float(statistic(ones)[0]), statistic(self.weights)


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


def make_cell(num: Estimate, den: Estimate, subjects: int, unit: str, small_subjects: int) -> dict:
    """A table cell: counts, rate, 95% interval (subject bootstrap, exact fallback) and the small flag.
    ``num`` and ``den`` are the events and trials, each as (point, bootstrap values)."""
    (events_p, num_boot), (trials_p, den_boot) = num, den
    events, trials = int(round(events_p)), int(round(trials_p))
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


def pair_weight_sum(w: np.ndarray, a: np.ndarray, b: np.ndarray, max_elements: int = 1 << 22) -> np.ndarray:
    """sum_k w[:, a_k] * w[:, b_k] per bootstrap row, over event chunks (bounded memory)."""
    out = np.zeros(len(w))
    step = max(1, max_elements // max(len(w), 1))
    for s in range(0, len(a), step):
        out += (w[:, a[s : s + step]] * w[:, b[s : s + step]]).sum(1)
    return out


def stratified_weights(labels: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, S) bootstrap multiplicities: subjects resampled with replacement within each group."""
    w = np.zeros((n_boot, len(labels)))
    for g in sorted(set(labels.tolist())):
        idx = np.where(labels == g)[0]
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return w


def group_rate(pairs: ImpostorPairs, boot: Resamples, group: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """A group's FMR over all impostor pairs at ``threshold`` under every resample: (numerators,
    denominators)."""
    A, W = boot.masks[group], boot.weights
    np_s, ng_s = pairs.probe_photos, pairs.gallery_photos
    sel = (A[pairs.probe] > 0) & (pairs.dist <= threshold)
    num = pair_weight_sum(W, pairs.probe[sel], pairs.gallery[sel])
    den = (W @ (np_s * A)) * (W @ ng_s) - (W**2) @ (np_s * ng_s * A)
    return num, den


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
