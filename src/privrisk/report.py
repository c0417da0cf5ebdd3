"""Experiment outputs: results.json, probes.csv, accretion.csv, plots and a self-contained report.html.

Every file is written to a temp file beside its target and renamed into place, so a reader (or a
crash) never sees half a file. Plots use matplotlib's object API (no global backend state).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from .fileio import atomic_write, json_default  # noqa: F401 - atomic_write re-exported for report.atomic_write callers
from .profiles import FIELDS
from .samples import ATTRIBUTION, ATTRIBUTION_URL

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


_json_default = json_default


def _clean(value):
    """JSON has no inf/nan: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()})
    return buf.getvalue()


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def zero_note(name: str, n: int) -> str:
    """'FPIR 0 of 20: not shown on log axis; 0-0.168 (exact 95%)': what a log axis cannot draw, with
    the same two-sided exact (Clopper-Pearson) interval every share of counts gets."""
    from .metrics import proportion_interval

    return f"{name} 0 of {n}: not shown on log axis; 0-{proportion_interval(0, n)[1]:.3g} (exact 95%)"


def _zero_notes(ax, notes: list[str]) -> None:
    if notes:
        ax.text(
            0.01,
            0.01,
            "\n".join(notes),
            transform=ax.transAxes,
            fontsize=6.5,
            va="bottom",
            ha="left",
            wrap=True,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "#999"},
        )


def make_plots(results: dict) -> dict[str, bytes]:
    """PNG bytes by file name: CMC, DET, ROC, E2 levels, scaling, exposure, demographic breakdown."""
    exps = results["experiments"]
    e1, e2 = exps["online_to_online"], exps["offline_to_online"]
    plots = {
        "cmc.png": _cmc_plot(e1, e2),
        "det.png": _det_plot(e1, e2),
        "roc.png": _roc_plot(e1),
        "offline_levels.png": _offline_levels_plot(e1, e2),
        "scaling.png": _scaling_plot(results["scaling_detail"]),
        "exposure.png": _exposure_plot(exps["accretion"]),
    }
    if (e4_plot := countermeasures_plot(results)) is not None:
        plots["countermeasures.png"] = e4_plot
    breakdown = fairness_plot(results)
    if breakdown is not None:
        plots["breakdown.png"] = breakdown
    return plots


def _cmc_plot(e1: dict, e2: dict) -> bytes:
    fig, ax = _figure()
    ax.plot(range(1, len(e1["cmc"]) + 1), e1["cmc"], marker="o", label="E1 online to online")
    for name, lv in e2["levels"].items():
        ax.plot(range(1, len(lv["cmc"]) + 1), lv["cmc"], marker=".", label=f"E2 {name}")
    ax.set(xlabel="rank", ylabel="identification rate (mated probes)", ylim=(0, 1.02), title="CMC")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _det_plot(e1: dict, e2: dict) -> bytes:
    """DET of E1 and every E2 level; rates of 0 cannot be drawn on log axes, so a note says so."""
    fig, ax = _figure()
    hidden: dict[str, list[str]] = {}
    for label, m in [("E1", e1)] + [(f"E2 {k}", v) for k, v in e2["levels"].items()]:
        fpir, fnir = np.array(m["det"]["fpir"], float), np.array(m["det"]["fnir"], float)
        shown = (fpir > 0) & (fnir > 0)
        ax.plot(np.where(shown, fpir, np.nan), np.where(shown, fnir, np.nan), label=label, drawstyle="steps-post")
        for zero, note in (
            ((fpir == 0).any(), zero_note("FPIR", m["n_nonmated"])),
            ((fnir == 0).any(), zero_note("FNIR", m["n_mated"])),
            (not shown.any(), "no point with both rates above 0: nothing drawn"),
        ):
            if zero:
                hidden.setdefault(note, []).append(label)
    notes = [f"{note}: {', '.join(labels)}" for note, labels in hidden.items()]
    floor = 0.5 / max(e1["n_nonmated"], e1["n_mated"], 1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="FPIR (non-mated probes accepted)",
        ylabel="FNIR (mated probes missed)",
        title=f"DET, open set ({e1['n_nonmated']} non-mated probes)",
        xlim=(floor, 1.05),
        ylim=(floor, 1.05),
    )
    _zero_notes(ax, notes)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def _roc_plot(e1: dict) -> bytes:
    fig, ax = _figure()
    curve = e1["verification"]["curve"]
    far, tar = np.array(curve["far"], float), np.array(curve["tar"], float)
    n_imp = e1["verification"].get("n_impostor", 0)
    ax.plot(np.where(far > 0, far, np.nan), tar, label=f"E1 (EER {e1['verification']['eer']:.3f})")
    roc_notes = []
    if (far == 0).any() and n_imp:
        reached = float(tar[far == 0].max())
        roc_notes.append(
            f"E1: {zero_note('FAR', n_imp)}\n(pairs share faces, so the bound is optimistic); "
            f"TAR at FAR 0 reaches {reached:.1%}"
        )  # the curve keeps its last FAR-0 point
    ax.set(
        xscale="log",
        xlabel="FAR",
        ylabel="TAR",
        ylim=(0, 1.02),
        xlim=(0.5 / max(n_imp, 1), 1.05),
        title="Verification ROC (probe vs gallery pairs)",
    )
    _zero_notes(ax, roc_notes)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def _offline_levels_plot(e1: dict, e2: dict) -> bytes:
    fig, ax = _figure()
    names = list(e2["levels"])
    r1 = [e2["levels"][n]["rank1"] for n in names]
    det = [e2["levels"][n]["detection_rate"] for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, r1, 0.4, label="rank-1 (fused shots)")
    ax.bar(x + 0.2, det, 0.4, label="captures with a detected face")
    ax.axhline(e1["rank1"], color="k", ls="--", lw=1, label="E1 (studio photo)")
    ax.set_xticks(x, [f"{n}\n{e2['levels'][n]['level']['face_width_px']} px" for n in names])
    ax.set(ylim=(0, 1.05), ylabel="share", title="E2 offline to online: identification by capture condition")
    ax.legend(fontsize=8)
    return _png(fig)


_KIND_MARKERS = (("measured", "o"), ("modelled", "s"), ("simulated", "s"), ("extrapolated", "^"))


def _scaling_plot(detail: dict) -> bytes:
    """Rank-1 against gallery size per curve, shaded by its range, each point marked by its kind."""
    fig, ax = _figure()
    for name, c in detail["curves"].items():
        pts = [
            p for p in c.get("points") or [] if p.get("rank1") is not None
        ]  # no tail model: no value past the search
        if pts:
            xs = [p["gallery_size"] for p in pts]
            (line,) = ax.plot(xs, [p["rank1"] for p in pts], marker=".", label=name)
            ax.fill_between(
                xs,
                [p["rank1_range"][0] for p in pts],
                [p["rank1_range"][1] for p in pts],
                color=line.get_color(),
                alpha=0.12,
            )
            gs = [p for p in pts if p.get("gaussian_search")]
            if gs:
                ax.plot(
                    [p["gallery_size"] for p in gs],
                    [p["gaussian_search"]["rank1"] for p in gs],
                    ls=":",
                    marker="x",
                    color=line.get_color(),
                    alpha=0.6,
                )
            for kind, mk in _KIND_MARKERS:
                sel = [p for p in pts if p["kind"] == kind]
                ax.plot(
                    [p["gallery_size"] for p in sel],
                    [p["rank1"] for p in sel],
                    ls="",
                    marker=mk,
                    color=line.get_color(),
                    mfc="none",
                )
        else:
            xs = [p["gallery_size"] for p in c["measured"]]
            ax.plot(xs, [p["rank1"] for p in c["measured"]], marker="o", label=name)
    for kind, mk in _KIND_MARKERS:
        ax.plot([], [], ls="", marker=mk, color="k", mfc="none", label=kind)
    ax.plot([], [], ls=":", marker="x", color="k", alpha=0.6, label="Gaussian search (fails validation; comparison)")
    ax.set(
        xscale="log",
        xlabel="gallery size (real subjects + others)",
        ylabel="rank-1",
        ylim=(0, 1.02),
        title="Identification against gallery size (shaded: range)",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def _exposure_plot(accretion: dict) -> bytes:
    fig, ax = _figure()
    share = accretion["field_visible_share"]
    fields = sorted(share, key=share.get)
    ax.barh(fields, [share[f] for f in fields])
    ax.set(xlim=(0, 1), xlabel="share of re-identified people", title="E3: what a stranger sees after a face match")
    return _png(fig)


def _fpir_keys(results: dict) -> list[str]:
    """The configured FPIR targets as results.json keys them (``f"{fpir:g}"``), in config order."""
    e1 = results["experiments"]["online_to_online"]
    keys = [f"{float(f):g}" for f in (results.get("config") or {}).get("fpir", [])]
    return [k for k in keys if k in e1["tpir_at_fpir"]] or list(e1["tpir_at_fpir"])


def _fpir_label(key: str) -> str:
    return f"{float(key):.1%}".replace(".0%", "%")


def tpir_cell(m: dict, key: str, short: bool = False) -> str:
    """TPIR at the FPIR ``key`` with its exact interval and n, or, when the non-mated probes cannot
    resolve that FPIR, the one-sided 95% upper bound on the FPIR the threshold reached."""
    entry = (m.get("tpir_at_fpir") or {}).get(key)
    if entry is None:
        return "n/a"
    if entry.get("resolvable", True) is False:
        bound = entry.get("fpir_upper95")
        if short:
            return f"FPIR<={_fmt(bound, True)}*"
        return (
            f"not resolvable: FPIR <= {_fmt(bound, True)} (one-sided 95% upper bound, {entry['n_false_alarms']} "
            f"of {entry['n_nonmated']} non-mated; FPIR {_fpir_label(key)} needs {entry['n_nonmated_needed']})"
        )
    ci = entry.get("tpir_ci95") or [None, None]
    if short:
        return _fmt(entry["tpir"], True)
    return (
        f"{_fmt(entry['tpir'], True)} (95% CI {_fmt(ci[0], True)}-{_fmt(ci[1], True)}, "
        f"n={entry.get('n_mated', m.get('n_mated'))})"
    )


def _unresolvable(m: dict, key: str) -> bool:
    return (m.get("tpir_at_fpir") or {}).get(key, {}).get("resolvable") is False


def tpir_html_cell(m: dict, key: str) -> str:
    """A table cell for TPIR at ``key``: an unresolvable one is short (``FPIR<=x*``); the note under the
    table (:func:`unresolvable_note`) says once what the star means, instead of in every row."""
    return tpir_cell(m, key, short=_unresolvable(m, key))


def unresolvable_note(ms: list[dict], keys: list[str]) -> str:
    """One HTML note for the table's unresolvable TPIR cells, or "" when there are none."""
    needed = {
        k: next(m["tpir_at_fpir"][k]["n_nonmated_needed"] for m in ms if _unresolvable(m, k))
        for k in keys
        if any(_unresolvable(m, k) for m in ms)
    }
    if not needed:
        return ""
    targets = ", ".join(f"FPIR {_fpir_label(k)} needs {n:,}" for k, n in needed.items())
    return (
        f"<p>* Not resolvable: too few non-mated searches for that target ({targets}). Shown instead is the "
        "one-sided 95% upper bound on the FPIR the threshold reached.</p>"
    )


def _rate_ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci95") or [None, None]
    return f"{_fmt(m.get(key), True)} [{_fmt(ci[0], True)}-{_fmt(ci[1], True)}]"


def summary_table(results: dict) -> str:
    e = results["experiments"]
    e1, e2, e3 = e["online_to_online"], e["offline_to_online"], e["accretion"]
    key = _fpir_keys(results)[0]
    thr = e1.get("threshold", (results.get("config") or {}).get("gallery", {}).get("threshold"))
    fpir_head = f"FPIR@{thr:g}" if isinstance(thr, (int, float)) else "FPIR@thr"

    def fpir_thr(m):
        if m.get("fpir_at_threshold") is None:
            return "n/a"
        return (
            f"{m['fpir_at_threshold_k']}/{m['fpir_at_threshold_n']}"
            if "fpir_at_threshold_k" in m
            else _fmt(m["fpir_at_threshold"], True)
        )

    lines = [
        f"{'experiment':<34} {'gallery':>7} {'mated':>5} {'rank-1 [95% CI]':>22} {'rank-5 [95% CI]':>22} "
        f"{'TPIR@' + _fpir_label(key):>12} {fpir_head:>9} {'s/probe':>8}",
        f"{'E1 online to online':<34} {e1['n_gallery']:>7} {e1['n_mated']:>5} {_rate_ci(e1, 'rank1'):>22} "
        f"{_rate_ci(e1, 'rank5'):>22} {tpir_cell(e1, key, True):>12} {fpir_thr(e1):>9} {e1['seconds_per_probe']:>8.3f}",
    ]
    for name, lv in e2["levels"].items():
        secs = f"{e2['seconds_per_probe']:>8.3f}" if name == e2["level_name"] else f"{'':>8}"
        lines.append(
            f"{'E2 offline, ' + name + ' (' + str(lv['level']['face_width_px']) + ' px)':<34} "
            f"{lv['n_gallery']:>7} {lv['n_mated']:>5} {_rate_ci(lv, 'rank1'):>22} {_rate_ci(lv, 'rank5'):>22} "
            f"{tpir_cell(lv, key, True):>12} {fpir_thr(lv):>9} {secs}"
        )
    lines.append(
        "rates over the mated probes with exact (Clopper-Pearson) 95% intervals; "
        f"{fpir_head}: non-mated probes accepted at the operating threshold (k/n)"
    )
    for k in _fpir_keys(results):
        entry = e1["tpir_at_fpir"][k]
        if entry.get("resolvable", True) is False:
            lines.append(
                f"* TPIR at FPIR {_fpir_label(k)} is not resolvable with {entry['n_nonmated']} non-mated "
                f"probes (needs {entry['n_nonmated_needed']}); shown instead: the one-sided 95% upper bound on "
                f"the FPIR its threshold reached (E1: {entry['n_false_alarms']} of {entry['n_nonmated']} -> "
                f"FPIR <= {_fmt(entry['fpir_upper95'], True)})"
            )
    lines += detector_summary_lines(results)
    lines.append("")
    people = e3.get("people_identified")
    who = (
        f"{e3['n_people_identified']} of {e3['n_mated_people']} people re-identified "
        f"(95% CI {_fmt(people['ci95'][0], True)}-{_fmt(people['ci95'][1], True)})"
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
    lines.append(
        f"E3 accretion: {who}; a stranger learns "
        f"{e3['mean_fields_learned']:.1f} fields on average; SSN first 5 digits predictable for "
        f"{e3['ssn_predictable_fraction']:.0%}{_kn(e3.get('ssn_predictable'))}, Korean RRN for "
        f"{e3['rrn_predictable_fraction']:.0%}{_kn(e3.get('rrn_predictable'))}{wrong}"
    )
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
            f"{d} {_detector_cell(v, 'detection')}, rank-1 {_detector_cell(v, 'rank1')}"
            for d, v in p["detectors"].items()
        )
        out.append(f"  {name}: {cells}")
    return out


def _kn(r: dict | None) -> str:
    """' (k of n)' for a :func:`privrisk.metrics.rate` dict, empty when absent."""
    return f" ({r['k']} of {r['n']})" if r else ""


def _fmt(x, pct=False):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.1%}" if pct else (f"{x:.3g}" if isinstance(x, float) else str(x))


def paper_comparison(results: dict) -> list[tuple[str, str, str]]:
    """(experiment, what the paper found, what this run found) rows."""
    exps = results["experiments"]
    e1, e2, e3 = exps["online_to_online"], exps["offline_to_online"], exps["accretion"]
    return [
        (
            "E1 online to online",
            PAPER["online_to_online"],
            f"rank-1 {_fmt(e1['rank1'], True)} (95% CI {_fmt(e1['rank1_ci95'][0], True)}-{_fmt(e1['rank1_ci95'][1], True)}, "
            f"exact) of {e1['n_mated']} mated probes, gallery {e1['n_gallery']}; "
            + "; ".join(f"TPIR at FPIR {_fpir_label(k)}: {tpir_cell(e1, k)}" for k in _fpir_keys(results))
            + (f"; {e1['genuine_pairs']['statement']}" if e1.get("genuine_pairs", {}).get("statement") else ""),
        ),
        (
            f"E2 offline to online ({e2['level_name']})",
            PAPER["offline_to_online"],
            f"rank-1 {_fmt(e2['rank1'], True)}, rank-10 {_fmt(e2['rank10'], True)} of {e2['n_mated']}"
            + (
                f" (95% CI {_fmt(e2['rank1_ci95'][0], True)}-{_fmt(e2['rank1_ci95'][1], True)} and "
                f"{_fmt(e2['rank10_ci95'][0], True)}-{_fmt(e2['rank10_ci95'][1], True)})"
                if "rank10_ci95" in e2
                else ""
            )
            + f"; {_fmt(e2['seconds_per_probe'])} s per identification ({e2['shots']} captures)",
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
            f"{_fmt(e3['ssn_predictable_fraction'], True)}{_kn(e3.get('ssn_predictable'))}, Korean RRN (7+ digits) for "
            f"{_fmt(e3['rrn_predictable_fraction'], True)}{_kn(e3.get('rrn_predictable'))}; "
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


def _curves_of(results: dict):
    from .exposure import IdentificationCurves

    curves = (results.get("scaling_detail") or {}).get("curves") or {}
    return IdentificationCurves(curves, source="this run") if curves else None


def paper_scale_rows(results: dict) -> list[dict]:
    """This run's rank-10 at the paper's own gallery sizes (webcam at ~25,000; online at ~278,000),
    beside what the paper found there."""
    curves = _curves_of(results)
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


def paper_scale_html(results: dict) -> str:
    rows = paper_scale_rows(results)
    if not rows:
        return ""
    e = html.escape
    body = "".join(
        f"<tr><td>{e(r['what'])}</td><td>{r['gallery_size']:,}</td><td>{e(r['paper'])}</td>"
        f"<td>{_pct_range(r['rank10'], r['rank10_range'], r['kind'])} ({e(r['kind'])}, curve {e(r['curve'])})</td></tr>"
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
    from .scenarios import first_screen, scenarios

    curves = _curves_of(results)
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


def _ci_text(ci) -> str:
    return "n/a" if not ci or ci[0] is None else f"{_fmt(ci[0], True)}-{_fmt(ci[1], True)}"


def stats_sections(results: dict) -> str:
    """HTML: what E1's genuine pairs are; every E1/E2 rate with its exact interval and n; E3 by people,
    with the wrong-person identifications."""
    e = html.escape
    exps = results["experiments"]
    e1, e2, e3 = exps["online_to_online"], exps["offline_to_online"], exps["accretion"]
    parts = []
    gp = e1.get("genuine_pairs")
    if gp and gp.get("quantiles"):
        q = gp["quantiles"]
        parts.append(
            "<h2>E1: what its genuine pairs are</h2>"
            f"<p>Genuine pairs: {e(gp['what'])}. The paper's E1 matched wild photos (dating-site profile pictures "
            "against Facebook photos) with a 2011 recogniser (PittPatt).</p>"
            "<table><tr><th>genuine distance</th><th>min</th><th>5%</th><th>median</th><th>95%</th><th>max</th>"
            "<th>closest impostor pair</th><th>pairs</th></tr>"
            f"<tr><td>{gp['n_genuine']} genuine pairs</td>"
            + "".join(f"<td>{q[k]:.3f}</td>" for k in ("min", "p05", "median", "p95", "max"))
            + f"<td>{_fmt(gp['closest_impostor'])}</td><td>{gp['n_genuine']} genuine, {gp['n_impostor']} impostor</td>"
            f"</tr></table><p><strong>{e(gp['statement'])}</strong></p>"
        )
    keys = _fpir_keys(results)
    thr = e1.get("threshold")
    rows = []
    for label, m in [("E1 online to online", e1)] + [(f"E2 {n}", lv) for n, lv in e2["levels"].items()]:
        fp = (
            f"{m['fpir_at_threshold_k']} of {m['fpir_at_threshold_n']}: {_fmt(m['fpir_at_threshold'], True)} "
            f"({_ci_text(m.get('fpir_at_threshold_ci95'))})"
            if m.get("fpir_at_threshold") is not None
            else "n/a"
        )
        tp = f"{_fmt(m.get('tpir_at_threshold'), True)} ({_ci_text(m.get('tpir_at_threshold_ci95'))})"
        rows.append(
            f"<tr><td>{e(label)}</td><td>{m['n_mated']}</td><td>{m['n_nonmated']}</td>"
            + "".join(f"<td>{e(_rate_ci(m, k))}</td>" for k in ("rank1", "rank5", "rank10"))
            + f"<td>{e(tp)}</td><td>{e(fp)}</td>"
            + "".join(f"<td>{e(tpir_html_cell(m, k))}</td>" for k in keys)
            + "</tr>"
        )
    table_ms = [e1, *e2["levels"].values()]
    v = e1.get("verification", {})
    tar = "; ".join(
        f"TAR at FAR {_fpir_label(k)}: {_fmt(x, True)} (subject bootstrap "
        f"{_ci_text(v.get('tar_at_far_ci95', {}).get(k))})"
        for k, x in v.get("tar_at_far", {}).items()
    )
    parts.append(
        "<h2>Identification rates with their intervals</h2>"
        "<p>Rank-k and rates at the threshold: exact (Clopper-Pearson) 95% intervals over the probes counted. "
        "TPIR at a target FPIR needs at least 3 / FPIR non-mated probes; with fewer, the table gives the one-sided "
        "95% upper bound on the FPIR the chosen threshold reached instead of a TPIR.</p>"
        f"<table><tr><th>experiment</th><th>mated</th><th>non-mated</th><th>rank-1 [95% CI]</th><th>rank-5</th>"
        f"<th>rank-10</th><th>TPIR at threshold {_fmt(thr)}</th><th>FPIR at threshold {_fmt(thr)}</th>"
        + "".join(f"<th>TPIR at FPIR {_fpir_label(k)}</th>" for k in keys)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + unresolvable_note(table_ms, keys)
        + f"<p>Verification (E1 probe against gallery pairs, {v.get('n_genuine')} genuine, {v.get('n_impostor')} "
        f"impostor): EER {_fmt(v.get('eer'), True)} (subject bootstrap, threshold re-chosen per resample: "
        f"{_ci_text(v.get('eer_ci95'))}); {e(tar)}."
        + (
            " Every resample separates genuine from impostor pairs, so the bootstrap shows no spread: it cannot "
            "bound a perfect separation away from zero (see the genuine pairs above)."
            if v.get("eer_ci95") and v["eer_ci95"][1] == 0
            else ""
        )
        + "</p>"
    )
    if "wrong_person" in e3:
        wp, pi = e3["wrong_person"], e3["people_identified"]
        share = e3["probe_share_per_identified_person"]
        fields = sorted(((f, x) for f, x in wp["field_attributed_share"].items() if x > 0), key=lambda t: -t[1])
        parts.append(
            "<h2>E3: people re-identified, and profiles attached to the wrong face</h2>"
            f"<p>Counted by person: {e3['n_people_identified']} of {e3['n_mated_people']} people whose photo is in "
            f"the gallery were re-identified (95% CI {_ci_text(pi['ci95'])}), from {e3['n_probes_identified']} of "
            f"{e3['n_mated_probes']} probes; a re-identified person's probes led to them "
            f"{_fmt(share['mean'], True)} of the time on average (lowest {_fmt(share['min'], True)}).</p>"
            f"<p>Wrong person: {wp['n_probes_wrong']} searches matched someone else under the threshold, so a "
            f"stranger would attach that person's profile to the face in the photo: {wp['nonmated']['k']} of "
            f"{wp['nonmated']['n']} non-mated probes ({_ci_text(wp['nonmated']['ci95'])}) and {wp['mated']['k']} of "
            f"{wp['mated']['n']} mated probes ({_ci_text(wp['mated']['ci95'])}); "
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
    return "\n".join(parts)


def plain_summary(results: dict) -> list[str]:
    """What the run found, in a few plain sentences for the top of the report (measured on the run's
    own faces; each with its n)."""
    e = results["experiments"]
    e1, e2, e3 = e["online_to_online"], e["offline_to_online"], e["accretion"]
    level = e2["levels"].get(e2.get("level_name")) or next(iter(e2["levels"].values()), None)
    out = []
    if e1.get("rank1") is not None and e1.get("n_mated"):
        out.append(
            f"Another online photo of a person found their profile photo first {_fmt(e1['rank1'], True)} of the "
            f"time ({round(e1['rank1'] * e1['n_mated'])} of {e1['n_mated']} searches among {e1['n_gallery']:,} "
            "people; measured, E1)."
        )
    if level and level.get("rank1") is not None and level.get("n_mated"):
        out.append(
            f"A stranger's snapshot at the '{e2.get('level_name', '')}' level did so "
            f"{_fmt(level['rank1'], True)} of the time ({round(level['rank1'] * level['n_mated'])} of "
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


def render_html(results: dict, plots: dict[str, bytes]) -> str:
    e1, e2 = results["experiments"]["online_to_online"], results["experiments"]["offline_to_online"]
    sc = results["scaling_detail"]
    e = html.escape
    rows = paper_comparison(results)
    table = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in rows)
    key = _fpir_keys(results)[0]
    # a cell that would say "not resolvable: FPIR <= ..." in every row says it once, under the table
    levels = "".join(
        f"<tr><td>{e(n)}</td><td>{lv['level']['face_width_px']}</td><td>{lv['level']['blur_sigma']}</td>"
        f"<td>{lv['level']['jpeg_quality']}</td><td>{e(lv['level']['occlusion'])}</td>"
        f"<td>{_fmt(lv['detection_rate'], True)}</td><td>{e(_rate_ci(lv, 'rank1'))}</td><td>{e(_rate_ci(lv, 'rank10'))}</td>"
        f"<td>{e(tpir_html_cell(lv, key))}</td></tr>"
        for n, lv in e2["levels"].items()
    )
    levels_note = unresolvable_note(list(e2["levels"].values()), [key])
    summary = "".join(f"<li>{e(line)}</li>" for line in plain_summary(results))
    imgs = "".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{e(name)}</figcaption></figure>"
        for name, png in plots.items()
    )
    versions = "".join(f"<li>{e(k)}: {e(str(v))}</li>" for k, v in results["versions"].items())
    dm = sc["distractor_model"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>privrisk re-identification report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.35em .6em;vertical-align:top;font-size:.92em}}
th{{background:#f3f3f3}}figure{{display:inline-block;margin:.5em}}img{{max-width:520px}}
.first{{font-size:1.1em;background:#eef5ff;padding:.8em;border-left:4px solid #58c}}
.attr{{background:#f7f7e8;padding:.6em;border-left:4px solid #bb8}}pre{{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}}</style>
</head><body>
<h1>Re-identification from faces: a reproduction of Acquisti, Gross &amp; Stutzman</h1>
{first_screen_html(results)}
<p class="attr">{e(ATTRIBUTION)} (<a href="{ATTRIBUTION_URL}">{ATTRIBUTION_URL}</a>). All subjects gave signed
consent. Profiles in E3 are synthetic; nothing in them describes the real people.</p>
<h2>In short</h2><ul class="summary">{summary}</ul>
<h2>Side by side with the paper</h2>
<table><tr><th>experiment</th><th>Acquisti, Gross &amp; Stutzman (2014)</th><th>privrisk, this run</th></tr>{table}</table>
{paper_scale_html(results)}
<p>Differences that matter: the paper matched wild photos against hundreds of thousands of profiles with a 2011
recogniser and human checking; here studio photos of {e1["n_probes"]} consenting people meet {e(_embedder_words(results))}, and
platform scale comes from a tail model checked on held-out people and backtested (see "Scaling model"): the backtest
passes at its cut only, and below the cut its prediction intervals are too wide to check anything; the
Gaussian model distractors (KS statistic against real impostor distances: {dm["ks_statistic"]:.3f}) fail that
validation and are only plotted as a comparison.</p>
{attacker_section(results)}
{stats_sections(results)}
<h2>E2 capture conditions</h2>
<table><tr><th>level</th><th>face width px</th><th>blur</th><th>JPEG q</th><th>occlusion</th><th>captures with face</th>
<th>rank-1</th><th>rank-10</th><th>TPIR @ FPIR {_fpir_label(key)}</th></tr>{levels}</table>{levels_note}
{detector_table(results)}
{fusion_table(results)}
{countermeasures_section(results)}
<h2>Plots</h2>{imgs}
{fairness_section(results)}
<h2>Scaling model</h2><p>{e(sc["model"])}</p>
{tail_validation_html(results)}
{backtest_html(results["scaling_detail"]["distractor_model"].get("backtest"))}
{scaling_table_html(results)}
<h2>Reproducibility</h2><p>seed {results["seed"]}; versions:</p><ul>{versions}</ul>
<details><summary>configuration</summary><pre>{e(json.dumps(results["config"], indent=2))}</pre></details>
</body></html>
"""


def _rate_pct(x: float | None) -> str:
    """A rate as a percentage with two significant digits (0.0256 -> '2.6%', 0.0018 -> '0.18%', 1 -> '100%')."""
    if x is None or not math.isfinite(x):
        return "n/a"
    p = 100 * x
    if p == 0:
        return "0%"
    if p >= 10:
        return f"{p:.0f}%"
    return f"{p:#.2g}".rstrip(".") + "%"


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
            f"{_rate_pct(cell['rate'])} ({cell['events']}/{cell['trials']:,}; 95% {_rate_pct(lo)}-{_rate_pct(hi)}~ "
            f"approximate; exact on {cell.get('subjects')} people: {_rate_pct(0.0)}-{_rate_pct(sub)}*)"
        )
    else:
        text = (
            f"{_rate_pct(cell['rate'])} ({cell['events']}/{cell['trials']:,}; 95% "
            f"{_rate_pct(lo)}-{_rate_pct(hi)}{'*' if 'Clopper' in (cell.get('ci_method') or '') else ''})"
        )
    return text + (" [small: indicative only]" if cell.get("flag") else "")


def _fairness_attribute(fair: dict) -> str:
    """The attribute the section leads with: the combination if there is one, else the first
    (``fair`` has at least one attribute)."""
    attrs = list(fair["attributes"])
    return next((a for a in attrs if "+" in a), attrs[0])


def fairness_plot(results: dict) -> bytes | None:
    """Per-group false match rate at the operating threshold, same- vs cross-group impostor pairs, with
    95% interval bars, one panel per group attribute. None when the run has no group columns."""
    fair = results.get("fairness") or {}
    attrs = fair.get("attributes") or {}
    if not attrs:
        return None
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    key = f"{fair['operating_threshold']:g}"
    heights = [len(a["fmr"]) + 1 for a in attrs.values()]
    fig = Figure(figsize=(7.5, 0.55 * sum(heights) + 1.2), dpi=110, layout="constrained")
    axes = fig.subplots(len(attrs), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (name, a) in zip(axes, attrs.items()):
        groups = list(a["fmr"])[::-1]
        y = np.arange(len(groups))
        for off, split, colour in ((0.2, "same", "#c0392b"), (-0.2, "cross", "#2e86c1")):
            cells = [a["fmr"][g][split][key] for g in groups]
            for yi, c in zip(y, cells):
                if c["rate"] is None:
                    ax.text(0, yi + off, " no pairs", fontsize=6, va="center")
                    continue
                one_sided = "Clopper" in (c.get("ci_method") or "")
                style = ":" if "design_effect" in c else ("--" if one_sided else "-")
                lo, hi = c["ci95"]
                ax.barh(yi + off, 100 * c["rate"], 0.38, color=colour, alpha=0.85)
                ax.hlines(yi + off, 100 * lo, 100 * hi, colors="k", lw=0.8, linestyles=style)
                ax.vlines([100 * lo, 100 * hi], yi + off - 0.08, yi + off + 0.08, colors="k", lw=0.8)
                ax.text(
                    100 * hi,
                    yi + off,
                    f" {_rate_pct(c['rate'])} ({c['events']}/{c['trials']:,})",
                    fontsize=6,
                    va="center",
                )
        ax.set_yticks(
            y,
            [f"{g} (n={a['groups'][g]}){' *' if a['groups'][g] < fair['small_subjects'] else ''}" for g in groups],
            fontsize=7,
        )
        ax.set_xlim(0, 118)
        ax.set(xlabel="false match rate (%)")
        ax.set_title(f"{name}: FMR at {key} by the probe's group (measured, all impostor pairs)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(
            handles=[
                Patch(color="#c0392b", alpha=0.85, label="same-group impostor pairs"),
                Patch(color="#2e86c1", alpha=0.85, label="cross-group impostor pairs"),
            ],
            fontsize=7,
            loc="lower right",
        )
    fig.supxlabel(
        f"* fewer than {fair['small_subjects']} people: indicative only. Bars: 95% interval, solid = "
        "bootstrap over people, dashed = one-sided exact bound (0 or all events), dotted = approximate "
        "(design-effect adjusted) bound on pairs with no event",
        fontsize=7,
    )
    return _png(fig)


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
        r = at["fmr_ratio"]
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
        parts.append(
            f"<h3>By {e(name)}</h3><p>Highest over lowest group FMR at {key}, "
            f"{e(ratio_scope_text(r, fair['small_subjects']))}: {ratio}</p>"
            f"<table><tr><th>group</th>{''.join(f'<th>{e(c)}</th>' for c in cols)}</tr>{''.join(rows)}</table>"
            f"{e2_table}"
        )
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
            f"<tr><td>{e(r['group'])}</td><td>{r['threshold']:g}</td><td>{e(_rate_pct(r['real_rate']))} "
            f"({r['events']}/{r['pairs']:,}; 95% {e(_rate_pct(r['real_ci95'][0]))}-{e(_rate_pct(r['real_ci95'][1]))})"
            f"{' [small: indicative only]' if r['flag'] else ''}</td><td>{e(_rate_pct(r['model_rate']))} "
            f"(95% {e(_rate_pct(r['model_ci95'][0]))}-{e(_rate_pct(r['model_ci95'][1]))})</td>"
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


def _embedder_words(results: dict) -> str:
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


def _detector_cell(d: dict, key: str) -> str:
    k, n, ci = d[f"{key}_k"], d[f"{key}_n"], d.get(f"{key}_ci95")
    if not n:
        return "n/a"
    return f"{k / n:.1%} ({k}/{n}; 95% CI {_ci_text(ci)})"


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
            f"<td>{e(_detector_cell(p['detectors'][d], 'detection'))}</td><td>{e(_detector_cell(p['detectors'][d], 'rank1'))}</td>"
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


def write_outputs(out: Path, results: dict, per_probe: list[dict], accretion_rows: list[dict]) -> None:
    """Write every output of a run into ``out`` (each file atomically)."""
    plots = make_plots(results)
    for name, png in plots.items():
        atomic_write(out / name, png)
    results = _clean(results)
    results["outputs"] = sorted([*plots, "results.json", "probes.csv", "accretion.csv", "report.html"])
    atomic_write(out / "probes.csv", _csv(per_probe))
    atomic_write(out / "accretion.csv", _csv(accretion_rows))
    atomic_write(out / "report.html", render_html(results, plots))
    atomic_write(out / "results.json", json.dumps(results, indent=2, default=_json_default, allow_nan=False) + "\n")


# --- scaling with labels and ranges; the tail model's validation (issue 11) ----------------------------


def _pct_range(v, rng, kind: str | None = None) -> str:
    """A rate with its range; an extrapolated one leads with the range, because past what the real
    pairs can check the data cannot pin a value down (the model's own value follows, in brackets)."""
    if v is None:
        return "n/a"
    if not rng:
        return f"{v:.1%}"
    if kind == "extrapolated":
        return f"{rng[0]:.1%}-{rng[1]:.1%} (model value {v:.1%})"
    return f"{v:.1%} ({rng[0]:.1%}-{rng[1]:.1%})"


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
        f"  {p['gallery_size']:>13,} [{p['kind']}] {_pct_range(p['rank1'], p['rank1_range'], p['kind'])}; rank-10 "
        f"{_pct_range(p['rank10'], p['rank10_range'], p['kind'])}; FPIR at threshold "
        f"{_pct_range(p['fpir_at_threshold'], p['fpir_range'], p['kind'])}"
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
        f"rank-1 at {p['gallery_size']:,} ({k}): {_pct_range(p['rank1'], p['rank1_range'], k)}"
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
{_pit_with_groups(results)}</p>
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


def _pit_with_groups(results: dict) -> str:
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
                f"<td>{_pct_range(p['rank1'], p['rank1_range'], p['kind'])}</td>"
                f"<td>{_pct_range(p['rank10'], p['rank10_range'], p['kind'])}</td>"
                f"<td>{_pct_range(p['fpir_at_threshold'], p['fpir_range'], p['kind'])}</td>"
                f"<td>{_pct_range(p['wrong_top_under_threshold'], p['wrong_top_range'], p['kind'])}</td><td>{thr_txt}</td></tr>"
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


# --- E4 countermeasures ---------------------------------------------------------------------------------


def _e4(results: dict) -> dict | None:
    return (results.get("experiments") or {}).get("countermeasures")


def countermeasures_plot(results: dict) -> bytes | None:
    """E4's protection / quality frontier: one panel per transform, rank-1 among the real gallery
    (measured, exact 95% intervals; and, where the detector missed faces, rank-1 as a platform running
    this detector would see it) and the upper end of rank-1 at the first platform size (extrapolated)
    against SSIM; the untransformed photo sits at SSIM 1."""
    e4 = _e4(results)
    if not e4 or not e4.get("settings"):
        return None
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["transform"] for r in e4["settings"]))
    cols = min(3, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.0 * cols, 3.3 * rows_n), dpi=100, layout="constrained")
    base = e4["baseline"]
    size = next(iter(base["platform"]), None)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows_n, cols, k + 1)
        pts = [r for r in e4["settings"] if r["transform"] == name]
        pts = [{"ssim": 1.0, "strength": "none", **{k2: base.get(k2) for k2 in ("rank1", "platform", "hub")}}] + sorted(
            pts, key=lambda r: -r["ssim"]
        )
        x = np.array([p["ssim"] for p in pts])
        y = np.array([p["rank1"]["rate"] for p in pts])
        lo = np.array([p["rank1"]["ci95"][0] for p in pts])
        hi = np.array([p["rank1"]["ci95"][1] for p in pts])
        line = "none" if name == "occlude" else "-"  # occluders are kinds, not a ladder: no line between them
        ax.errorbar(
            x, y, yerr=[y - lo, hi - y], marker="o", ls=line, capsize=3, label="rank-1, real gallery (measured)"
        )
        seen = [p.get("rank1_this_detector") for p in pts]
        if all(seen) and any(a["k"] != p["rank1"]["k"] for a, p in zip(seen, pts)):  # only where detection failed
            ax.plot(
                x,
                [a["rate"] for a in seen],
                ls="-." if line == "-" else "none",
                marker="s",
                ms=3.5,
                label="rank-1 with this detector: a missed face is not in the gallery (measured)",
            )
        if size is not None:
            up = [p["platform"][size]["range"][1] for p in pts]
            ax.plot(
                x,
                up,
                ls="--" if line == "-" else "none",
                marker=".",
                label=f"rank-1 at {int(size):,}: upper end ({base['platform'][size]['kind']})",
            )
        if all(p.get("hub") for p in pts):
            ax.plot(
                x,
                [p["hub"]["photos"]["rate"] or 0.0 for p in pts],
                ls=":" if line == "-" else "none",
                marker="x",
                label="photo is top-1 for another person's snapshot (measured)",
            )
        for p, xv, yv in zip(pts, x, y):
            ax.annotate(str(p["strength"]), (xv, yv), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        ax.set(
            title=name,
            xlabel="SSIM against the original (face and margin)",
            ylabel="share of people",
            ylim=(-0.02, 1.05),
        )
        ax.invert_xaxis()
        if k == 0:
            ax.legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"E4: protection against image quality (n = {e4['n_persons']} people)", fontsize=10)
    return _png(fig)


def _e4_rate(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{r['rate']:.1%} [{lo:.1%}-{hi:.1%}] ({r['k']}/{r['n']})"


def _e4_end(v) -> str:
    return "beyond the ladder" if v is None else f"{v:.3g}"


def _e4_range(p: dict) -> str:
    lo, hi = p["range"]
    return f"{lo:.1%}-{hi:.1%} ({p['kind']}; model value {p['rank1']:.1%})"


def _e4_paired(x: dict | None) -> str:
    if not x:
        return "-"
    return (
        f"{x['found_only_without']} found only with the original, {x['found_only_with']} only with this "
        f"(n = {x['n']}); p = {x['p_value']:.2g}"
    )


def _e4_hub(h: dict | None) -> str:
    if not h:
        return "-"
    return f"{_e4_rate(h['photos'])}; {h['pairs']['k']}/{h['pairs']['n']} pairs"


def countermeasures_section(results: dict) -> str:
    """E4's report section ('' when E4 did not run): every setting with its identification and
    quality cost, per transform the strength where rank-1 falls below 50% and the cheapest setting
    under each platform target, and the ranking of transforms at equal SSIM."""
    e4 = _e4(results)
    if not e4:
        return ""
    e = html.escape
    sizes = list(e4["baseline"]["platform"])
    head = "".join(f"<th>rank-1 among {int(s):,}</th>" for s in sizes)

    def row(r: dict, label: str) -> str:
        det = r.get("detection")
        det_txt = f"{det['rate']:.0%} ({det['k']}/{det['n']})" if det else "-"
        psnr = "-" if r.get("psnr") is None else f"{r['psnr']:.1f}"
        width = r.get("face_width_left_median")
        return (
            f"<tr><td>{e(label)}</td><td>{r['ssim']:.3f}</td><td>{psnr}</td>"
            f"<td>{'-' if width is None else f'{width:.0f}'}</td><td>{e(det_txt)}</td>"
            f"<td>{e(_e4_rate(r['rank1']))}</td>"
            f"<td>{e(_e4_rate(r['rank1_this_detector'])) if r.get('rank1_this_detector') else '-'}</td>"
            f"<td>{e(_e4_rate(r['rank10']))}</td>"
            f"<td>{e(_e4_rate(r['tpir_at_threshold']))}</td>"
            f"<td>{e(_e4_paired(r.get('paired_vs_baseline')))}</td><td>{e(_e4_hub(r.get('hub')))}</td>"
            + "".join(f"<td>{e(_e4_range(r['platform'][s]))}</td>" for s in sizes)
            + "</tr>"
        )

    def label_of(r: dict) -> str:
        label = r.get("label") or f"{r['transform']} {r['strength']}"
        hidden = r.get("works_only_because_the_detector_misses")
        return f"{label} ({hidden})" if hidden else label

    settings = row(e4["baseline"], "none (the original photo)") + "".join(row(r, label_of(r)) for r in e4["settings"])
    summary = []
    for name, s in e4["transforms"].items():
        b = s["rank1_below_50"]
        if b.get("categorical"):
            below = (
                f"below 50%: {', '.join(map(str, b['below_50'])) or 'none'}; "
                f"clearly (interval's upper end under 50%): {', '.join(map(str, b['clearly_below_50'])) or 'none'}"
            )
        elif b["strength"] is None:
            below = b["status"]
        else:
            lo_end, hi_end = b["interval"]
            below = f"{b['strength']:.3g} ({b['status']}); interval {_e4_end(lo_end)} to {_e4_end(hi_end)}"
        cheap = []
        for size, per in s["cheapest"].items():
            for target, best in per.items():
                txt = (
                    "no setting in the ladder"
                    if best is None
                    else f"{best['strength']} (SSIM {best['ssim']:.3f}; range {best['rank1_range'][0]:.1%}-{best['rank1_range'][1]:.1%})"
                )
                cheap.append(f"under {float(target):.0%} at {int(size):,}: {txt}")
        trend = (s.get("trend") or {}).get("statement", "")
        seen = (s.get("trend_this_detector") or {}).get("statement")
        if seen and seen != trend:
            trend = f"judged at the known box: {trend}. With this detector: {seen}"
        summary.append(
            f"<tr><td>{e(name)}</td><td>{e(s['strength_means'])}</td><td>{e(trend)}</td><td>{e(below)}</td>"
            f"<td>{'<br>'.join(e(c) for c in cheap)}</td></tr>"
        )
    ranking = []
    for ref, entries in e4["ranking_at_equal_ssim"].items():
        items = "".join(
            f'<li data-transform="{e(x["transform"])}">{e(x["transform"])}: rank-1 {x["rank1"]:.1%}'
            + (
                f" at {e(str(x['strength']))}"
                if x["strength"] is not None
                else " (no setting keeps this SSIM and lowers rank-1)"
            )
            + "</li>"
            for x in entries
        )
        ranking.append(f'<p>SSIM at least {e(ref)}:</p><ol class="e4-ranking" data-ssim="{e(ref)}">{items}</ol>')
    notes = "".join(f"<li>{e(n)}</li>" for n in e4["notes"])
    cloak = cloak_section(e4.get("cloak"))
    return f"""<h2>E4 countermeasures: what protects a public photo</h2>
<p>Each of {e4["n_persons"]} people's gallery photo (their public photo) is transformed; a stranger's snapshot
(E2's '{e(e4["snapshot_level"])}' captures) searches the gallery of {e4["n_gallery"]} people. Rank-1, rank-10 and TPIR
are measured among the real gallery with exact 95% intervals; rank-1 at platform sizes is the tail models' closed form
with its range.</p><ul>{notes}</ul>
<table><tr><th>setting</th><th>SSIM</th><th>PSNR dB</th><th>face width left px (median)</th><th>face detected</th>
<th>rank-1 (measured)</th><th>rank-1 with this detector (a missed face is not in the gallery)</th><th>rank-10</th><th>TPIR at threshold</th>
<th>rank-1 against the original (exact paired test)</th><th>top-1 for other people's snapshots (photos; pairs)</th>{head}</tr>{settings}</table>
<h3>Per transform</h3>
<table><tr><th>transform</th><th>strength means</th><th>along the frontier</th><th>where rank-1 falls below 50%</th><th>cheapest setting (highest SSIM) whose range's upper end is under the target</th></tr>{"".join(summary)}</table>
<h3>Ranking at equal SSIM</h3><p>Transforms ordered by the lowest rank-1 each reaches while keeping a mean SSIM of at
least the level (doing nothing is always allowed). Whether a setting's rank-1 differs from the original photo's is the
exact paired (McNemar) test in the table above, on the same people; overlapping intervals are not that test.</p>
{"".join(ranking)}
{cloak}"""


def cloak_section(cloak: dict | None) -> str:
    """The adversarial cloak's effect, cost and survival (JPEG 75, resize 0.5), when one was measured."""
    if not cloak:
        return ""
    e = html.escape

    def effect(v: dict) -> str:
        x = v.get("effect")
        if not x:
            return "-"
        return (
            f"{'yes' if x['lowers_rank1'] else 'no'} ({x['found_only_without_cloak']} found only without it, "
            f"{x['found_only_with_cloak']} only with it; p = {x['p_value']:.2g})"
        )

    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{e(_e4_rate(v['original_rank1'])) if 'original_rank1' in v else '-'}</td>"
        f"<td>{e(_e4_rate(v['rank1']))}</td><td>{v.get('embedding_shift', float('nan')):.3f}</td>"
        f"<td>{e(effect(v))}</td><td>{'yes' if v.get('survives') else 'NO'}</td></tr>"
        for name, v in cloak.get("conditions", {}).items()
    )
    quality = (
        f" SSIM {cloak['ssim']:.3f}, PSNR {cloak['psnr']:.1f} dB." if cloak.get("ssim") and cloak.get("psnr") else ""
    )
    return (
        f"<h3>Adversarial cloak</h3><p>{e(cloak.get('method', ''))}. {e(cloak.get('verdict', ''))}.{e(quality)}</p>"
        "<table><tr><th>condition</th><th>rank-1 without the cloak</th><th>rank-1 with it</th><th>embedding shift</th>"
        f"<th>lowers rank-1?</th><th>survives</th></tr>{rows}</table>"
    )
