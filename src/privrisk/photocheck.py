"""Self-check, "which of my photos give me away": up to :data:`MAX_PHOTOS` photos of one person
(profile photo, tagged photos, ...) and one stranger's snapshot of them.

For each photo, :func:`check_photos` reports what :func:`privrisk.protect.protect` finds:
whether a face is detected and how wide it is, its rank when the snapshot is searched against it
among the consenting sample faces (measured) and the chance it comes first among 10^6 and 10^9
people (the tail models' closed form: extrapolated, with a range), then the least damaging
transform that brings that chance under the target at the chosen level, with the protected copy,
its quality (SSIM, PSNR) and its new rank.

Everything is in memory: photos are decoded from bytes, never written anywhere and never passed
through the on-disk embedding cache (:mod:`privrisk.protect` embeds with the model
directly). The caller drops the results when the person asks to be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .config import SELF_CHECK_FACES, FaceSettings
from .errors import ConfigError, FaceNotFound, ImageError, PrivriskError
from .images import load_image
from .models import FaceModel
from .protect import LEVELS, TARGET, PhotoFindability, ProtectOptions, ProtectResult, Search, protect
from .selfcheck import embed_one_face

__all__ = ["MAX_PHOTOS", "PhotoCheck", "check_photos", "identity_doubts", "snapshot_embedding"]

MAX_PHOTOS = 10


@dataclass(frozen=True, eq=False)
class PhotoCheck:
    """One photo's findability and protection. ``error`` says why a photo could not be checked
    (unreadable, no face); then ``before`` and ``protection`` are None."""

    name: str
    rgb: np.ndarray | None  # the decoded photo (in memory only), for the before / after preview
    before: PhotoFindability | None
    protection: ProtectResult | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def risk(self, size: int) -> float:
        """Upper end of the chance-of-rank-1 range at ``size`` (-1 when the photo was not checked),
        for ordering photos from the most to the least revealing."""
        if self.before is None:
            return -1.0
        upper = self.before.rank1_upper(size)
        return -1.0 if upper is None else upper

    def verdict(self, size: int, target: float = TARGET) -> str:
        """The photo's verdict at ``size`` in plain words. Measured beats modelled: a photo whose
        measured rank among the sample faces is 1 gives you away, whatever the modelled chance at
        ``size`` (:meth:`PhotoFindability.safe`)."""
        if self.before is None:
            return "not checked"
        if not self.before.safe(size, target):
            return "gives you away"
        # the level is about coming first; a photo just behind a look-alike is still on a stranger's short list
        return "safe at this level, but in the top 10" if (self.before.rank or 0) <= 10 else "safe at this level"

    def to_dict(self) -> dict:
        """Numbers only: no pixels, no bytes."""
        return {
            "name": self.name,
            "error": self.error,
            "before": self.before.to_dict() if self.before else None,
            "protection": self.protection.to_dict() if self.protection else None,
        }


def snapshot_embedding(snapshot, model: FaceModel, settings: FaceSettings = SELF_CHECK_FACES) -> np.ndarray:
    """The stranger's snapshot as an embedding: a (128,) vector as is, or the one face in image bytes
    (:class:`FaceNotFound` / :class:`ImageError` otherwise)."""
    if isinstance(snapshot, np.ndarray) and snapshot.ndim == 1:
        return np.asarray(snapshot, np.float32)
    return embed_one_face(bytes(snapshot), "snapshot", model, settings).embedding


def check_photos(
    photos: Sequence[tuple[str, bytes]],
    snapshot,
    search: Search,
    *,
    level: str = "safe_at_1e6",
    seed: int = 2011,
    progress: Callable[[int, int], None] | None = None,
) -> list[PhotoCheck]:
    """Check each ``(name, image bytes)`` photo against ``snapshot`` (image bytes or an embedding),
    in the order given, in ``search`` (the sample faces and tail models, and the attacker: face
    model, settings and threshold). Raises :class:`ConfigError` for more than :data:`MAX_PHOTOS`
    photos or an unknown level, and the snapshot's :class:`ImageError` / :class:`FaceNotFound`; a
    photo that cannot be read or has no face gets a row saying so."""
    if len(photos) > MAX_PHOTOS:
        raise ConfigError(f"{len(photos)} photos: the check takes at most {MAX_PHOTOS}")
    if level not in LEVELS:
        raise ConfigError(f"level {level!r}: unknown (one of {', '.join(LEVELS)})")
    attacker = search.attacker
    snap = snapshot_embedding(snapshot, attacker.face_model("the photo check"), attacker.settings)
    rows = []
    for i, (name, data) in enumerate(photos):
        rows.append(_check_one(name, data, snap, search, level, ProtectOptions(name=name, seed=seed)))
        if progress:
            progress(i + 1, len(photos))
    return rows


def _check_one(name: str, data, snap: np.ndarray, search: Search, level: str, options: ProtectOptions) -> PhotoCheck:
    settings = search.attacker.settings
    try:
        rgb = load_image(
            bytes(data),
            name=name,
            max_side=settings.max_side,
            max_pixels=settings.max_pixels,
            max_bytes=settings.max_bytes,
        ).rgb
    except ImageError as exc:
        return PhotoCheck(name, None, None, None, exc.reason)
    try:
        result = protect(rgb, level, snapshot=snap, search=search, options=options)
    except FaceNotFound:
        return PhotoCheck(name, rgb, None, None, "no face found: this photo cannot be searched for you")
    except PrivriskError as exc:
        return PhotoCheck(name, rgb, None, None, getattr(exc, "reason", None) or str(exc))
    return PhotoCheck(name, rgb, result.before, result, None)


def identity_doubts(rows: Sequence[PhotoCheck], threshold: float) -> list[str]:
    """Reasons to ask "is this really you?" before showing a photo check, in plain words: the snapshot
    matches none of the photos (every distance above the attacker's ``threshold``), or two photos said
    to be of one person are further apart than ``threshold``. Empty when nothing looks wrong."""
    dists = [(r.name, r.before.distance) for r in rows if r.before is not None and r.before.distance is not None]
    doubts = []
    if dists and all(d > threshold for _, d in dists):
        name, d = min(dists, key=lambda nd: nd[1])
        doubts.append(
            f"the snapshot matches none of your photos: the closest, {name}, is at distance {d:.3f}, above this "
            f"face model's match threshold of {threshold:g}"
        )
    vecs = [(r.name, r.protection.original_vector) for r in rows if r.protection is not None]
    vecs = [(n, v) for n, v in vecs if v is not None]
    far = [
        (a, b, float(np.linalg.norm(np.asarray(va) - np.asarray(vb))))
        for i, (a, va) in enumerate(vecs)
        for b, vb in vecs[i + 1 :]
    ]
    far = [f for f in far if f[2] > threshold]
    if far:
        a, b, d = max(far, key=lambda f: f[2])
        doubts.append(
            f"{len(far)} pair(s) of your photos look like different people: {a} and {b} are at distance {d:.3f}, "
            f"above this face model's match threshold of {threshold:g}"
        )
    return doubts
