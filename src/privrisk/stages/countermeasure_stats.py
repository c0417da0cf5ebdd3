"""E4's statistics and summaries: exact intervals, the paired test against the untransformed
photo, how often a protected photo attracts another person's search (hubness), where rank-1 crosses
50% along a ladder, the trend along a transform's frontier, the cheapest setting per target, the
ranking at equal SSIM, and the notes that say how to read them. Pure functions of E4's rows
(:mod:`privrisk.stages.countermeasures` measures them).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import CountermeasureSettings
from ..index import pairwise_distances
from ..metrics import clopper_pearson
from ..transforms import TRANSFORMS


def rate(k: int, n: int) -> dict:
    return {"rate": k / n if n else None, "k": int(k), "n": int(n), "ci95": list(clopper_pearson(k, n))}


def hub_matrix(shots, owner, photo_vecs, photo_person, n_persons: int) -> np.ndarray:
    """``m[j, i]``: the smallest distance from any of person j's snapshot shots (``owner`` = person
    index per shot) to any of person i's (transformed) gallery photos (``photo_person`` per photo);
    inf where j has no shot or i no photo."""
    m = np.full((n_persons, n_persons), np.inf)
    if len(shots) and len(photo_vecs):
        d = pairwise_distances(np.asarray(shots, np.float32), np.asarray(photo_vecs, np.float32))
        photo_person = np.asarray(photo_person, np.int64)
        for r in range(len(d)):
            np.minimum.at(m[int(owner[r])], photo_person, d[r])
    return m


def hubness(m: np.ndarray, best: np.ndarray, person_col) -> dict:
    """How often person i's photo (as in ``m[j, i]``, see :func:`hub_matrix`) would be the top-1
    candidate for ANOTHER person j's snapshot, with only i's photo changed: ``m[j, i]`` strictly
    below j's best distance to every other gallery label (j's own untransformed photo included;
    ``best[j, l]`` is j's best distance to label l, ``person_col[i]`` the column of i's label).
    Counted over ordered pairs (i, j), j != i, j searchable (a finite best distance), and per photo
    (i attracts at least one other person's search); each with its exact interval."""
    n = len(best)
    person_col = np.asarray(person_col, np.int64)
    order = np.argsort(best, axis=1, kind="stable")
    first = best[np.arange(n), order[:, 0]] if best.shape[1] else np.full(n, np.inf)
    second = best[np.arange(n), order[:, 1]] if best.shape[1] > 1 else np.full(n, np.inf)
    # j's strongest rival once i's own label is set aside: its second best when i's label was its best
    rival = np.where(order[:, :1] == person_col[None, :], second[:, None], first[:, None])
    searchable = np.isfinite(best).any(axis=1)
    valid = searchable[:, None] & ~np.eye(n, dtype=bool) & np.isfinite(m)
    hub = valid & (m < rival)
    k_pairs, n_pairs = int(hub.sum()), int(valid.sum())
    has_pair = valid.any(axis=0)
    k_photos = int((hub.any(axis=0) & has_pair).sum())
    return {
        "pairs": rate(k_pairs, n_pairs),
        "photos": rate(k_photos, int(has_pair.sum())),
        "how": (
            "the protected photo is the top-1 candidate for another person's snapshot (closer than that person's "
            "own untransformed photo and everyone else); pairs are (photo, other person's snapshot) and are not "
            "independent, so the per-photo rate is the one to read"
        ),
    }


def paired_test(base_hits, hits) -> dict:
    """Exact McNemar test of rank-1 with a setting against the baseline on the same people: a
    two-sided exact binomial test on the discordant people (found only without / only with it)."""
    from scipy.stats import binomtest  # noqa: PLC0415

    a, b = np.asarray(base_hits, bool), np.asarray(hits, bool)
    lost, gained = int((a & ~b).sum()), int((~a & b).sum())
    p = float(binomtest(lost, lost + gained, 0.5).pvalue) if lost + gained else 1.0
    return {
        "found_only_without": lost,
        "found_only_with": gained,
        "n": int(a.size),
        "p_value": p,
        "test": "exact McNemar (two-sided binomial on the discordant people)",
    }


def _crossing(xs, ys, level=0.5):
    """First x (interpolated linearly between ladder points) where ys falls below ``level``: (x,
    status) with status "reached", "at or before the mildest setting" or "not reached"."""
    for i, y in enumerate(ys):
        if y is not None and y < level:
            if i == 0:
                return float(xs[0]), "at or before the mildest setting"
            y0 = ys[i - 1]
            t = (y0 - level) / (y0 - y) if y0 != y else 1.0
            return float(xs[i - 1] + t * (xs[i] - xs[i - 1])), "reached"
    return None, "not reached within the ladder"


def _axis(name: str, strengths) -> tuple[list, str]:
    """The axis a ladder is interpolated on: log face width for downscale, the strength otherwise."""
    if name == "downscale":
        return [math.log(float(s)) for s in strengths], "log"
    return [float(s) for s in strengths], "linear"


def below_half(name: str, rows: list[dict]) -> dict:
    if name == "occlude":
        return {
            "categorical": True,
            "below_50": [r["strength"] for r in rows if r["rank1"]["rate"] is not None and r["rank1"]["rate"] < 0.5],
            "clearly_below_50": [r["strength"] for r in rows if r["rank1"]["ci95"][1] < 0.5],
            "note": "occluders are kinds, not a ladder: each kind's rank-1 with its exact interval is in the settings",
        }
    xs, scale = _axis(name, [r["strength"] for r in rows])
    back = (lambda v: None if v is None else float(math.exp(v))) if scale == "log" else (lambda v: v)
    point, status = _crossing(xs, [r["rank1"]["rate"] for r in rows])
    early, s_early = _crossing(xs, [r["rank1"]["ci95"][0] for r in rows])
    late, s_late = _crossing(xs, [r["rank1"]["ci95"][1] for r in rows])
    return {
        "categorical": False,
        "strength": back(point),
        "status": status,
        "interval": [back(early), back(late)],
        "interval_status": [s_early, s_late],
        "interval_method": (
            "where the exact 95% interval's lower and upper ends cross 50%, each interpolated between ladder "
            "points" + (" on a log scale of face width" if scale == "log" else "") + " (pointwise, not simultaneous)"
        ),
    }


def frontier_trend(baseline: dict, rows: list[dict], rate: str = "rank1", paired: str = "paired_vs_baseline") -> dict:
    """Does rank-1 fall as SSIM falls along a transform's frontier? Spearman's rho between mean SSIM
    and measured rank-1 (``rate``: ``"rank1"``, or ``"rank1_this_detector"`` for the view where a
    face the detector misses is not in the gallery) over the untransformed photo and the transform's
    settings (positive: rank-1 falls as the photo loses quality), said in words; ``paired`` names
    each setting's exact paired test against the original."""
    from scipy.stats import spearmanr  # noqa: PLC0415

    pts = [baseline, *rows]
    x, y = [p["ssim"] for p in pts], [p[rate]["rate"] for p in pts]
    fit = spearmanr(x, y) if len(set(y)) > 1 and len(set(x)) > 1 else None
    rho = float(fit.statistic) if fit is not None else float("nan")
    p_rho = float(fit.pvalue) if fit is not None and math.isfinite(float(fit.pvalue)) else float("nan")
    if not math.isfinite(rho):
        words = "rank-1 does not change"
    elif not p_rho < 0.05:  # the sign of a weak rho is not a direction (blur: 90% -> 10% can give rho -0.13)
        words = "no monotone trend the ladder can show"
    elif rho > 0:
        words = "rank-1 falls as SSIM falls"
    else:
        words = "rank-1 rises as SSIM falls"
    statement = (
        f"{words} (Spearman rho {rho:.2f}, p {p_rho:.2g}, over {len(pts)} points, the original included)"
        if math.isfinite(rho)
        else f"{words} ({len(pts)} points, the original included)"
    )
    ks = [p[rate].get("k") for p in pts]
    if all(k is not None for k in ks) and pts[0][rate].get("n"):
        # the sign alone can rest on one person: say how far rank-1 actually moves, and whether it moves significantly
        statement += f"; measured rank-1 spans {min(y):.1%}-{max(y):.1%} ({min(ks)}-{max(ks)} of {pts[0][rate]['n']})"
    tests = [r[paired] for r in rows if r.get(paired)]
    if tests:
        sig = [t for t in tests if t["p_value"] < 0.05]
        statement += (
            f"; {len(sig)} of {len(tests)} settings differ from the original by the exact paired test (p < 0.05, unadjusted)"
            if sig
            else "; no setting differs from the original by the exact paired test (p >= 0.05)"
        )
    return {
        "spearman_rho": rho if math.isfinite(rho) else None,
        "spearman_p": p_rho if math.isfinite(p_rho) else None,
        "n_points": len(pts),
        "significant_settings": sum(t["p_value"] < 0.05 for t in tests) if tests else None,
        "statement": statement,
    }


def only_hidden(m: dict, detector: str) -> str | None:
    """A setting that lowers rank-1 significantly (exact McNemar, p < 0.05) only for a stranger whose
    detector misses the transformed face, not for one whose detector still finds it: labelled so."""

    def lowers(p: dict) -> bool:
        return p["found_only_without"] > p["found_only_with"] and p["p_value"] < 0.05

    if lowers(m["paired_this_detector_vs_baseline"]) and not lowers(m["paired_vs_baseline"]):
        return f"works only because the {detector} detector misses the face: a stronger detector still finds the person"
    return None


def cheapest(rows: list[dict], size: int, target: float) -> dict | None:
    ok = [r for r in rows if r["platform"][str(size)]["range"][1] < target]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["ssim"])
    return {"strength": best["strength"], "ssim": best["ssim"], "rank1_range": best["platform"][str(size)]["range"]}


def ranking_at_equal_ssim(rows: list[dict], baseline_rank1: float, reference_ssim) -> dict:
    """Per reference SSIM s: the transforms ordered by the lowest rank-1 each reaches while keeping a
    mean SSIM of at least s (doing nothing, SSIM 1, is always allowed), ties by name."""
    out = {}
    for s in reference_ssim:
        entries = []
        for t in dict.fromkeys(r["transform"] for r in rows):
            ok = [r for r in rows if r["transform"] == t and r["ssim"] >= s]
            best = min(ok, key=lambda r: r["rank1"]["rate"], default=None)
            if best is None or best["rank1"]["rate"] >= baseline_rank1:
                entries.append({"transform": t, "rank1": baseline_rank1, "strength": None, "ci95": None})
            else:
                entries.append(
                    {
                        "transform": t,
                        "rank1": best["rank1"]["rate"],
                        "strength": best["strength"],
                        "ci95": best["rank1"]["ci95"],
                    }
                )
        entries.sort(key=lambda e: (e["rank1"], e["transform"]))
        out[f"{s:g}"] = entries
    return out


def summarise(
    settings: CountermeasureSettings, baseline: dict, rows: list[dict], model_id: str, threshold: float
) -> dict:
    """Per transform: what its strength means, the trend along its frontier (both views), where
    rank-1 crosses 50%, the cheapest setting per platform size and target, and the settings that
    work only because the detector misses the face."""
    summary = {}
    for t in settings.transforms:
        tr = [r for r in rows if r["transform"] == t]
        summary[t] = {
            "strength_means": TRANSFORMS[t].strength,
            "trend": frontier_trend(baseline, tr),
            "trend_this_detector": frontier_trend(
                baseline, tr, rate="rank1_this_detector", paired="paired_this_detector_vs_baseline"
            ),
            "rank1_below_50": below_half(t, tr),
            "cheapest": {
                str(int(size)): {f"{target:g}": cheapest(tr, int(size), target) for target in settings.targets}
                for size in settings.platform_sizes
            },
            "cheapest_attacker": (
                "a stranger whose detector finds every face (a missed face is encoded at its known box), "
                f"{model_id}, threshold {threshold:g}"
            ),
            "only_because_the_detector_misses": [r["label"] for r in tr if r["works_only_because_the_detector_misses"]],
        }
    return summary


def notes(settings: CountermeasureSettings, n: int, held_out: bool) -> tuple[str, ...]:
    """How to read E4's numbers, in words (``held_out``: platform figures from the fold models that
    never saw each person)."""
    return (
        f"identification: each person's gallery photo transformed, everyone else's unchanged; the stranger's snapshot is "
        f"E2's '{settings.snapshot_level}' captures of their other photo, fused by the best distance (measured, n = {n})",
        "a transformed photo whose face the detector misses is encoded at the face's known box (a stronger detector "
        "would still find it): identification is judged conservatively, and the detection rate is given beside it",
        "'with this detector' judges the same search as a platform running dlib's detector would: a photo whose face it "
        "misses never enters the gallery and cannot be found; the two views differ only where detection fails",
        "platform-scale rank-1: the tail models' closed form at each size (nothing searched), with the range over both "
        "tail models, their bootstrap refits and people resampled; 'extrapolated' past what the real impostor pairs can "
        "check, 'model' within it",
        (
            "each person's platform-scale figures come from the tail models of the cross-fit fold that never saw them "
            "(the scaling study's 5 folds), so no one is scored by a model fitted on their own pairs"
            if held_out
            else "the tail models behind these ranges were fitted on everyone, including the people whose photos are "
            "transformed here, so the ranges leave out out-of-sample error and are likely too narrow"
        ),
        "only the protected person's photo is transformed while everyone else's stays sharp: 'top-1 for others' counts "
        "how often that photo would become the top candidate for another person's snapshot (it attracts their search), "
        "which a gallery where many photos are small would not show the same way",
        "each setting's rank-1 is compared with the original photo's on the same people by an exact McNemar test "
        "(two-sided binomial on the people found only with / only without the setting); overlapping intervals are "
        "not the test",
        "SSIM and PSNR over the face and a margin (the box grown by a quarter each side), the mean over persons; SSIM is "
        "blind to how conspicuous a local occluder is",
        "cheapest: the setting with the highest mean SSIM whose platform rank-1 range's upper end is under the target",
    )
