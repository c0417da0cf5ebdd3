"""The exposure score of a profile for an audience: P(linked) times what the audience learns, out of the
most anyone could learn, with its range and breakdown (:func:`score`, :class:`ExposureScore`), and
:class:`Scorer`, what a score is computed with (curves, settings, multi-photo gain, link source).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..config import ExposureSettings
from ..errors import ConfigError
from ..profiles import AUDIENCES, IdInference, UserProfile
from . import words
from .content import FieldPart, content, content_max
from .curves import IdentificationCurves
from .link import LinkEstimate, LinkSource, link_probability, usable_photos
from .multi_photo import MultiPhotoGain
from .sensitivity import sensitivities


@dataclass(frozen=True)
class ExposureScore:
    """A profile's exposure to one audience: the score (0-100) with its range, the score if linked for
    certain, the chance of being linked and its breakdown by field and inference."""

    audience: str
    score: float
    score_range: tuple[float, float]
    score_if_linked: float
    link: LinkEstimate
    parts: tuple[FieldPart, ...]
    inferences: tuple[FieldPart, ...]
    national_id: IdInference | None

    # older readers
    @property
    def p_linked(self) -> float:
        return self.link.p

    @property
    def usable_photos(self) -> int:
        return self.link.photos

    @property
    def gallery_size(self) -> int | None:
        return self.link.gallery_size

    @property
    def curve(self) -> str | None:
        return self.link.curve

    @property
    def p_one_photo(self) -> float | None:
        return self.link.p_one_photo

    @property
    def national_id_text(self) -> str | None:
        """The national-ID inference in one line (None when the profile gives no birth country)."""
        return words.national_id_text(self.national_id)

    @property
    def label(self) -> str:
        """What the number means, in one line: the scenario that defines it."""
        return words.score_label(self.audience, self.score, self.score_range, self.link)

    def explain(self) -> str:
        """The score in plain words."""
        learned = [p.label for p in (*self.parts, *self.inferences) if p.visible and p.points > 0]
        return words.explain_score(self.audience, self.score, self.score_range, self.link, learned)

    def to_dict(self) -> dict:
        lk = self.link
        return {
            "audience": self.audience,
            "label": self.label,
            "score": self.score,
            "score_range": list(self.score_range),
            "score_if_linked": self.score_if_linked,
            "p_linked": lk.p,
            "p_linked_range": [lk.lo, lk.hi],
            "p_linked_kind": lk.kind,
            "top_k": lk.k,
            "usable_photos": lk.photos,
            "gallery_size": lk.gallery_size,
            "curve": lk.curve,
            "p_one_photo": lk.p_one_photo,
            "p_one_photo_range": list(lk.p_one_photo_range or []) or None,
            "wrong_person": lk.wrong_person,
            "wrong_person_range": list(lk.wrong_person_range) if lk.wrong_person_range else None,
            "fpir": lk.fpir,
            "fpir_range": list(lk.fpir_range) if lk.fpir_range else None,
            "link_notes": list(lk.notes),
            "national_id": self.national_id_text,
            "national_id_detail": asdict(self.national_id) if self.national_id is not None else None,
            "explanation": self.explain(),
            "fields": [asdict(p) for p in self.parts],
            "inferences": [asdict(p) for p in self.inferences],
        }


def score(
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    gain: MultiPhotoGain | None = None,
    link_from: LinkSource | None = None,
) -> ExposureScore:
    """The exposure score of ``profile`` for ``audience``, with its range and breakdown. ``link_from``
    (profile, audience, settings) -> :class:`LinkEstimate` or None replaces the population curves'
    chance of being linked where it answers (e.g. with one measured on your own photos)."""
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    sens = sensitivities(settings)
    visible = profile.visible_to(audience)
    link = link_from(profile, audience, settings) if link_from is not None else None
    if link is None:
        link = link_probability(usable_photos(profile, audience, settings.max_photos), audience, curves, settings, gain)
    value, lo, hi, parts, found, idinf = content(profile, visible, sens)
    cmax = content_max(sens)
    scale = 100.0 / cmax
    parts = tuple(replace(p, points=p.points * scale * link.p, alone=p.alone * scale * link.p) for p in parts)
    infs = tuple(replace(p, points=p.points * scale * link.p, alone=p.alone * scale * link.p) for p in found)
    s = min(100.0, scale * link.p * value)
    rng = (min(100.0, scale * link.lo * lo), min(100.0, scale * link.hi * hi))
    return ExposureScore(
        audience,
        float(s),
        (float(min(rng[0], s)), float(max(rng[1], s))),
        float(min(100.0, scale * value)),
        link,
        parts,
        infs,
        idinf,
    )


@dataclass(frozen=True)
class Scorer:
    """What a score is computed with: the identification ``curves``, the ``settings``, the multi-photo
    ``gain`` (the shipped measurement when None, loaded once here) and ``link_from``, where else the chance
    of being linked may come from (see :func:`score`). The change searches take one."""

    curves: IdentificationCurves
    settings: ExposureSettings = ExposureSettings()
    gain: MultiPhotoGain | None = None
    link_from: LinkSource | None = None

    def __post_init__(self) -> None:
        if self.gain is None:
            object.__setattr__(self, "gain", MultiPhotoGain.shipped())

    @classmethod
    def of(cls, scorer: Scorer | IdentificationCurves) -> Scorer:
        """``scorer`` itself, or curves alone with the default settings and the shipped gain."""
        return scorer if isinstance(scorer, Scorer) else cls(scorer)

    def score(self, profile: UserProfile, audience: str = "stranger") -> ExposureScore:
        """:func:`score` of ``profile`` for ``audience`` with these inputs."""
        return score(profile, self.curves, audience, self.settings, self.gain, self.link_from)
