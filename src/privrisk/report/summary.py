"""The run in plain words and in the terminal: the summary table the CLI prints, the few sentences at
the top of the report, and the side-by-side comparison with the paper (also at its own gallery sizes)."""

from __future__ import annotations

from .formatting import curves_of, detector_cell, fmt, fpir_keys, fpir_label, kn, rate_ci, tpir_cell
from .scaling import scaling_paper_row, scaling_summary_lines

PAPER = {
    "online_to_online": (
        "~1 in 10 of ~5,800 pseudonymous dating profiles named, against ~278,000 Facebook "
        "profiles (PittPatt; top candidates checked by people)"
    ),
    "offline_to_online": (
        "31% of 93 students identified from webcam shots against ~25,000 Facebook photos; "
        "correct profile among 10 candidates; under 3 s on average"
    ),
    "accretion": (
        "first 5 SSN digits predicted for 16% at the first attempt, 27% within 4 attempts "
        "(from face to profile to birth date and hometown)"
    ),
}


def _fpir_at_threshold_cell(m: dict) -> str:
    """FPIR at the operating threshold as k/n (or a share when the counts are absent)."""
    if m.get("fpir_at_threshold") is None:
        return "n/a"
    return (
        f"{m['fpir_at_threshold_k']}/{m['fpir_at_threshold_n']}"
        if "fpir_at_threshold_k" in m
        else fmt(m["fpir_at_threshold"], True)
    )


def _identification_lines(results: dict, fpir_head: str) -> list[str]:
    """The table's head, E1's row and one row per E2 level."""
    e = results["experiments"]
    e1, e2 = e["online_to_online"], e["offline_to_online"]
    key = fpir_keys(results)[0]
    lines = [
        f"{'experiment':<34} {'gallery':>7} {'mated':>5} {'rank-1 [95% CI]':>22} {'rank-5 [95% CI]':>22} "
        f"{'TPIR@' + fpir_label(key):>12} {fpir_head:>9} {'s/probe':>8}",
        f"{'E1 online to online':<34} {e1['n_gallery']:>7} {e1['n_mated']:>5} {rate_ci(e1, 'rank1'):>22} "
        f"{rate_ci(e1, 'rank5'):>22} {tpir_cell(e1, key, True):>12} {_fpir_at_threshold_cell(e1):>9} "
        f"{e1['seconds_per_probe']:>8.3f}",
    ]
    for name, lv in e2["levels"].items():
        secs = f"{e2['seconds_per_probe']:>8.3f}" if name == e2["level_name"] else f"{'':>8}"
        lines.append(
            f"{'E2 offline, ' + name + ' (' + str(lv['level']['face_width_px']) + ' px)':<34} "
            f"{lv['n_gallery']:>7} {lv['n_mated']:>5} {rate_ci(lv, 'rank1'):>22} {rate_ci(lv, 'rank5'):>22} "
            f"{tpir_cell(lv, key, True):>12} {_fpir_at_threshold_cell(lv):>9} {secs}"
        )
    return lines


def _unresolvable_lines(results: dict) -> list[str]:
    """A footnote for each FPIR target E1's non-mated probes cannot resolve."""
    e1 = results["experiments"]["online_to_online"]
    lines = []
    for k in fpir_keys(results):
        entry = e1["tpir_at_fpir"][k]
        if entry.get("resolvable", True) is False:
            lines.append(
                f"* TPIR at FPIR {fpir_label(k)} is not resolvable with {entry['n_nonmated']} non-mated "
                f"probes (needs {entry['n_nonmated_needed']}); shown instead: the one-sided 95% upper bound on "
                f"the FPIR its threshold reached (E1: {entry['n_false_alarms']} of {entry['n_nonmated']} -> "
                f"FPIR <= {fmt(entry['fpir_upper95'], True)})"
            )
    return lines


def _accretion_line(e3: dict) -> str:
    """E3 in one line: people re-identified, fields learned, national IDs predictable, wrong people."""
    people = e3.get("people_identified")
    who = (
        f"{e3['n_people_identified']} of {e3['n_mated_people']} people re-identified "
        f"(95% CI {fmt(people['ci95'][0], True)}-{fmt(people['ci95'][1], True)})"
        if people
        else f"{e3['n_identified']} people re-identified"
    )
    wp = e3.get("wrong_person")
    wrong = (
        f"; {wp['n_probes_wrong']} searches attached another person's profile (non-mated: "
        f"{wp['nonmated']['k']} of {wp['nonmated']['n']})"
        if wp
        else ""
    )
    return (
        f"E3 accretion: {who}; a stranger learns "
        f"{e3['mean_fields_learned']:.1f} fields on average; SSN first 5 digits predictable for "
        f"{e3['ssn_predictable_fraction']:.0%}{kn(e3.get('ssn_predictable'))}, Korean RRN for "
        f"{e3['rrn_predictable_fraction']:.0%}{kn(e3.get('rrn_predictable'))}{wrong}"
    )


def summary_table(results: dict) -> str:
    """The run for the terminal: E1 and each E2 level with their intervals, E2 per detector, E3 in a
    line, and the scaling study by gallery size."""
    e1 = results["experiments"]["online_to_online"]
    thr = e1.get("threshold", (results.get("config") or {}).get("gallery", {}).get("threshold"))
    fpir_head = f"FPIR@{thr:g}" if isinstance(thr, (int, float)) else "FPIR@thr"
    lines = _identification_lines(results, fpir_head)
    lines.append(
        "rates over the mated probes with exact (Clopper-Pearson) 95% intervals; "
        f"{fpir_head}: non-mated probes accepted at the operating threshold (k/n)"
    )
    lines += _unresolvable_lines(results)
    lines += detector_summary_lines(results)
    lines.append("")
    lines.append(_accretion_line(results["experiments"]["accretion"]))
    lines += scaling_summary_lines(results)
    return "\n".join(lines)


def detector_summary_lines(results: dict) -> list[str]:
    """E2 per detector for the terminal: per level, each detector's detection rate and rank-1 (k/n)."""
    levels = results["experiments"]["offline_to_online"]["levels"]
    pers = {n: lv["per_detector"] for n, lv in levels.items() if lv.get("per_detector")}
    if not pers:
        return []
    first = next(iter(pers.values()))
    out = [f"E2 per detector ({first['people']}): captures with a face, rank-1 (k/n, exact 95% CI)"]
    for name, p in pers.items():
        cells = "; ".join(
            f"{d} {detector_cell(v, 'detection')}, rank-1 {detector_cell(v, 'rank1')}"
            for d, v in p["detectors"].items()
        )
        out.append(f"  {name}: {cells}")
    return out


def paper_comparison(results: dict) -> list[tuple[str, str, str]]:
    """(experiment, what the paper found, what this run found) rows."""
    exps = results["experiments"]
    e1, e2, e3 = exps["online_to_online"], exps["offline_to_online"], exps["accretion"]
    return [
        (
            "E1 online to online",
            PAPER["online_to_online"],
            f"rank-1 {fmt(e1['rank1'], True)} (95% CI {fmt(e1['rank1_ci95'][0], True)}-{fmt(e1['rank1_ci95'][1], True)}, "
            f"exact) of {e1['n_mated']} mated probes, gallery {e1['n_gallery']}; "
            + "; ".join(f"TPIR at FPIR {fpir_label(k)}: {tpir_cell(e1, k)}" for k in fpir_keys(results))
            + (f"; {e1['genuine_pairs']['statement']}" if e1.get("genuine_pairs", {}).get("statement") else ""),
        ),
        (
            f"E2 offline to online ({e2['level_name']})",
            PAPER["offline_to_online"],
            f"rank-1 {fmt(e2['rank1'], True)}, rank-10 {fmt(e2['rank10'], True)} of {e2['n_mated']}"
            + (
                f" (95% CI {fmt(e2['rank1_ci95'][0], True)}-{fmt(e2['rank1_ci95'][1], True)} and "
                f"{fmt(e2['rank10_ci95'][0], True)}-{fmt(e2['rank10_ci95'][1], True)})"
                if "rank10_ci95" in e2
                else ""
            )
            + f"; {fmt(e2['seconds_per_probe'])} s per identification ({e2['shots']} captures)",
        ),
        (
            "E3 accretion",
            PAPER["accretion"],
            (
                f"{e3['n_people_identified']} of {e3['n_mated_people']} people re-identified"
                if "n_people_identified" in e3
                else f"{e3['n_identified']} re-identified"
            )
            + f": SSN first 5 digits predictable for "
            f"{fmt(e3['ssn_predictable_fraction'], True)}{kn(e3.get('ssn_predictable'))}, Korean RRN (7+ digits) for "
            f"{fmt(e3['rrn_predictable_fraction'], True)}{kn(e3.get('rrn_predictable'))}; "
            f"{e3['mean_fields_learned']:.1f} fields learned on average"
            + (
                f"; {e3['wrong_person']['n_probes_wrong']} searches attached a wrong person's profile"
                if "wrong_person" in e3
                else ""
            ),
        ),
        ("Scale", "galleries of 25,000 to 278,000 photos", scaling_paper_row(results)),
    ]


#: the paper's own gallery sizes and findings, for the comparison at the paper's scale
PAPER_SCALE = (
    (
        "offline_to_online/webcam",
        25_000,
        "webcam shots, correct profile among 10 candidates",
        "31% of 93 students",
    ),
    (
        "online_to_online",
        278_000,
        "profile photos, top candidates checked by people",
        "about 1 in 10 of about 5,800 dating profiles (a share of all the dating profiles, many of whose owners "
        "were not among the Facebook profiles searched: not a rank-10 rate over people in the gallery, so it "
        "understates the paper's rate for people who were there)",
    ),
)


def paper_scale_rows(results: dict) -> list[dict]:
    """This run's rank-10 at the paper's own gallery sizes (webcam at ~25,000; online at ~278,000),
    beside what the paper found there."""
    curves = curves_of(results)
    rows = []
    for name, size, what, paper in PAPER_SCALE:
        if curves is None or name not in curves.names:
            continue
        pt = curves.point(name, size, 10)
        rows.append(
            {"curve": name, "gallery_size": size, "what": what, "paper": paper, "rank10": pt.value,
             "rank10_range": [pt.lo, pt.hi], "kind": pt.kind}
        )  # fmt: skip
    return rows


def plain_summary(results: dict) -> list[str]:
    """What the run found, in a few plain sentences for the top of the report (measured on the run's
    own faces; each with its n)."""
    e = results["experiments"]
    e1, e2, e3 = e["online_to_online"], e["offline_to_online"], e["accretion"]
    level = e2["levels"].get(e2.get("level_name")) or next(iter(e2["levels"].values()), None)
    out = []
    if e1.get("rank1") is not None and e1.get("n_mated"):
        out.append(
            f"Another online photo of a person found their profile photo first {fmt(e1['rank1'], True)} of the "
            f"time ({round(e1['rank1'] * e1['n_mated'])} of {e1['n_mated']} searches among {e1['n_gallery']:,} "
            "people; measured, E1)."
        )
    if level and level.get("rank1") is not None and level.get("n_mated"):
        out.append(
            f"A stranger's snapshot at the '{e2.get('level_name', '')}' level did so "
            f"{fmt(level['rank1'], True)} of the time ({round(level['rank1'] * level['n_mated'])} of "
            f"{level['n_mated']}; measured, E2)."
        )
    people = e3.get("people_identified")
    if people:
        out.append(
            f"{people['k']} of {people['n']} people were re-identified, and a stranger then learned "
            f"{e3['mean_fields_learned']:.1f} profile fields on average (the profiles are synthetic; E3)."
        )
    out.append(
        "Past the sizes searched, the numbers are extrapolated with a tail model and shown as ranges; "
        "the details, intervals and caveats follow below."
    )
    return out
