"""E3 accretion: what a stranger learns from each re-identified person's synthetic profile after
E1's decision at the gallery threshold, and what wrong-person identifications attach to a face."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..config import ExperimentConfig
from ..profiles import FIELDS, IdInference, Profile, ProfileMix, generate_profiles, national_id_inference
from .common import Searches

__all__ = ["AccretionResult", "accretion"]


@dataclass(frozen=True)
class AccretionResult:
    """``experiments.accretion`` and the accretion table's rows (people re-identified, then
    wrong-person attributions)."""

    metrics: dict
    rows: list[dict]


@dataclass(frozen=True)
class _People:
    """Counts over the people correctly re-identified."""

    mated_people: list[int]
    identified: list[str]
    shares: list[float]
    n_fields: list[int]
    field_counts: dict[str, int]
    ssn: int
    rrn: int
    rows: list[dict]


def accretion(
    cfg: ExperimentConfig, names: list[str], searches: Searches, meta_by_subject: dict[str, dict]
) -> AccretionResult:
    """E3: what a stranger learns after E1's decision at the gallery threshold, counted per person.

    A person with several probes counts once, with the share of their probes that led to them. A
    probe whose top candidate is someone else under the threshold (a non-mated probe, or a mated
    probe matched to the wrong person) attaches that other person's profile to the probe's face:
    those wrong-person identifications are counted and what they attribute is listed."""
    profiles = _profiles(cfg, names, meta_by_subject)
    cand, dist = searches.cand, searches.dist
    truth = np.asarray(searches.truth)
    mated = np.asarray(searches.mated, bool)
    top = cand[:, 0]
    accepted = (top >= 0) & (dist[:, 0] <= cfg.gallery.threshold)
    correct = accepted & mated & (top == truth)
    wrong = accepted & (top != truth)
    people = _reidentified(profiles, names, truth, mated, correct)
    wrong_person, wrong_rows = _wrong_person(profiles, names, truth, mated, top, wrong)
    summary = _summary(people, profiles, mated, correct, wrong_person)
    return AccretionResult(summary, people.rows + wrong_rows)


def _profiles(cfg: ExperimentConfig, names: list[str], meta_by_subject: dict[str, dict]) -> dict[str, Profile]:
    """Everyone's seeded synthetic profile; self-reported age and sex are kept where given."""
    ages = {s: m.get("age") for s, m in meta_by_subject.items() if str(m.get("age", "")).isdigit()}
    sexes = {s: m.get("gender") for s, m in meta_by_subject.items() if m.get("gender") in ("female", "male")}
    return {
        p.subject_id: p
        for p in generate_profiles(
            names,
            seed=cfg.seed,
            mix=ProfileMix(
                visibility={k: tuple(v) for k, v in cfg.accretion.visibility.items()} or None,
                birth_countries=cfg.accretion.birth_countries or None,
            ),
            sexes=sexes,
            ages=ages,
        )
    }


def _learned_from(profiles: dict[str, Profile], sid: str) -> tuple[Profile, dict, IdInference | None]:
    prof = profiles[sid]
    visible = prof.visible_to("stranger")
    inference = national_id_inference(prof.values["birth_country"], int(prof.values["birth_date"][:4]), visible)
    return prof, visible, inference


def _reidentified(
    profiles: dict[str, Profile], names: list[str], truth: np.ndarray, mated: np.ndarray, correct: np.ndarray
) -> _People:
    """People correctly re-identified: the share of their probes that led to them, and what their
    profile shows a stranger."""
    mated_people = sorted(set(truth[mated].tolist()))
    rows, n_fields, ssn, rrn, shares = [], [], 0, 0, []
    field_counts = {f: 0 for f in FIELDS}
    identified = []
    for code_ in mated_people:
        own = truth == code_
        n_own, n_hit = int((own & mated).sum()), int((own & correct).sum())
        if not n_hit:
            continue
        sid = names[code_]
        identified.append(sid)
        shares.append(n_hit / n_own)
        prof, visible, inference = _learned_from(profiles, sid)
        learned = [f for f in visible if f != "profile_photo"]
        for f in visible:
            field_counts[f] += 1
        n_fields.append(len(learned))
        ssn += bool(inference and inference.scheme == "US SSN" and inference.digits_predictable >= 5)
        rrn += bool(inference and inference.scheme == "KR RRN" and inference.digits_predictable >= 7)
        rows.append(
            {
                "kind": "re-identified",
                "subject_id": sid,
                "attributed_to": sid,
                "pseudonym": prof.pseudonym,
                "probes": n_own,
                "probes_leading_here": n_hit,
                "birth_country": prof.values["birth_country"],
                "fields_learned": learned,
                "national_id": dataclasses.asdict(inference) if inference else None,
                "travel_plans_visible": "travel_plans" in visible,
            }
        )
    return _People(mated_people, identified, shares, n_fields, field_counts, ssn, rrn, rows)


def _wrong_person(
    profiles: dict[str, Profile],
    names: list[str],
    truth: np.ndarray,
    mated: np.ndarray,
    top: np.ndarray,
    wrong: np.ndarray,
) -> tuple[dict, list[dict]]:
    """Wrong-person identifications: counts and rates, and one row per (person, wrongly attached
    profile)."""
    wrong_rows: dict[tuple[str, str], dict] = {}
    wrong_fields, wrong_ids = {f: 0 for f in FIELDS}, 0
    n_wrong_fields = []
    for i in np.where(wrong)[0]:
        key = (names[truth[i]], names[top[i]])
        if key not in wrong_rows:
            prof, visible, inference = _learned_from(profiles, key[1])
            wrong_rows[key] = {
                "kind": "wrong person",
                "subject_id": key[0],
                "attributed_to": key[1],
                "pseudonym": prof.pseudonym,
                "probes": int((truth == truth[i]).sum()),
                "probes_leading_here": 0,
                "birth_country": prof.values["birth_country"],
                "fields_learned": [f for f in visible if f != "profile_photo"],
                "national_id": dataclasses.asdict(inference) if inference else None,
                "travel_plans_visible": "travel_plans" in visible,
            }
        row = wrong_rows[key]
        row["probes_leading_here"] += 1
        for f in row["fields_learned"]:
            wrong_fields[f] += 1
        n_wrong_fields.append(len(row["fields_learned"]))
        wrong_ids += row["national_id"] is not None
    n_wrong = int(wrong.sum())
    nm_people = sorted(set(truth[~mated].tolist()))
    wrong_people = {names[truth[i]] for i in np.where(wrong)[0]}
    wrong_person = {
        "n_probes_wrong": n_wrong,
        "nonmated": metrics.rate(int((wrong & ~mated).sum()), int((~mated).sum())),
        "mated": metrics.rate(int((wrong & mated).sum()), int(mated.sum())),
        "all_probes": metrics.rate(n_wrong, len(truth)),
        "people_with_a_wrong_identification": metrics.rate(len(wrong_people), len(set(truth.tolist()))),
        "nonmated_people_with_a_wrong_identification": metrics.rate(
            len(wrong_people & {names[c] for c in nm_people}), len(nm_people)
        ),
        "n_profiles_wrongly_attributed": len({k[1] for k in wrong_rows}),
        "mean_fields_wrongly_attributed": float(np.mean(n_wrong_fields)) if n_wrong_fields else 0.0,
        "field_attributed_share": {f: c / max(n_wrong, 1) for f, c in wrong_fields.items()},
        "national_id_wrongly_inferred": wrong_ids,
        "note": (
            "a probe whose top candidate is another person at distance <= the threshold: a stranger would attach "
            "that person's profile (the fields listed) to the probe's face"
        ),
    }
    return wrong_person, list(wrong_rows.values())


def _summary(
    people: _People, profiles: dict[str, Profile], mated: np.ndarray, correct: np.ndarray, wrong_person: dict
) -> dict:
    identified, shares, n_fields, ssn, rrn = people.identified, people.shares, people.n_fields, people.ssn, people.rrn
    n = max(len(identified), 1)
    countries = [profiles[s].values["birth_country"] for s in identified]
    return {
        "n_identified": len(identified),
        "n_people_identified": len(identified),
        "n_probes_identified": int(correct.sum()),
        "n_mated_people": len(people.mated_people),
        "n_mated_probes": int(mated.sum()),
        "people_identified": metrics.rate(len(identified), len(people.mated_people)),
        "probe_share_per_identified_person": {
            "mean": float(np.mean(shares)) if shares else None,
            "min": float(np.min(shares)) if shares else None,
            "median": float(np.median(shares)) if shares else None,
        },
        "n_profiles": len(profiles),
        "mean_fields_learned": float(np.mean(n_fields)) if n_fields else 0.0,
        "ssn_predictable_fraction": ssn / n,
        "ssn_predictable_fraction_of_us_born": ssn / max(countries.count("US"), 1),
        "rrn_predictable_fraction": rrn / n,
        "rrn_predictable_fraction_of_kr_born": rrn / max(countries.count("KR"), 1),
        "ssn_predictable": metrics.rate(ssn, len(identified)),
        "rrn_predictable": metrics.rate(rrn, len(identified)),
        "field_visible_share": {f: c / n for f, c in people.field_counts.items()},
        "wrong_person": wrong_person,
        "counting": "people, not probes: a person with several probes counts once",
        "note": "profiles are synthetic (seeded); identification is E1's decision at the gallery threshold",
    }
