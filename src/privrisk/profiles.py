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

from .errors import ProfileError

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

    def to_user_profile(self) -> "UserProfile":
        """This synthetic person's settings in the exposure score's terms."""
        return UserProfile(visibility=dict(self.visibility), public_photos_with_face=self.public_photos,
                           tagged_photos_with_face=int(self.values["tagged_photos"].split()[0]),
                           real_name_used=True,
                           travel_plans_specific=any(ch.isdigit() for ch in self.values["travel_plans"]),
                           birth_country=self.values["birth_country"], birth_year=int(self.values["birth_date"][:4]))


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


def national_id_inference(birth_country: str | None, birth_year: int | None, visible) -> IdInference | None:
    """How much of a national ID a viewer who sees the fields in ``visible`` can predict.

    US SSN: the first 5 digits follow birth date and birth state for numbers issued before the
    June 2011 randomisation (Acquisti & Gross, PNAS 2009). Korean RRN: the first 7 digits are the
    birth date plus a sex/century digit (sex is visible from the face); for numbers issued before
    October 2020 the next 4 encode the region of first registration, so birth date and hometown
    reveal up to 11 of 13. Other countries: None.
    """
    birth_visible = "birth_date" in visible
    hometown_visible = "hometown" in visible
    if birth_country == "US":
        if birth_visible and hometown_visible and (birth_year is None or birth_year < 2011):
            return IdInference("US SSN", 5, 9, "birth date and birth state are visible; issued before 2011")
        return IdInference("US SSN", 0, 9, "birth date or birth state hidden")
    if birth_country == "KR":
        if not birth_visible:
            return IdInference("KR RRN", 0, 13, "birth date hidden")
        if hometown_visible and (birth_year is None or birth_year < 2020):
            return IdInference("KR RRN", 11, 13, "birth date, sex (from the face) and birthplace region visible")
        return IdInference("KR RRN", 7, 13, "birth date and sex (from the face) visible")
    return None


# --- a person's own settings: the exposure score's input ------------------------------------------

PROFILE_SCHEMA = "privrisk.profile/1"
_PROFILE_KEYS = {
    "schema": str, "visibility": dict, "public_photos_with_face": int, "tagged_photos_with_face": int,
    "real_name_used": bool, "travel_plans_specific": bool, "birth_country": str, "birth_year": int,
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

    def visible_to(self, audience: str) -> set[str]:
        """Fields ``audience`` (stranger, friend_of_friend, friend) can see."""
        if audience not in _MIN_LEVEL_SEEN:
            raise ProfileError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
        floor = _MIN_LEVEL_SEEN[audience]
        return {f for f, level in self.visibility.items() if LEVELS.index(level) >= floor}

    def with_change(self, **changes) -> "UserProfile":
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
        return {"schema": PROFILE_SCHEMA, "visibility": dict(self.visibility),
                "public_photos_with_face": self.public_photos_with_face,
                "tagged_photos_with_face": self.tagged_photos_with_face, "real_name_used": self.real_name_used,
                "travel_plans_specific": self.travel_plans_specific, "birth_country": self.birth_country,
                "birth_year": self.birth_year}


def profile_from_dict(data: dict, where: str = "profile") -> UserProfile:
    """Validate and build a :class:`UserProfile`; fields missing from ``visibility`` are 'only_me'.

    Raises :class:`ProfileError` naming the bad key and the allowed values."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a JSON object")
    for key, value in data.items():
        if key not in _PROFILE_KEYS:
            raise ProfileError(f"{where}: unknown key {key!r} (allowed: {', '.join(_PROFILE_KEYS)})")
        kind = _PROFILE_KEYS[key]
        if value is None and key == "birth_year":
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
    country = data.get("birth_country", "US")
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise ProfileError(f"{where}: birth_country: expected a two-letter country code like 'US' or 'KR', got {country!r}")
    return UserProfile(visibility=vis, public_photos_with_face=data.get("public_photos_with_face", 0),
                       tagged_photos_with_face=data.get("tagged_photos_with_face", 0),
                       real_name_used=data.get("real_name_used", True),
                       travel_plans_specific=data.get("travel_plans_specific", False),
                       birth_country=country, birth_year=year)


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
    "platform_defaults": {"visibility": {f: _modal(f) for f in FIELDS}, "public_photos_with_face": 10,
                          "tagged_photos_with_face": 20, "real_name_used": True},
    "everything_public": {"visibility": {f: "public" for f in FIELDS}, "public_photos_with_face": 50,
                          "tagged_photos_with_face": 50, "real_name_used": True, "travel_plans_specific": True},
    "hardened": {"visibility": {f: ("friends" if f in ("profile_photo", "real_name", "tagged_photos", "school",
                                                        "interests") else "only_me") for f in FIELDS},
                 "public_photos_with_face": 0, "tagged_photos_with_face": 20, "real_name_used": True},
}
