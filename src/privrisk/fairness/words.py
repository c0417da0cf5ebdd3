"""Demographic differentials in plain words: the same- vs cross-group table and the lay summary
the trainer page shows, from :func:`privrisk.fairness.analyse`'s result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .cells import tkey


def same_cross_table(result: Mapping, attribute: str | None = None) -> list[dict]:
    """Rows of the overall same-group / cross-group FMR table for ``attribute`` (default: the
    combined attribute when present, else the first), one row per split and threshold."""
    attrs = result.get("attributes") or {}
    if not attrs:
        return []
    attribute = attribute or next((a for a in attrs if "+" in a), next(iter(attrs)))
    rows = []
    for split in ("same", "cross"):
        for t, c in attrs[attribute]["fmr_overall"][split].items():
            rows.append({"attribute": attribute, "split": split, "threshold": float(t)} | c)
    return rows


def _pct_words(x: float) -> str:
    p = 100 * x
    return "0%" if p == 0 else (f"{p:.0f}%" if p >= 10 else f"{p:#.2g}".rstrip(".") + "%")


def plain_words(result: Mapping) -> dict:
    """The differential in plain words for a lay audience (the trainer page): who gets mistaken for
    someone else more often, and why that matters when a stranger searches a platform. Every number
    is measured and comes with its count; small groups are said to be small."""
    attrs = result.get("attributes") or {}
    t = float(result["operating_threshold"])
    key = tkey(t)
    out: dict[str, Any] = {
        "source": (
            f"measured on {result['n_subjects']} consenting people's photos (every photo against every "
            f"other person's photo, {result['n_impostor_pairs']:,} pairs), face matcher threshold {t:g}"
        ),
        "threshold": t,
        "same_vs_cross": None,
        "by_group": [],
        "why": None,
    }
    if not attrs:
        out["note"] = result.get("note") or "no group columns: no differential can be measured"
        return out
    out["same_vs_cross"] = _same_vs_cross(attrs, key)
    out["by_group"] = [s for name, at in attrs.items() if (s := _group_sentence(name, at, key, result))]
    out["why"] = (
        "A stranger who searches a platform with your photo gets the closest faces back. If faces like "
        "yours are mistaken for each other more often, you are more likely to be 'identified' as someone "
        "you are not, and someone else's name, address or history gets attached to you, or yours to them. "
        "The bigger the platform, the more look-alikes it holds, so the gap grows with its size."
    )
    return out


def _same_vs_cross(attrs: Mapping, key: str) -> str | None:
    """Same- against cross-group false matches of the finest attribute, in one sentence."""
    main = next((a for a in attrs if "+" in a), next(iter(attrs)))
    same, cross = attrs[main]["fmr_overall"]["same"][key], attrs[main]["fmr_overall"]["cross"][key]
    label = " and ".join(main.split("+"))
    if same["rate"] is None or cross["rate"] is None:
        return None
    return (
        f"Two different people who share their {label} were mistaken for each other in "
        f"{_pct_words(same['rate'])} of comparisons ({same['events']} of {same['trials']:,}; 95% interval "
        f"{_pct_words(same['ci95'][0])} to {_pct_words(same['ci95'][1])}). People who differ in {label}: "
        f"{_pct_words(cross['rate'])} ({cross['events']} of {cross['trials']:,}; 95% "
        f"{_pct_words(cross['ci95'][0])} to {_pct_words(cross['ci95'][1])})."
    )


def _group_sentence(name: str, at: Mapping, key: str, result: Mapping) -> str | None:
    """The groups of one (single) attribute matched to someone else most and least often, or None."""
    if "+" in name:
        return None
    cells = {g: c[key] for g, c in at["fpir"].items() if c[key]["rate"] is not None}
    big = {g: c for g, c in cells.items() if c["subjects"] >= result["small_subjects"]}
    cells = big if len(big) >= 2 else cells
    if len(cells) < 2:
        return None
    hi = max(cells, key=lambda g: (cells[g]["rate"], g))
    lo = min(cells, key=lambda g: (cells[g]["rate"], g))
    if cells[hi]["rate"] == cells[lo]["rate"]:
        return None

    def who(g):
        c = cells[g]
        small = ", few people: indicative only" if c["flag"] else ""
        return (
            f"{_pct_words(c['rate'])} of the time for people recorded as {g.replace('_', ' ')} "
            f"({c['events']} of {c['subjects']} people{small})"
        )

    overlap = cells[hi]["ci95"][0] <= cells[lo]["ci95"][1]
    return (
        f"By {name}: searched among everyone else's photos, a face was matched to someone "
        f"else {who(hi)}, against {who(lo)}."
        + (" The 95% intervals overlap: this sample shows no clear difference." if overlap else "")
    )
