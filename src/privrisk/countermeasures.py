"""E4, what protects me: transforms a person can apply to their public photos, what each costs
the photo, and how findable the photo stays.

Five transforms, each with a ladder of strengths from mild to harsh (:data:`TRANSFORMS`):
``downscale`` (the face width in pixels left), ``blur`` (Gaussian sigma as a share of the face
width), ``jpeg`` (quality), ``crop`` (the share of the face's height kept) and ``occlude``
(sunglasses, mask or sticker, placed from the face's landmarks with :mod:`privrisk.degrade`'s
occluders). :func:`apply_transform` is pure and keeps the photo's size, so
:func:`image_quality` (SSIM and PSNR) is defined against the original.

:func:`photo_findability` says, per photo, whether a face is detected, how wide it is, how far it
is from a stranger's snapshot, its rank among the consenting sample faces (measured) and the
chance it comes first among 10^6 and 10^9 people, as the range of the tail models' closed form
(extrapolated; :mod:`privrisk.tailmodel`, no search). :func:`protect` finds the least damaging
setting (highest SSIM) at which the upper end of that range is under 10% and the measured rank
among the sample faces moves off 1: measured beats modelled (:meth:`PhotoFindability.safe`).

Everything here works in memory: photos are arrays or bytes, never written anywhere and never
passed through the on-disk embedding cache.

**A face the detector misses is still searched.** A transformed photo whose face dlib's detector
no longer finds is encoded at the face's known box: a stronger detector, or a person marking the
face, would still find it. Identification and protection are judged that way (conservatively),
and the detection rate is reported beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict, overload

import numpy as np

from .config import SELF_CHECK_FACES, FaceSettings, setting, to_dict
from .degrade import EYES, Degradation, box_landmarks, degrade, encode_png, occlude
from .embeddings import embed_loaded
from .errors import ConfigError, FaceNotFound, ImageError
from .faces import choose_faces, face_landmarks
from .images import LoadedImage, load_image
from .index import pairwise_distances
from .models import Box, FaceModel, as_box
from .selfcheck import SampleWorld, SizeResult, findability

__all__ = [
    "TRANSFORMS",
    "LEVELS",
    "STRANGER_SNAPSHOT",
    "Transform",
    "Quality",
    "PhotoFindability",
    "ProtectResult",
    "Candidate",
    "apply_transform",
    "image_quality",
    "photo_findability",
    "protect",
]


@dataclass(frozen=True)
class Transform:
    """One countermeasure: what its strength means and its default ladder (mildest first)."""

    name: str
    strength: str
    ladder: tuple
    unit: str = ""

    def label(self, strength) -> str:
        """``downscale 24 px``, ``blur 0.03 x face width``, ``occlude sunglasses``."""
        return f"{self.name} {strength}{(' ' + self.unit) if self.unit else ''}"


OCCLUDERS = ("sunglasses", "mask", "sticker")

#: name -> transform, in the order reports list them.
TRANSFORMS: dict[str, Transform] = {
    "downscale": Transform(
        "downscale",
        "face width in pixels left: the photo is shrunk until the face is this wide (never enlarged), "
        "then scaled back to its size",
        (96, 64, 48, 32, 24, 16, 12),
        "px",
    ),
    "blur": Transform(
        "blur",
        "Gaussian blur over the whole photo, sigma as a share of the face width",
        (0.005, 0.01, 0.02, 0.03, 0.05, 0.08),
        "x face width",
    ),
    "jpeg": Transform("jpeg", "JPEG re-compression quality (lower: coarser)", (50, 30, 20, 10, 5), "quality"),
    "crop": Transform(
        "crop",
        "share of the face's height kept from the top: the photo's bottom edge cuts through the face "
        "below that line (the part cut off is black, so the photo keeps its size)",
        (0.9, 0.75, 0.6, 0.45, 0.3),
        "of the face",
    ),
    "occlude": Transform(
        "occlude",
        "an occluder placed from the face's landmarks: 'sunglasses' (dark lenses over the eyes), 'mask' "
        "(a face mask over nose, mouth and chin) or 'sticker' (a round sticker on the middle of the face)",
        OCCLUDERS,
    ),
}

#: protection levels: name -> gallery size at which the upper end of the rank-1 range must be under 10%
LEVELS = {"safe_at_1e6": 1_000_000, "safe_at_1e9": 1_000_000_000}
TARGET = 0.10

#: The stranger's default snapshot when none is given: E2's "street" level (a face about 40 px
#: wide, blurred, compressed, turned), the level the exposure score takes as a stranger's photo
#: (``exposure.DEFAULT_CURVE``). The same settings as ``experiment.DEFAULT_LEVELS``' street level;
#: a test checks they agree (this module cannot import the experiment, which imports it).
STRANGER_SNAPSHOT = Degradation(
    name="street",
    face_width_px=40,
    blur_sigma=[0.8, 1.6],
    jpeg_quality=[25, 45],
    rotation_deg=[-8.0, 8.0],
    yaw_deg=[-20.0, 20.0],
    light_strength=[0.0, 0.4],
    motion_blur_px=[0.0, 1.5],
    defocus_px=[0.0, 0.8],
)

STICKER_RGB = (250.0, 200.0, 40.0)  # a yellow smiley-style sticker


# --- transforms ------------------------------------------------------------------------------------


def _check(name: str, strength) -> None:
    if name not in TRANSFORMS:
        raise ConfigError(f"transform {name!r}: unknown (one of {', '.join(TRANSFORMS)})")
    if name == "occlude":
        if strength not in OCCLUDERS:
            raise ConfigError(f"occlude: {strength!r} is not one of {', '.join(OCCLUDERS)}")
        return
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ConfigError(f"{name}: strength must be a number, got {strength!r}")
    limits = {"downscale": (1, math.inf), "blur": (0, 1), "jpeg": (1, 100), "crop": (0.05, 1)}
    lo, hi = limits[name]
    if not lo <= strength <= hi:
        raise ConfigError(f"{name}: strength {strength} is outside [{lo}, {hi}]")


def sticker_mask(shape: tuple[int, int], marks: dict, face_box: Box) -> np.ndarray:
    """Boolean (H, W) mask of a round sticker centred on the nose tip, its radius 0.8 x the distance
    between the eye centres (it covers the nose and the inner half of each eye)."""
    import cv2  # noqa: PLC0415

    eyes = [np.asarray(marks.get(n, ()), np.float64).reshape(-1, 2) for n in EYES]
    nose = np.asarray(marks.get("nose_tip", ()), np.float64).reshape(-1, 2)
    if any(len(e) == 0 for e in eyes) or len(nose) == 0:
        fallback = box_landmarks(face_box)
        eyes = [np.asarray(fallback[n], np.float64) for n in EYES]
        nose = np.asarray(fallback["nose_tip"], np.float64)
    d = float(np.linalg.norm(eyes[1].mean(axis=0) - eyes[0].mean(axis=0))) or 1.0
    c = nose.mean(axis=0)
    canvas = np.zeros(shape, np.uint8)
    cv2.circle(canvas, (int(round(c[0])), int(round(c[1]))), int(round(0.8 * d)), 1, thickness=-1)
    return canvas.astype(bool)


def apply_transform(
    image: np.ndarray, face_box: Box, name: str, strength, *, landmarks: dict | None = None
) -> np.ndarray:
    """A transformed copy of ``image`` ((H, W, 3) RGB uint8, same size out) for the face at
    ``face_box`` (top, right, bottom, left). ``landmarks`` (face_recognition's layout) place the
    occluders; without them they are placed at typical proportions of the box. Pure: ``image`` is
    not changed. Raises :class:`ConfigError` for an unknown transform or a strength out of range."""
    import cv2  # noqa: PLC0415

    _check(name, strength)
    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = rgb.shape[:2]
    top, right, bottom, left = (int(v) for v in face_box)
    width, height = max(right - left, 1), max(bottom - top, 1)
    if name == "downscale":
        f = min(1.0, float(strength) / width)
        if f >= 1.0:
            return rgb.copy()
        small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    if name == "blur":
        sigma = float(strength) * width
        return rgb.copy() if sigma <= 0 else np.ascontiguousarray(cv2.GaussianBlur(rgb, (0, 0), sigma))
    if name == "jpeg":
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(strength)])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise ImageError(f"jpeg {strength}", "OpenCV could not re-encode the photo as JPEG")
        return np.ascontiguousarray(decoded[:, :, ::-1])
    if name == "crop":
        out = rgb.copy()
        out[max(0, min(h, top + int(round(float(strength) * height)))) :, :] = 0
        return out
    marks = landmarks if landmarks else box_landmarks(face_box)
    if strength == "sticker":
        out = rgb.copy()
        out[sticker_mask((h, w), marks, face_box)] = np.array(STICKER_RGB, np.uint8)
        return out
    img = rgb.astype(np.float32)
    occlude(img, marks, strength, face_box)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- image quality ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """How close a transformed photo stays to the original: SSIM (1 = identical) and PSNR in dB
    (inf when identical), over the region measured."""

    ssim: float
    psnr: float

    def to_dict(self) -> dict:
        return {"ssim": self.ssim, "psnr": self.psnr if math.isfinite(self.psnr) else None}


def quality_region(shape: tuple[int, int], face_box: Box) -> tuple[slice, slice]:
    """The face and a margin: the box grown by a quarter of its width and height on each side,
    clipped to the photo. Every transform acts there; a large background would dilute the numbers
    differently from photo to photo. (SSIM is a mean over the region: it is blind to how
    conspicuous a local occluder is, so occluders look cheaper by SSIM than to the eye.)"""
    h, w = shape
    top, right, bottom, left = face_box
    gw, gh = (right - left) / 4, (bottom - top) / 4
    return (
        slice(max(0, int(top - gh)), min(h, int(math.ceil(bottom + gh)))),
        slice(max(0, int(left - gw)), min(w, int(math.ceil(right + gw)))),
    )


def _luma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) of two uint8 images' luma: Gaussian window
    sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic range 255."""
    import cv2  # noqa: PLC0415

    x, y = _luma(a), _luma(b)
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs images of one size, got {x.shape} and {y.shape}")

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def image_quality(original: np.ndarray, transformed: np.ndarray, face_box: Box | None = None) -> Quality:
    """SSIM and PSNR of ``transformed`` against ``original`` (same size, RGB uint8): over the face
    and a margin (:func:`quality_region`) when ``face_box`` is given, else the whole photo."""
    a, b = np.asarray(original), np.asarray(transformed)
    if a.shape != b.shape:
        raise ValueError(f"image_quality needs images of one size, got {a.shape} and {b.shape}")
    if face_box is not None:
        ys, xs = quality_region(a.shape[:2], face_box)
        a, b = a[ys, xs], b[ys, xs]
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return Quality(ssim=ssim(a, b), psnr=psnr)


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


def _overlap(a: Box, b: Box) -> float:
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
        near = [f for f in faces if _overlap(f.box, at) > 0.3]
        if near:
            best = max(near, key=lambda f: _overlap(f.box, at))
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

PLATFORM_SIZES = (1_000_000, 1_000_000_000)


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
    name: str, face: FoundFace | None, snap: np.ndarray, view: SampleWorld, sizes, threshold: float
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
    f = findability(face.embedding, snap, view, sizes=(n_real, *sizes), threshold=threshold)
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


def _snapshot_vector(snapshot, model, settings) -> np.ndarray:
    if _is_embedding(snapshot):
        return np.asarray(snapshot, np.float32)
    if model is None:
        raise ValueError("a snapshot image needs the face model (model=...)")
    face = find_face(_as_rgb(snapshot, "snapshot", settings), model, settings, name="snapshot")
    if face is None:
        raise FaceNotFound("snapshot", "no face found in the stranger's snapshot")
    return face.embedding


def photo_findability(
    photos,
    snapshot,
    world: SampleWorld,
    *,
    model: FaceModel | None = None,
    settings: FaceSettings = SELF_CHECK_FACES,
    names=None,
    sizes=PLATFORM_SIZES,
    exclude=(),
    boxes=None,
    threshold: float = 0.6,
) -> list[PhotoFindability]:
    """Per photo, how findable it is by a stranger's ``snapshot`` (see :class:`PhotoFindability`).

    ``photos`` are (128,) embeddings, (H, W, 3) RGB uint8 arrays or image bytes (decoded in
    memory); ``snapshot`` likewise. Images need ``model``. ``world`` (:func:`privrisk.selfcheck.
    build_sample_world`) gives the sample faces and tail models; its distractors are not searched.
    A sample face identical to one of the photos (or to an ``exclude`` embedding) is not counted
    as someone else. ``boxes`` (one per photo, or None) are faces' known boxes: a photo whose face
    the detector misses there is judged at the box. Raises :class:`ImageError` naming an unreadable photo and
    :class:`FaceNotFound` when the snapshot has no face; a photo without a face gets a row saying so.
    """
    if not world.tail_models:
        raise ConfigError("the sample world has no tail models: platform-scale chances cannot be computed")
    photos = list(photos)
    names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(photos))]
    if len(names) != len(photos):
        raise ValueError(f"{len(names)} names for {len(photos)} photos")
    snap = _snapshot_vector(snapshot, model, settings)
    boxes = list(boxes) if boxes is not None else [None] * len(photos)
    faces: list[FoundFace | None] = []
    for item, name, box in zip(photos, names, boxes):
        if _is_embedding(item):
            faces.append(FoundFace(True, (0, 0, 0, 0), np.asarray(item, np.float32)))
            continue
        if model is None:
            raise ValueError("photos given as images need the face model (model=...)")
        faces.append(find_face(_as_rgb(item, name, settings), model, settings, at=box, name=name))
    view = _world_view(world, [*exclude, *(f.embedding for f in faces if f is not None)])
    return [_judge(name, face, snap, view, sizes, threshold) for face, name in zip(faces, names)]


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
    rgb: np.ndarray, face: FoundFace, model: FaceModel, settings: FaceSettings, level: Degradation, seed: int, marks
) -> np.ndarray:
    """A stranger's snapshot made from the photo itself at capture ``level`` (seeded): the face at
    the level's width, blurred, compressed, turned. Encoded at the shrunk box when not detected."""
    shot = degrade(rgb, face.box, level, np.random.default_rng([seed, 4]), landmarks=marks)
    f = min(1.0, level.face_width_px / max(face.width, 1)) if level.face_width_px else 1.0
    box = tuple(int(round(v * f)) for v in face.box)
    h, w = shot.shape[:2]
    box = (min(box[0], h - 1), min(box[1], w), min(box[2], h), min(box[3], w - 1))
    return find_face(shot, model, settings, at=box, name="snapshot").embedding


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
    world: SampleWorld,
    model: FaceModel,
    settings: FaceSettings = SELF_CHECK_FACES,
    snapshot_level: Degradation = STRANGER_SNAPSHOT,
    seed: int = 2011,
    name: str = "photo",
    strengths=None,
    threshold: float = 0.6,
) -> ProtectResult:
    """The least damaging protection of a photo, in memory.

    ``level`` "safe_at_1e6" / "safe_at_1e9": the setting with the highest SSIM, of ``transform``
    (or of every transform when None; ``strengths`` overrides its ladder), at which the upper end of
    the range for the chance of rank 1 among 10^6 / 10^9 people is under 10% when ``snapshot`` is
    searched against the protected copy, and the copy's measured rank among the sample faces is
    above 1 and differs from the original's (measured beats modelled, :meth:`PhotoFindability.safe`). ``snapshot`` (image, bytes or embedding) defaults to one
    simulated from the photo itself at ``snapshot_level`` (a stranger's street snapshot; the same
    photo is a conservative stand-in: a real snapshot of you is further away). When no setting
    gets there, the result says so and has no image. ``image`` is an RGB uint8 array or bytes.
    """
    if level not in LEVELS:
        raise ConfigError(f"level {level!r}: unknown (one of {', '.join(LEVELS)})")
    if transform is not None and transform not in TRANSFORMS:
        raise ConfigError(f"transform {transform!r}: unknown (one of {', '.join(TRANSFORMS)})")
    size = LEVELS[level]
    rgb = _as_rgb(image, name, settings)
    face = find_face(rgb, model, settings, name=name)
    if face is None:
        raise FaceNotFound(name, "no face found - use a photo in which your face is clearly visible")
    marks = face_landmarks(model, rgb, face.box) or None
    if snapshot is None:
        snap = simulated_snapshot(rgb, face, model, settings, snapshot_level, seed, marks)
        snap_note = (
            f"simulated from this photo at E2's '{snapshot_level.name}' level (face {snapshot_level.face_width_px} px "
            "wide, blurred, compressed; seed "
            f"{seed}); the same photo is a conservative stand-in for a real snapshot"
        )
    else:
        snap = _snapshot_vector(snapshot, model, settings)
        snap_note = "given"
    if not world.tail_models:
        raise ConfigError("the sample world has no tail models: platform-scale chances cannot be computed")
    view = _world_view(world, [face.embedding])
    sizes = tuple(sorted({size, *PLATFORM_SIZES}))
    before = _judge(name, face, snap, view, sizes, threshold)
    common = _ProtectCommon(
        level=level,
        gallery_size=size,
        target=TARGET,
        before=before,
        snapshot=snap_note,
        face_box=face.box,
        snapshot_vector=snap,
        original_vector=face.embedding,
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
    ladders = {t: tuple(strengths) if (strengths is not None and transform) else TRANSFORMS[t].ladder for t in names}
    options = []
    for t in names:
        for j, s in enumerate(ladders[t]):
            out = apply_transform(rgb, face.box, t, s, landmarks=marks)
            options.append((t, s, out, image_quality(rgb, out, face.box), names.index(t), j))
    options.sort(key=lambda o: (-o[3].ssim, o[4], o[5]))
    tried = []
    for t, s, out, q, _, _ in options:
        found = find_face(out, model, settings, at=face.box, name=name)
        after = _judge(f"{name} ({TRANSFORMS[t].label(s)})", found, snap, view, sizes, threshold)
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


# --- E4, the experiment stage ----------------------------------------------------------------------
#
# Each mated person's gallery photo (their public photo) is transformed at every strength; the
# stranger's snapshot is E2's fused captures at one level (default the exposure score's "street").
# Identification is measured among the real gallery (everyone else's photos unchanged) and taken
# to platform scale with the tail models' closed form, never with new searches.


@dataclass(frozen=True)
class CountermeasureSettings:
    enabled: bool = setting(
        False,
        "run E4, the countermeasures experiment (opt-in: it is outside the demo's time budget; "
        "`privrisk experiment --countermeasures` turns it on too)",
    )
    transforms: list[str] = setting(
        list(TRANSFORMS), "transforms applied to each person's gallery photo", choices=tuple(TRANSFORMS)
    )
    downscale: list[int] = setting(
        list(TRANSFORMS["downscale"].ladder), "downscale ladder: face widths in px left, mildest first", min=1
    )
    blur: list[float] = setting(
        list(TRANSFORMS["blur"].ladder), "blur ladder: Gaussian sigma as a share of the face width", min=0.0, max=1.0
    )
    jpeg: list[int] = setting(list(TRANSFORMS["jpeg"].ladder), "JPEG ladder: qualities, mildest first", min=1, max=100)
    crop: list[float] = setting(
        list(TRANSFORMS["crop"].ladder), "crop ladder: share of the face's height kept from the top", min=0.05, max=1.0
    )
    occlude: list[str] = setting(list(OCCLUDERS), "occluders tried", choices=OCCLUDERS)
    snapshot_level: str = setting(
        "street", "E2 level whose fused captures are the stranger's snapshot (the exposure score's default)"
    )
    max_subjects: int = setting(0, "mated persons used, a seeded random choice (0 = every one)", min=0)
    targets: list[float] = setting(
        [0.1, 0.01],
        "rank-1 targets at platform scale: per transform, the cheapest setting whose range's upper end is under each",
    )
    platform_sizes: list[int] = setting(
        [1_000_000, 1_000_000_000], "gallery sizes of the closed-form (tail model) rank-1 ranges", min=2
    )
    reference_ssim: list[float] = setting(
        [0.95, 0.9, 0.8],
        "SSIM levels at which transforms are ranked by the lowest rank-1 they reach while keeping at least that SSIM",
        min=0.0,
        max=1.0,
    )

    cloak_subjects: int = setting(
        20,
        "people whose gallery photo also gets the black-box adversarial cloak (a seeded choice; 0 = no cloak); "
        "it costs about 250 model queries per photo",
        min=0,
    )
    cloak_epsilon: float = setting(8.0, "the cloak's L-infinity budget in grey levels (of 255)", min=0.5, max=64.0)

    def ladder(self, name: str) -> list:
        return list(getattr(self, name))


@dataclass(frozen=True)
class TransformedPhoto:
    """A gallery photo at one transform and strength, made where it is embedded (picklable; cached by
    everything the pixels depend on)."""

    name: str
    source: str
    source_sha256: str
    box: Box  # in the source file's pixels
    transform: str
    strength: float | str  # a number, or an occluder's name
    max_side: int
    cache_key: str = field(compare=False)

    def image(self, model: FaceModel | None) -> tuple[np.ndarray, np.ndarray, Box]:
        """(original, transformed, box) in the loaded photo's pixels."""
        box = self.loaded_box()
        img = _last_source["image"]
        marks = None
        if self.transform == "occlude" and model is not None:
            key = ("marks", box)
            if key not in _last_source:
                _last_source[key] = face_landmarks(model, img.rgb, box) or None
            marks = _last_source[key]
        return img.rgb, apply_transform(img.rgb, box, self.transform, self.strength, landmarks=marks), box

    def loaded_box(self) -> Box:
        """The face's box in the loaded photo's pixels (the photo as decoded, at most ``max_side``)."""
        self._load()
        return as_box(v * _last_source["image"].scale for v in self.box)

    def _load(self) -> None:
        if _last_source.get("source") != self.source:
            img = load_image(self.source, max_side=self.max_side)
            _last_source.clear()
            _last_source.update(source=self.source, image=img)

    def render(self, model: FaceModel) -> bytes:
        return encode_png(self.image(model)[1])


#: bump when a change here alters the pixels of a transformed photo (cached embeddings are keyed by it)
E4_VERSION = "1"
_last_source: dict = {}  # per process: the last photo decoded (a person's settings arrive together)


@dataclass(frozen=True)
class CountermeasuresResult:
    """E4's results: one row per transform and strength (plus the untransformed baseline), a summary
    per transform and the ranking at equal SSIM. :meth:`to_dict` is ``experiments.countermeasures``."""

    settings: dict
    snapshot_level: str
    n_persons: int
    n_gallery: int
    baseline: dict
    rows: tuple
    summary: dict
    ranking: dict
    notes: tuple
    cloak: dict | None = None

    def to_dict(self) -> dict:
        return {
            "snapshot_level": self.snapshot_level,
            "n_persons": self.n_persons,
            "n_gallery": self.n_gallery,
            "baseline": self.baseline,
            "settings": [dict(r) for r in self.rows],
            "transforms": self.summary,
            "ranking_at_equal_ssim": self.ranking,
            "notes": list(self.notes),
            "cloak": self.cloak,
            "config": self.settings,
        }


def _rate(k: int, n: int) -> dict:
    from .metrics import clopper_pearson  # noqa: PLC0415

    return {"rate": k / n if n else None, "k": int(k), "n": int(n), "ci95": list(clopper_pearson(k, n))}


def hub_matrix(shots, owner, photo_vecs, photo_person, n_persons: int) -> np.ndarray:
    """``m[j, i]``: the smallest distance from any of person j's snapshot shots (``owner`` = person
    index per shot) to any of person i's (transformed) gallery photos (``photo_person`` per photo);
    inf where j has no shot or i no photo."""
    m = np.full((n_persons, n_persons), np.inf)
    if len(shots) and len(photo_vecs):
        d = pairwise_distances(np.asarray(shots, np.float32), np.asarray(photo_vecs, np.float32))
        photo_person = np.asarray(photo_person, np.int64)
        for r in range(len(d)):
            np.minimum.at(m[int(owner[r])], photo_person, d[r])
    return m


def hubness(m: np.ndarray, best: np.ndarray, person_col) -> dict:
    """How often person i's photo (as in ``m[j, i]``, see :func:`hub_matrix`) would be the top-1
    candidate for ANOTHER person j's snapshot, with only i's photo changed: ``m[j, i]`` strictly
    below j's best distance to every other gallery label (j's own untransformed photo included;
    ``best[j, l]`` is j's best distance to label l, ``person_col[i]`` the column of i's label).
    Counted over ordered pairs (i, j), j != i, j searchable (a finite best distance), and per photo
    (i attracts at least one other person's search); each with its exact interval."""
    n = len(best)
    person_col = np.asarray(person_col, np.int64)
    order = np.argsort(best, axis=1, kind="stable")
    first = best[np.arange(n), order[:, 0]] if best.shape[1] else np.full(n, np.inf)
    second = best[np.arange(n), order[:, 1]] if best.shape[1] > 1 else np.full(n, np.inf)
    # j's strongest rival once i's own label is set aside: its second best when i's label was its best
    rival = np.where(order[:, :1] == person_col[None, :], second[:, None], first[:, None])
    searchable = np.isfinite(best).any(axis=1)
    valid = searchable[:, None] & ~np.eye(n, dtype=bool) & np.isfinite(m)
    hub = valid & (m < rival)
    k_pairs, n_pairs = int(hub.sum()), int(valid.sum())
    has_pair = valid.any(axis=0)
    k_photos = int((hub.any(axis=0) & has_pair).sum())
    return {
        "pairs": _rate(k_pairs, n_pairs),
        "photos": _rate(k_photos, int(has_pair.sum())),
        "how": (
            "the protected photo is the top-1 candidate for another person's snapshot (closer than that person's "
            "own untransformed photo and everyone else); pairs are (photo, other person's snapshot) and are not "
            "independent, so the per-photo rate is the one to read"
        ),
    }


def paired_test(base_hits, hits) -> dict:
    """Exact McNemar test of rank-1 with a setting against the baseline on the same people: a
    two-sided exact binomial test on the discordant people (found only without / only with it)."""
    from scipy.stats import binomtest  # noqa: PLC0415

    a, b = np.asarray(base_hits, bool), np.asarray(hits, bool)
    lost, gained = int((a & ~b).sum()), int((~a & b).sum())
    p = float(binomtest(lost, lost + gained, 0.5).pvalue) if lost + gained else 1.0
    return {
        "found_only_without": lost,
        "found_only_with": gained,
        "n": int(a.size),
        "p_value": p,
        "test": "exact McNemar (two-sided binomial on the discordant people)",
    }


def _closed_form_rank1(models, shot_vecs, shot_owner, own_d, real_first, n_other_sizes, seed, held_out=None):
    """Rank-1 at each size: mean over persons of 1[first among the real gallery] * P(no other face
    within the person's distance), per tail model and replicate (persons resampled in replicates);
    returns (point, lo, hi, per-size arrays) where the range spans every model's 2.5-97.5% quantiles.
    ``held_out`` = (per kind, {fold: model}; each shot's fold) scores each person with the model of
    the fold that never saw them, as the scaling study does; without it, ``models`` score everyone."""
    from . import tailmodel  # noqa: PLC0415

    n = len(own_d)
    radius = np.nan_to_num(own_d[shot_owner], nan=0.0, posinf=0.0)
    rows = tailmodel.Captures(shot_vecs, shot_owner, n)
    rng = np.random.default_rng(seed)
    point, per_model = None, []
    kinds = held_out[0] if held_out is not None else models
    for mi, m in enumerate(kinds):
        vals = []
        n_reps = len(next(iter(m.values())).boot) + 1 if held_out is not None else len(m.boot) + 1
        for rep in range(n_reps):
            if held_out is not None:
                s = tailmodel.crossfit_survival(
                    tailmodel.CrossFit(m, held_out[1]), rows, radius, n_other_sizes, rep=rep
                )
            else:
                s = tailmodel.rank_probabilities(
                    m, rows, radius, n_other_sizes, params=tailmodel.replicate_params(m, rep)
                )
            hit = real_first[:, None] * s
            pick = np.arange(n) if rep == 0 else rng.integers(0, n, n)
            vals.append(hit[pick].mean(axis=0) if n else np.full(len(n_other_sizes), np.nan))
        vals = np.array(vals)
        if mi == 0:
            point = vals[0]
        per_model.append(np.quantile(vals, [0.025, 0.975], axis=0) if len(vals) > 1 else np.array([vals[0], vals[0]]))
    lo = np.minimum(np.min([p[0] for p in per_model], axis=0), point)
    hi = np.maximum(np.max([p[1] for p in per_model], axis=0), point)
    return point, lo, hi


def _crossing(xs, ys, level=0.5):
    """First x (interpolated linearly between ladder points) where ys falls below ``level``: (x,
    status) with status "reached", "at or before the mildest setting" or "not reached"."""
    for i, y in enumerate(ys):
        if y is not None and y < level:
            if i == 0:
                return float(xs[0]), "at or before the mildest setting"
            y0 = ys[i - 1]
            t = (y0 - level) / (y0 - y) if y0 != y else 1.0
            return float(xs[i - 1] + t * (xs[i] - xs[i - 1])), "reached"
    return None, "not reached within the ladder"


def _axis(name: str, strengths) -> tuple[list, str]:
    """The axis a ladder is interpolated on: log face width for downscale, the strength otherwise."""
    if name == "downscale":
        return [math.log(float(s)) for s in strengths], "log"
    return [float(s) for s in strengths], "linear"


def _below_half(name: str, rows: list[dict]) -> dict:
    if name == "occlude":
        return {
            "categorical": True,
            "below_50": [r["strength"] for r in rows if r["rank1"]["rate"] is not None and r["rank1"]["rate"] < 0.5],
            "clearly_below_50": [r["strength"] for r in rows if r["rank1"]["ci95"][1] < 0.5],
            "note": "occluders are kinds, not a ladder: each kind's rank-1 with its exact interval is in the settings",
        }
    xs, scale = _axis(name, [r["strength"] for r in rows])
    back = (lambda v: None if v is None else float(math.exp(v))) if scale == "log" else (lambda v: v)
    point, status = _crossing(xs, [r["rank1"]["rate"] for r in rows])
    early, s_early = _crossing(xs, [r["rank1"]["ci95"][0] for r in rows])
    late, s_late = _crossing(xs, [r["rank1"]["ci95"][1] for r in rows])
    return {
        "categorical": False,
        "strength": back(point),
        "status": status,
        "interval": [back(early), back(late)],
        "interval_status": [s_early, s_late],
        "interval_method": (
            "where the exact 95% interval's lower and upper ends cross 50%, each interpolated between ladder "
            "points" + (" on a log scale of face width" if scale == "log" else "") + " (pointwise, not simultaneous)"
        ),
    }


def frontier_trend(baseline: dict, rows: list[dict], rate: str = "rank1", paired: str = "paired_vs_baseline") -> dict:
    """Does rank-1 fall as SSIM falls along a transform's frontier? Spearman's rho between mean SSIM
    and measured rank-1 (``rate``: ``"rank1"``, or ``"rank1_this_detector"`` for the view where a
    face the detector misses is not in the gallery) over the untransformed photo and the transform's
    settings (positive: rank-1 falls as the photo loses quality), said in words; ``paired`` names
    each setting's exact paired test against the original."""
    from scipy.stats import spearmanr  # noqa: PLC0415

    pts = [baseline, *rows]
    x, y = [p["ssim"] for p in pts], [p[rate]["rate"] for p in pts]
    fit = spearmanr(x, y) if len(set(y)) > 1 and len(set(x)) > 1 else None
    rho = float(fit.statistic) if fit is not None else float("nan")
    p_rho = float(fit.pvalue) if fit is not None and math.isfinite(float(fit.pvalue)) else float("nan")
    if not math.isfinite(rho):
        words = "rank-1 does not change"
    elif not p_rho < 0.05:  # the sign of a weak rho is not a direction (blur: 90% -> 10% can give rho -0.13)
        words = "no monotone trend the ladder can show"
    elif rho > 0:
        words = "rank-1 falls as SSIM falls"
    else:
        words = "rank-1 rises as SSIM falls"
    statement = (
        f"{words} (Spearman rho {rho:.2f}, p {p_rho:.2g}, over {len(pts)} points, the original included)"
        if math.isfinite(rho)
        else f"{words} ({len(pts)} points, the original included)"
    )
    ks = [p[rate].get("k") for p in pts]
    if all(k is not None for k in ks) and pts[0][rate].get("n"):
        # the sign alone can rest on one person: say how far rank-1 actually moves, and whether it moves significantly
        statement += f"; measured rank-1 spans {min(y):.1%}-{max(y):.1%} ({min(ks)}-{max(ks)} of {pts[0][rate]['n']})"
    tests = [r[paired] for r in rows if r.get(paired)]
    if tests:
        sig = [t for t in tests if t["p_value"] < 0.05]
        statement += (
            f"; {len(sig)} of {len(tests)} settings differ from the original by the exact paired test (p < 0.05, unadjusted)"
            if sig
            else "; no setting differs from the original by the exact paired test (p >= 0.05)"
        )
    return {
        "spearman_rho": rho if math.isfinite(rho) else None,
        "spearman_p": p_rho if math.isfinite(p_rho) else None,
        "n_points": len(pts),
        "significant_settings": sum(t["p_value"] < 0.05 for t in tests) if tests else None,
        "statement": statement,
    }


def _only_hidden(m: dict, detector: str) -> str | None:
    """A setting that lowers rank-1 significantly (exact McNemar, p < 0.05) only for a stranger whose
    detector misses the transformed face, not for one whose detector still finds it: labelled so."""

    def lowers(p: dict) -> bool:
        return p["found_only_without"] > p["found_only_with"] and p["p_value"] < 0.05

    if lowers(m["paired_this_detector_vs_baseline"]) and not lowers(m["paired_vs_baseline"]):
        return f"works only because the {detector} detector misses the face: a stronger detector still finds the person"
    return None


def _cheapest(rows: list[dict], size: int, target: float) -> dict | None:
    ok = [r for r in rows if r["platform"][str(size)]["range"][1] < target]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["ssim"])
    return {"strength": best["strength"], "ssim": best["ssim"], "rank1_range": best["platform"][str(size)]["range"]}


def ranking_at_equal_ssim(rows: list[dict], baseline_rank1: float, reference_ssim) -> dict:
    """Per reference SSIM s: the transforms ordered by the lowest rank-1 each reaches while keeping a
    mean SSIM of at least s (doing nothing, SSIM 1, is always allowed), ties by name."""
    out = {}
    for s in reference_ssim:
        entries = []
        for t in dict.fromkeys(r["transform"] for r in rows):
            ok = [r for r in rows if r["transform"] == t and r["ssim"] >= s]
            best = min(ok, key=lambda r: r["rank1"]["rate"], default=None)
            if best is None or best["rank1"]["rate"] >= baseline_rank1:
                entries.append({"transform": t, "rank1": baseline_rank1, "strength": None, "ci95": None})
            else:
                entries.append(
                    {
                        "transform": t,
                        "rank1": best["rank1"]["rate"],
                        "strength": best["strength"],
                        "ci95": best["rank1"]["ci95"],
                    }
                )
        entries.sort(key=lambda e: (e["rank1"], e["transform"]))
        out[f"{s:g}"] = entries
    return out


def run_countermeasures(
    settings: CountermeasureSettings,
    *,
    snapshot_vectors: np.ndarray,
    snapshot_owner: np.ndarray,
    person_labels: np.ndarray,
    gallery_vectors: np.ndarray,
    gallery_labels: np.ndarray,
    gallery_photos: list,
    tail_models,
    held_out_models: list[dict] | None = None,
    snapshot_fold: np.ndarray | None = None,
    face_settings: FaceSettings = FaceSettings(),
    model: FaceModel | None = None,
    cache=None,
    workers: int | None = None,
    seed: int = 2011,
    threshold: float = 0.6,
    log=None,
    progress: bool = False,
) -> CountermeasuresResult:
    """E4 on one gallery: each person's gallery photo(s) transformed at every strength, searched by
    their snapshot (``snapshot_vectors`` with ``snapshot_owner`` = person index, several shots fused
    by the best distance, as E2 does) among the real gallery; platform-scale rank-1 from
    ``tail_models`` in closed form. ``person_labels[p]`` is person p's gallery label;
    ``gallery_photos[i]`` = (path, box in the file's pixels) of gallery face i. Persons whose label
    has no gallery photo are skipped (not mated). With ``held_out_models`` (per
    kind, {fold: tail model}) and ``snapshot_fold`` (each snapshot's fold), each person's platform
    figures come from the fold model that never saw them; otherwise ``tail_models`` score everyone."""
    from .embeddings import artifact_key, embed_batch, file_sha256  # noqa: PLC0415
    from .models import load_face_model  # noqa: PLC0415

    log = log or (lambda _m: None)
    if not tail_models:
        raise ConfigError("countermeasures: no tail models to take identification to platform scale")
    g_vecs = np.asarray(gallery_vectors, np.float32)
    g_lab = np.asarray(gallery_labels)
    labels = np.unique(g_lab)
    persons = [p for p in range(len(person_labels)) if person_labels[p] in set(labels.tolist())]
    rng = np.random.default_rng([seed, 44])
    if settings.max_subjects and len(persons) > settings.max_subjects:
        persons = sorted(rng.choice(persons, settings.max_subjects, replace=False).tolist())
    n = len(persons)
    if n == 0:
        raise ConfigError("countermeasures: no snapshot person has a gallery photo")
    remap = {p: i for i, p in enumerate(persons)}
    keep = np.isin(snapshot_owner, persons)
    shots = np.asarray(snapshot_vectors, np.float32)[keep]
    owner = np.array([remap[int(o)] for o in np.asarray(snapshot_owner)[keep]], np.int64)
    held_out = None
    if held_out_models is not None:
        if snapshot_fold is None or len(snapshot_fold) != len(snapshot_owner):
            raise ConfigError("countermeasures: held-out tail models need one fold per snapshot")
        held_out = (held_out_models, np.asarray(snapshot_fold)[keep])
    plab = np.asarray(person_labels)[persons]
    # every shot against every gallery face, then each person's best distance per label
    d_all = pairwise_distances(shots, g_vecs)
    lab_idx = np.searchsorted(labels, g_lab)
    best = np.full((n, len(labels)), np.inf)
    for r in range(len(shots)):
        np.minimum.at(best[owner[r]], lab_idx, d_all[r])
    own_col = np.searchsorted(labels, plab)
    others = best.copy()
    others[np.arange(n), own_col] = np.inf
    mine = [np.where(g_lab == plab[i])[0] for i in range(n)]  # each person's gallery faces

    def measure(own_d: np.ndarray, detected: np.ndarray | None) -> dict:
        rank = 1 + (others < own_d[:, None]).sum(axis=1)
        rank = np.where(np.isfinite(own_d), rank, 10**9)
        r1, r10 = int((rank == 1).sum()), int((rank <= 10).sum())
        tp = int(((rank == 1) & (own_d <= threshold)).sum())
        n_other = [max(int(s) - len(labels), 0) for s in settings.platform_sizes]
        point, lo, hi = _closed_form_rank1(
            tail_models, shots, owner, own_d, (rank == 1).astype(float), n_other, seed + 45, held_out
        )
        n_pairs = tail_models[0].n_pairs
        out = {
            "rank1": _rate(r1, n),
            "rank10": _rate(r10, n),
            "tpir_at_threshold": _rate(tp, n) | {"threshold": threshold},
            "platform": {
                str(int(s)): {
                    "rank1": float(point[j]),
                    "range": [float(lo[j]), float(hi[j])],
                    # closed form, nothing searched: never "simulated" (that is model distractors searched)
                    "kind": "extrapolated" if n_other[j] > n_pairs else "model",
                    "how": "tail models' closed form (no search)"
                    + ("; past what the real impostor pairs can check" if n_other[j] > n_pairs else ""),
                }
                for j, s in enumerate(settings.platform_sizes)
            },
            "ranks": rank.tolist(),
        }
        if detected is not None:
            k = int(detected.sum())
            from .metrics import proportion_interval  # noqa: PLC0415

            out["detection"] = {
                "rate": k / detected.size,
                "k": k,
                "n": int(detected.size),
                "ci95": list(proportion_interval(k, detected.size)),
            }
        return out

    baseline = measure(np.array([best[i, own_col[i]] for i in range(n)]), None)
    baseline.update(ssim=1.0, psnr=None, transform="none", strength=None)
    baseline["hub"] = hubness(best[:, own_col], best, own_col)
    # the gallery faces were found by the detector, so the original's two views agree
    baseline["rank1_this_detector"] = dict(baseline["rank1"])
    base_hits = np.asarray(baseline["ranks"]) == 1
    log(
        f"E4 countermeasures: {n} persons, snapshot level '{settings.snapshot_level}'; baseline rank-1 {baseline['rank1']['rate']:.1%}"
    )

    # the transformed gallery photos, embedded through the cache (the sample set's files, never uploads)
    faces_needed = sorted({int(j) for i in range(n) for j in mine[i]})
    if model is not None:
        model_id = model.model_id
    else:
        from .models import embedder_id  # noqa: PLC0415

        model_id = embedder_id(face_settings)
    grid = [(t, s) for t in settings.transforms for s in settings.ladder(t)]
    recipes: list[TransformedPhoto] = []
    at: dict[tuple[str, float | str, int], int] = {}
    for j in faces_needed:  # one photo's settings together: each worker decodes a photo once
        path, box = gallery_photos[j]
        sha = file_sha256(path)
        for t, s in grid:
            key = artifact_key(
                "countermeasure", E4_VERSION, sha, [int(v) for v in box], t, s, face_settings.max_side,
                face_settings.cache_key(model_id),
            )  # fmt: skip
            at[(t, s, j)] = len(recipes)
            recipes.append(
                TransformedPhoto(
                    f"{Path(str(path)).stem}-{t}-{s}.png", str(path), sha, as_box(box), t, s,
                    face_settings.max_side, key,
                )
            )  # fmt: skip
    log(f"E4: embedding {len(recipes)} transformed gallery photos ({len(grid)} settings x {len(faces_needed)} photos)")
    res = embed_batch(recipes, face_settings, model=model, cache=cache, workers=workers, progress=progress)
    loaded: dict = {}

    def main_model():  # landmarks for occluders and encodings at a box, in this process
        if "m" not in loaded:
            loaded["m"] = model if model is not None else load_face_model(face_settings)
        return loaded["m"]

    vec = np.zeros((len(recipes), g_vecs.shape[1]), np.float32)
    det = np.zeros(len(recipes), bool)
    width_left = np.zeros(len(recipes))
    quality = np.zeros((len(recipes), 2))
    for k, (rec, result) in enumerate(zip(recipes, res)):
        made = None
        qkey = artifact_key("countermeasure-quality", rec.cache_key)
        q = cache.get_arrays(qkey) if cache is not None else None
        if q is None:
            made = rec.image(main_model() if rec.transform == "occlude" else None)
            qq = image_quality(*made)
            q = {"q": np.array([qq.ssim, qq.psnr if math.isfinite(qq.psnr) else np.nan])}
            if cache is not None:
                cache.put_arrays(qkey, q)
        quality[k] = q["q"]
        box = rec.loaded_box()
        near = [f for f in result.faces if _overlap(f.box, box) > 0.3] if result.ok else []
        if near:
            vec[k], det[k] = max(near, key=lambda f: _overlap(f.box, box)).embedding, True
        else:  # the detector missed it: encoded at the known box (a stronger detector would find it)
            bkey = artifact_key("countermeasure-at-box", rec.cache_key)
            hit = cache.get_arrays(bkey) if cache is not None else None
            if hit is None:
                made = made or rec.image(main_model())
                hit = {"v": np.asarray(main_model().encode(made[1], [box], face_settings.jitters), np.float32)[0]}
                if cache is not None:
                    cache.put_arrays(bkey, hit)
            vec[k] = hit["v"]
        w0 = box[1] - box[3]
        width_left[k] = min(float(rec.strength), w0) if rec.transform == "downscale" else w0

    def own_best(ks: list) -> tuple[np.ndarray, np.ndarray]:
        """Each person's best distance from their snapshot shots to their transformed photos: over all
        of them (a photo the detector missed is judged at its known box), and over those whose face the
        detector found (inf when none). A person with no searchable shot gets inf in both (a miss, as
        in E2). Each photo's distance is computed once."""
        d = {
            k: float(np.linalg.norm(shots[owner == i] - vec[k], axis=1).min())
            for i, kk in enumerate(ks)
            if (owner == i).any()
            for k in kk
        }
        every = np.array([min((d[k] for k in kk if k in d), default=np.inf) for kk in ks])
        found = np.array([min((d[k] for k in kk if k in d and det[k]), default=np.inf) for kk in ks])
        return every, found

    rows = []
    for t, s in grid:
        ks = [[at[(t, s, int(j))] for j in mine[i]] for i in range(n)]
        own, seen = own_best(ks)
        flat = [k for kk in ks for k in kk]
        m = measure(own, det[flat])
        # the same search as a platform running this detector would see it: a photo whose face the
        # detector misses never enters the gallery, so it cannot be found
        hits_seen = np.isfinite(seen) & (1 + (others < seen[:, None]).sum(axis=1) == 1)
        m["rank1_this_detector"] = _rate(int(hits_seen.sum()), n)
        m["paired_this_detector_vs_baseline"] = paired_test(base_hits, hits_seen)
        photo_person = [i for i, kk in enumerate(ks) for _ in kk]
        m["hub"] = hubness(hub_matrix(shots, owner, vec[flat], photo_person, n), best, own_col)
        m["paired_vs_baseline"] = paired_test(base_hits, np.asarray(m["ranks"]) == 1)
        m["works_only_because_the_detector_misses"] = _only_hidden(m, face_settings.detector)
        psnr = quality[flat, 1]
        m.update(
            transform=t,
            strength=s,
            label=TRANSFORMS[t].label(s),
            ssim=float(quality[flat, 0].mean()),
            ssim_min=float(quality[flat, 0].min()),
            psnr=float(np.nanmean(psnr)) if np.isfinite(psnr).any() else None,
            face_width_left_median=float(np.median(width_left[flat])),
        )
        rows.append(m)
        log(
            f"E4 {TRANSFORMS[t].label(s)}: rank-1 {m['rank1']['rate']:.1%}, SSIM {m['ssim']:.3f}, "
            f"detected {m['detection']['rate']:.0%}, top-1 for others {m['hub']['photos']['k']}/{m['hub']['photos']['n']}"
        )

    cloak_result = None
    if settings.cloak_subjects:
        pick = np.random.default_rng([seed, 47]).permutation(n)[: settings.cloak_subjects]
        pick = np.array(sorted(int(i) for i in pick if len(mine[i]) and (owner == i).any()), np.int64)
        log(f"E4: the adversarial cloak on {len(pick)} people's gallery photos")
        photos = []
        for i in pick:
            j = int(mine[i][0])
            img = load_image(gallery_photos[j][0], max_side=face_settings.max_side)
            photos.append((img.rgb, tuple(int(round(v * img.scale)) for v in gallery_photos[j][1])))
        snaps = {int(i): shots[owner == i] for i in pick}
        cloak_result = _cloak_study(settings, pick, photos, snaps, others, seed, main_model(), face_settings.jitters)
        for c, v in cloak_result["conditions"].items():
            log(
                f"E4 cloak {c}: rank-1 {v['rank1']['rate']:.0%} (original {v['original_rank1']['rate']:.0%}), shift kept {v['shift_kept']:.0%}"
            )

    summary = {}
    for t in settings.transforms:
        tr = [r for r in rows if r["transform"] == t]
        summary[t] = {
            "strength_means": TRANSFORMS[t].strength,
            "trend": frontier_trend(baseline, tr),
            "trend_this_detector": frontier_trend(
                baseline, tr, rate="rank1_this_detector", paired="paired_this_detector_vs_baseline"
            ),
            "rank1_below_50": _below_half(t, tr),
            "cheapest": {
                str(int(size)): {f"{target:g}": _cheapest(tr, int(size), target) for target in settings.targets}
                for size in settings.platform_sizes
            },
            "cheapest_attacker": (
                "a stranger whose detector finds every face (a missed face is encoded at its known box), "
                f"{model_id}, threshold {threshold:g}"
            ),
            "only_because_the_detector_misses": [r["label"] for r in tr if r["works_only_because_the_detector_misses"]],
        }
    ranking = ranking_at_equal_ssim(rows, baseline["rank1"]["rate"], settings.reference_ssim)
    notes = (
        f"identification: each person's gallery photo transformed, everyone else's unchanged; the stranger's snapshot is "
        f"E2's '{settings.snapshot_level}' captures of their other photo, fused by the best distance (measured, n = {n})",
        "a transformed photo whose face the detector misses is encoded at the face's known box (a stronger detector "
        "would still find it): identification is judged conservatively, and the detection rate is given beside it",
        "'with this detector' judges the same search as a platform running dlib's detector would: a photo whose face it "
        "misses never enters the gallery and cannot be found; the two views differ only where detection fails",
        "platform-scale rank-1: the tail models' closed form at each size (nothing searched), with the range over both "
        "tail models, their bootstrap refits and people resampled; 'extrapolated' past what the real impostor pairs can "
        "check, 'model' within it",
        (
            "each person's platform-scale figures come from the tail models of the cross-fit fold that never saw them "
            "(the scaling study's 5 folds), so no one is scored by a model fitted on their own pairs"
            if held_out is not None
            else "the tail models behind these ranges were fitted on everyone, including the people whose photos are "
            "transformed here, so the ranges leave out out-of-sample error and are likely too narrow"
        ),
        "only the protected person's photo is transformed while everyone else's stays sharp: 'top-1 for others' counts "
        "how often that photo would become the top candidate for another person's snapshot (it attracts their search), "
        "which a gallery where many photos are small would not show the same way",
        "each setting's rank-1 is compared with the original photo's on the same people by an exact McNemar test "
        "(two-sided binomial on the people found only with / only without the setting); overlapping intervals are "
        "not the test",
        "SSIM and PSNR over the face and a margin (the box grown by a quarter each side), the mean over persons; SSIM is "
        "blind to how conspicuous a local occluder is",
        "cheapest: the setting with the highest mean SSIM whose platform rank-1 range's upper end is under the target",
    )
    return CountermeasuresResult(
        settings=to_dict(settings),
        snapshot_level=settings.snapshot_level,
        n_persons=n,
        n_gallery=len(labels),
        baseline=baseline,
        rows=tuple(rows),
        summary=summary,
        ranking=ranking,
        notes=notes,
        cloak=cloak_result,
    )


# --- the adversarial cloak -------------------------------------------------------------------------


def cloak(
    image: np.ndarray,
    face_box: Box,
    model: FaceModel,
    *,
    epsilon: float = 8.0,
    steps: int = 12,
    pairs: int = 10,
    grid: int = 24,
    seed: int = 2011,
    jitters: int = 1,
) -> tuple[np.ndarray, dict]:
    """A black-box adversarial cloak (dlib gives no gradients): a perturbation of the face and its
    margin (:func:`quality_region`), at most ``epsilon`` grey levels per pixel (L-infinity), drawn
    on a ``grid`` x ``grid`` x 3 lattice and scaled up smoothly, that pushes the face's embedding away
    from the original's. Search: natural-evolution-strategies gradient estimates (``pairs``
    antithetic samples per step) and ``steps`` signed steps, projected back into the budget; the
    face is encoded at ``face_box`` throughout. Returns the cloaked copy and {queries, shift}."""
    import cv2  # noqa: PLC0415

    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    ys, xs = quality_region(rgb.shape[:2], face_box)
    rh, rw = ys.stop - ys.start, xs.stop - xs.start
    base = rgb.astype(np.float32)
    box = [as_box(face_box)]
    f0 = np.asarray(model.encode(rgb, box, jitters), np.float64)[0]
    rng = np.random.default_rng([seed, 46])
    queries = 0

    def make(delta: np.ndarray) -> np.ndarray:
        up = cv2.resize(delta.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR)
        out = base.copy()
        out[ys, xs] += up
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def loss(delta: np.ndarray) -> float:
        nonlocal queries
        queries += 1
        return float(np.linalg.norm(np.asarray(model.encode(make(delta), box, jitters), np.float64)[0] - f0))

    delta = np.zeros((grid, grid, 3), np.float32)
    sigma, step = epsilon / 4, epsilon / 4
    for _ in range(steps):
        g = np.zeros_like(delta)
        for _ in range(pairs):
            u = rng.standard_normal(delta.shape).astype(np.float32)
            g += (
                loss(np.clip(delta + sigma * u, -epsilon, epsilon))
                - loss(np.clip(delta - sigma * u, -epsilon, epsilon))
            ) * u
        delta = np.clip(delta + step * np.sign(g), -epsilon, epsilon)
    out = make(delta)
    shift = loss(delta)
    return out, {"queries": queries, "shift": shift}


def _cloak_study(settings, persons_idx, photos, snap_shots, others_best, seed, model, jitters) -> dict:
    """The cloak on ``persons_idx``: identification by their snapshots (rank among the real gallery)
    for the original and the cloaked photo, each also after JPEG 75 and a resize by 0.5, and whether
    the cloak's push survives each (it survives when at least half of its embedding shift remains)."""
    import cv2  # noqa: PLC0415

    from .metrics import clopper_pearson  # noqa: PLC0415

    def jpeg75(img):
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]

    def half(img, box):
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        return small, tuple(int(round(v * small.shape[1] / w)) for v in box)

    conditions = ("clean", "after JPEG 75", "after resize 0.5")
    emb: dict[tuple[str, str], list[np.ndarray]] = {(k, c): [] for k in ("original", "cloaked") for c in conditions}
    quality, queries = [], []
    for p, (rgb, box) in zip(persons_idx, photos):
        cloaked, info = cloak(rgb, box, model, epsilon=settings.cloak_epsilon, seed=seed + int(p), jitters=jitters)
        quality.append(image_quality(rgb, cloaked, box))
        for kind, img in (("original", rgb), ("cloaked", cloaked)):
            for c in conditions:
                x, b = (img, box) if c == "clean" else ((jpeg75(img), box) if c == "after JPEG 75" else half(img, box))
                emb[(kind, c)].append(np.asarray(model.encode(np.ascontiguousarray(x), [b], jitters), np.float32)[0])
        queries.append(info["queries"])
    n = len(persons_idx)

    def hits(vecs) -> np.ndarray:
        own = np.array([np.linalg.norm(snap_shots[i] - v, axis=1).min() for i, v in zip(persons_idx, vecs)])
        return (others_best[persons_idx] >= own[:, None]).all(axis=1)

    def rank1(vecs) -> dict:
        k = int(hits(vecs).sum())
        return {"rate": k / n, "k": k, "n": n, "ci95": list(clopper_pearson(k, n))}

    def paired(c: str) -> dict:
        """Does the cloak lower rank-1? The same people with and without it: an exact (McNemar) test
        on the people it changes."""
        from scipy.stats import binomtest  # noqa: PLC0415

        a, b = hits(emb[("original", c)]), hits(emb[("cloaked", c)])
        lost, gained = int((a & ~b).sum()), int((~a & b).sum())
        p = float(binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue) if lost + gained else 1.0
        return {
            "found_only_without_cloak": lost,
            "found_only_with_cloak": gained,
            "p_value": p,
            "lowers_rank1": p < 0.05,
        }

    out: dict[str, dict] = {}
    clean_shift = float(
        np.mean([np.linalg.norm(a - b) for a, b in zip(emb[("cloaked", "clean")], emb[("original", "clean")])])
    )
    for c in conditions:
        shift = float(np.mean([np.linalg.norm(a - b) for a, b in zip(emb[("cloaked", c)], emb[("original", c)])]))
        kept = shift / clean_shift if clean_shift > 0 else 0.0
        out[c] = {
            "original_rank1": rank1(emb[("original", c)]),
            "rank1": rank1(emb[("cloaked", c)]),
            "embedding_shift": shift,
            "shift_kept": kept,
            "survives": bool(kept >= 0.5) if c != "clean" else True,
            "effect": paired(c),
        }
    return {
        "method": (
            f"black-box cloak: NES gradient estimates (10 antithetic pairs per step, 12 signed steps, about "
            f"{int(np.mean(queries))} model queries per photo) of a perturbation of the face and margin, at most "
            f"{settings.cloak_epsilon:g} grey levels per pixel, on a 24 x 24 lattice scaled up; it pushes the face's "
            "embedding away from the original's. It survives a processing step when at least half of its embedding "
            "shift (cloaked against original, both processed the same way) remains; whether it protects is a "
            "separate question: a one-sided exact paired test (does it lower rank-1?) with and without it on the same people"
        ),
        "n": n,
        "epsilon": settings.cloak_epsilon,
        "ssim": float(np.mean([q.ssim for q in quality])),
        "psnr": float(np.mean([q.psnr for q in quality if math.isfinite(q.psnr)])) if quality else None,
        "conditions": out,
        "survives_jpeg75": out["after JPEG 75"]["survives"],
        "survives_resize_0.5": out["after resize 0.5"]["survives"],
        "lowers_rank1": out["clean"]["effect"]["lowers_rank1"],
        "verdict": (
            (
                "it lowers rank-1 (one-sided exact paired test, p < 0.05)"
                if out["clean"]["effect"]["lowers_rank1"]
                else "it does not measurably lower rank-1 (one-sided exact paired test, p >= 0.05): moving the embedding is not protection"
            )
            + "; its push "
            + ("survives" if out["after JPEG 75"]["survives"] else "does NOT survive")
            + " JPEG 75 and "
            + ("survives" if out["after resize 0.5"]["survives"] else "does NOT survive")
            + " a resize by 0.5"
        ),
    }


def run_on_experiment(cfg, enrolled, e1, fused: dict, scaling: dict, cache, log, progress) -> CountermeasuresResult:
    """:func:`run_countermeasures` inside :func:`privrisk.experiment.run_experiment`: against the E1
    gallery (``enrolled``, a :class:`privrisk.stages.split.Enrolled`), with E2's fused captures
    (:class:`privrisk.stages.offline.FusedLevel`) at ``cfg.countermeasures.snapshot_level`` as the
    stranger's snapshot, and the scaling study's tail models: each person scored by the fold's model
    that never saw them (the study's cross-fit, refitted here with the same seed and folds)."""
    from . import tailmodel  # noqa: PLC0415
    from .gallery import Gallery  # noqa: PLC0415
    from .stages.scaling import held_out_tail_models  # noqa: PLC0415

    level = fused[cfg.countermeasures.snapshot_level]
    log("E4: the tail models' held-out folds (the scaling study's cross-fit)")
    cross = held_out_tail_models(cfg, enrolled, e1)
    shot_vecs, shot_owner, lv_truth = level.shot_vecs, level.shot_owner, level.truth
    gallery_vectors, gallery_labels = enrolled.gal_vecs, enrolled.gal_codes
    with Gallery.open(enrolled.gallery_dir) as g:
        gallery_ids, _ = g.embeddings()  # the same order as enrolled.gal_vecs
        meta = g.faces()
    return run_countermeasures(
        cfg.countermeasures,
        snapshot_vectors=shot_vecs,
        snapshot_owner=shot_owner,
        person_labels=lv_truth,
        gallery_vectors=gallery_vectors,
        gallery_labels=gallery_labels,
        gallery_photos=[(meta[int(i)]["image"], meta[int(i)]["box"]) for i in gallery_ids],
        tail_models=[tailmodel.from_json(m) for m in scaling["tail_models"]["models"]],
        held_out_models=None if cross is None else cross[0],
        snapshot_fold=None if cross is None else cross[1][level.shot_probe()],
        face_settings=cfg.faces,
        cache=cache,
        workers=cfg.workers or None,
        seed=cfg.seed,
        threshold=cfg.gallery.threshold,
        log=log,
        progress=progress,
    )
