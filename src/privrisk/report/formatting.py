"""How the report writes a number: rates with their exact intervals and n, TPIR cells (or the bound
that replaces an unresolvable one), ranges labelled by kind, and the look-ups into results.json the
sections share."""

from __future__ import annotations

import math


def fpir_keys(results: dict) -> list[str]:
    """The configured FPIR targets as results.json keys them (``f"{fpir:g}"``), in config order."""
    e1 = results["experiments"]["online_to_online"]
    keys = [f"{float(f):g}" for f in (results.get("config") or {}).get("fpir", [])]
    return [k for k in keys if k in e1["tpir_at_fpir"]] or list(e1["tpir_at_fpir"])


def fpir_label(key: str) -> str:
    """An FPIR key as a percentage label ('0.01' -> '1%', '0.001' -> '0.1%')."""
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
            return f"FPIR<={fmt(bound, True)}*"
        return (
            f"not resolvable: FPIR <= {fmt(bound, True)} (one-sided 95% upper bound, {entry['n_false_alarms']} "
            f"of {entry['n_nonmated']} non-mated; FPIR {fpir_label(key)} needs {entry['n_nonmated_needed']})"
        )
    ci = entry.get("tpir_ci95") or [None, None]
    if short:
        return fmt(entry["tpir"], True)
    return (
        f"{fmt(entry['tpir'], True)} (95% CI {fmt(ci[0], True)}-{fmt(ci[1], True)}, "
        f"n={entry.get('n_mated', m.get('n_mated'))})"
    )


def unresolvable(m: dict, key: str) -> bool:
    """Whether the non-mated probes are too few to resolve the FPIR ``key``."""
    return (m.get("tpir_at_fpir") or {}).get(key, {}).get("resolvable") is False


def tpir_html_cell(m: dict, key: str) -> str:
    """A table cell for TPIR at ``key``: an unresolvable one is short (``FPIR<=x*``); the note under the
    table (:func:`unresolvable_note`) says once what the star means, instead of in every row."""
    return tpir_cell(m, key, short=unresolvable(m, key))


def unresolvable_note(ms: list[dict], keys: list[str]) -> str:
    """One HTML note for the table's unresolvable TPIR cells, or "" when there are none."""
    needed = {
        k: next(m["tpir_at_fpir"][k]["n_nonmated_needed"] for m in ms if unresolvable(m, k))
        for k in keys
        if any(unresolvable(m, k) for m in ms)
    }
    if not needed:
        return ""
    targets = ", ".join(f"FPIR {fpir_label(k)} needs {n:,}" for k, n in needed.items())
    return (
        f"<p>* Not resolvable: too few non-mated searches for that target ({targets}). Shown instead is the "
        "one-sided 95% upper bound on the FPIR the threshold reached.</p>"
    )


def rate_ci(m: dict, key: str) -> str:
    """A rate with its exact 95% interval in brackets, as percentages."""
    ci = m.get(f"{key}_ci95") or [None, None]
    return f"{fmt(m.get(key), True)} [{fmt(ci[0], True)}-{fmt(ci[1], True)}]"


def kn(r: dict | None) -> str:
    """' (k of n)' for a :func:`privrisk.metrics.rate` dict, empty when absent."""
    return f" ({r['k']} of {r['n']})" if r else ""


def fmt(x, pct=False):
    """A number for the page: a percentage, three significant digits, or 'n/a' for a missing one."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.1%}" if pct else (f"{x:.3g}" if isinstance(x, float) else str(x))


def curves_of(results: dict):
    """The run's identification curves (None without a scaling study)."""
    from ..exposure import IdentificationCurves

    curves = (results.get("scaling_detail") or {}).get("curves") or {}
    return IdentificationCurves(curves, source="this run") if curves else None


def ci_text(ci) -> str:
    """An interval as 'lo-hi' percentages, or 'n/a'."""
    return "n/a" if not ci or ci[0] is None else f"{fmt(ci[0], True)}-{fmt(ci[1], True)}"


def rate_pct(x: float | None) -> str:
    """A rate as a percentage with two significant digits (0.0256 -> '2.6%', 0.0018 -> '0.18%', 1 -> '100%')."""
    if x is None or not math.isfinite(x):
        return "n/a"
    p = 100 * x
    if p == 0:
        return "0%"
    if p >= 10:
        return f"{p:.0f}%"
    return f"{p:#.2g}".rstrip(".") + "%"


def detector_cell(d: dict, key: str) -> str:
    k, n, ci = d[f"{key}_k"], d[f"{key}_n"], d.get(f"{key}_ci95")
    if not n:
        return "n/a"
    return f"{k / n:.1%} ({k}/{n}; 95% CI {ci_text(ci)})"


def pct_range(v, rng, kind: str | None = None) -> str:
    """A rate with its range; an extrapolated one leads with the range, because past what the real
    pairs can check the data cannot pin a value down (the model's own value follows, in brackets)."""
    if v is None:
        return "n/a"
    if not rng:
        return f"{v:.1%}"
    if kind == "extrapolated":
        return f"{rng[0]:.1%}-{rng[1]:.1%} (model value {v:.1%})"
    return f"{v:.1%} ({rng[0]:.1%}-{rng[1]:.1%})"


def e4_results(results: dict) -> dict | None:
    """E4's results, or None when the run did not include it."""
    return (results.get("experiments") or {}).get("countermeasures")
