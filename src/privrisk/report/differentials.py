"""The report's "Demographic differentials" section: per-group false match, non-match and
identification rates with their intervals, the ratios between groups, and the tail model by group."""

from __future__ import annotations

import html

from .formatting import rate_pct


def fairness_cell_text(cell: dict | None) -> str:
    """'2.6% (63/2460; 95% 1.3%-3.5%)' plus the small-cell flag; 'no pairs' when the cell is empty.
    An exact bound is marked *; a clustered zero-event bound is marked ~ (approximate, design-effect
    adjusted) and the exact bound on the cell's people alone follows it."""
    if not cell or cell.get("rate") is None:
        return "no pairs" if cell and cell.get("unit", "").endswith("pairs") else "none"
    lo, hi = cell["ci95"] or (None, None)
    if "design_effect" in cell:
        sub = (cell.get("ci95_subject_bound") or (None, None))[1]
        text = (
            f"{rate_pct(cell['rate'])} ({cell['events']}/{cell['trials']:,}; 95% {rate_pct(lo)}-{rate_pct(hi)}~ "
            f"approximate; exact on {cell.get('subjects')} people: {rate_pct(0.0)}-{rate_pct(sub)}*)"
        )
    else:
        text = (
            f"{rate_pct(cell['rate'])} ({cell['events']}/{cell['trials']:,}; 95% "
            f"{rate_pct(lo)}-{rate_pct(hi)}{'*' if 'Clopper' in (cell.get('ci_method') or '') else ''})"
        )
    return text + (" [small: indicative only]" if cell.get("flag") else "")


def _fairness_attribute(fair: dict) -> str:
    """The attribute the section leads with: the combination if there is one, else the first
    (``fair`` has at least one attribute)."""
    attrs = list(fair["attributes"])
    return next((a for a in attrs if "+" in a), attrs[0])


def _ratio_text(r: dict) -> str:
    """The highest over the lowest group's FMR with its interval (or why there is none), its flag, and
    the small groups' ratios."""
    e = html.escape
    if r["ratio"] is not None:
        ci = r["ci95"]
        ratio = (
            f"{r['ratio']:.3g} ({e(r['highest'])} over {e(r['lowest'])}; 95% {ci[0]:.3g}-"
            f"{'unbounded' if ci[1] is None else f'{ci[1]:.3g}'})"
        )
    elif r["unbounded"]:
        lb = r["lower_bound"]
        ratio = (
            f"unbounded ({e(r['highest'])} over {e(r['lowest'])}, which has no false match); "
            f"lower bound {'n/a' if lb is None else f'{lb:.3g}'}"
        )
    else:
        ratio = e(r["note"] or "n/a")
    ratio += f" [{e(r['flag'])}]" if r["flag"] else ""
    ratio += small_cell_ratios_text(r)
    return ratio


def _attribute_html(name: str, at: dict, key: str, small_subjects: int) -> str:
    """One attribute's tables: per group FMR (same and other groups), FNMR and FPIR at ``key``, and E2's
    FNMR and rank-1 per level where measured."""
    e = html.escape
    r = at["fmr_ratio"]
    ratio = _ratio_text(r)
    cols = [
        "people",
        f"FMR at {key}, same group",
        f"FMR at {key}, other groups",
        f"FNMR at {key}",
        f"FPIR at {key} (mate removed)",
    ]
    levels = list(dict.fromkeys([*at["fnmr_e2"], *at["e2_rank1"]]))
    e2_cols = [
        c
        for lv in levels
        for c in ([f"E2 {lv}: FNMR at {key}"] if lv in at["fnmr_e2"] else [])
        + ([f"E2 {lv}: rank-1"] if lv in at["e2_rank1"] else [])
    ]
    rows, e2_rows = [], []
    for g, n in at["groups"].items():
        cells = [
            str(n),
            fairness_cell_text(at["fmr"][g]["same"][key]),
            fairness_cell_text(at["fmr"][g]["cross"][key]),
            fairness_cell_text(at["fnmr"][g][key]),
            fairness_cell_text(at["fpir"][g][key]),
        ]
        rows.append(f"<tr><td>{e(g)}</td>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        e2 = [
            fairness_cell_text(c)
            for lv in levels
            for c in ([at["fnmr_e2"][lv][g][key]] if lv in at["fnmr_e2"] else [])
            + ([at["e2_rank1"][lv].get(g)] if lv in at["e2_rank1"] else [])
        ]
        e2_rows.append(f"<tr><td>{e(g)}</td>" + "".join(f"<td>{e(c)}</td>" for c in e2) + "</tr>")
    e2_table = (
        f"<table><tr><th>group</th>{''.join(f'<th>{e(c)}</th>' for c in e2_cols)}</tr>{''.join(e2_rows)}</table>"
        if e2_cols
        else ""
    )
    return (
        f"<h3>By {e(name)}</h3><p>Highest over lowest group FMR at {key}, "
        f"{e(ratio_scope_text(r, small_subjects))}: {ratio}</p>"
        f"<table><tr><th>group</th>{''.join(f'<th>{e(c)}</th>' for c in cols)}</tr>{''.join(rows)}</table>"
        f"{e2_table}"
    )


def fairness_section(results: dict) -> str:
    """The report's "Demographic differentials" section (HTML)."""
    e = html.escape
    fair = results.get("fairness")
    if not fair:
        return "<h2>Demographic differentials</h2><p>Not computed in this run.</p>"
    if not fair.get("attributes"):
        return f"<h2>Demographic differentials</h2><p>{e(fair.get('note') or 'no group columns')}</p>"
    key = f"{fair['operating_threshold']:g}"
    main = _fairness_attribute(fair)
    a = fair["attributes"][main]
    thr = [f"{t:g}" for t in fair["thresholds"]]
    head = "".join(f"<th>FMR at {t}</th>" for t in thr)
    overall = "".join(
        f"<tr><td>{'same' if split == 'same' else 'different'} {e(main)}</td>"
        + "".join(f"<td>{e(fairness_cell_text(a['fmr_overall'][split][t]))}</td>" for t in thr)
        + "</tr>"
        for split in ("same", "cross")
    )
    parts = [
        f"""<h2>Demographic differentials</h2>
<p>Measured on real faces: {e(fair.get("pairs", ""))}. {fair["n_impostor_pairs"]:,} impostor pairs and
{fair["n_genuine_pairs"]:,} genuine pairs. Groups are self-reported ({e(", ".join(fair["group_columns"]))}).
A pair is same-group when both people share the value (for {e(main)}: every value). 95% intervals come from a
bootstrap over people; * marks a one-sided exact (Clopper-Pearson) bound on the cell's people where a cell has only
events, or no events and one person. ~ marks, for impostor-pair cells with no event, an <b>approximate (design-effect
adjusted)</b> Clopper-Pearson bound: the exact bound on the effective number of independent pairs (pairs over the
design effect 1 + (m - 1) rho, m = pairs per person, rho borrowed from the within-person correlation the subject
bootstrap shows on the attribute's pooled cell at that threshold), so it lies between the bound on the people alone
and the bound on the pairs as if independent, but it is an approximation, not exact; the exact bound on the cell's
people alone is shown beside it.
Cells with fewer than {fair["small_subjects"]} people are shown but marked small: indicative only.
FNMR counts genuine pairs over the threshold; on E2 captures only captures with a detected face count (see E2's
detection rate). FPIR: each probe searched against everyone else's photos. E2 rank-1 is per mated person.</p>
<table><tr><th>impostor pairs</th>{head}</tr>{overall}</table>"""
    ]
    for name, at in fair["attributes"].items():
        parts.append(_attribute_html(name, at, key, fair["small_subjects"]))
    if fair.get("tail_check"):
        parts.append(fairness_tail_section(fair["tail_check"]))
    return "\n".join(parts)


def ratio_scope_text(r: dict, small_subjects: int) -> str:
    """Which groups the headline ratio compares, and whether the small cells listed after it hold a
    larger differential than the headline."""
    if r.get("flag"):
        return f"over every group with impostor pairs (fewer than two have {small_subjects} or more people)"
    text = f"comparing only groups of at least {small_subjects} people ({', '.join(r.get('groups_compared') or [])})"
    larger = [
        c["group"]
        for c in r.get("small_cells") or []
        if r.get("ratio") is not None and c["ratio_to_reference"] > r["ratio"]
    ]
    if larger:
        text += (
            f"; the larger differentials are in the small cells listed after it ({', '.join(larger)}: indicative only)"
        )
    return text


def small_cell_ratios_text(r: dict) -> str:
    """The small groups' FMR ratios to the reference group, each with its n and interval, flagged."""
    cells = r.get("small_cells") or []
    if not cells:
        return ""
    items = []
    for c in cells:
        lo, hi = c["ratio_ci95"] or (None, None)
        rng = "n/a" if lo is None else f"{lo:.3g}-{'unbounded' if hi is None else f'{hi:.3g}'}"
        items.append(
            f"{c['group']}: {c['ratio_to_reference']:.3g}x (95% {rng}; {c['events']}/{c['pairs']:,} pairs, "
            f"{c['subjects']} people) [{c['flag']}]"
        )
    return html.escape(
        f". Smaller groups against {r['reference']} (the lowest FMR among the large groups): " + "; ".join(items)
    )


def fairness_tail_section(check: dict) -> str:
    """Per group: the tail model's predicted impostor rate beside the real one, and the verdict."""
    e = html.escape
    if not check.get("by_attribute"):
        return f"<h3>Tail model by group</h3><p>{e(check.get('note') or 'not run')}</p>"
    parts = [
        f"<h3>Tail model by group</h3><p>Model: {e(check['tail_model'])}. Simulated rates (the model's "
        "chance that one random face of someone else lies within the threshold) beside measured ones. "
        "A verdict of 'within' where the measured interval starts at 0 is a weak check: the measured "
        "interval is wide.</p>"
    ]
    for attr, c in check["by_attribute"].items():
        rows = "".join(
            f"<tr><td>{e(r['group'])}</td><td>{r['threshold']:g}</td><td>{e(rate_pct(r['real_rate']))} "
            f"({r['events']}/{r['pairs']:,}; 95% {e(rate_pct(r['real_ci95'][0]))}-{e(rate_pct(r['real_ci95'][1]))})"
            f"{' [small: indicative only]' if r['flag'] else ''}</td><td>{e(rate_pct(r['model_rate']))} "
            f"(95% {e(rate_pct(r['model_ci95'][0]))}-{e(rate_pct(r['model_ci95'][1]))})</td>"
            f"<td>{e(r['verdict'])}</td></tr>"
            for r in c["rows"]
        )
        parts.append(
            f"<p><b>{e(attr)}</b>: {e(c['summary'])}. {e(c['note'])}.</p><table><tr><th>group</th>"
            "<th>threshold</th><th>measured FMR</th><th>model (simulated)</th><th>verdict</th></tr>"
            f"{rows}</table>"
        )
    parts.append(fairness_group_model_section(check))
    return "\n".join(parts)


def _pit_worse(without, with_groups) -> str:
    """Says so when the group-conditional model's PIT p is below the group-blind one's."""
    if without is None or with_groups is None or with_groups >= without:
        return ""
    return " (adding groups made the PIT worse here)"


def fairness_group_model_section(check: dict) -> str:
    """The group-conditional tail model: before/after (without and with groups), the PIT verdicts, and
    per-group rank-1 and FPIR at platform scale as ranges (extrapolated)."""
    e = html.escape
    if not check.get("group_conditional"):
        return ""

    def pit(p):
        if p is None:
            return "n/a"
        return f"KS p = {p:.2g}: " + ("FAIL (the per-probe calibration is off)" if p < 0.05 else "passes")

    wg = check.get("without_groups") or {}
    before = "".join(f"<li>{e(a)}: {e(s)}</li>" for a, s in (wg.get("by_attribute") or {}).items())
    out = [
        f"<h4>Group-conditional tail model (fitted with {e(str(check.get('fit_groups')))} labels)</h4>"
        "<p>Each group's tail mass gets an empirical-Bayes multiplier (measured at the pooled 1% point of the fit "
        "pairs, shrunk towards the pool, more for small groups); each held-out face is predicted with its own "
        "group's. The multipliers are relative to this sample's mix of groups; a platform whose faces are mixed "
        "differently puts more or fewer look-alikes near a face than these figures say. This form was chosen "
        "among three variants by its PIT p on the sample set (0.61, against 0.28 for each group's own 1% point and "
        "0.24 for an added per-group shift): on that set its PIT p is the statistic it was selected on, not "
        "evidence for it, and this check is not independent of the choice. On a synthetic two-cluster set "
        "(tested) adding groups made the PIT worse.</p>",
        f"<p>PIT of each held-out probe's nearest impostor: without groups {e(pit(wg.get('pit_ks_p')))}; "
        f"with groups {e(pit(check.get('pit_ks_p')))}{_pit_worse(wg.get('pit_ks_p'), check.get('pit_ks_p'))}. "
        f"Without groups, per group:</p><ul>{before}</ul>",
    ]
    scale = check.get("scale") or {}
    for attr, rows in (scale.get("rows") or {}).items():
        body = "".join(
            f"<tr><td>{e(r['group'])}</td><td>{r['subjects']}{' [' + e(r['flag']) + ']' if r['flag'] else ''}</td>"
            f"<td>{'rank-1' if r['quantity'] == 'rank1' else 'FPIR at ' + format(scale['threshold'], 'g')}</td>"
            f"<td>{r['gallery_size']:.0e}</td><td>{r['range'][0]:.1%}-{r['range'][1]:.1%} "
            f"(model value {r['value']:.1%}; extrapolated)</td><td>{e(r.get('note') or '')}</td></tr>"
            for r in rows
        )
        out.append(
            f"<p><b>{e(attr)}</b> at platform scale ({e(scale.get('method', ''))}). {e(scale.get('composition', ''))}."
            "</p><table><tr><th>group</th><th>people</th><th>quantity</th><th>gallery</th><th>range</th>"
            "<th>note</th></tr>"
            f"{body}</table>"
        )
    return "\n".join(out)
