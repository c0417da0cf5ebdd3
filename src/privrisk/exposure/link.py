"""P(linked): the chance that a photo of your face leads an audience to your profile, read from the
identification curves at the gallery the audience searches and rescaled to the photos of your face it can
see with the measured multi-photo gain (:func:`link_probability`), with its range and where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import ExposureSettings
from ..profiles import UserProfile
from .curves import CurvePoint, IdentificationCurves
from .multi_photo import MultiPhotoGain, logit, sigmoid


@dataclass(frozen=True)
class LinkEstimate:
    """P(linked) for one audience, with its range and where it came from."""

    p: float
    lo: float
    hi: float
    kind: str
    curve: str | None = None
    gallery_size: int | None = None
    k: int | None = None
    photos: int = 0
    p_one_photo: float | None = None
    p_one_photo_range: tuple[float, float] | None = None
    wrong_person: float | None = None
    wrong_person_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()
    fpir: float | None = None  # if you are not on the platform: P(someone else under the threshold)
    fpir_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Rescale:
    """A curve's point rescaled from the captures its points fuse (``shots``) to n photos of one face, by the
    measured log-odds gain: delta(n) - delta(shots), where ``d_shots`` is delta(shots)."""

    pt: CurvePoint
    gain: MultiPhotoGain
    level: str
    shots: int
    d_shots: float

    @property
    def metric(self) -> str:
        return "rank10" if self.pt.metric == "rank10" else "rank1"

    def _at(self, rate: float, delta: float) -> float:
        if rate <= 0.0 or rate >= 1.0:
            return rate
        return sigmoid(logit(rate) - self.d_shots + delta)

    def photos(self, n: int) -> tuple[float, float, float, str]:
        """P(linked) with ``n`` >= 1 photos, its range and how the gain was found. At a scale where the
        gain was not measured (the point is not measured) it is a bounded scenario: the range runs from the
        curve without any rescaling to the measured gain applied."""
        d, d_lo, d_hi, how = self.gain.shift(self.level, n, self.metric)
        val = self._at(self.pt.value, d)
        lo, hi = min(self._at(self.pt.lo, d_lo), val), max(self._at(self.pt.hi, d_hi), val)
        if self.pt.kind != "measured":  # the gain was measured on the real gallery only
            lo, hi = min(lo, self.pt.lo), max(hi, self.pt.hi)
        return val, lo, hi, how

    def notes(self, n_photos: int, size: int, how: str) -> list[str]:
        """What the chance with ``n_photos`` photos among ``size`` people rests on, in words."""
        notes = [n for n in (self.pt.note,) if n]
        if n_photos == 0:
            notes.append("no photo of your face is visible to this audience")
        else:
            if self.pt.kind != "measured" and n_photos != self.shots:
                notes.append(
                    f"the gain from several photos was measured among {self.gain.gallery_size} people only, not at "
                    f"{int(size):,}: there it is a bounded scenario, the range running from the curve without it to "
                    "the measured gain applied"
                )
            if n_photos > 1:
                notes.append(f"{n_photos} photos of one face counted like {n_photos} fused captures ({how})")
            if self.shots > 1:
                notes.append(
                    f"the curve fuses {self.shots} captures; rescaled to {n_photos} photo(s) with the measured "
                    "log-odds gain"
                )
        if self.pt.wrong_top is None:
            notes.append("this curve file has no wrong-person rate (wrong_top_under_threshold)")
        return notes


def link_probability(
    n_photos: int,
    audience: str,
    curves: IdentificationCurves,
    settings: ExposureSettings,
    gain: MultiPhotoGain | None = None,
) -> LinkEstimate:
    """P(linked) for ``audience`` when it can see ``n_photos`` photos of your face (see
    :mod:`privrisk.exposure`): the curve ``settings.curve`` at the gallery the audience searches, rescaled
    from the captures its points fuse to ``n_photos`` with the multi-photo ``gain`` (the shipped
    measurement when None). Friends know you: 1."""
    if audience == "friend":
        return LinkEstimate(1.0, 1.0, 1.0, "known", notes=("a friend already knows who you are",))
    size = settings.stranger_gallery_size if audience == "stranger" else settings.fof_gallery_size
    pt = curves.point(settings.curve, size, settings.top_k)
    gain = gain or MultiPhotoGain.shipped()
    level = settings.curve.split("/", 1)[1] if "/" in settings.curve else "webcam"
    metric = "rank10" if pt.metric == "rank10" else "rank1"
    shots = curves.shots(settings.curve, gain.shots_in_e2)
    rescale = _Rescale(pt, gain, level, shots, gain.shift(level, shots, metric)[0] if shots > 1 else 0.0)
    one = rescale.photos(1)
    p, lo, hi, how = rescale.photos(n_photos) if n_photos else (0.0, 0.0, 0.0, "")
    measured_top = float(gain.curve(level, metric)[0][-1])
    kind = pt.kind if n_photos <= measured_top or pt.kind == "extrapolated" else "extrapolated"
    wrong = pt.wrong_top if n_photos else None
    return LinkEstimate(
        p,
        lo,
        hi,
        kind,
        settings.curve,
        int(size),
        settings.top_k if pt.metric == "rank10" else 1,
        n_photos,
        one[0],
        (one[1], one[2]),
        wrong,
        pt.wrong_top_range if wrong is not None else None,
        tuple(rescale.notes(n_photos, size, how)),
        pt.fpir,
        pt.fpir_range,
    )


#: where a score's chance of being linked can come from instead of the curves (see
#: :func:`privrisk.exposure.scoring.score`): (profile, audience, settings) -> an estimate, or None to use the curves
LinkSource = Callable[[UserProfile, str, ExposureSettings], LinkEstimate | None]


def usable_photos(profile: UserProfile, audience: str, cap: int = 50) -> int:
    """Photos of your face ``audience`` can see (profile photo, public and tagged photos), at most ``cap``."""
    visible = profile.visible_to(audience)
    n = int("profile_photo" in visible) + profile.public_photos_with_face
    if "tagged_photos" in visible:
        n += profile.tagged_photos_with_face
    return min(n, cap)
