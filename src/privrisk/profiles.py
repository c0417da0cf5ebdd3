"""Synthetic social-network profiles for the sample subjects, and what a face match reveals.

Every subject gets a seeded, synthetic profile: a pseudonym plus fields (birth date, hometown,
workplace, ...) each with a visibility level. Nothing here describes the real people in the
sample; the profiles only let the experiments ask "if a stranger can put a name to this face,
what do they learn next?", as Acquisti, Gross and Stutzman did with real Facebook profiles.

Default visibility distributions are documented in :data:`DEFAULT_VISIBILITY`; they are
assumptions (sources in the README), and the experiment config can override them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from .errors import ProfileError

#: Visibility levels, from most to least restricted, and who sees what.
LEVELS = ("only_me", "friends", "friends_of_friends", "public")
AUDIENCES = ("stranger", "friend_of_friend", "friend")
_MIN_LEVEL_SEEN = {"stranger": 3, "friend_of_friend": 2, "friend": 1}


def level_hidden_from(audience: str) -> str:
    """The least restrictive visibility level ``audience`` does not see ('friends_of_friends' for a
    stranger, 'friends' for a friend of a friend, 'only_me' for a friend)."""
    if audience not in _MIN_LEVEL_SEEN:
        raise ProfileError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    return LEVELS[_MIN_LEVEL_SEEN[audience] - 1]


#: Profile fields, in display order, with plain-language labels.
FIELDS = {
    "real_name": "real name",
    "profile_photo": "profile photo",
    "birth_date": "birth date (with year)",
    "hometown": "hometown / birthplace",
    "current_city": "current city",
    "workplace": "workplace",
    "school": "school or university",
    "interests": "interests and likes",
    "relationship_status": "relationship status",
    "email": "e-mail address",
    "phone": "phone number",
    "tagged_photos": "photos others tagged you in",
    "checkins": "check-ins (places you have been)",
    "current_location": "current location",
    "travel_plans": "posted travel plans",
}

#: P(visibility level) per field, in the order of LEVELS (only_me, friends, fof, public).
#: profile_photo and real_name follow the paper (profile photos public by default; ~90% of
#: profiles under real names); the rest are assumptions in the spirit of 2011-era defaults
#: (Stutzman, Gross & Acquisti 2013 report disclosure falling but far from zero).
DEFAULT_VISIBILITY = {
    "real_name": (0.10, 0.0, 0.0, 0.90),
    "profile_photo": (0.02, 0.03, 0.05, 0.90),
    "birth_date": (0.30, 0.35, 0.10, 0.25),
    "hometown": (0.15, 0.25, 0.15, 0.45),
    "current_city": (0.15, 0.25, 0.15, 0.45),
    "workplace": (0.25, 0.25, 0.15, 0.35),
    "school": (0.15, 0.20, 0.15, 0.50),
    "interests": (0.10, 0.25, 0.20, 0.45),
    "relationship_status": (0.30, 0.30, 0.10, 0.30),
    "email": (0.50, 0.35, 0.05, 0.10),
    "phone": (0.70, 0.25, 0.02, 0.03),
    "tagged_photos": (0.05, 0.35, 0.30, 0.30),
    "checkins": (0.20, 0.40, 0.15, 0.25),
    "current_location": (0.60, 0.25, 0.05, 0.10),
    "travel_plans": (0.40, 0.35, 0.10, 0.15),
}

#: Birth countries of the synthetic profiles: the paper's setting is a US campus; a share of
#: Korean-born profiles lets the report show the Korean resident registration number case.
DEFAULT_BIRTH_COUNTRIES = {"US": 0.80, "KR": 0.10, "GB": 0.10}

_US_STATES = ["PA", "NY", "CA", "OH", "NJ", "TX", "IL", "MA", "FL", "MI"]
_US_CITIES = {
    "PA": "Pittsburgh",
    "NY": "Buffalo",
    "CA": "San Jose",
    "OH": "Cleveland",
    "NJ": "Newark",
    "TX": "Austin",
    "IL": "Chicago",
    "MA": "Boston",
    "FL": "Tampa",
    "MI": "Detroit",
}
_KR_CITIES = ["Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju"]
_GB_CITIES = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff"]
_WORK = ["a hospital", "a bank", "a software company", "a school", "a law firm", "a restaurant", "a university lab"]
_SCHOOLS = ["Carnegie Mellon University", "University of Pittsburgh", "Penn State", "a community college"]
_INTERESTS = ["running", "jazz", "photography", "football", "cooking", "hiking", "video games", "poetry"]
_REL = ["single", "in a relationship", "married", "it's complicated"]
_TRAVEL = [
    "flying Seoul to Washington on the 12th at 9",
    "away at the lake house all next week",
    "visiting the US for work",
    "off to Lisbon from Friday for ten days",
]


@dataclass(frozen=True)
class Profile:
    subject_id: str
    pseudonym: str
    values: dict
    visibility: dict  # field -> level (one of LEVELS)
    public_photos: int = 0

    def visible_to(self, audience: str = "stranger") -> dict:
        """The fields (and values) ``audience`` can see."""
        floor = _MIN_LEVEL_SEEN[audience]
        return {f: self.values.get(f) for f in FIELDS if LEVELS.index(self.visibility[f]) >= floor}

    def to_user_profile(self) -> UserProfile:
        """This synthetic person's settings in the exposure score's terms."""
        return UserProfile(
            visibility=dict(self.visibility),
            public_photos_with_face=self.public_photos,
            tagged_photos_with_face=int(self.values["tagged_photos"].split()[0]),
            real_name_used=True,
            travel_plans_specific=any(ch.isdigit() for ch in self.values["travel_plans"]),
            birth_country=self.values["birth_country"],
            birth_year=int(self.values["birth_date"][:4]),
            hometown=self.values["hometown"],
        )


@dataclass(frozen=True)
class ProfileMix:
    """Who the synthetic people are: each field's visibility shares over :data:`LEVELS` (merged over
    :data:`DEFAULT_VISIBILITY`), the birth-country shares, and the day their ages count to."""

    visibility: dict | None = None
    birth_countries: dict | None = None
    today: dt.date = dt.date(2011, 8, 1)


def generate_profiles(
    subject_ids, seed: int, mix: ProfileMix | None = None, sexes: dict | None = None, ages: dict | None = None
) -> list[Profile]:
    """One seeded synthetic profile per subject, drawn from ``mix`` (default :class:`ProfileMix`).
    ``sexes`` and ``ages`` (subject -> value) are used when known, so the synthetic birth date agrees
    with the person's reported age."""
    mix = mix or ProfileMix()
    vis = DEFAULT_VISIBILITY | (mix.visibility or {})
    countries = mix.birth_countries or DEFAULT_BIRTH_COUNTRIES
    names, weights = list(countries), np.array(list(countries.values()), dtype=float)
    rng = np.random.default_rng(seed)
    out = []
    for k, sid in enumerate(subject_ids):
        country = names[rng.choice(len(names), p=weights / weights.sum())]
        age = int((ages or {}).get(sid) or rng.integers(19, 60))
        birth = mix.today - dt.timedelta(days=int(365.25 * age + rng.integers(0, 365)))
        values = _values(rng, k, sid, (country, birth), (sexes or {}).get(sid))
        visibility_levels = {f: LEVELS[rng.choice(4, p=np.asarray(vis[f]) / np.sum(vis[f]))] for f in FIELDS}
        photos = int(rng.integers(0, 60)) if visibility_levels["profile_photo"] == "public" else 0
        out.append(
            Profile(
                subject_id=sid,
                pseudonym=f"user{rng.integers(10_000, 99_999)}",
                values=values,
                visibility=visibility_levels,
                public_photos=photos,
            )
        )
    return out


def _values(rng: np.random.Generator, k: int, sid: str, born: tuple[str, dt.date], sex: str | None) -> dict:
    """The k-th person's field values, drawn from ``rng`` in a fixed order; ``born`` = (country, date)."""
    country, birth = born
    if country == "US":
        state = _US_STATES[rng.integers(len(_US_STATES))]
        hometown = f"{_US_CITIES[state]}, {state}"
    elif country == "KR":
        state, hometown = "", f"{_KR_CITIES[rng.integers(len(_KR_CITIES))]}, Korea"
    else:
        state, hometown = "", f"{_GB_CITIES[rng.integers(len(_GB_CITIES))]}, UK"
    return {
        "real_name": f"Person {sid}",
        "profile_photo": "face photo",
        "birth_date": birth.isoformat(),
        "hometown": hometown,
        "current_city": "Pittsburgh, PA",
        "workplace": _WORK[rng.integers(len(_WORK))],
        "school": _SCHOOLS[rng.integers(len(_SCHOOLS))],
        "interests": ", ".join(rng.choice(_INTERESTS, size=3, replace=False).tolist()),
        "relationship_status": _REL[rng.integers(len(_REL))],
        "email": f"person{sid}@example.org",
        "phone": f"+1-412-555-{1000 + k:04d}",
        "tagged_photos": f"{int(rng.integers(0, 200))} tagged photos",
        "checkins": "gym, coffee shop, office",
        "current_location": "downtown",
        "travel_plans": _TRAVEL[rng.integers(len(_TRAVEL))],
        "birth_country": country,
        "birth_state": state,
        "sex": sex or ("female" if rng.random() < 0.5 else "male"),
    }


#: Sources of the national-ID rules (cited in the README's exposure-score section).
ID_SOURCES = {
    "US SSN": (
        "Acquisti & Gross, 'Predicting Social Security numbers from public data', PNAS 106(27):10975-10980, "
        "2009; SSA: random assignment from 25 June 2011 (Kestenbaum, 'Consequences of SSN randomization')"
    ),
    "KR RRN": (
        "Resident registration number (Wikipedia, 'Resident registration number'); Ministry of the Interior "
        "and Safety: region digits replaced by random digits for numbers issued from 5 October 2020 "
        "(Asia Economy, 15 Oct 2020); region code table as published in Korean summaries (they differ by a "
        "few codes for Daegu, Gwangju, Daejeon: the ranges below take the union)"
    ),
}

#: Published SSN prediction rates by birth cohort (Acquisti & Gross 2009, Death Master File records):
#: (first year, last year, P(first 5 digits in one attempt), P(within two attempts) or None).
SSN_COHORTS = (
    (1989, 2003, 0.44, 0.60),  # "44% in a single attempt", "about 60% with two attempts" (born 1989-2003)
    (1973, 1988, 0.07, None),  # "7% of those born 1973-1988" in one attempt (two-attempt figure not published)
)

#: First two of the four region digits (RRN digits 8-9) by province or metropolitan city: an
#: inclusive range (or ranges). Unions where published tables disagree.
KR_REGION_CODES = {
    "seoul": ((0, 8),),
    "busan": ((9, 12),),
    "incheon": ((13, 15),),
    "gyeonggi": ((16, 25),),
    "gangwon": ((26, 34),),
    "chungbuk": ((35, 39),),
    "daejeon": ((40, 41),),
    "chungnam": ((40, 47),),
    "sejong": ((44, 44), (96, 96)),
    "jeonbuk": ((48, 54),),
    "gwangju": ((55, 56), (66, 66)),
    "jeonnam": ((55, 66),),
    "daegu": ((67, 69), (76, 80)),
    "gyeongbuk": ((67, 81),),
    "ulsan": ((85, 85), (90, 90)),
    "gyeongnam": ((81, 92),),
    "jeju": ((91, 95),),
}
_KR_WIDEST = max(sum(b - a + 1 for a, b in r) for r in KR_REGION_CODES.values())


def rrn_check_digit(first12: str) -> int:
    """The 13th digit of a Korean RRN issued before October 2020: (11 - sum(d_i * w_i) mod 11) mod 10
    with weights 2,3,4,5,6,7,8,9,2,3,4,5 over the first 12 digits."""
    if len(first12) != 12 or not first12.isdigit():
        raise ProfileError(f"RRN: expected 12 digits, got {first12!r}")
    total = sum(int(d) * w for d, w in zip(first12, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)))
    return (11 - total % 11) % 10


def kr_region_codes(hometown: str | None) -> tuple[tuple[int, int], ...] | None:
    """The region-digit ranges of a Korean city or province named in ``hometown`` (None if unknown)."""
    if not hometown:
        return None
    text = hometown.lower().replace("-", "").replace(" ", "")
    for name, ranges in KR_REGION_CODES.items():
        if name in text:
            return ranges
    return None


@dataclass(frozen=True)
class IdInference:
    """What a viewer can derive of a national ID number from the visible fields.

    ``scheme``, ``digits_predictable`` (digits a viewer can name, at the stated ``chance``),
    ``digits_total`` and ``reason`` are kept for older readers (E3, the trainer). New fields:

    - ``chance``: probability the named digits are right (None: not predictable at all);
      ``chance_range`` [lo, hi] (e.g. one attempt against two for the SSN);
    - ``derived``: which digits and how, in plain words; ``candidates``: how many numbers remain
      for the rest (None when not stated); ``secret_fraction``: expected share of the number's
      secret part (digits that are not simply the birth date or sex) a viewer can fix,
      log10(candidates) counted as digits, times ``chance``: what the exposure score uses;
    - ``plain``: the rule explained for a non-specialist; ``source``: where the figures come from.
    """

    scheme: str  # "US SSN" or "KR RRN"
    digits_predictable: int
    digits_total: int
    reason: str
    chance: float | None = None
    chance_range: tuple[float, float] | None = None
    derived: str = ""
    candidates: int | None = None
    secret_fraction: float = 0.0
    secret_fraction_range: tuple[float, float] = (0.0, 0.0)
    plain: str = ""
    source: str = ""


_SSN_RULE = (
    "Before 25 June 2011 the first 3 digits of a US Social Security number followed the state of the "
    "applicant's address and the next 2 were issued in a fixed order over time; since most people born "
    "from 1989 on got their number at birth, birth date and birth state let a stranger guess the first "
    "5 digits for many of them. Numbers issued since 25 June 2011 are random."
)
_RRN_RULE = (
    "A Korean resident registration number is 13 digits: 6 for the birth date, 1 for sex and century, "
    "4 for the region where the birth was registered (the first 2 of them name the province or "
    "metropolitan city), 1 serial digit, and 1 check digit computed from the other 12. Numbers issued "
    "from 5 October 2020 have random digits after the 7th."
)
_RRN_FIRST7 = "digits 1-6 (your birth date) and digit 7 (sex, seen in your photo, and century, from the birth year)"


def _ssn_none(reason: str, derived: str, plain: str) -> IdInference:
    """An SSN of which nothing can be derived; ``plain`` follows the rule in plain words."""
    return IdInference("US SSN", 0, 9, reason, derived=derived, plain=_SSN_RULE + plain, source=ID_SOURCES["US SSN"])


def _ssn(birth_year: int | None, birth_visible: bool, state_visible: bool) -> IdInference:
    if not (birth_visible and state_visible):
        return _ssn_none(
            "birth date or birth state hidden",
            "none: the guess needs both birth date and birth state",
            " Your birth date or birth state is hidden, so this does not apply.",
        )
    if birth_year is None:
        return _ssn_none(
            "birth year unknown", "none: birth year unknown", " Without your birth year the chance cannot be stated."
        )
    if birth_year >= 2011:
        why = (
            "born 2011 or later: numbers issued from 25 June 2011 are random"
            if birth_year > 2011
            else "born in 2011: numbers issued from 25 June 2011 are random (earlier 2011 births not covered by "
            "the published figures)"
        )
        return _ssn_none(why, "none", " " + why[0].upper() + why[1:] + ".")
    for first, last, p1, p2 in SSN_COHORTS:
        if first <= birth_year <= last:
            return _ssn_cohort(first, last, p1, p2)
    if 2003 < birth_year < 2011:
        p1, p2 = SSN_COHORTS[0][2], SSN_COHORTS[0][3]
        return IdInference(
            "US SSN",
            5,
            9,
            "birth date and birth state visible; born 2004-2010: assumed like the 1989-2003 cohort "
            "(assumption: the study's data end in 2003)",
            p1,
            (p1, p2),
            "first 5 of 9 digits at the 1989-2003 cohort's rate (assumption)",
            10**4,
            p1 * 5 / 9,
            (p1 * 5 / 9, p2 * 5 / 9),
            _SSN_RULE + f" The study's figures stop at people born in 2003; we assume the same chance ({p1:.0%} in "
            "one attempt) for 2004-2010 births.",
            ID_SOURCES["US SSN"],
        )
    return _ssn_none(
        f"born {birth_year}: before 1973 no prediction rate is published (numbers were "
        "issued at any age, from the address at the time, so birth data predict them poorly)",
        "none predictable",
        " You were born before 1973, when people got their number later in life; the "
        "study reports no useful prediction for that cohort.",
    )


def _ssn_cohort(first: int, last: int, p1: float, p2: float | None) -> IdInference:
    """An SSN of someone born in a published cohort: the first 5 digits at the cohort's rate."""
    hi = p2 if p2 is not None else p1
    frac = 5 / 9
    two = f", about {p2:.0%} within two attempts" if p2 is not None else ""
    return IdInference(
        "US SSN",
        5,
        9,
        f"birth date and birth state visible; born {first}-{last}: first 5 digits guessed in "
        f"one attempt for {p1:.0%} of that cohort{two} (Acquisti & Gross 2009)",
        p1,
        (p1, hi),
        f"first 5 of 9 digits (area and group number), right in one attempt for {p1:.0%} of people born "
        f"{first}-{last}{two}",
        10**4,
        p1 * frac,
        (p1 * frac, hi * frac),
        _SSN_RULE + f" For people born {first}-{last}, the study guessed the first 5 digits in one attempt "
        f"for {p1:.0%}{two}. That is a chance, not a certainty; the last 4 digits still leave 10,000 "
        "possibilities.",
        ID_SOURCES["US SSN"],
    )


def _rrn_id(digits: int, reason: str, derived: str, plain: str, candidates: int | None, secret: float) -> IdInference:
    """A Korean RRN of which ``digits`` are known for sure (chance 1, or 0 digits and no chance)."""
    known = digits > 0
    return IdInference(
        "KR RRN",
        digits,
        13,
        reason,
        1.0 if known else None,
        (1.0, 1.0) if known else None,
        derived,
        candidates,
        secret,
        (secret, secret),
        _RRN_RULE + plain,
        ID_SOURCES["KR RRN"],
    )


def _rrn(birth_year: int | None, birth_visible: bool, hometown_visible: bool, hometown: str | None) -> IdInference:
    if not birth_visible:
        return _rrn_id(
            0,
            "birth date hidden",
            "none: the birth date is hidden",
            " Your birth date is hidden, so nothing follows.",
            None,
            0.0,
        )
    if birth_year is not None and birth_year >= 2020:
        note = (
            "born 2020 or later: numbers issued from 5 October 2020 are random after digit 7"
            if birth_year > 2020
            else "born 2020: numbers issued from 5 October 2020 are random after digit 7"
        )
        plain = (
            " "
            + note[0].upper()
            + note[1:]
            + ": the first 7 digits repeat your birth date and sex, the rest cannot be derived."
        )
        return _rrn_id(7, note, _RRN_FIRST7 + "; the other 6 are random", plain, 10**6, 0.0)
    early = birth_year is not None and birth_year < 1975
    if hometown_visible and not early:
        return _rrn_hometown(kr_region_codes(hometown))
    why = (
        "registered before 1975: the region digits are the place of first registration, not the birthplace"
        if early and hometown_visible
        else "hometown hidden"
    )
    secret = 1 - math.log10(10**5) / 6  # only the check digit follows from the rest
    return _rrn_id(
        7,
        f"birth date and sex (from the face) visible; {why}",
        f"{_RRN_FIRST7}; digit 13 is the check digit",
        f" A stranger knows the first 7 digits from your birth date and sex ({why}); "
        "about 100,000 candidate numbers remain.",
        10**5,
        secret,
    )


def _rrn_hometown(ranges: tuple[tuple[int, int], ...] | None) -> IdInference:
    """A Korean RRN with birth date, sex and hometown region visible (registered from 1975 on)."""
    width = sum(b - a + 1 for a, b in ranges) if ranges else _KR_WIDEST
    where = (
        f"digits 8-9 in {' or '.join(f'{a:02d}-{b:02d}' for a, b in ranges)} ({width} values) from the hometown"
        if ranges
        else f"digits 8-9 narrowed to one province's range (at most {_KR_WIDEST} "
        "values; the hometown's code range is not in our table)"
    )
    candidates = width * 100 * 10  # digits 8-9 in the range, 10-11 and the serial digit 12 free
    secret = 1 - math.log10(candidates) / 6  # of digits 8-13
    return _rrn_id(
        7,
        "birth date, sex (from the face) and hometown region visible",
        f"{_RRN_FIRST7}; {where}; digit 13 is the check digit, computable once the first 12 are guessed",
        f" From your birth date, your sex and your hometown, a stranger knows the first 7 digits, "
        f"narrows the next 2 to {width} values, and computes the last one: about {candidates:,} candidate "
        "numbers remain (an upper bound: it lets digits 10-12 take any value).",
        candidates,
        secret,
    )


def national_id_inference(
    birth_country: str | None, birth_year: int | None, visible, hometown: str | None = None
) -> IdInference | None:
    """What a viewer who sees the fields in ``visible`` can derive of a national ID number.

    US SSN: a chance, by birth cohort, that the first 5 digits are guessed from birth date and
    birth state (Acquisti & Gross, PNAS 2009: 44% in one attempt and about 60% within two for
    people born 1989-2003; 7% in one attempt for 1973-1988; no published rate before 1973; random
    numbers from 25 June 2011). Korean RRN: digits 1-7 from birth date, sex and century; the first
    2 region digits as a range from a city or province hometown (not for people registered before
    1975); the check digit; the candidates left; random after digit 7 from 5 October 2020.
    ``visible`` is a set of field names, or a dict field -> value (then ``hometown`` defaults to
    its value). Other countries: None.
    """
    if hometown is None and isinstance(visible, dict):
        hometown = visible.get("hometown")
    birth_visible = "birth_date" in visible
    hometown_visible = "hometown" in visible
    if birth_country == "US":
        return _ssn(birth_year, birth_visible, hometown_visible)
    if birth_country == "KR":
        return _rrn(birth_year, birth_visible, hometown_visible, hometown)
    return None


# --- a person's own settings: the exposure score's input ------------------------------------------

PROFILE_SCHEMA = "privrisk.profile/1"
_PROFILE_KEYS = {
    "schema": str,
    "visibility": dict,
    "public_photos_with_face": int,
    "tagged_photos_with_face": int,
    "real_name_used": bool,
    "travel_plans_specific": bool,
    "birth_country": str,
    "birth_year": int,
    "hometown": str,
}


@dataclass(frozen=True)
class UserProfile:
    """A person's visibility settings and the facts that make them findable.

    ``visibility`` maps every field of :data:`FIELDS` to one of :data:`LEVELS`.
    """

    visibility: dict
    public_photos_with_face: int = 0
    tagged_photos_with_face: int = 0
    real_name_used: bool = True
    travel_plans_specific: bool = False
    birth_country: str = "US"
    birth_year: int | None = None
    hometown: str | None = None  # city or province (used for the Korean RRN region digits)

    def visible_to(self, audience: str) -> set[str]:
        """Fields ``audience`` (stranger, friend_of_friend, friend) can see."""
        if audience not in _MIN_LEVEL_SEEN:
            raise ProfileError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
        floor = _MIN_LEVEL_SEEN[audience]
        return {f for f, level in self.visibility.items() if LEVELS.index(level) >= floor}

    def with_change(self, **changes) -> UserProfile:
        """A copy with visibility levels (by field name) or other attributes changed."""
        vis = dict(self.visibility)
        other = {}
        for key, value in changes.items():
            if key in FIELDS:
                vis[key] = value
            else:
                other[key] = value
        return profile_from_dict({**self.to_dict(), **other, "visibility": vis})

    def to_dict(self) -> dict:
        return {
            "schema": PROFILE_SCHEMA,
            "visibility": dict(self.visibility),
            "public_photos_with_face": self.public_photos_with_face,
            "tagged_photos_with_face": self.tagged_photos_with_face,
            "real_name_used": self.real_name_used,
            "travel_plans_specific": self.travel_plans_specific,
            "birth_country": self.birth_country,
            "birth_year": self.birth_year,
            "hometown": self.hometown,
        }


def profile_from_dict(data: dict, where: str = "profile") -> UserProfile:
    """Validate and build a :class:`UserProfile`; fields missing from ``visibility`` are 'only_me'.

    Raises :class:`ProfileError` naming the bad key and the allowed values."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a JSON object")
    for key, value in data.items():
        if key not in _PROFILE_KEYS:
            raise ProfileError(f"{where}: unknown key {key!r} (allowed: {', '.join(_PROFILE_KEYS)})")
        kind = _PROFILE_KEYS[key]
        if value is None and key in ("birth_year", "hometown"):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProfileError(f"{where}: {key}: expected {kind.__name__}, got {value!r}")
    if data.get("schema", PROFILE_SCHEMA) != PROFILE_SCHEMA:
        raise ProfileError(f"{where}: schema: {data['schema']!r} is not {PROFILE_SCHEMA!r}")
    vis = {f: "only_me" for f in FIELDS}
    for field_name, level in (data.get("visibility") or {}).items():
        if field_name not in FIELDS:
            raise ProfileError(f"{where}: visibility.{field_name}: unknown field (allowed: {', '.join(FIELDS)})")
        if level not in LEVELS:
            raise ProfileError(f"{where}: visibility.{field_name}: {level!r} is not one of {', '.join(LEVELS)}")
        vis[field_name] = level
    for key in ("public_photos_with_face", "tagged_photos_with_face"):
        if data.get(key, 0) < 0 or data.get(key, 0) > 1_000_000:
            raise ProfileError(f"{where}: {key}: must be between 0 and 1,000,000, got {data[key]}")
    year = data.get("birth_year")
    if year is not None and not 1900 <= year <= 2030:
        raise ProfileError(f"{where}: birth_year: must be between 1900 and 2030, got {year}")
    town = data.get("hometown")
    if town is not None and (len(town) > 200 or not town.isprintable()):
        raise ProfileError(f"{where}: hometown: expected a printable place name of at most 200 characters")
    country = data.get("birth_country", "US")
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise ProfileError(
            f"{where}: birth_country: expected a two-letter country code like 'US' or 'KR', got {country!r}"
        )
    return UserProfile(
        visibility=vis,
        public_photos_with_face=data.get("public_photos_with_face", 0),
        tagged_photos_with_face=data.get("tagged_photos_with_face", 0),
        real_name_used=data.get("real_name_used", True),
        travel_plans_specific=data.get("travel_plans_specific", False),
        birth_country=country,
        birth_year=year,
        hometown=data.get("hometown"),
    )


def load_profile(path) -> UserProfile:
    """Read a profile JSON file; errors name the file, the key and the reason."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file not found") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    return profile_from_dict(data, where=str(path))


def _modal(field_name: str) -> str:
    probs = DEFAULT_VISIBILITY[field_name]
    return LEVELS[int(np.argmax(probs))]


#: Starting points for people who do not want to fill in every field.
PRESETS = {
    "platform_defaults": {
        "visibility": {f: _modal(f) for f in FIELDS},
        "public_photos_with_face": 10,
        "tagged_photos_with_face": 20,
        "real_name_used": True,
    },
    "everything_public": {
        "visibility": {f: "public" for f in FIELDS},
        "public_photos_with_face": 50,
        "tagged_photos_with_face": 50,
        "real_name_used": True,
        "travel_plans_specific": True,
    },
    "hardened": {
        "visibility": {
            f: ("friends" if f in ("profile_photo", "real_name", "tagged_photos", "school", "interests") else "only_me")
            for f in FIELDS
        },
        "public_photos_with_face": 0,
        "tagged_photos_with_face": 20,
        "real_name_used": True,
    },
}
