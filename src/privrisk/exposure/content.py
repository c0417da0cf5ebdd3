"""What an audience learns from a profile: each visible field's sensitivity plus what the fields
reveal together (:data:`INFERENCES`), with no double counting (an inference tops its fields up to its
own value; the national-ID inference adds the secret part of the number), and the most any profile can
reveal (:func:`content_max`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..profiles import FIELDS, IdInference, UserProfile, national_id_inference
from .sensitivity import SENSITIVITY_SOURCES


@dataclass(frozen=True)
class InferenceRule:
    """What a group of fields reveals together. ``weight`` is the value of the whole combination for
    the top-up rule (fields and inference together), or, for ``national_id``, the value of knowing
    the ID number's whole secret part (an addition: those digits are not the fields themselves)."""

    label: str
    sources: tuple[str, ...]
    weight: float
    adds: bool  # True: adds weight * value on top of its fields; False: tops its fields up to weight * value
    source: str


#: The inferences. All weights are assumptions; the national-ID rules themselves are sourced.
INFERENCES = {
    "national_id": InferenceRule(
        "national ID digits derivable (US SSN by birth cohort; Korean RRN digits and candidates)",
        ("birth_date", "hometown"),
        1.0,
        True,
        "weight: assumption (the whole secret part of an ID number = 1.0); value: the expected share of the "
        "number's secret part a viewer can fix (rules: Acquisti & Gross, PNAS 2009; RRN structure)",
    ),
    "home_location": InferenceRule(
        "where to find you in person (city plus workplace or school)",
        ("current_city", "workplace", "school"),
        1.2,
        False,
        "assumption: city plus workplace or school together are worth 1.2, a little more than the city and "
        "workplace alone (1.0)",
    ),
    "absence_from_home": InferenceRule(
        "when your home is empty (dated travel plans)",
        ("travel_plans",),
        1.0,
        False,
        "assumption: dated travel plans are worth 1.0 in all; undated ones only the field's own 0.7",
    ),
}


@dataclass(frozen=True)
class FieldPart:
    """One field or inference of a score's breakdown: whether the audience learns it and what it adds."""

    field: str
    label: str
    visible: bool
    sensitivity: float
    points: float  # what this item adds to the score
    alone: float = 0.0  # what it would be worth counted alone (its separate contribution)
    source: str = ""


def content_max(sens: dict) -> float:
    """The most any profile can reveal: every field, and each inference at its largest value."""
    total = sum(sens.values())
    for rule in INFERENCES.values():
        total += rule.weight if rule.adds else max(0.0, rule.weight - sum(sens[f] for f in rule.sources))
    return total


def content(
    profile: UserProfile, visible: set, sens: dict
) -> tuple[float, float, float, tuple[FieldPart, ...], list[FieldPart], IdInference | None]:
    """(value, lo, hi, field parts, inference parts, ID inference) of what ``visible`` reveals."""
    learned = {f for f in visible if f != "real_name" or profile.real_name_used}
    parts = [
        FieldPart(
            f,
            label,
            f in learned,
            sens[f],
            sens[f] if f in learned else 0.0,
            sens[f] if f in learned else 0.0,
            SENSITIVITY_SOURCES[f],
        )
        for f, label in FIELDS.items()
    ]
    idinf = national_id_inference(profile.birth_country, profile.birth_year, visible, hometown=profile.hometown)
    id_val, id_lo, id_hi = (idinf.secret_fraction, *idinf.secret_fraction_range) if idinf else (0.0, 0.0, 0.0)
    values = {
        "national_id": (id_val, id_lo, id_hi),
        "home_location": (float("current_city" in learned and bool({"workplace", "school"} & learned)),) * 3,
        "absence_from_home": ((1.0 if profile.travel_plans_specific else 0.1) * ("travel_plans" in learned),) * 3,
    }
    inferences, adds = [], np.zeros(3)
    for name, rule in INFERENCES.items():
        fields_sum = sum(sens[f] for f in rule.sources if f in learned)
        trio = []
        for v in values[name]:
            trio.append(rule.weight * v if rule.adds else max(0.0, rule.weight * v - fields_sum))
        adds += trio
        inferences.append(
            FieldPart(
                name, rule.label, values[name][0] > 0, rule.weight, trio[0], rule.weight * values[name][0], rule.source
            )
        )
    base = sum(p.points for p in parts)
    return base + adds[0], base + adds[1], base + adds[2], tuple(parts), inferences, idinf
