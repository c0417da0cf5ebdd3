"""The exposure score in plain words: what its number means (:func:`score_label`), the score explained
(:func:`explain_score`: the chance of being linked, what it rests on, what the audience would learn) and
the national-ID inference in one line (:func:`national_id_text`).
"""

from __future__ import annotations

from ..profiles import IdInference
from .link import LinkEstimate

AUDIENCE_PHRASE = {"stranger": "A stranger", "friend_of_friend": "A friend of a friend", "friend": "A friend"}


def national_id_text(nid: IdInference | None) -> str | None:
    """What the profile gives away of a national ID number, in one line (None without an inference)."""
    if nid is None:
        return None
    chance = (
        ""
        if nid.chance is None or nid.chance >= 1.0
        else (
            f", chance {nid.chance:.0%}"
            if nid.chance_range is None or nid.chance_range[0] == nid.chance_range[1]
            else f", chance {nid.chance_range[0]:.0%}-{nid.chance_range[1]:.0%}"
        )
    )
    space = f", about {nid.candidates:,} candidates left" if nid.candidates else ""
    return f"{nid.scheme}: {nid.derived or 'nothing derivable'}{chance}{space}"


def score_label(audience: str, score: float, score_range: tuple[float, float], link: LinkEstimate) -> str:
    """What a score's number means, in one line: the scenario that defines it."""
    lo, hi = score_range
    gain_past = any("extrapolated past" in n or "bounded scenario" in n for n in link.notes)
    head = (
        f"Exposure {lo:.0f} to {hi:.0f} / 100 (model value {score:.0f}"
        + (
            "; the upper end applies the gain from several photos where it was never measured: that many "
            "photos, that many people"
            if gain_past and audience != "friend"
            else ""
        )
        + ")"
        if f"{lo:.0f}" != f"{hi:.0f}"
        else f"Exposure {score:.0f} / 100"
    )
    if audience == "friend":
        return f"{head}: a friend knows you, so it is the share of what your profile reveals that they see"
    return (
        f"{head}: the chance that {AUDIENCE_PHRASE[audience].lower()} using the open 2017 model measured "
        f"here finds your profile among {link.gallery_size:,} people ({link.kind}; a lower bound for commercial "
        "engines), times the share of what your profile could reveal that they would then see"
    )


def _gain_caveat(notes: tuple[str, ...]) -> str:
    """Where the gain from several photos was not measured, said in the link sentence."""
    if any("extrapolated past" in n for n in notes):
        return (
            "; what so many photos add is extrapolated past the number measured, and at this gallery size it "
            "is a bounded scenario"
        )
    if any("bounded scenario" in n for n in notes):
        return "; what several photos add was measured on the real gallery only: here a bounded scenario"
    return ""


def link_sentence(audience: str, lk: LinkEstimate) -> str:
    """How a photo of you leads ``audience`` to your profile (or why it does not), in words."""
    if audience == "friend":
        return "A friend already knows who you are."
    if lk.photos == 0:
        return (
            f"{AUDIENCE_PHRASE[audience]} cannot see any photo of your face, so a photo of you "
            "does not lead them to your profile."
        )
    where = f"among the top {lk.k} candidates" if lk.k and lk.k > 1 else "at rank 1"
    # past what real pairs can check the data cannot pin the chance down: lead with the range
    chance = (
        f"with a probability the data cannot pin down: anywhere from {lk.lo:.0%} to {lk.hi:.0%} "
        f"(extrapolated; the model's own value is {lk.p:.0%})"
        if lk.kind == "extrapolated"
        else f"with probability {lk.p:.0%} (range {lk.lo:.0%}-{lk.hi:.0%}, {lk.kind})"
    )
    link = (
        f"{AUDIENCE_PHRASE[audience]} with a photo of you finds your profile {where} "
        f"{chance}: "
        f"{lk.photos} photo(s) of your face are visible to them, searched among {lk.gallery_size:,} "
        f"people (curve '{lk.curve}'; one photo alone: {lk.p_one_photo:.0%}" + _gain_caveat(lk.notes) + ")."
    )
    if lk.wrong_person is not None:
        wr = lk.wrong_person_range or (lk.wrong_person, lk.wrong_person)
        link += (
            f" The same search puts someone else first, under the match threshold, "
            f"{lk.wrong_person:.0%} of the time (range {wr[0]:.0%}-{wr[1]:.0%}): they may be led to the "
            "wrong person, a risk to that person."
        )
    return link


def explain_score(
    audience: str, score: float, score_range: tuple[float, float], link: LinkEstimate, learned: list[str]
) -> str:
    """The score in plain words: the number with its range, how the audience is led to your profile and
    what they would then learn (``learned``: the labels of what they see)."""
    lo, hi = score_range
    what = ("They would then learn: " + "; ".join(learned) + ".") if learned else "They would learn nothing more."
    if f"{lo:.0f}" == f"{hi:.0f}":
        head = f"Exposure {score:.0f}"
    elif link.kind == "extrapolated" and audience != "friend" and link.photos:
        head = f"Exposure up to {hi:.0f} (range {range_text(lo, hi)}; model value {score:.0f})"
    else:
        head = f"Exposure {score:.0f} (range {range_text(lo, hi)})"
    return f"{head}. {link_sentence(audience, link)} {what}"


def range_text(lo: float, hi: float) -> str:
    """A score range as whole numbers: '12-39', or one number when both ends round alike."""
    return f"{lo:.0f}" if f"{lo:.0f}" == f"{hi:.0f}" else f"{lo:.0f}-{hi:.0f}"
