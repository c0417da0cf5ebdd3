"""Changes towards privacy: every setting that could hide something from an audience
(:func:`change_options`), the sets of up to three of them that lower the score most
(:func:`search_changes`, :func:`top_changes`) and each single change (:func:`single_changes`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

from ..profiles import AUDIENCES, FIELDS, LEVELS, UserProfile, level_hidden_from
from .curves import IdentificationCurves
from .scoring import Scorer

_AUDIENCE_OBJ = {"stranger": "strangers", "friend_of_friend": "friends of friends", "friend": "friends"}
#: suggestions read as restrictions: "Limit your current city to friends"
_LIMIT_PHRASE = {"only_me": "only you", "friends": "friends", "friends_of_friends": "friends and their friends"}
_PHOTO_SETTINGS = ("profile_photo", "public_photos_with_face", "tagged_photos")


@dataclass(frozen=True)
class Option:
    """One setting changed: ``key`` names the setting, ``change`` is what ``UserProfile.with_change`` takes."""

    key: str
    change: dict
    description: str


@dataclass(frozen=True)
class Change:
    """A set of settings changed together, with its effect on the chosen audience and on every audience."""

    description: str
    change: dict
    before: float
    after: float
    settings: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    after_range: tuple[float, float] | None = None
    effect: dict = dc_field(default_factory=dict)  # audience -> (before, after)
    before_high: float | None = None  # upper end of the score's range, before and after
    after_high: float | None = None

    @property
    def removed(self) -> float:
        """What the change takes off the score."""
        return self.before - self.after

    @property
    def drop(self) -> float:
        """What suggestions are ranked by: the drop of the score plus the drop of its upper end, so
        a change still counts where the score is near 0 but its range is not."""
        if self.before_high is not None and self.after_high is not None:
            high = self.before_high - self.after_high
        else:
            high = self.removed
        return self.removed + high

    @property
    def per_setting(self) -> float:
        return self.drop / max(len(self.settings), 1)

    def __str__(self) -> str:
        return f"{self.description}: {self.before:.0f} -> {self.after:.0f}"

    def to_dict(self) -> dict:
        return {
            "change": self.description,
            "steps": list(self.steps),
            "settings": self.change,
            "settings_changed": len(self.settings),
            "before": self.before,
            "after": self.after,
            "after_range": list(self.after_range) if self.after_range else None,
            "before_high": self.before_high,
            "after_high": self.after_high,
            "drop": self.drop,
            "drop_per_setting": self.per_setting,
            "effect": {a: {"before": b, "after": c} for a, (b, c) in self.effect.items()},
        }


def change_options(profile: UserProfile, audience: str) -> list[Option]:
    """Every single setting that, changed, could hide something from ``audience``.

    A field visible to the audience is moved to the least restrictive level the audience does not
    see ('friends of friends' hides it from strangers, 'friends' from friends of friends, 'only me'
    from friends): more restriction changes nothing for that audience."""
    target = level_hidden_from(audience)
    out = []
    for f, label in FIELDS.items():
        if LEVELS.index(profile.visibility[f]) > LEVELS.index(target):
            out.append(Option(f, {f: target}, f"Limit your {label} to {_LIMIT_PHRASE[target]}"))
    if profile.public_photos_with_face:
        out.append(
            Option(
                "public_photos_with_face",
                {"public_photos_with_face": 0},
                f"Limit the {profile.public_photos_with_face} public photos that show your face to friends",
            )
        )
    if profile.real_name_used:
        out.append(Option("real_name_used", {"real_name_used": False}, "Use a nickname instead of your real name"))
    if profile.travel_plans_specific:
        out.append(
            Option(
                "travel_plans_specific",
                {"travel_plans_specific": False},
                "Post travel plans without dates, or after you are back",
            )
        )
    return out


def _describe(options: tuple[Option, ...], available: list[Option], audience: str) -> str:
    photo_keys = {o.key for o in available if o.key in _PHOTO_SETTINGS}
    keys = {o.key for o in options}
    if photo_keys and photo_keys <= keys:
        rest = [o.description for o in options if o.key not in photo_keys]
        head = f"Hide every photo of your face from {_AUDIENCE_OBJ[audience]}"
        return "; ".join([head] + rest)
    return "; ".join(o.description for o in options)


def search_changes(
    profile: UserProfile,
    scorer: Scorer | IdentificationCurves,
    audience: str = "stranger",
    max_settings: int = 3,
) -> list[Change]:
    """Every set of up to ``max_settings`` changes that lowers ``audience``'s score, best first.
    ``scorer`` (:class:`~privrisk.exposure.scoring.Scorer`) says how a score is computed; curves alone
    stand for the default settings and the shipped multi-photo gain.

    The drop of a set is what it takes off the score plus what it takes off the score's upper end
    (:attr:`Change.drop`): where the score is near 0 but its range is not, hiding what remains
    still counts. Only sets where each change matters are kept (without any one of them the drop
    is smaller), and never one that leaves the score and its range unchanged. Order: the largest
    drop per setting changed first, then the largest drop, then fewer settings."""
    scorer = Scorer.of(scorer)
    options = change_options(profile, audience)
    first = scorer.score(profile, audience)
    before, before_hi = first.score, first.score_range[1]
    after: dict[tuple[int, ...], tuple[float, float]] = {(): (before, before_hi)}
    for size in range(1, max_settings + 1):
        for combo in itertools.combinations(range(len(options)), size):
            merged: dict = {}
            for j in combo:
                merged |= options[j].change
            s = scorer.score(profile.with_change(**merged), audience)
            after[combo] = (s.score, s.score_range[1])

    def drop(combo) -> float:
        a, a_hi = after[combo]
        return (before - a) + (before_hi - a_hi)

    out = []
    eps = 1e-9
    for combo, (a, a_hi) in after.items():
        if not combo or drop(combo) <= eps:
            continue
        if any(drop(tuple(x for x in combo if x != j)) >= drop(combo) - eps for j in combo):
            continue  # a change in this set adds nothing
        opts = tuple(options[j] for j in combo)
        merged = {}
        for o in opts:
            merged |= o.change
        out.append(
            Change(
                _describe(opts, options, audience),
                merged,
                before,
                a,
                tuple(o.key for o in opts),
                tuple(o.description for o in opts),
                before_high=before_hi,
                after_high=a_hi,
            )
        )
    out.sort(key=lambda c: (-round(c.per_setting, 9), -round(c.drop, 9), len(c.settings), c.description))
    return out


def _with_effects(profile: UserProfile, scorer: Scorer, audience: str, change: Change) -> Change:
    changed = profile.with_change(**change.change)
    effect = {a: (scorer.score(profile, a).score, scorer.score(changed, a).score) for a in AUDIENCES}
    after_range = scorer.score(changed, audience).score_range
    return replace(change, effect=effect, after_range=after_range)


def top_changes(
    profile: UserProfile,
    scorer: Scorer | IdentificationCurves,
    audience: str = "stranger",
    n: int = 3,
    max_settings: int = 3,
) -> list[Change]:
    """The ``n`` best sets of up to ``max_settings`` changes (see :func:`search_changes`), each with its
    effect on every audience. ``scorer`` (:class:`~privrisk.exposure.scoring.Scorer`) says how a score is
    computed; curves alone stand for the default settings and the shipped multi-photo gain. The first is
    the largest drop per setting changed. Skipped: a set that adds changes to an earlier suggestion
    without going lower than the suggestions so far, and a set as large as an earlier one with the same
    result. "Hide every photo of your face" is always shown when it is the largest drop of all (the main
    lever)."""
    scorer = Scorer.of(scorer)
    ranked = search_changes(profile, scorer, audience, max_settings)
    best: list[Change] = []
    for c in ranked:
        if len(best) == n:
            break
        if any(set(b.settings) < set(c.settings) and c.drop <= max(x.drop for x in best) + 1e-9 for b in best):
            continue  # an earlier suggestion plus more, and no larger drop than what is already suggested
        if any(
            len(b.settings) == len(c.settings) and abs(b.drop - c.drop) < 1e-9 and abs(b.after - c.after) < 1e-9
            for b in best
        ):
            continue  # an equivalent alternative (e.g. hide the name field / use a nickname)
        best.append(c)
    photos = [c for c in ranked if c.description.startswith("Hide every photo")]
    if photos and ranked and photos[0].drop >= max(c.drop for c in ranked) - 1e-9 and photos[0] not in best:
        best.append(photos[0])  # the main lever is always shown
    return [_with_effects(profile, scorer, audience, c) for c in best]


def single_changes(
    profile: UserProfile, scorer: Scorer | IdentificationCurves, audience: str = "stranger"
) -> list[Change]:
    """The score after each single change towards privacy (also those that change nothing), best first.
    ``scorer``: as for :func:`top_changes`."""
    scorer = Scorer.of(scorer)
    before = scorer.score(profile, audience).score
    out = [
        Change(
            o.description,
            o.change,
            before,
            scorer.score(profile.with_change(**o.change), audience).score,
            (o.key,),
            (o.description,),
        )
        for o in change_options(profile, audience)
    ]
    out.sort(key=lambda c: (-c.removed, c.description))  # single changes: by the score alone
    return out
