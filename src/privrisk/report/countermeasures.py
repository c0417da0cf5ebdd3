"""E4 in the report: what each countermeasure setting does to identification and image quality, per
transform where rank-1 falls below 50% and the cheapest setting under each target, the ranking at equal
SSIM, and the adversarial cloak."""

from __future__ import annotations

import html

from .formatting import e4_results


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


def _setting_row(r: dict, label: str, sizes: list) -> str:
    """One setting's row: quality cost, detection, identification measured and at platform sizes."""
    e = html.escape
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


def _label_of(r: dict) -> str:
    """A setting's name, with why it works when only the detector's misses make it work."""
    label = r.get("label") or f"{r['transform']} {r['strength']}"
    hidden = r.get("works_only_because_the_detector_misses")
    return f"{label} ({hidden})" if hidden else label


def _transform_row(name: str, s: dict) -> str:
    """Per transform: what its strength means, the trend along the frontier, where rank-1 falls below 50%
    and the cheapest setting under each platform target."""
    e = html.escape
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
    return (
        f"<tr><td>{e(name)}</td><td>{e(s['strength_means'])}</td><td>{e(trend)}</td><td>{e(below)}</td>"
        f"<td>{'<br>'.join(e(c) for c in cheap)}</td></tr>"
    )


def _ranking_html(e4: dict) -> str:
    """Transforms ordered by the lowest rank-1 each reaches at each SSIM level."""
    e = html.escape
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
    return "".join(ranking)


def countermeasures_section(results: dict) -> str:
    """E4's report section ('' when E4 did not run): every setting with its identification and
    quality cost, per transform the strength where rank-1 falls below 50% and the cheapest setting
    under each platform target, and the ranking of transforms at equal SSIM."""
    e4 = e4_results(results)
    if not e4:
        return ""
    e = html.escape
    sizes = list(e4["baseline"]["platform"])
    head = "".join(f"<th>rank-1 among {int(s):,}</th>" for s in sizes)
    settings = _setting_row(e4["baseline"], "none (the original photo)", sizes) + "".join(
        _setting_row(r, _label_of(r), sizes) for r in e4["settings"]
    )
    summary = [_transform_row(name, s) for name, s in e4["transforms"].items()]
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
{_ranking_html(e4)}
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
