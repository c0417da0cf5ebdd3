"""The report page and the run's files: results.json, probes.csv, accretion.csv, the plots and a
self-contained report.html, each written to a temp file beside its target and renamed into place, so a
reader (or a crash) never sees half a file."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from ..embeddings import EmbeddingCache, artifact_key
from ..fileio import atomic_write, json_default
from ..samples import ATTRIBUTION, ATTRIBUTION_URL
from .countermeasures import countermeasures_section
from .differentials import fairness_section
from .plots import make_plots
from .scaling import backtest_html, scaling_table_html, tail_validation_html
from .sections import (
    attacker_section,
    capture_levels_html,
    detector_table,
    first_screen_html,
    fusion_table,
    paper_section,
    stats_sections,
)
from .summary import plain_summary

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


_STYLE = """<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .6em;vertical-align:top;font-size:.92em}
th{background:#f3f3f3}figure{display:inline-block;margin:.5em}img{max-width:520px}
.first{font-size:1.1em;background:#eef5ff;padding:.8em;border-left:4px solid #58c}
.attr{background:#f7f7e8;padding:.6em;border-left:4px solid #bb8}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}</style>"""


def _figures_html(plots: dict[str, bytes]) -> str:
    """Every plot inline (base64 PNG), so the page needs no other file."""
    e = html.escape
    return "".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{e(name)}</figcaption></figure>"
        for name, png in plots.items()
    )


def render_html(results: dict, plots: dict[str, bytes]) -> str:
    """The self-contained report page: plain words first, then every experiment's section with its
    numbers, intervals and caveats, the plots, the scaling model and what reproduces the run."""
    sc = results["scaling_detail"]
    e = html.escape
    summary = "".join(f"<li>{e(line)}</li>" for line in plain_summary(results))
    versions = "".join(f"<li>{e(k)}: {e(str(v))}</li>" for k, v in results["versions"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>privrisk re-identification report</title>
{_STYLE}
</head><body>
<h1>Re-identification from faces: a reproduction of Acquisti, Gross &amp; Stutzman</h1>
{first_screen_html(results)}
<p class="attr">{e(ATTRIBUTION)} (<a href="{ATTRIBUTION_URL}">{ATTRIBUTION_URL}</a>). All subjects gave signed
consent. Profiles in E3 are synthetic; nothing in them describes the real people.</p>
<h2>In short</h2><ul class="summary">{summary}</ul>
{paper_section(results)}
{attacker_section(results)}
{stats_sections(results)}
{capture_levels_html(results)}
{detector_table(results)}
{fusion_table(results)}
{countermeasures_section(results)}
<h2>Plots</h2>{_figures_html(plots)}
{fairness_section(results)}
<h2>Scaling model</h2><p>{e(sc["model"])}</p>
{tail_validation_html(results)}
{backtest_html(results["scaling_detail"]["distractor_model"].get("backtest"))}
{scaling_table_html(results)}
<h2>Reproducibility</h2><p>seed {results["seed"]}; versions:</p><ul>{versions}</ul>
<details><summary>configuration</summary><pre>{e(json.dumps(results["config"], indent=2))}</pre></details>
</body></html>
"""


def write_outputs(
    out: Path, results: dict, per_probe: list[dict], accretion_rows: list[dict], cache: EmbeddingCache | None = None
) -> None:
    """Write every output of a run into ``out`` (each file atomically). With ``cache``, the plots of
    an earlier run with the same results (timings aside) and the same plotting code are reused."""
    plots = _plots(results, cache)
    for name, png in plots.items():
        atomic_write(out / name, png)
    results = _clean(results)
    results["outputs"] = sorted([*plots, "results.json", "probes.csv", "accretion.csv", "report.html"])
    atomic_write(out / "probes.csv", _csv(per_probe))
    atomic_write(out / "accretion.csv", _csv(accretion_rows))
    atomic_write(out / "report.html", render_html(results, plots))
    atomic_write(out / "results.json", json.dumps(results, indent=2, default=_json_default, allow_nan=False) + "\n")


def _plots(results: dict, cache: EmbeddingCache | None) -> dict[str, bytes]:
    """:func:`make_plots`, or its PNGs from the cache: keyed by the results without their timings,
    cache flags, versions and paths (no plot draws any of them) and by :func:`_plot_version`."""
    if cache is None:
        return make_plots(results)
    # through JSON first, so results computed in this run and results read back from a stage's cache
    # (numpy numbers, tuples and number keys become JSON's) give the same key
    key = artifact_key("plots", _plot_version(), _drawn(json.loads(json.dumps(results, default=json_default))))
    hit = cache.get_arrays(key)
    if hit is not None:
        return {str(name): hit[f"png{i}"].tobytes() for i, name in enumerate(hit["names"])}
    plots = make_plots(results)
    arrays = {f"png{i}": np.frombuffer(png, np.uint8) for i, png in enumerate(plots.values())}
    cache.put_arrays(key, {"names": np.array(list(plots), dtype=str), **arrays})
    return plots


#: what no plot draws and what changes between runs with the same numbers (the keys
#: scripts/compare_results.py sets aside, and the dataset's paths)
_NOT_DRAWN = {
    "versions", "date", "started", "finished", "machine", "path", "out", "host", "config_path", "report",
    "from_cache", "root", "gallery_manifest", "probe_manifest", "outputs",
}  # fmt: skip


def _drawn(x):
    """``x`` without :data:`_NOT_DRAWN` and timings (keys ending ``_s`` or naming a time, timing,
    seconds or elapsed)."""
    if isinstance(x, dict):
        return {k: _drawn(v) for k, v in x.items() if not _timing_or_not_drawn(str(k).lower())}
    if isinstance(x, (list, tuple)):
        return [_drawn(v) for v in x]
    return x


def _timing_or_not_drawn(key: str) -> bool:
    return key in _NOT_DRAWN or key.endswith("_s") or any(w in key for w in ("time", "timing", "second", "elapsed"))


def _plot_version() -> str:
    """The plotting code and matplotlib's version: a change to either makes new plots."""
    from importlib import metadata  # noqa: PLC0415

    digest = hashlib.sha256(metadata.version("matplotlib").encode())
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.read_bytes())
    digest.update((Path(__file__).resolve().parents[1] / "metrics.py").read_bytes())
    return digest.hexdigest()
