"""Findability by scenario: who searches, among how many, with what photo, and how they decide.

A scenario is four choices:

- **who searches**: a stranger with three street snapshots of you fused (E2's "street" level by
  default, 3 captures combined: each face about 40 pixels wide, blurred and compressed) or a friend of
  a friend with a second studio photo from the same session (E1: easier than two web photos);
- **among how many**: a town (10^4), a city (10^6), a country (10^8), the web (10^9), or a number
  given;
- **with which recogniser** (the attacker): the open 2017 model measured here (dlib; its figures
  are a lower bound for what commercial engines achieve) or a published one
  (``sample_data/published_attackers.json``, each figure with its table and conditions);
- **how they decide**: automatically (the top candidate is taken as you) or a person reviewing the
  top 10 candidates by eye, who misses a true match at a published rate (White et al. 2014: passport
  officers wrongly rejected 6% of valid photos; a 1-to-1 task, so on 10 candidates an upper end).

Each scenario gives ``p_found`` as ``[lo, hi]``, its kind (measured / modelled / extrapolated from
the sample here; published; published bound; not covered), its source and one plain sentence. A
published profile that does not cover a condition says "not covered"; no figure is borrowed from
another source or condition. The only derivation from a published figure is a bound that follows
from it by itself: rank-1 can only rise in a smaller gallery and fall in a larger one, and the
chance of being among the top 10 is at least the chance of being first.

:func:`first_screen` turns the scenarios into at most five plain sentences: the verdict in words
(which follow the numbers), the numbers, and what would change them.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError
from .exposure.curves import IdentificationCurves

__all__ = [
    "ATTACKERS",
    "SIZES",
    "Scenario",
    "ScenarioGrid",
    "facts_sentence",
    "first_screen",
    "load_published",
    "scenarios",
    "verdict_word",
]

#: The gallery sizes every answer covers, with the words a person reads.
SIZES = {
    10_000: "a town's people",
    1_000_000: "a city's people",
    100_000_000: "a country's people",
    1_000_000_000: "everyone on the web",
}
#: who searches -> (their photo of you: identification curve, words)
WHO = {
    "stranger": (
        "offline_to_online/street",
        "three street snapshots fused (E2's 'street' level, 3 captures combined; each face about 40 pixels wide, "
        "blurred and compressed)",
    ),
    "friend_of_friend": (
        "online_to_online",
        "a second studio photo from the same session (E1; easier than two web photos)",
    ),
}
WHO_WORDS = {"stranger": "A stranger", "friend_of_friend": "A friend of a friend"}
DECISIONS = {
    "automatic": "takes the top candidate as you",
    "review_top10": "checks the top 10 candidates by eye",
}
OPEN_MODEL = "open_model_measured_here"
#: built-in attackers, strongest documented first
ATTACKERS = ("nist_frvt_2019", "megaface_strongest_documented", "megaface_2016", OPEN_MODEL)
OPEN_MODEL_LABEL = "the open 2017 model measured here (dlib; a lower bound for commercial engines)"
_KIND = {"measured": "measured", "modelled": "modelled", "simulated": "modelled", "extrapolated": "extrapolated"}


@lru_cache(maxsize=4)
def _read_published(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: published attacker profiles unreadable ({exc})") from None


def load_published(path: str | Path | None = None) -> dict:
    """The published attacker profiles (``sample_data/published_attackers.json`` by default)."""
    if path is None:
        from .samples import sample_data_dir

        path = sample_data_dir() / "published_attackers.json"
    return _read_published(str(path))


@dataclass(frozen=True)
class Scenario:
    who: str
    attacker: str
    gallery_size: int
    snapshot: str
    decision: str
    p_found: tuple[float, float] | None  # None: not covered
    kind: str  # measured / modelled / extrapolated / published / published bound / not covered
    source: str
    sentence: str
    value: float | None = None  # the central value where one exists (the model's fit, the published figure)
    photo: str = ""  # the searcher's photo of you, in words
    range_spans: str | None = None  # what p_found's range spans (None: not covered)

    @property
    def attacker_label(self) -> str:
        return OPEN_MODEL_LABEL if self.attacker == OPEN_MODEL else self.attacker.replace("_", " ")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attacker_label"] = self.attacker_label
        d["p_found"] = list(self.p_found) if self.p_found is not None else None
        return d


def _pct(p: float) -> str:
    """A chance in words-ready form: whole percent, '<1%' and '>99%' at the ends."""
    if p <= 0:
        return "0%"
    if p < 0.005:
        return "under 1%"
    if p >= 1:
        return "100%"
    if p > 0.995:
        return "over 99%"
    return f"{p:.0%}"


def _range_words(lo: float, hi: float) -> str:
    return _pct(lo) if _pct(lo) == _pct(hi) else f"{_pct(lo)} to {_pct(hi)}"


def verdict_word(lo: float, hi: float) -> str:
    """The verdict in words, from the range: 'would likely' (even the low end is over half),
    'would likely not' (even the high end is under 10%), else 'might'."""
    if lo >= 0.5:
        return "would likely"
    if hi < 0.1:
        return "would likely not"
    return "might"


def _size_words(n: int) -> str:
    return SIZES.get(n, f"{n:,} people")


#: The share of true matches a person checking by eye rejects (White et al. 2014, passport officers,
#: live person against one photo: a 1-to-1 task, not a 10-candidate list). Read from
#: ``published_attackers.json`` (``human_review.miss``); this is the fallback when a file lacks it.
REVIEWER_MISS = 0.06
REVIEW_NOTE = (
    "published assumption: a reviewer who sees you among the 10 recognises you 94% of the time (passport "
    "officers wrongly rejected 6% of valid photos: White et al., PLoS ONE 2014, as reported by ABC Science; a "
    "1-to-1 task, a live person against one photo, so on a 10-candidate list the reviewer likely misses more "
    "and these figures are an upper end); the same officers accepted a wrong person's photo 14% of the time, "
    "a risk to that person"
)


def reviewer_miss(published: dict | None = None) -> float:
    """The published reviewer miss rate (``human_review.miss.value``), 0.06 if the file lacks it."""
    published = load_published() if published is None else published
    miss = published.get("human_review", {}).get("miss", {})
    return float(miss["value"]) if miss.get("found") and "value" in miss else REVIEWER_MISS


SPANS_MEASURED = "exact (Clopper-Pearson) 95% interval over the people counted (sampling only)"
SPANS_MODEL = (
    "envelope of two tail models (generalised Pareto and normal), each its point fit and the 2.5-97.5% quantiles "
    "of its subject-bootstrap refits; no end from the Gaussian distractor search"
)
SPANS_PUBLISHED = "the published figure itself (no interval published)"
SPANS_BOUND = (
    "a bound that follows from the published figure alone (rank-1 only rises in a smaller gallery and falls in a "
    "larger one; the top 10 holds you at least as often as the first place); the other end is the trivial limit"
)
SPANS_REVIEW = "; both ends times the reviewer's published hit rate (1 - miss rate; a 1-to-1 task: an upper end)"


@lru_cache(maxsize=2)
def _gpd_floor_note(path: str | None = None) -> str:
    """Where the generalised Pareto fits of the shipped tail model have a negative shape (a finite end
    point: no impostor pair closer than it, so rank-1 levels off at a floor), how many of them do."""
    try:
        if path is None:
            from .samples import sample_data_dir

            path = str(sample_data_dir() / "tail_model.json")
        models = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
        gpd = next(m for m in models if m.get("kind") == "gpd")
    except (OSError, ValueError, KeyError, StopIteration):
        return ""
    boot = gpd.get("bootstrap") or []
    neg = sum(1 for b in boot if float(b["a"]) < 0)
    point = float(gpd["params"]["a"])
    return (
        f"; at 10^8-10^9 the upper end rests on generalised Pareto fits with a negative shape (the point fit, "
        f"shape {point:.2f}, and {neg} of {len(boot)} bootstrap refits): such a fit has a finite end point, no "
        "impostor closer than it, so its rank-1 levels off at a floor instead of falling further; the floor is "
        "an artefact of the fit past any real pair"
        if point < 0 or neg
        else ""
    )


def _open_model(
    curves: IdentificationCurves,
    who: str,
    size: int,
    decision: str,
    photo_curve: str | None = None,
    miss: float = REVIEWER_MISS,
) -> Scenario:
    curve, photo = WHO[who]
    if photo_curve and photo_curve != curve:
        curve, photo = photo_curve, f"a photo at the '{photo_curve.split('/', 1)[-1]}' condition"
    k = 1 if decision == "automatic" else 10
    try:
        pt = curves.point(curve, size, k)
    except ConfigError as exc:  # a results file without this curve
        return Scenario(
            who, OPEN_MODEL, size, curve, decision, None, "not covered", f"not measured: {exc}",
            f"{WHO_WORDS[who]} with {photo}: not measured in {curves.source}.",
        )  # fmt: skip
    kind = _KIND.get(pt.kind, "extrapolated")
    lo, hi, value = pt.lo, pt.hi, pt.value
    what = "first" if k == 1 else "in the top 10 and recognise you"
    if k != 1:  # the reviewer's own misses (published assumption, see REVIEW_NOTE)
        lo, hi, value = lo * (1 - miss), hi * (1 - miss), value * (1 - miss)
    sentence = (
        f"{WHO_WORDS[who]} using {OPEN_MODEL_LABEL}, with {photo}, would find you {what} among "
        f"{_size_words(size)} with a chance of {_range_words(lo, hi)} ({kind} on the sample faces"
        + ("; past what the real pairs can check" if kind == "extrapolated" else "")
        + (f"; times {1 - miss:.0%}, a published reviewer's hit rate on a 1-to-1 task" if k != 1 else "")
        + ")"
        + (STREET_CAVEAT if curve.endswith("/street") else "")
        + "."
    )
    source = f"identification curve '{curve}' ({'rank-1' if k == 1 else 'rank-10'}) of {curves.source}"
    if decision == "review_top10":
        source += f"; {REVIEW_NOTE}"
    spans = SPANS_MEASURED if kind == "measured" else SPANS_MODEL
    if kind != "measured" and size >= 100_000_000:
        spans += _gpd_floor_note()
    if k != 1:
        spans += SPANS_REVIEW
    return Scenario(
        who, OPEN_MODEL, size, curve, decision, (lo, hi), kind, source, sentence, value, photo, spans
    )  # fmt: skip


def _published_figure(
    cells: dict, size: int, decision: str, miss: float
) -> tuple[float, float, str, str, float] | None:
    """(lo, hi, kind, words, figure) of a MegaFace-like profile's rank-1 ``cells`` at ``size``: the figure
    itself where it was published at that size, else a bound from a larger (rank-1 here is at least that) or,
    deciding automatically, a smaller published gallery (at most that); None where neither holds."""
    sizes = sorted(int(s) for s in cells)
    if size in sizes:
        v = float(cells[str(size)]["value"])
        if decision == "automatic":
            return v, v, "published", f"first with a chance of {_pct(v)} (published; no interval given)", v
        lo = v * (1 - miss)
        words = (
            f"among the top 10 and recognise you with a chance of at least {_pct(lo)} (its published rank-1 "
            f"times {1 - miss:.0%}, a published reviewer's hit rate on a 1-to-1 task)"
        )
        return lo, 1 - miss, "published bound", words, v
    below = [s for s in sizes if s > size]  # a larger published gallery: rank-1 here is at least that
    above = [s for s in sizes if s < size]
    if below:
        v = float(cells[str(min(below))]["value"])
        if decision == "automatic":
            words = f"first with a chance of at least {_pct(v)} (its rank-1 among {min(below):,}; a smaller gallery can only help the search)"
            return v, 1.0, "published bound", words, v
        lo = v * (1 - miss)
        words = (
            f"among the top 10 and recognise you with a chance of at least {_pct(lo)} (its rank-1 among "
            f"{min(below):,}, where a smaller gallery can only help, times {1 - miss:.0%}, a published "
            "reviewer's hit rate on a 1-to-1 task)"
        )
        return lo, 1 - miss, "published bound", words, v
    if above and decision == "automatic":
        v = float(cells[str(max(above))]["value"])
        words = f"first with a chance of at most {_pct(v)} (its rank-1 among {max(above):,}; a larger gallery can only hurt the search)"
        return 0.0, v, "published bound", words, v
    return None


def _published(prof: dict, name: str, who: str, size: int, decision: str, miss: float = REVIEWER_MISS) -> Scenario:
    curve, photo = WHO[who]
    label = prof.get("label", name)
    cite = prof.get("citation", "")
    if not prof.get("found"):
        why = prof.get("why_not_covered", "no figure found")
        return Scenario(
            who, name, size, curve, decision, None, "not covered", f"{cite}. Not covered: {why}",
            f"{WHO_WORDS[who]} using {label}: not covered (its figures could not be read in a stored source).",
        )  # fmt: skip
    # MegaFace-like profile: rank-1 at a tabulated size, for web photos only
    cells = prof.get("cells", {})
    if who != "friend_of_friend":  # its probes are web photos, not street snapshots
        return Scenario(
            who, name, size, curve, decision, None, "not covered",
            f"{cite}. Not covered: its probes are web photos of celebrities, not {photo}",
            f"{WHO_WORDS[who]} using {label}, with {photo}: not covered (it was tested on web photos only).",
        )  # fmt: skip
    figure = _published_figure(cells, size, decision, miss)
    if figure is None:
        return Scenario(
            who, name, size, curve, decision, None, "not covered", f"{cite}. Not covered at {size:,}",
            f"{WHO_WORDS[who]} using {label} among {_size_words(size)}: not covered.",
        )  # fmt: skip
    lo, hi, kind, words, v = figure
    where = "; ".join(f"{int(s):,}: {cells[str(s)]['where']}" for s in sorted(int(s) for s in cells))
    sentence = (
        f"{WHO_WORDS[who]} using {label}, with a web photo of you, would find you {words} among {_size_words(size)}."
    )
    source = f"{cite}. {prof.get('conditions', '')}. {where}"
    if decision == "review_top10":
        source += f"; {REVIEW_NOTE}"
    # value: the published figure itself only where the scenario is that figure; a bound holds no value
    return Scenario(
        who, name, size, prof.get("snapshot", "web photo"), decision, (lo, hi), kind,
        source, sentence, v if kind == "published" else None, "a web photo of you",
        (SPANS_PUBLISHED if kind == "published" else SPANS_BOUND) + (SPANS_REVIEW if decision == "review_top10" else ""),
    )  # fmt: skip


@dataclass(frozen=True)
class ScenarioGrid:
    """Which scenarios :func:`scenarios` lists: the searchers, the gallery sizes and the decisions."""

    who: tuple[str, ...] = tuple(WHO)
    sizes: tuple[int, ...] = tuple(SIZES)
    decisions: tuple[str, ...] = tuple(DECISIONS)


def scenarios(
    curves: IdentificationCurves,
    *,
    grid: ScenarioGrid = ScenarioGrid(),
    extra_size: int | None = None,
    published: dict | None = None,
    stranger_curve: str | None = None,
) -> list[Scenario]:
    """Every scenario of ``grid`` (by default all): each built-in attacker for each searcher, gallery size
    (and ``extra_size``, when given) and decision. ``stranger_curve`` (an identification curve, e.g.
    ``offline_to_online/webcam``) replaces the stranger's default street snapshot with another E2 level."""
    published = load_published() if published is None else published
    miss = reviewer_miss(published)
    all_sizes = sorted(set(int(s) for s in grid.sizes) | ({int(extra_size)} if extra_size else set()))
    out = []
    for w in grid.who:
        for size in all_sizes:
            for d in grid.decisions:
                for a in ATTACKERS:
                    if a == OPEN_MODEL:
                        out.append(_open_model(curves, w, size, d, stranger_curve if w == "stranger" else None, miss))
                    elif a in published["attackers"]:
                        out.append(_published(published["attackers"][a], a, w, size, d, miss))
    return out


def strongest(found: list[Scenario], who: str, size: int, decision: str) -> Scenario | None:
    """The strongest documented attacker that covers this scenario (the first in :data:`ATTACKERS`
    with a figure), or None."""
    for a in ATTACKERS:
        if a == OPEN_MODEL:
            continue
        for s in found:
            if (s.attacker, s.who, s.gallery_size, s.decision) == (a, who, size, decision) and s.p_found is not None:
                return s
    return None


#: the one in-sample check of the tail model on degraded captures fails (docs/answers.md)
STREET_CAVEAT = (
    "; caution: on street captures the tail model fails its one check on real faces (at 100 people it gives "
    "rank-1 66% where 82 real people give 79%), so it likely understates how findable you are"
)


def _pick(found: list[Scenario], attacker: str, who: str, size: int, decision: str) -> Scenario:
    for s in found:
        if (s.attacker, s.who, s.gallery_size, s.decision) == (attacker, who, size, decision):
            return s
    raise KeyError((attacker, who, size, decision))


def facts_sentence(facts) -> str:
    """One sentence of measured facts (:class:`privrisk.selfcheck.MeasuredFacts`) to lead a screen."""
    lo, hi = facts.share_ci95
    return (
        f"Measured first: your two photos are {facts.distance:.2f} apart, and {facts.n_impostor_closer:,} of the "
        f"{facts.n_impostor_pairs:,} pairs of photos of two different people measured here are as close "
        f"({facts.share:.1%}, exact 95% interval {lo:.1%} to {hi:.1%}, too narrow: it treats the pairs as "
        "independent though each person is in many)."
    )


def _lower_clause(open_fof: Scenario) -> str:
    """The open model's answer in the easier condition (a second studio photo), a lower bound."""
    if open_fof.p_found is None:
        return "the open 2017 model was not measured here on a second photo of you"
    return (
        f"in an easier condition, a second studio photo from the same session, the open 2017 model measured here "
        f"{verdict_word(*open_fof.p_found)} do so ({_range_words(*open_fof.p_found)}, {open_fof.kind}), a lower bound"
    )


def _stranger_sentence(open_str: Scenario, city: int) -> str:
    """The stranger's street snapshots with the open model, reviewed by eye; NIST's case not covered."""
    nist = "for commercial engines tested by the National Institute of Standards and Technology (NIST) that case is not covered, because their figures could not be read here"
    if open_str.p_found is None:
        return f"A stranger's street snapshots were not measured here; {nist}."
    lo, hi = open_str.p_found
    return (
        f"From a stranger's photos of you, {open_str.photo}, the same open model puts you among the top 10 of {city:,} and a "
        f"person checking them by eye recognises you with a chance of {_range_words(lo, hi)} ({open_str.kind}; "
        "the model likely understates this for blurred captures, and the reviewer's hit rate comes from a "
        f"one-to-one test); {nist}."
    )


def first_screen(
    found: list[Scenario],
    *,
    change: str | None = None,
    score: dict | None = None,
    facts=None,
    own_search: str | None = None,
) -> list[str]:
    """At most five sentences for a person: the measured facts about their photos when given
    (``facts``: :func:`privrisk.selfcheck.measured_facts`), the verdict in words (following the
    numbers), the numbers behind it with their kind, what the score means and what would change it.

    The verdict compares the strongest documented attacker (a friend of a friend's web photo, among a
    city's people) with the open model measured here (a stranger's street snapshot, same gallery).
    ``own_search`` (a clause: :func:`privrisk.selfcheck.search_clause`) replaces the open model's
    modelled answer for a second photo with the person's own search, so the screen never contradicts it."""
    city = 1_000_000
    strong = strongest(found, "friend_of_friend", city, "automatic")
    open_fof = _pick(found, OPEN_MODEL, "friend_of_friend", city, "automatic")
    open_str = _pick(found, OPEN_MODEL, "stranger", city, "review_top10")
    sentences = [facts_sentence(facts)] if facts is not None else []
    lower = own_search or _lower_clause(open_fof)
    if strong is not None and strong.p_found is not None:
        lo, hi = strong.p_found
        sentences.append(
            f"Someone with a web photo of you and the strongest face recogniser documented on the MegaFace benchmark "
            f"{verdict_word(lo, hi)} pick you first among a city's {city:,} people ({_range_words(lo, hi)}, "
            f"{strong.kind}, tested on celebrities' web photos); {lower}."
        )
    else:
        sentences.append(
            f"No published face recogniser covers a web photo among a city's {city:,} people here; {lower}."
        )
    sentences.append(_stranger_sentence(open_str, city))
    if score is not None:
        s_lo, s_hi = score["score_range"]
        extrapolated = any("extrapolated past" in n or "bounded scenario" in n for n in score.get("link_notes", ()))
        sentences.append(
            f"Your exposure score {_score_words(s_lo, s_hi)} out of 100: the chance that a stranger with "
            f"the open model finds your profile among {score['gallery_size']:,} people, times the share of what your "
            "profile could reveal that they would then see"
            + (
                f"; its upper end assumes your {score['usable_photos']} photos help as much as extra captures of one "
                "face did among the sample's people, a gain never measured for that many photos or among that many "
                "people"
                if extrapolated
                else ""
            )
            + "."
        )
    if change:
        sentences.append(f"What would lower it most: {change.rstrip('.')}.")
    return sentences[:5]


def _score_words(lo: float, hi: float) -> str:
    """'is 30' when both ends round to the same whole number, else 'runs from 12 to 39'."""
    return f"is {lo:.0f}" if round(lo) == round(hi) else f"runs from {lo:.0f} to {hi:.0f}"


def numbers_in(text: str) -> list[str]:
    """Every number a sentence shows (for the check that each matches the JSON)."""
    return re.findall(r"\d[\d,]*(?:\.\d+)?%?", text)


def percent_words(p: float) -> str:
    """How :func:`first_screen` writes a chance (exposed for tests and other faces)."""
    return _pct(p)
