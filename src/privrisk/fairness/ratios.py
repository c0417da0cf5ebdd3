"""Demographic differentials' headline: the highest over the lowest group FMR, and every small
group's FMR over a reference group's, each with an interval over the same subject resamples."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .cells import ALPHA, SMALL_FLAG, ImpostorPairs, Resamples, group_rate, tkey


def _cells_at(fmr: Mapping[str, dict], threshold: float) -> dict[str, dict]:
    """Each group's cell over all impostor pairs at ``threshold``, for the groups that have pairs."""
    key = tkey(threshold)
    return {g: row["all"][key] for g, row in fmr.items() if row["all"][key]["trials"] > 0}


def fmr_ratio(fmr: Mapping[str, dict], pairs: ImpostorPairs, boot: Resamples, threshold: float) -> dict:
    """:func:`_highest_over_lowest`, plus ``small_cells``: every group with fewer than
    ``small_subjects`` subjects, its FMR over the reference group's (the lowest-FMR group among the
    large ones), with the percentile interval over the same subject resamples, its counts and the
    small flag. Small cells are not left out of the picture; they are only indicative."""
    out = _highest_over_lowest(fmr, pairs, boot, threshold)
    cells = _cells_at(fmr, threshold)
    big = {g: c for g, c in cells.items() if c["subjects"] >= boot.small_subjects and c["rate"]}
    small = {g: c for g, c in cells.items() if c["subjects"] < boot.small_subjects}
    out["small_cells"] = []
    out["reference"] = None
    if not big or not small:
        return out
    ref = min(big, key=lambda g: (big[g]["rate"], g))
    out["reference"] = ref
    nr, dr = group_rate(pairs, boot, ref, threshold)
    for g in sorted(small):
        ng, dg = group_rate(pairs, boot, g, threshold)
        ok = (dr > 0) & (dg > 0) & ((nr > 0) | (ng > 0))  # 0 / 0 tells nothing; x / 0 is unbounded
        with np.errstate(divide="ignore"):
            ratios = (ng[ok] / dg[ok]) / (nr[ok] / dr[ok])
        out["small_cells"].append(_small_cell_row(g, small[g], ref, big[ref]["rate"], ratios))
    return out


def _small_cell_row(group: str, c: dict, ref: str, ref_rate: float, ratios: np.ndarray) -> dict:
    """A small group's FMR over the reference group's, with its interval and a note on how it was bounded."""
    row = {
        "group": group,
        "subjects": c["subjects"],
        "events": c["events"],
        "pairs": c["trials"],
        "rate": c["rate"],
        "rate_ci95": c["ci95"],
        "ratio_to_reference": float(c["rate"] / ref_rate),
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
            row["ratio_ci95"] = [0.0, float(c["ci95"][1] / ref_rate)]
            row["note"] = (
                "no false match: upper end = the cell's approximate (design-effect adjusted) upper bound / "
                "the reference rate"
                if "design_effect" in c
                else "no false match: upper end = the cell's exact upper bound / the reference rate"
            )
    else:
        row["ratio_ci95"] = [float(c["ci95"][0] / ref_rate), float(c["ci95"][1] / ref_rate)]
        row["note"] = (
            "too few people to resample: the cell's own interval over the reference rate "
            "(the reference's own uncertainty not included)"
        )
    return row


def _highest_over_lowest(fmr: Mapping[str, dict], pairs: ImpostorPairs, boot: Resamples, threshold: float) -> dict:
    """Highest over lowest group FMR (all impostor pairs of the probe's group) at ``threshold``,
    with a bootstrap interval on the same subject resamples. This headline compares only groups with
    at least ``small_subjects`` subjects (10 by default) when two or more have them; otherwise every
    group with impostor pairs (and the ratio is flagged small). The larger differentials can sit in
    the small groups it leaves out: :func:`fmr_ratio` lists those after it (``small_cells``). A
    lowest rate of 0 makes the ratio unbounded: then only a lower bound is given (the highest
    group's lower 95% end over the lowest group's upper bound, exact or, for a clustered zero-event
    cell, approximate)."""
    cells = _cells_at(fmr, threshold)
    big = {g: c for g, c in cells.items() if c["subjects"] >= boot.small_subjects}
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
    _ratio_interval(out, use, pairs, boot)
    return out


def _ratio_interval(out: dict, use: Mapping[str, dict], pairs: ImpostorPairs, boot: Resamples) -> None:
    """Fills ``out``'s ratio of its highest over its lowest group, with the resamples' interval (or a
    lower bound when the lowest rate, or too many resampled ones, are 0)."""
    hi, lo, threshold = out["highest"], out["lowest"], out["threshold"]
    nh, dh = group_rate(pairs, boot, hi, threshold)
    nl, dl = group_rate(pairs, boot, lo, threshold)
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
        return
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
