"""The report's sections on E1-E3: the first screen, the paper at its own scale, the attacker, every
rate with its interval, E2 per detector and the gain and cost of fusing shots."""

from __future__ import annotations

import html

from ..profiles import FIELDS
from .formatting import (
    ci_text,
    curves_of,
    detector_cell,
    fmt,
    fpir_keys,
    fpir_label,
    pct_range,
    rate_ci,
    tpir_html_cell,
    unresolvable_note,
)
from .summary import paper_comparison, paper_scale_rows


def paper_scale_html(results: dict) -> str:
    rows = paper_scale_rows(results)
    if not rows:
        return ""
    e = html.escape
    body = "".join(
        f"<tr><td>{e(r['what'])}</td><td>{r['gallery_size']:,}</td><td>{e(r['paper'])}</td>"
        f"<td>{pct_range(r['rank10'], r['rank10_range'], r['kind'])} ({e(r['kind'])}, curve {e(r['curve'])})</td></tr>"
        for r in rows
    )
    return f"""<h3>At the paper's own gallery sizes</h3>
<table><tr><th>search</th><th>gallery</th><th>the paper found</th><th>this run, rank-10 (range; kind)</th></tr>{body}</table>
<p>The conditions still differ: the paper's probes and profiles were wild photos searched with a 2011 recogniser
and checked by people; here studio photos of consenting people meet an open 2017 model, and sizes past the real
gallery come from the tail model (modelled or extrapolated, as labelled). A higher figure here says the open model
on studio photos finds more people, not that the paper was wrong.</p>"""


def first_screen_html(results: dict) -> str:
    """The report's first screen: at most five plain sentences from the scenarios of this run's
    curves (:func:`privrisk.scenarios.first_screen`)."""
    from ..scenarios import first_screen, scenarios

    curves = curves_of(results)
    if curves is None:
        return ""
    try:
        sentences = first_screen(scenarios(curves))
    except (KeyError, ValueError):  # a run without the curves the scenarios read
        return ""
    return '<p class="first">' + html.escape(" ".join(sentences)) + "</p>"


def fusion_table(results: dict) -> str:
    """HTML section: per E2 level, what fusing a person's shots gains (rank-1) and costs (FPIR at the
    operating threshold), against each person's first shot alone, with counts and exact 95% intervals,
    and how many source photos the level could not be made from (faces already narrower)."""
    e = html.escape
    levels = results["experiments"]["offline_to_online"]["levels"]

    def cell(f, key):
        rate, ci, n, k = (
            f.get(key),
            f.get(f"{key}_ci95"),
            f["n_mated" if "fpir" not in key else "n_nonmated"],
            f.get(f"n_{key}"),
        )
        if rate is None:
            return "n/a (n = 0)"
        return f"{rate:.1%} ({k}/{n}; {ci[0]:.1%}-{ci[1]:.1%})"

    rows, threshold, shots = [], None, None
    for name, lv in levels.items():
        f = lv.get("fusion")
        if not f:
            continue
        threshold, shots = f["threshold"], f["shots"]
        rows.append(
            f"<tr><td>{e(name)}</td><td>{lv.get('n_applicable', lv['n_probes'])}</td>"
            f"<td>{lv.get('n_not_applicable', 0)}</td>"
            f"<td>{cell(f, 'rank1_single')}</td><td>{cell(f, 'rank1_fused')}</td>"
            f"<td>{cell(f, 'fpir_single')}</td><td>{cell(f, 'fpir_fused')}</td></tr>"
        )
    if not rows:
        return ""
    return (
        f"<h3>Fusing {shots} shots: gain and false-positive cost</h3><p>Single = each person's first "
        f"capture alone; fused = each candidate's best distance over all {shots} captures. FPIR = share of "
        f"non-mated people (not in the gallery) whose best candidate is within the threshold {threshold:g}: a "
        "stranger would be told a wrong name. Measured; 95% intervals are exact (Clopper-Pearson). A source "
        "photo whose face is already narrower than a level's width is not applicable for that level (it is "
        "never enlarged) and is left out of its rates.</p>"
        "<table><tr><th>level</th><th>photos used</th><th>not applicable</th><th>rank-1, single</th>"
        "<th>rank-1, fused</th><th>FPIR, single</th><th>FPIR, fused</th></tr>" + "".join(rows) + "</table>"
    )


def _genuine_pairs_html(e1: dict) -> str:
    """What E1's genuine pairs are: their distances beside the closest impostor pair ('' without them)."""
    e = html.escape
    gp = e1.get("genuine_pairs")
    if not gp or not gp.get("quantiles"):
        return ""
    q = gp["quantiles"]
    return (
        "<h2>E1: what its genuine pairs are</h2>"
        f"<p>Genuine pairs: {e(gp['what'])}. The paper's E1 matched wild photos (dating-site profile pictures "
        "against Facebook photos) with a 2011 recogniser (PittPatt).</p>"
        "<table><tr><th>genuine distance</th><th>min</th><th>5%</th><th>median</th><th>95%</th><th>max</th>"
        "<th>closest impostor pair</th><th>pairs</th></tr>"
        f"<tr><td>{gp['n_genuine']} genuine pairs</td>"
        + "".join(f"<td>{q[k]:.3f}</td>" for k in ("min", "p05", "median", "p95", "max"))
        + f"<td>{fmt(gp['closest_impostor'])}</td><td>{gp['n_genuine']} genuine, {gp['n_impostor']} impostor</td>"
        f"</tr></table><p><strong>{e(gp['statement'])}</strong></p>"
    )


def _rates_html(results: dict) -> str:
    """Every E1/E2 rate with its exact interval and n, and E1's verification with its bootstrap."""
    e = html.escape
    exps = results["experiments"]
    e1, e2 = exps["online_to_online"], exps["offline_to_online"]
    keys = fpir_keys(results)
    thr = e1.get("threshold")
    rows = []
    for label, m in [("E1 online to online", e1)] + [(f"E2 {n}", lv) for n, lv in e2["levels"].items()]:
        fp = (
            f"{m['fpir_at_threshold_k']} of {m['fpir_at_threshold_n']}: {fmt(m['fpir_at_threshold'], True)} "
            f"({ci_text(m.get('fpir_at_threshold_ci95'))})"
            if m.get("fpir_at_threshold") is not None
            else "n/a"
        )
        tp = f"{fmt(m.get('tpir_at_threshold'), True)} ({ci_text(m.get('tpir_at_threshold_ci95'))})"
        rows.append(
            f"<tr><td>{e(label)}</td><td>{m['n_mated']}</td><td>{m['n_nonmated']}</td>"
            + "".join(f"<td>{e(rate_ci(m, k))}</td>" for k in ("rank1", "rank5", "rank10"))
            + f"<td>{e(tp)}</td><td>{e(fp)}</td>"
            + "".join(f"<td>{e(tpir_html_cell(m, k))}</td>" for k in keys)
            + "</tr>"
        )
    table_ms = [e1, *e2["levels"].values()]
    v = e1.get("verification", {})
    tar = "; ".join(
        f"TAR at FAR {fpir_label(k)}: {fmt(x, True)} (subject bootstrap {ci_text(v.get('tar_at_far_ci95', {}).get(k))})"
        for k, x in v.get("tar_at_far", {}).items()
    )
    return (
        "<h2>Identification rates with their intervals</h2>"
        "<p>Rank-k and rates at the threshold: exact (Clopper-Pearson) 95% intervals over the probes counted. "
        "TPIR at a target FPIR needs at least 3 / FPIR non-mated probes; with fewer, the table gives the one-sided "
        "95% upper bound on the FPIR the chosen threshold reached instead of a TPIR.</p>"
        f"<table><tr><th>experiment</th><th>mated</th><th>non-mated</th><th>rank-1 [95% CI]</th><th>rank-5</th>"
        f"<th>rank-10</th><th>TPIR at threshold {fmt(thr)}</th><th>FPIR at threshold {fmt(thr)}</th>"
        + "".join(f"<th>TPIR at FPIR {fpir_label(k)}</th>" for k in keys)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + unresolvable_note(table_ms, keys)
        + f"<p>Verification (E1 probe against gallery pairs, {v.get('n_genuine')} genuine, {v.get('n_impostor')} "
        f"impostor): EER {fmt(v.get('eer'), True)} (subject bootstrap, threshold re-chosen per resample: "
        f"{ci_text(v.get('eer_ci95'))}); {e(tar)}."
        + (
            " Every resample separates genuine from impostor pairs, so the bootstrap shows no spread: it cannot "
            "bound a perfect separation away from zero (see the genuine pairs above)."
            if v.get("eer_ci95") and v["eer_ci95"][1] == 0
            else ""
        )
        + "</p>"
    )


def _people_html(e3: dict) -> str:
    """E3 counted by person, with the profiles attached to the wrong face ('' without them)."""
    e = html.escape
    if "wrong_person" not in e3:
        return ""
    wp, pi = e3["wrong_person"], e3["people_identified"]
    share = e3["probe_share_per_identified_person"]
    fields = sorted(((f, x) for f, x in wp["field_attributed_share"].items() if x > 0), key=lambda t: -t[1])
    return (
        "<h2>E3: people re-identified, and profiles attached to the wrong face</h2>"
        f"<p>Counted by person: {e3['n_people_identified']} of {e3['n_mated_people']} people whose photo is in "
        f"the gallery were re-identified (95% CI {ci_text(pi['ci95'])}), from {e3['n_probes_identified']} of "
        f"{e3['n_mated_probes']} probes; a re-identified person's probes led to them "
        f"{fmt(share['mean'], True)} of the time on average (lowest {fmt(share['min'], True)}).</p>"
        f"<p>Wrong person: {wp['n_probes_wrong']} searches matched someone else under the threshold, so a "
        f"stranger would attach that person's profile to the face in the photo: {wp['nonmated']['k']} of "
        f"{wp['nonmated']['n']} non-mated probes ({ci_text(wp['nonmated']['ci95'])}) and {wp['mated']['k']} of "
        f"{wp['mated']['n']} mated probes ({ci_text(wp['mated']['ci95'])}); "
        f"{wp['people_with_a_wrong_identification']['k']} of {wp['people_with_a_wrong_identification']['n']} "
        f"people photographed were given the profiles of {wp['n_profiles_wrongly_attributed']} other people, "
        f"{wp['mean_fields_wrongly_attributed']:.1f} fields each on average"
        + (
            f"; a national-ID guess was wrongly attached {wp['national_id_wrongly_inferred']} times"
            if wp["national_id_wrongly_inferred"]
            else ""
        )
        + ".</p>"
        + (
            "<p>Wrongly attributed fields (share of wrong-person searches): "
            + ", ".join(f"{e(FIELDS.get(f, f))} {x:.0%}" for f, x in fields)
            + ".</p>"
            if fields
            else ""
        )
    )


def stats_sections(results: dict) -> str:
    """HTML: what E1's genuine pairs are; every E1/E2 rate with its exact interval and n; E3 by people,
    with the wrong-person identifications."""
    exps = results["experiments"]
    parts = [
        _genuine_pairs_html(exps["online_to_online"]),
        _rates_html(results),
        _people_html(exps["accretion"]),
    ]
    return "\n".join(x for x in parts if x)


def embedder_words(results: dict) -> str:
    """The attacker's embedder in words, for the page's prose."""
    att = results.get("attacker") or {}
    if att.get("embedder", "dlib") == "dlib":
        return "dlib's ResNet"
    return f"the ONNX model {att['embedder'][5:]}"


def attacker_section(results: dict) -> str:
    """Who the attacker behind every number is: detector, embedder and decision rule."""
    att = results.get("attacker")
    if not att:
        return ""
    e = html.escape
    th = att["threshold"]
    return (
        "<h2>The attacker behind these numbers</h2><ul>"
        f"<li>detector: {e(att['detector'])} ({e(att.get('upsample_rule', ''))}); E2 also reports the other "
        "detectors side by side</li>"
        f"<li>embedder: {e(att['embedder'])} ({e(att['model_id'])}, {att['embedding_dim']}-d)</li>"
        f"<li>decision: match when the nearest face is within Euclidean distance {th['value']:.4g}: "
        f"{e(th['statement'])}</li></ul>"
    )


def detector_conclusions(results: dict) -> list[str]:
    """Levels where the detectors' detection rates or rank-1 differ beyond their exact intervals, in words."""
    out = []
    for name, lv in results["experiments"]["offline_to_online"]["levels"].items():
        per = (lv.get("per_detector") or {}).get("detectors") or {}
        if len(per) < 2:
            continue
        for key, what in (("detection", "finds a face in"), ("rank1", "puts the right person first for")):
            ivs = {d: v.get(f"{key}_ci95") for d, v in per.items()}
            if any(iv is None for iv in ivs.values()):
                continue
            lo = max(ivs.items(), key=lambda kv: kv[1][0])
            hi = min(ivs.items(), key=lambda kv: kv[1][1])
            if lo[0] != hi[0] and lo[1][0] > hi[1][1]:
                parts = "; ".join(
                    f"{d.upper()} {what} {v[f'{key}_k']} of {v[f'{key}_n']} ({v[f'{key}_k'] / v[f'{key}_n']:.0%})"
                    for d, v in per.items()
                )
                out.append(f"{name}: {parts} (exact 95% intervals do not overlap)")
    return out


def detector_table(results: dict) -> str:
    """E2 per detector: every level's detection rate and fused rank-1 for each detector, side by side."""
    levels = results["experiments"]["offline_to_online"]["levels"]
    pers = {n: lv["per_detector"] for n, lv in levels.items() if lv.get("per_detector")}
    if not pers:
        return ""
    e = html.escape
    dets = list(next(iter(pers.values()))["detectors"])
    head = "".join(f"<th>{e(d)}: captures with a face</th><th>{e(d)}: rank-1</th>" for d in dets)
    rows = "".join(
        f"<tr><td>{e(n)}</td><td>{p['n_people']}</td>"
        + "".join(
            f"<td>{e(detector_cell(p['detectors'][d], 'detection'))}</td><td>{e(detector_cell(p['detectors'][d], 'rank1'))}</td>"
            for d in dets
            if d in p["detectors"]
        )
        + "</tr>"
        for n, p in pers.items()
    )
    first = next(iter(pers.values()))

    def spent(d: str) -> str:
        secs = [p["detectors"][d].get("seconds") for p in pers.values() if d in p["detectors"]]
        if not any(s is not None for s in secs):
            return ""
        return (
            f"; {sum(s or 0.0 for s in secs):.0f} s over all levels in this run (measured, outside the demo's budget)"
        )

    rules = "".join(f"<li>{e(first['detectors'][d]['upsample_rule'])}{e(spent(d))}</li>" for d in dets)
    changed = detector_conclusions(results)
    said = (
        "<p>Where the detector changes the conclusion (measured, exact intervals apart):</p><ul>"
        + "".join(f"<li>{e(c)}</li>" for c in changed)
        + "</ul>"
        if changed
        else "<p>No level's detection rate or rank-1 differs between the detectors beyond their exact intervals.</p>"
    )
    return (
        "<h2>E2 per detector: the same captures, another attacker</h2>"
        f"<p>People: {e(first['people'])}. Captures with a face: share of all captures in which the detector found "
        "a face; rank-1: the person's shots fused, over the mated people, a capture without a face found counting "
        "as a miss. Measured on the sample's captures, exact (Clopper-Pearson) 95% intervals.</p>"
        f"<table><tr><th>level</th><th>people</th>{head}</tr>{rows}</table><ul>{rules}</ul>{said}"
    )


def paper_section(results: dict) -> str:
    """This run side by side with the paper (also at the paper's own gallery sizes), and the
    differences that matter."""
    e = html.escape
    e1 = results["experiments"]["online_to_online"]
    dm = results["scaling_detail"]["distractor_model"]
    rows = paper_comparison(results)
    table = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in rows)
    return f"""<h2>Side by side with the paper</h2>
<table><tr><th>experiment</th><th>Acquisti, Gross &amp; Stutzman (2014)</th><th>privrisk, this run</th></tr>{table}</table>
{paper_scale_html(results)}
<p>Differences that matter: the paper matched wild photos against hundreds of thousands of profiles with a 2011
recogniser and human checking; here studio photos of {e1["n_probes"]} consenting people meet {e(embedder_words(results))}, and
platform scale comes from a tail model checked on held-out people and backtested (see "Scaling model"): the backtest
passes at its cut only, and below the cut its prediction intervals are too wide to check anything; the
Gaussian model distractors (KS statistic against real impostor distances: {dm["ks_statistic"]:.3f}) fail that
validation and are only plotted as a comparison.</p>"""


def capture_levels_html(results: dict) -> str:
    """E2's capture conditions: each level's settings, detection rate, rank-1, rank-10 and TPIR."""
    e = html.escape
    e2 = results["experiments"]["offline_to_online"]
    key = fpir_keys(results)[0]
    # a cell that would say "not resolvable: FPIR <= ..." in every row says it once, under the table
    levels = "".join(
        f"<tr><td>{e(n)}</td><td>{lv['level']['face_width_px']}</td><td>{lv['level']['blur_sigma']}</td>"
        f"<td>{lv['level']['jpeg_quality']}</td><td>{e(lv['level']['occlusion'])}</td>"
        f"<td>{fmt(lv['detection_rate'], True)}</td><td>{e(rate_ci(lv, 'rank1'))}</td><td>{e(rate_ci(lv, 'rank10'))}</td>"
        f"<td>{e(tpir_html_cell(lv, key))}</td></tr>"
        for n, lv in e2["levels"].items()
    )
    levels_note = unresolvable_note(list(e2["levels"].values()), [key])
    return f"""<h2>E2 capture conditions</h2>
<table><tr><th>level</th><th>face width px</th><th>blur</th><th>JPEG q</th><th>occlusion</th><th>captures with face</th>
<th>rank-1</th><th>rank-10</th><th>TPIR @ FPIR {fpir_label(key)}</th></tr>{levels}</table>{levels_note}"""
