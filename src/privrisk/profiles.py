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
from dataclasses import dataclass

import numpy as np

#: Visibility levels, from most to least restricted, and who sees what.
LEVELS = ("only_me", "friends", "friends_of_friends", "public")
AUDIENCES = ("stranger", "friend_of_friend", "friend")
_MIN_LEVEL_SEEN = {"stranger": 3, "friend_of_friend": 2, "friend": 1}

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
_US_CITIES = {"PA": "Pittsburgh", "NY": "Buffalo", "CA": "San Jose", "OH": "Cleveland", "NJ": "Newark",
              "TX": "Austin", "IL": "Chicago", "MA": "Boston", "FL": "Tampa", "MI": "Detroit"}
_KR_CITIES = ["Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju"]
_GB_CITIES = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff"]
_WORK = ["a hospital", "a bank", "a software company", "a school", "a law firm", "a restaurant", "a university lab"]
_SCHOOLS = ["Carnegie Mellon University", "University of Pittsburgh", "Penn State", "a community college"]
_INTERESTS = ["running", "jazz", "photography", "football", "cooking", "hiking", "video games", "poetry"]
_REL = ["single", "in a relationship", "married", "it's complicated"]
_TRAVEL = ["flying Seoul to Washington on the 12th at 9", "away at the lake house all next week",
           "visiting the US for work", "off to Lisbon from Friday for ten days"]


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


def generate_profiles(subject_ids, seed: int, visibility: dict | None = None,
                      birth_countries: dict | None = None, sexes: dict | None = None,
                      ages: dict | None = None, today: dt.date = dt.date(2011, 8, 1)) -> list[Profile]:
    """One seeded synthetic profile per subject. ``sexes`` and ``ages`` (subject -> value) are used
    when known, so the synthetic birth date agrees with the person's reported age."""
    vis = DEFAULT_VISIBILITY | (visibility or {})
    countries = birth_countries or DEFAULT_BIRTH_COUNTRIES
    names, weights = list(countries), np.array(list(countries.values()), dtype=float)
    rng = np.random.default_rng(seed)
    out = []
    for k, sid in enumerate(subject_ids):
        country = names[rng.choice(len(names), p=weights / weights.sum())]
        age = int((ages or {}).get(sid) or rng.integers(19, 60))
        birth = today - dt.timedelta(days=int(365.25 * age + rng.integers(0, 365)))
        if country == "US":
            state = _US_STATES[rng.integers(len(_US_STATES))]
            hometown = f"{_US_CITIES[state]}, {state}"
        elif country == "KR":
            state, hometown = "", f"{_KR_CITIES[rng.integers(len(_KR_CITIES))]}, Korea"
        else:
            state, hometown = "", f"{_GB_CITIES[rng.integers(len(_GB_CITIES))]}, UK"
        values = {
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
            "sex": (sexes or {}).get(sid) or ("female" if rng.random() < 0.5 else "male"),
        }
        visibility_levels = {f: LEVELS[rng.choice(4, p=np.asarray(vis[f]) / np.sum(vis[f]))] for f in FIELDS}
        photos = int(rng.integers(0, 60)) if visibility_levels["profile_photo"] == "public" else 0
        out.append(Profile(subject_id=sid, pseudonym=f"user{rng.integers(10_000, 99_999)}", values=values,
                           visibility=visibility_levels, public_photos=photos))
    return out


@dataclass(frozen=True)
class IdInference:
    """How much of a national ID number a viewer can predict from the visible fields."""

    scheme: str  # "US SSN" or "KR RRN"
    digits_predictable: int
    digits_total: int
    reason: str


def national_id_inference(profile: Profile, visible: dict) -> IdInference | None:
    """US SSN: first 5 digits follow birth date and birth state for numbers issued before the
    June 2011 randomisation (Acquisti & Gross, PNAS 2009). Korean RRN: the first 7 digits are the
    birth date plus a sex/century digit; for numbers issued before October 2020 the next 4 encode
    the region of first registration, so birth date, sex and hometown reveal up to 11 of 13."""
    country = profile.values.get("birth_country")
    birth_visible = "birth_date" in visible
    hometown_visible = "hometown" in visible
    year = int(profile.values["birth_date"][:4])
    if country == "US":
        if birth_visible and hometown_visible and year < 2011:
            return IdInference("US SSN", 5, 9, "birth date and birth state are visible; issued before 2011")
        return IdInference("US SSN", 0, 9, "birth date or birth state hidden")
    if country == "KR":
        if not birth_visible:
            return IdInference("KR RRN", 0, 13, "birth date hidden")
        if hometown_visible:
            return IdInference("KR RRN", 11, 13, "birth date, sex (from the face) and birthplace region visible")
        return IdInference("KR RRN", 7, 13, "birth date and sex (from the face) visible")
    return None
