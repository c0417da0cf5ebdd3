"""The report's plots as PNG bytes: CMC, DET, ROC, E2's capture levels, scaling, E3's exposure, the
demographic breakdown and E4's protection / quality frontier. matplotlib's object API only (no global
backend state); a rate a log axis cannot draw is said in a note on the plot."""

from __future__ import annotations

import io
import math

import numpy as np

from .formatting import e4_results, rate_pct


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
    from ..metrics import proportion_interval

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
                    f" {rate_pct(c['rate'])} ({c['events']}/{c['trials']:,})",
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


def _frontier_panel(ax, name: str, e4: dict, size, first: bool) -> None:
    """One transform's panel of E4's frontier: rank-1 (measured, and with this detector where it missed
    faces), the upper end at the first platform size, and the photo's hubness against SSIM."""
    base = e4["baseline"]
    pts = [r for r in e4["settings"] if r["transform"] == name]
    pts = [{"ssim": 1.0, "strength": "none", **{k2: base.get(k2) for k2 in ("rank1", "platform", "hub")}}] + sorted(
        pts, key=lambda r: -r["ssim"]
    )
    x = np.array([p["ssim"] for p in pts])
    y = np.array([p["rank1"]["rate"] for p in pts])
    lo = np.array([p["rank1"]["ci95"][0] for p in pts])
    hi = np.array([p["rank1"]["ci95"][1] for p in pts])
    line = "none" if name == "occlude" else "-"  # occluders are kinds, not a ladder: no line between them
    ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", ls=line, capsize=3, label="rank-1, real gallery (measured)")
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
    if first:
        ax.legend(fontsize=6.5, loc="lower left")


def countermeasures_plot(results: dict) -> bytes | None:
    """E4's protection / quality frontier: one panel per transform, rank-1 among the real gallery
    (measured, exact 95% intervals; and, where the detector missed faces, rank-1 as a platform running
    this detector would see it) and the upper end of rank-1 at the first platform size (extrapolated)
    against SSIM; the untransformed photo sits at SSIM 1."""
    e4 = e4_results(results)
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
        _frontier_panel(fig.add_subplot(rows_n, cols, k + 1), name, e4, size, k == 0)
    fig.suptitle(f"E4: protection against image quality (n = {e4['n_persons']} people)", fontsize=10)
    return _png(fig)
