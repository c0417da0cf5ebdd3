"""Photo protection, the product: how findable a photo is by a stranger's snapshot, and the least
damaging transform (:mod:`privrisk.transforms`) that protects it.

:func:`photo_findability` says, per photo, whether a face is detected, how wide it is, how far it
is from a stranger's snapshot, its rank among the consenting sample faces (measured) and the
chance it comes first among 10^6 and 10^9 people, as the range of the tail models' closed form
(extrapolated; :mod:`privrisk.tailmodel`, no search). :func:`protect` finds the least damaging
setting (highest SSIM) at which the upper end of that range is under 10% and the measured rank
among the sample faces moves off 1: measured beats modelled (:meth:`PhotoFindability.safe`).
Who searches, and among whom, is one :class:`Search` (the sample world and an :class:`Attacker`).

Everything here works in memory: photos are arrays or bytes, never written anywhere and never
passed through the on-disk embedding cache. The CLI's ``protect`` and ``findability``, the
self-check's photo check (:mod:`privrisk.photocheck`) and the trainer use it; E4, the experiment over
the sample set, is :mod:`privrisk.stages.countermeasures`.

**A face the detector misses is still searched.** A transformed photo whose face dlib's detector
no longer finds is encoded at the face's known box: a stronger detector, or a person marking the
face, would still find it. Identification and protection are judged that way (conservatively),
and the detection rate is reported beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypedDict, overload

import numpy as np

from .config import DEFAULT_LEVELS, PROTECT_LEVELS, SELF_CHECK_FACES, FaceSettings, GallerySettings
from .degrade import Degradation, degrade
from .embeddings import embed_loaded
from .errors import ConfigError, FaceNotFound, ImageError
from .faces import choose_faces, face_landmarks
from .images import LoadedImage, load_image
from .models import Box, FaceModel, as_box
from .selfcheck import SampleWorld, SizeResult, findability
from .transforms import TRANSFORMS, Quality, apply_transform, image_quality

__all__ = [
    "LEVELS",
    "TARGET",
    "STREET",
    "Attacker",
    "Search",
    "ProtectOptions",
    "PhotoFindability",
    "ProtectResult",
    "Candidate",
    "find_face",
    "face_overlap",
    "simulated_snapshot",
    "photo_findability",
    "protect",
]

#: protection levels: name -> gallery size at which the upper end of the rank-1 range must be under 10%
LEVELS = PROTECT_LEVELS
TARGET = 0.10
PLATFORM_SIZES = (1_000_000, 1_000_000_000)

#: The stranger's default snapshot when none is given: E2's "street" capture level (a face about 40 px
#: wide, blurred, compressed, turned; :data:`privrisk.config.DEFAULT_LEVELS`), the level the exposure
#: score takes as a stranger's photo (``exposure.DEFAULT_CURVE``).
STREET: Degradation = next(lv for lv in DEFAULT_LEVELS if lv.name == "street")


@dataclass(frozen=True)
class Attacker:
    """The stranger who searches: the face model (photos given as images need it; embeddings do
    not), its detection settings, and the match threshold (a distance at or under it is a match)."""

    model: FaceModel | None = None
    settings: FaceSettings = SELF_CHECK_FACES
    threshold: float = GallerySettings().threshold

    def face_model(self, what: str) -> FaceModel:
        """The face model, or ValueError saying that ``what`` needs one."""
        if self.model is None:
            raise ValueError(f"{what} needs the face model (Attacker(model=...))")
        return self.model


@dataclass(frozen=True, eq=False)
class Search:
    """A stranger's search for one person's photos: among the consenting sample faces, with their
    tail models for platform sizes (``world``: :func:`privrisk.selfcheck.build_sample_world`; its
    distractors are not searched), by ``attacker``."""

    world: SampleWorld
    attacker: Attacker = Attacker()


@dataclass(frozen=True)
class ProtectOptions:
    """How :func:`protect` works on one photo: ``name`` (in messages and rows), the ``seed`` and
    capture level (``snapshot_level``) of the snapshot simulated from the photo when none is given,
    and ``strengths`` overriding the ladder of a single transform."""

    name: str = "photo"
    seed: int = 2011
    snapshot_level: Degradation = STREET
    strengths: tuple | None = None


# --- finding the face ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundFace:
    """A face in an in-memory photo: detected, or encoded at a known box the detector missed."""

    detected: bool
    box: Box
    embedding: np.ndarray

    @property
    def width(self) -> int:
        return int(self.box[1] - self.box[3])


def face_overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (top, right, bottom, left)."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = (a[1] - a[3]) * (a[2] - a[0]) + (b[1] - b[3]) * (b[2] - b[0]) - inter
    return inter / area if area > 0 else 0.0


@overload
def find_face(
    rgb: np.ndarray, model: FaceModel, settings: FaceSettings = ..., *, at: Box, name: str = ...
) -> FoundFace: ...
@overload
def find_face(
    rgb: np.ndarray, model: FaceModel, settings: FaceSettings = ..., *, at: None = None, name: str = ...
) -> FoundFace | None: ...
def find_face(
    rgb: np.ndarray, model: FaceModel, settings: FaceSettings = SELF_CHECK_FACES, *, at: Box | None = None, name="photo"
) -> FoundFace | None:
    """The face in ``rgb`` (in memory, never cached). With ``at`` (the face's known box): the
    detected face that overlaps it most, or, when the detector finds none there, the face encoded
    at ``at``. Without ``at``: the face the several-faces policy keeps (``settings.multiple_faces``),
    or None when no face is found."""
    h, w = rgb.shape[:2]
    image = LoadedImage(rgb=np.ascontiguousarray(rgb), name=name, sha256="", original_size=(w, h), scale=1.0)
    faces, _ = embed_loaded(model, image, settings)
    if at is not None:
        near = [f for f in faces if face_overlap(f.box, at) > 0.3]
        if near:
            best = max(near, key=lambda f: face_overlap(f.box, at))
            return FoundFace(True, as_box(best.box), best.embedding)
        vec = np.asarray(model.encode(image.rgb, [as_box(at)], settings.jitters), np.float32)[0]
        return FoundFace(False, as_box(at), vec)
    if not faces:
        return None
    face = choose_faces(faces, settings.multiple_faces, name)[0]
    return FoundFace(True, as_box(face.box), face.embedding)


def _as_rgb(item, name: str, settings: FaceSettings) -> np.ndarray:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return load_image(
            bytes(item), name=name, max_side=settings.max_side, max_pixels=settings.max_pixels,
            max_bytes=settings.max_bytes,
        ).rgb  # fmt: skip
    arr = np.asarray(item)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageError(name, f"expected an (H, W, 3) RGB uint8 image, got an array of shape {arr.shape} {arr.dtype}")
    return arr


def _is_embedding(item) -> bool:
    return isinstance(item, np.ndarray) and item.ndim == 1 and item.dtype.kind == "f" and item.size >= 2


# --- per-photo findability -------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoFindability:
    """How findable one photo is when a stranger's snapshot is searched against it.

    ``rank`` is measured among the consenting sample faces plus you (``gallery_size`` people);
    ``sizes`` holds the chance of rank 1 at platform sizes from the tail models' closed form
    (``kind`` "extrapolated", with ``p_rank1_range``). ``detected`` is False when the detector
    found no face: the photo is then judged at the face's known box (see the module docstring),
    or, with no box known, not at all (``distance`` None)."""

    name: str
    detected: bool
    face_width: int | None
    distance: float | None
    rank: int | None
    gallery_size: int
    sizes: tuple[SizeResult, ...] = ()
    encoded_at: str = "detected face"
    note: str = ""

    def at(self, size: int) -> SizeResult | None:
        """The row for gallery ``size`` (None when not computed)."""
        return next((s for s in self.sizes if s.gallery_size == int(size)), None)

    def rank1_upper(self, size: int) -> float | None:
        """Upper end of the chance-of-rank-1 range at ``size`` (None when not computed)."""
        row = self.at(size)
        if row is None:
            return None
        return float(row.p_rank1_range[1]) if row.p_rank1_range else float(row.p_rank1)

    def safe(self, size: int, target: float = TARGET) -> bool:
        """Safe at ``size``: measured beats modelled. The photo is not found first among the real faces
        (its measured rank is above 1) and the upper end of the modelled chance of rank 1 at ``size``
        is under ``target``. A measured rank of 1 is never safe, whatever the model says."""
        upper = self.rank1_upper(size)
        return self.rank is not None and self.rank > 1 and upper is not None and upper < target

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "detected": self.detected,
            "face_width": self.face_width,
            "encoded_at": self.encoded_at,
            "distance": self.distance,
            "rank": self.rank,
            "rank_kind": "measured",
            "gallery_size": self.gallery_size,
            "sizes": [
                {
                    "gallery_size": s.gallery_size,
                    "p_rank1": s.p_rank1,
                    "p_rank1_range": list(s.p_rank1_range) if s.p_rank1_range else None,
                    "expected_rank": s.rank,
                    "kind": s.kind,
                    "how": "tail models' closed form (no search)",
                }
                for s in self.sizes
            ],
            "note": self.note,
        }


def _world_view(world: SampleWorld, exclude) -> SampleWorld:
    """The world without its distractors in memory (platform sizes come from the closed form) and
    without sample faces identical to an ``exclude`` embedding (your own photo, not counted twice)."""
    vecs = world.vectors
    keep = np.ones(len(vecs), bool)
    for e in exclude:
        keep &= np.linalg.norm(vecs - np.asarray(e, np.float32).reshape(1, -1), axis=1) > 1e-4
    return replace(
        world,
        vectors=vecs[keep],
        subjects=[s for s, k in zip(world.subjects, keep) if k],
        images=[s for s, k in zip(world.images, keep) if k],
        distractors=np.zeros((0, world.vectors.shape[1] if world.vectors.ndim == 2 else 128), np.float32),
        index=None,
    )


def _judge(
    name: str, face: FoundFace | None, snap: np.ndarray, view: SampleWorld, search: _Judging
) -> PhotoFindability:
    n_real = len(view.vectors) + 1
    if face is None:
        return PhotoFindability(
            name,
            False,
            None,
            None,
            None,
            n_real,
            encoded_at="",
            note="no face found by the detector: a search with this detector cannot use this photo (a stronger one might)",
        )
    f = findability(face.embedding, snap, view, sizes=(n_real, *search.sizes), threshold=search.threshold)
    real = f.sizes[0]
    return PhotoFindability(
        name=name,
        detected=face.detected,
        face_width=face.width if face.width > 0 else None,
        distance=f.distance,
        rank=int(real.rank),
        gallery_size=n_real,
        sizes=f.sizes[1:],
        encoded_at="detected face" if face.detected else "the face's known box (the detector missed it)",
        note="" if face.detected else "no face detected; judged as if a stronger detector found it",
    )


@dataclass(frozen=True)
class _Judging:
    """What :func:`_judge` needs: the platform sizes judged at and the match threshold."""

    sizes: tuple[int, ...]
    threshold: float


def _snapshot_vector(snapshot, attacker: Attacker) -> np.ndarray:
    if _is_embedding(snapshot):
        return np.asarray(snapshot, np.float32)
    model = attacker.face_model("a snapshot image")
    face = find_face(_as_rgb(snapshot, "snapshot", attacker.settings), model, attacker.settings, name="snapshot")
    if face is None:
        raise FaceNotFound("snapshot", "no face found in the stranger's snapshot")
    return face.embedding


def _no_tail_models(world: SampleWorld) -> None:
    if not world.tail_models:
        raise ConfigError("the sample world has no tail models: platform-scale chances cannot be computed")


def photo_findability(
    photos, snapshot, search: Search, *, names=None, exclude=(), boxes=None
) -> list[PhotoFindability]:
    """Per photo, how findable it is by a stranger's ``snapshot`` (see :class:`PhotoFindability`),
    in ``search`` (the sample faces and tail models, and the attacker), at :data:`PLATFORM_SIZES`.

    ``photos`` are (128,) embeddings, (H, W, 3) RGB uint8 arrays or image bytes (decoded in
    memory); ``snapshot`` likewise. Images need the attacker's face model. A sample face identical to
    one of the photos (or to an ``exclude`` embedding) is not counted as someone else. ``boxes`` (one
    per photo, or None) are faces' known boxes: a photo whose face the detector misses there is
    judged at the box. Raises :class:`ImageError` naming an unreadable photo and
    :class:`FaceNotFound` when the snapshot has no face; a photo without a face gets a row saying so.
    """
    _no_tail_models(search.world)
    photos = list(photos)
    names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(photos))]
    if len(names) != len(photos):
        raise ValueError(f"{len(names)} names for {len(photos)} photos")
    attacker = search.attacker
    snap = _snapshot_vector(snapshot, attacker)
    boxes = list(boxes) if boxes is not None else [None] * len(photos)
    faces: list[FoundFace | None] = []
    for item, name, box in zip(photos, names, boxes):
        if _is_embedding(item):
            faces.append(FoundFace(True, (0, 0, 0, 0), np.asarray(item, np.float32)))
            continue
        model = attacker.face_model("photos given as images")
        faces.append(find_face(_as_rgb(item, name, attacker.settings), model, attacker.settings, at=box, name=name))
    view = _world_view(search.world, [*exclude, *(f.embedding for f in faces if f is not None)])
    judging = _Judging(PLATFORM_SIZES, attacker.threshold)
    return [_judge(name, face, snap, view, judging) for face, name in zip(faces, names)]


# --- protect ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One setting tried by :func:`protect`, in the order tried (highest SSIM first)."""

    transform: str
    strength: object
    quality: Quality
    detected: bool | None = None  # None: not embedded (a setting with higher SSIM already met the level)
    rank: int | None = None
    rank1_upper: float | None = None
    meets: bool | None = None

    def to_dict(self) -> dict:
        return {
            "transform": self.transform,
            "strength": self.strength,
            **self.quality.to_dict(),
            "detected": self.detected,
            "rank": self.rank,
            "rank1_upper": self.rank1_upper,
            "meets": self.meets,
        }


@dataclass(frozen=True, eq=False)
class ProtectResult:
    """What :func:`protect` chose: the transform and strength (None with ``reason`` when no setting
    meets the level, or none is needed), the protected copy (None then), before / after findability
    and the copy's quality."""

    level: str
    gallery_size: int
    target: float
    transform: str | None
    strength: object
    reason: str
    image: np.ndarray | None
    before: PhotoFindability
    after: PhotoFindability | None
    quality: Quality | None
    snapshot: str
    tried: tuple[Candidate, ...] = field(default=())
    face_box: Box | None = None  # the face in the photo (top, right, bottom, left)
    snapshot_vector: np.ndarray | None = None  # the snapshot's embedding (to judge other photos against it)
    original_vector: np.ndarray | None = None  # the original photo's embedding (its sample copy is not someone else)

    @property
    def protected(self) -> bool:
        return self.image is not None

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "gallery_size": self.gallery_size,
            "target": self.target,
            "rule": (
                f"the least damaging setting (highest SSIM) at which the measured rank among the sample faces "
                f"moves off 1 and the upper end of the range for the chance of rank 1 among "
                f"{self.gallery_size:,} people is under {self.target:.0%}"
            ),
            "transform": self.transform,
            "strength": self.strength,
            "reason": self.reason,
            "protected": self.protected,
            "before": self.before.to_dict(),
            "after": self.after.to_dict() if self.after else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "snapshot": self.snapshot,
            "tried": [c.to_dict() for c in self.tried],
        }


def simulated_snapshot(
    rgb: np.ndarray, face: FoundFace, attacker: Attacker, options: ProtectOptions, marks: dict | None
) -> np.ndarray:
    """A stranger's snapshot made from the photo itself at capture level ``options.snapshot_level``
    (seeded by ``options.seed``): the face at the level's width, blurred, compressed, turned. Encoded
    at the shrunk box when not detected."""
    level = options.snapshot_level
    shot = degrade(rgb, face.box, level, np.random.default_rng([options.seed, 4]), landmarks=marks)
    f = min(1.0, level.face_width_px / max(face.width, 1)) if level.face_width_px else 1.0
    box = tuple(int(round(v * f)) for v in face.box)
    h, w = shot.shape[:2]
    box = (min(box[0], h - 1), min(box[1], w), min(box[2], h), min(box[3], w - 1))
    model = attacker.face_model("a simulated snapshot")
    return find_face(shot, model, attacker.settings, at=box, name="snapshot").embedding


class _ProtectCommon(TypedDict):
    """The fields every :class:`ProtectResult` of one :func:`protect` call shares."""

    level: str
    gallery_size: int
    target: float
    before: PhotoFindability
    snapshot: str
    face_box: Box
    snapshot_vector: np.ndarray
    original_vector: np.ndarray


@dataclass(frozen=True, eq=False)
class _Case:
    """One :func:`protect` call: the photo, its face (and landmarks), and what it is judged against."""

    rgb: np.ndarray
    face: FoundFace
    marks: dict | None
    name: str
    snap: np.ndarray
    view: SampleWorld
    judging: _Judging
    attacker: Attacker


def _upper(f: PhotoFindability, size: int) -> float:
    """``f.rank1_upper(size)`` for a row :func:`protect` judged at ``size`` (a face was found or
    encoded at its box, so every size has a range)."""
    upper = f.rank1_upper(size)
    if upper is None:
        raise RuntimeError(f"{f.name}: no chance of rank 1 at {size:,} was computed ({f.note or 'no reason given'})")
    return upper


def protect(
    image,
    level: str = "safe_at_1e6",
    transform: str | None = None,
    snapshot=None,
    *,
    search: Search,
    options: ProtectOptions = ProtectOptions(),
) -> ProtectResult:
    """The least damaging protection of a photo, in memory.

    ``level`` "safe_at_1e6" / "safe_at_1e9": the setting with the highest SSIM, of ``transform``
    (or of every transform when None; ``options.strengths`` overrides its ladder), at which the upper
    end of the range for the chance of rank 1 among 10^6 / 10^9 people is under 10% when ``snapshot``
    is searched against the protected copy (in ``search``: the sample faces, tail models and the
    attacker, whose face model is needed), and the copy's measured rank among the sample faces is
    above 1 and differs from the original's (measured beats modelled, :meth:`PhotoFindability.safe`).
    ``snapshot`` (image, bytes or embedding) defaults to one simulated from the photo itself at
    ``options.snapshot_level`` (a stranger's street snapshot; the same photo is a conservative
    stand-in: a real snapshot of you is further away). When no setting gets there, the result says
    so and has no image. ``image`` is an RGB uint8 array or bytes.
    """
    if level not in LEVELS:
        raise ConfigError(f"level {level!r}: unknown (one of {', '.join(LEVELS)})")
    if transform is not None and transform not in TRANSFORMS:
        raise ConfigError(f"transform {transform!r}: unknown (one of {', '.join(TRANSFORMS)})")
    size = LEVELS[level]
    case = _open_case(image, snapshot, search, options, size)
    before = _judge(case.name, case.face, case.snap, case.view, case.judging)
    common = _ProtectCommon(
        level=level,
        gallery_size=size,
        target=TARGET,
        before=before,
        snapshot=_snapshot_note(snapshot, options),
        face_box=case.face.box,
        snapshot_vector=case.snap,
        original_vector=case.face.embedding,
    )
    if before.safe(size):
        return ProtectResult(
            **common,
            transform=None,
            strength=None,
            reason=(
                f"already under the target: someone else comes before you among the sample faces (measured rank "
                f"{before.rank}) "
                f"and the upper end at {size:,} is {_upper(before, size):.1%}"
            ),
            image=None,
            after=None,
            quality=None,
        )
    names = [transform] if transform else list(TRANSFORMS)
    strengths = options.strengths
    ladders = {t: tuple(strengths) if (strengths is not None and transform) else TRANSFORMS[t].ladder for t in names}
    return _least_damaging(case, ladders, common)


def _open_case(image, snapshot, search: Search, options: ProtectOptions, size: int) -> _Case:
    """The photo's face (:class:`FaceNotFound` without one), the stranger's snapshot (given or
    simulated), and the sample faces the photo is judged among."""
    attacker, name = search.attacker, options.name
    model = attacker.face_model("protect")
    rgb = _as_rgb(image, name, attacker.settings)
    face = find_face(rgb, model, attacker.settings, name=name)
    if face is None:
        raise FaceNotFound(name, "no face found - use a photo in which your face is clearly visible")
    marks = face_landmarks(model, rgb, face.box) or None
    if snapshot is None:
        snap = simulated_snapshot(rgb, face, attacker, options, marks)
    else:
        snap = _snapshot_vector(snapshot, attacker)
    _no_tail_models(search.world)
    view = _world_view(search.world, [face.embedding])
    judging = _Judging(tuple(sorted({size, *PLATFORM_SIZES})), attacker.threshold)
    return _Case(rgb, face, marks, name, snap, view, judging, attacker)


def _snapshot_note(snapshot, options: ProtectOptions) -> str:
    if snapshot is not None:
        return "given"
    level = options.snapshot_level
    return (
        f"simulated from this photo at E2's '{level.name}' level (face {level.face_width_px} px "
        "wide, blurred, compressed; seed "
        f"{options.seed}); the same photo is a conservative stand-in for a real snapshot"
    )


def _least_damaging(case: _Case, ladders: dict[str, tuple], common: _ProtectCommon) -> ProtectResult:
    """Every setting of ``ladders`` tried from the highest SSIM down; the first that meets the level."""
    names = list(ladders)
    options = []
    for t in names:
        for j, s in enumerate(ladders[t]):
            out = apply_transform(case.rgb, case.face.box, t, s, landmarks=case.marks)
            options.append((t, s, out, image_quality(case.rgb, out, case.face.box), names.index(t), j))
    options.sort(key=lambda o: (-o[3].ssim, o[4], o[5]))
    before, size = common["before"], common["gallery_size"]
    settings, model = case.attacker.settings, case.attacker.face_model("protect")
    tried = []
    for t, s, out, q, _, _ in options:
        found = find_face(out, model, settings, at=case.face.box, name=case.name)
        after = _judge(f"{case.name} ({TRANSFORMS[t].label(s)})", found, case.snap, case.view, case.judging)
        upper = _upper(after, size)
        # measured beats modelled: a copy still found first among the real faces, or whose measured rank
        # does not change, is no protection, whatever the modelled chance says
        meets = after.safe(size) and after.rank != before.rank
        tried.append(Candidate(t, s, q, found.detected, after.rank, upper, meets))
        if meets:
            return ProtectResult(
                **common,
                transform=t,
                strength=s,
                reason=(
                    f"{TRANSFORMS[t].label(s)} is the least damaging setting tried (SSIM {q.ssim:.3f}) that moves "
                    f"the photo off rank 1 among the sample faces (measured rank {before.rank} -> {after.rank}) "
                    f"and puts the upper end of the rank-1 range at {size:,} under {TARGET:.0%} ({upper:.1%})"
                ),
                image=out,
                after=after,
                quality=q,
                tried=tuple(tried),
            )
    harsh = ", ".join(TRANSFORMS[t].label(ladders[t][-1]) for t in names if ladders[t])
    return ProtectResult(
        **common,
        transform=None,
        strength=None,
        reason=(
            f"no setting tried both moves the photo off rank 1 among the sample faces (measured) and brings the "
            f"upper end of the rank-1 range at {size:,} under {TARGET:.0%} (harshest tried: {harsh}); no copy is made"
        ),
        image=None,
        after=None,
        quality=None,
        tried=tuple(tried),
    )
