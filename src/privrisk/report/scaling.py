"""The scaling study in the report: rank-1 / rank-10 / FPIR by gallery size with each point's kind and
range, and how far to trust the tail model (held-out validation, backtest, calibration on never-seen
faces)."""

from __future__ import annotations

import html

from .formatting import pct_range


def _points(results: dict, name: str = "online_to_online") -> list[dict]:
    c = results["scaling_detail"]["curves"].get(name) or {}
    return c.get("points") or []


def scaling_summary_lines(results: dict) -> list[str]:
    """Terminal lines: E1 rank-1 by gallery size, each with its kind and range."""
    pts = _points(results)
    if not pts:
        return []
    lines = ["Scaling, E1 rank-1 by gallery size [kind] (range):"]
    lines += [
        f"  {p['gallery_size']:>13,} [{p['kind']}] {pct_range(p['rank1'], p['rank1_range'], p['kind'])}; rank-10 "
        f"{pct_range(p['rank10'], p['rank10_range'], p['kind'])}; FPIR at threshold "
        f"{pct_range(p['fpir_at_threshold'], p['fpir_range'], p['kind'])}"
        for p in pts
    ]
    v = results["scaling_detail"]["distractor_model"].get("validation")
    if v and "error" in v:
        lines.append(f"No tail model: {v['error']}; no prediction past the searched sizes")
    elif v:
        verdict = ", ".join(
            f"{t:g}: {'not judged' if ok is None else ('pass' if ok else 'FAIL')}"
            for t, ok in zip(v["thresholds"], v["pass"])
        )
        pit = v["pit_ks_p"]
        pit_txt = (
            f"PIT: FAIL (KS p = {pit:.2g}): pooled counts fit, single people's nearest impostors do not"
            if pit is not None and pit < 0.05
            else f"PIT: pass (KS p = {pit:.2g})"
            if pit is not None
            else "PIT: not computed"
        )
        lines.append(
            f"Tail model on held-out people ({v['k_folds']} folds, {v['n_real_pairs']:,} impostor pairs): "
            f"{verdict}; {pit_txt}"
        )
        tc = (results.get("fairness") or {}).get("tail_check") or {}
        grp = ""
        if tc.get("group_conditional") and tc.get("pit_ks_p") is not None:
            grp = f"; fitted with {tc['fit_groups']} groups the PIT KS p is {tc['pit_ks_p']:.2g}"
        lines.append(
            "  (the method was revised once after seeing held-out results, so this check is not independent; "
            "these curves are group-blind, and per-group false-match rates differ several-fold: "
            f"see the report's demographic differentials for per-group predictions{grp})"
        )
        cal = results["scaling_detail"].get("calibration")
        if cal:
            lines.append(f"Calibration on never-seen faces ({cal.get('path')}): {cal['widening']['verdict']}")
    return lines


def scaling_paper_row(results: dict) -> str:
    pts = _points(results)
    if not pts:
        return "n/a"
    by_kind = {}
    for p in pts:
        by_kind[p["kind"]] = p  # the largest size of each kind
    parts = [
        f"rank-1 at {p['gallery_size']:,} ({k}): {pct_range(p['rank1'], p['rank1_range'], k)}"
        for k, p in by_kind.items()
    ]
    return "; ".join(parts)


def tail_validation_html(results: dict) -> str:
    """The held-out-people validation of the tail model as an HTML table (empty if absent)."""
    e = html.escape
    v = results["scaling_detail"]["distractor_model"].get("validation")
    if not v:
        return ""
    if "error" in v:
        return f"<h3>Tail model</h3><p>No tail model could be fitted: {e(v['error'])}. Sizes past the exact search have no prediction.</p>"
    n = v["n_real_pairs"]
    rows = []
    for i, t in enumerate(v["thresholds"]):
        lo, hi = v["model_rate_ci95"][i]
        ok = v["pass"][i]
        word = "not judged" if ok is None else ("pass" if ok else "fail")
        rows.append(
            f"<tr><td>{t:g}</td><td>{v['real_count'][i]} ({v['real_rate'][i]:.2e})</td>"
            f"<td>{v['real_count_ci95'][i][0]:.1f}-{v['real_count_ci95'][i][1]:.1f}</td>"
            f"<td>{v['model_count'][i]:.1f} ({v['model_rate'][i]:.2e})</td>"
            f"<td>{lo * n:.1f}-{hi * n:.1f} ({lo:.2e}-{hi:.2e})</td><td>{word}</td>"
            f"<td>{e(v['verdict'][i])}</td></tr>"
        )
    others = "".join(
        f"<li>{e(o['tail_model'])}: {', '.join(f'{t:g}: ' + ('not judged' if ok is None else ('pass' if ok else 'fail')) for t, ok in zip(o['thresholds'], o['pass']))}; "
        f"PIT KS p = {o['pit_ks_p']:.2g}</li>"
        for o in v.get("other_models", [])
    )
    pit_ok = v["pit_ks_p"] is not None and v["pit_ks_p"] >= 0.05
    return f"""<h3>Tail model validated on held-out people</h3>
<p>Model: {e(v["tail_model"])}. {v["k_folds"]} folds over people: each fold's people are left out of the fit, then the
model predicts how many of their {n:,} (probe, enrolled face of someone else) pairs, summed over folds, fall under each
distance. A threshold passes when the real count's exact Poisson 95% interval meets the model's 95% interval
({v["n_boot"]} subject-bootstrap refits) and that interval is informative (upper/lower at most 10x at 0.45-0.50, 3x at
0.55-0.60); where neither side has a pair it is not judged.</p>
<table><tr><th>distance</th><th>real pairs (share)</th><th>real, Poisson 95%</th><th>model (share)</th>
<th>model 95% interval</th><th>verdict</th><th>why</th></tr>{"".join(rows)}</table>
<p>Calibration of each probe's nearest impostor (PIT, {v["n_pit"]} probes): KS p = {v["pit_ks_p"]:.2g}
({v["pit_share_below_0.01"]:.1%} below 0.01, {v["pit_share_above_0.99"]:.1%} above 0.99).
{"The PIT is consistent with uniform." if pit_ok else "<b>FAIL:</b> the PIT is <b>not</b> uniform: the model gets the pooled counts right but not every probe&#39;s nearest impostor, so per-person predictions carry an error the ranges below do not include: a range describes the average person of this sample well and a particular person less well (some are more findable, some less, than their range says)."}
{pit_with_groups(results)}</p>
<p>The method was revised once after seeing held-out results (the first version standardised each probe by a per-probe variance from the 128 x 128 second moment and predicted about 4x too few close pairs), so this cross-validation is not an independent test of the final method; <code>privrisk calibrate</code> on consenting faces the model has never seen is. The curves below are group-blind: the demographic differentials section shows per-group false-match rates several-fold apart, so these figures understate the risk for the groups whose faces sit closer together; that section gives per-group predictions from a group-conditional tail model.</p>
<ul>{others}</ul>"""


def backtest_html(backtests: list | dict | None) -> str:
    """The tail models' backtest (:func:`privrisk.tailmodel.backtest`): fitted on the real impostor
    pairs above a distance, their predicted counts below it beside the real counts (empty if absent)."""
    e = html.escape
    if not backtests:
        return ""
    if isinstance(backtests, dict):  # too few pairs
        return f"<h3>Backtest of the tail model</h3><p>Not run: {e(str(backtests.get('error')))}.</p>"
    rows = []
    for b in backtests:
        for i, t in enumerate(b["thresholds"]):
            ok = b["pass"][i]
            word = "not judged" if ok is None else ("pass" if ok else "fail")
            rlo, rhi = b["real_count_ci95"][i]
            plo, phi = b["predicted_count_ci95"][i]
            rows.append(
                f"<tr><td>{e(b['kind'])}</td><td>{t:.3f}{' (cut)' if i == 0 else ''}</td><td>{b['real_count'][i]}</td>"
                f"<td>{rlo:.1f}-{rhi:.1f}</td><td>{b['predicted_count'][i]:.1f}</td><td>{plo:.1f}-{phi:.1f}</td>"
                f"<td>{word}</td><td>{e(b['verdict'][i])}</td></tr>"
            )
    b0 = backtests[0]
    return f"""<h3>Backtest of the tail model</h3>
<p>{e(b0["rule"])} Here: {b0["n_pairs"]:,} real impostor pairs, the closest at {b0["closest_pair"]:.3f}; the cut at
{b0["cut"]:.3f} leaves {b0["n_pairs_fitted"]:,} pairs for the fit ({b0["n_boot"]} subject-bootstrap refits).</p>
<table><tr><th>tail model</th><th>distance</th><th>real pairs under it</th><th>real, Poisson 95%</th>
<th>predicted</th><th>predicted 95% interval</th><th>verdict</th><th>why</th></tr>{"".join(rows)}</table>
<p>A threshold also fails when the predicted interval is too wide to inform (upper/lower more than 10x at 0.45-0.50,
3x at 0.55-0.60), as in the held-out validation: "fail" with the reason "wider than" means the real count lies
within a prediction too wide to count as a pass.</p>"""


#: which figures a tail model that predicts too few close impostors gets wrong, and in which direction
CALIBRATION_DIRECTION = (
    "Which way an error goes: a tail model that predicts too few close impostors <b>overstates</b> rank-1 at "
    "large galleries (cautious for findability: a person looks easier to find than they are) but "
    "<b>understates</b> FPIR at the threshold and the share of wrong-person top matches (a stranger is matched "
    "to someone else more often than shown). On the sample set the best proxy for never-seen faces, a model "
    "fitted on a seeded half of the London people against the other half, gives point predictions 2.3-2.7x "
    "too low at 0.50-0.60 (within its 95% intervals only because those are 13x to 10^4x wide), and that "
    "half-split is not independent either: the method and the group variant were chosen on all 102 people."
)


def calibration_html(cal: dict | None) -> str:
    """What a calibration on never-seen faces found and how it widened the ranges (empty without one)."""
    e = html.escape
    if not cal:
        return (
            "<p>No calibration on faces the model never saw was given (scaling.calibration), so the ranges below "
            "are the model's own; <code>privrisk calibrate MANIFEST --save FILE</code> on consenting faces makes one. "
            f"{CALIBRATION_DIRECTION}</p>"
        )
    w = cal["widening"]
    rows = "".join(
        f"<tr><td>{t:g}</td><td>{cal['real_count'][i]}</td>"
        + "".join(
            f"<td>{m['model_rate'][i] * cal['n_pairs']:.1f} ({m['model_rate_ci95'][i][0] * cal['n_pairs']:.1f}-"
            f"{m['model_rate_ci95'][i][1] * cal['n_pairs']:.1f}): {e(m['verdict'][i])}</td>"
            for m in cal["models"]
        )
        + "</tr>"
        for i, t in enumerate(cal["thresholds"])
    )
    heads = "".join(f"<th>{e(m['kind'])} model: pairs (95%)</th>" for m in cal["models"])
    return (
        f"<p><b>Calibration on faces the model never saw</b> ({e(str(cal.get('manifest')))}, {cal.get('n_people')} "
        f"people, {cal.get('n_pairs'):,} impostor pairs; from {e(str(cal.get('path')))}): the model's predicted "
        f"impostor rates are {e(w['verdict'])}.</p><table><tr><th>distance</th><th>real pairs</th>{heads}</tr>"
        f"{rows}</table><p>{e(w['rule'])}</p><p>{CALIBRATION_DIRECTION}</p>"
    )


def pit_with_groups(results: dict) -> str:
    """The PIT before and after giving the tail model self-reported groups (from the fairness check)."""
    tc = (results.get("fairness") or {}).get("tail_check") or {}
    if not tc.get("group_conditional"):
        return ""
    before = (tc.get("without_groups") or {}).get("pit_ks_p")
    after = tc.get("pit_ks_p")
    if before is None or after is None:
        return ""
    verdict = "passes" if after >= 0.05 else "still fails"
    if after < before:
        verdict += " and is worse than without groups"
    return (
        "A fix tried (its form chosen among three variants by their PIT p on the sample set, 0.61 against 0.28 "
        "and 0.24: there, its PIT p is the statistic it was selected on, not evidence for it): "
        f"the same tail model fitted with self-reported "
        f"{html.escape(str(tc.get('fit_groups')))} groups (each group's tail mass its own, by empirical Bayes; "
        f"against all probes and the full gallery of the demographic differentials section): PIT KS p {before:.2g} "
        f"without groups, {after:.2g} with them, so with groups the PIT {verdict}. Part of the per-probe "
        "miscalibration is group structure a group-blind model cannot see; a face with no group label gets the "
        "group-blind model and its failure."
    )


def scaling_table_html(results: dict) -> str:
    """Every curve's points: gallery size, kind, rank-1 / rank-10 / FPIR / wrong-top with ranges."""
    e = html.escape
    sc = results["scaling_detail"]
    body = []
    for name, c in sc["curves"].items():
        for p in c.get("points") or []:
            thr = p.get("threshold_for_fpir_1pct")
            thr_rng = p.get("threshold_for_fpir_1pct_range") or [None, None]
            thr_txt = (
                "none reaches it"
                if thr is not None and thr < 0.01
                else (f"{thr:.3f} ({thr_rng[0]:.3f}-{thr_rng[1]:.3f})" if thr is not None else "n/a")
            )
            body.append(
                f"<tr><td>{e(name)}</td><td>{p['gallery_size']:,}</td><td>{e(p['kind'])}"
                f"{' (ranges widened by the calibration)' if p.get('widened_by_calibration') else ''}</td>"
                f"<td>{pct_range(p['rank1'], p['rank1_range'], p['kind'])}</td>"
                f"<td>{pct_range(p['rank10'], p['rank10_range'], p['kind'])}</td>"
                f"<td>{pct_range(p['fpir_at_threshold'], p['fpir_range'], p['kind'])}</td>"
                f"<td>{pct_range(p['wrong_top_under_threshold'], p['wrong_top_range'], p['kind'])}</td><td>{thr_txt}</td></tr>"
            )
    return f"""<h3>Identification and open-set errors by gallery size</h3>{calibration_html(sc.get("calibration"))}
<p><b>How each number is labelled.</b> {e(sc.get("kind_rule", ""))}. Measured ranges are exact (Clopper-Pearson) 95% intervals over
people; modelled and extrapolated ranges span two tail models, each its point fit and its subject-bootstrap refits
with people resampled (the sampling spread and the tail-model spread are kept apart in results.json:
<code>*_sampling_range</code>, <code>*_model_spread</code>). The exact search over Gaussian model distractors fails the
held-out validation: it is only plotted beside the curves for comparison and sets no value and no end of a range. FPIR and the wrong-top share at
sizes past the real gallery come from the tail model in closed form (threshold {sc.get("threshold", "n/a")}); the
threshold for FPIR 1% is the tail model's at every size ("none reaches it" where even distance 0 gives more than
1%).</p>
<table><tr><th>curve</th><th>gallery size</th><th>kind</th><th>rank-1 (range)</th><th>rank-10 (range)</th>
<th>FPIR at threshold (range)</th><th>top candidate a wrong person under threshold (range)</th>
<th>threshold for FPIR 1% (range)</th></tr>{"".join(body)}</table>"""
