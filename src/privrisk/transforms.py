"""The transforms a person can apply to a public photo, and what each costs the photo.

Five transforms, each with a ladder of strengths from mild to harsh (:data:`TRANSFORMS`; the ladders
are declared once, as the defaults of :class:`privrisk.config.CountermeasureSettings`):
``downscale`` (the face width in pixels left), ``blur`` (Gaussian sigma as a share of the face
width), ``jpeg`` (quality), ``crop`` (the share of the face's height kept) and ``occlude``
(sunglasses, mask or sticker, placed from the face's landmarks with :mod:`privrisk.degrade`'s
occluders). :func:`apply_transform` is pure and keeps the photo's size, so
:func:`image_quality` (SSIM and PSNR) is defined against the original. :func:`cloak` is a black-box
adversarial perturbation of the face (E4 tests whether it survives).

Judging what a transform does to a photo's findability is :mod:`privrisk.protect`'s; E4, the
experiment over the sample set, is :mod:`privrisk.stages.countermeasures`. Everything here works in
memory on arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import OCCLUDERS, TRANSFORM_LADDERS
from .degrade import EYES, box_landmarks, occlude
from .errors import ConfigError, ImageError
from .models import Box, FaceModel, as_box

__all__ = [
    "TRANSFORMS",
    "OCCLUDERS",
    "Transform",
    "Quality",
    "Cloak",
    "apply_transform",
    "image_quality",
    "cloak",
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


#: name -> transform, in the order reports list them.
TRANSFORMS: dict[str, Transform] = {
    "downscale": Transform(
        "downscale",
        "face width in pixels left: the photo is shrunk until the face is this wide (never enlarged), "
        "then scaled back to its size",
        TRANSFORM_LADDERS["downscale"],
        "px",
    ),
    "blur": Transform(
        "blur",
        "Gaussian blur over the whole photo, sigma as a share of the face width",
        TRANSFORM_LADDERS["blur"],
        "x face width",
    ),
    "jpeg": Transform("jpeg", "JPEG re-compression quality (lower: coarser)", TRANSFORM_LADDERS["jpeg"], "quality"),
    "crop": Transform(
        "crop",
        "share of the face's height kept from the top: the photo's bottom edge cuts through the face "
        "below that line (the part cut off is black, so the photo keeps its size)",
        TRANSFORM_LADDERS["crop"],
        "of the face",
    ),
    "occlude": Transform(
        "occlude",
        "an occluder placed from the face's landmarks: 'sunglasses' (dark lenses over the eyes), 'mask' "
        "(a face mask over nose, mouth and chin) or 'sticker' (a round sticker on the middle of the face)",
        TRANSFORM_LADDERS["occlude"],
    ),
}

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


# --- the adversarial cloak -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cloak:
    """How :func:`cloak` searches: the L-infinity budget ``epsilon`` in grey levels, ``steps`` signed
    steps of ``pairs`` antithetic samples each, a ``grid`` x ``grid`` x 3 lattice, the seed, and the
    face model's ``jitters``."""

    epsilon: float = 8.0
    steps: int = 12
    pairs: int = 10
    grid: int = 24
    seed: int = 2011
    jitters: int = 1


def cloak(image: np.ndarray, face_box: Box, model: FaceModel, how: Cloak = Cloak()) -> tuple[np.ndarray, dict]:
    """A black-box adversarial cloak (dlib gives no gradients): a perturbation of the face and its
    margin (:func:`quality_region`), at most ``how.epsilon`` grey levels per pixel (L-infinity), drawn
    on a ``how.grid`` x ``how.grid`` x 3 lattice and scaled up smoothly, that pushes the face's
    embedding away from the original's. Search: natural-evolution-strategies gradient estimates
    (``how.pairs`` antithetic samples per step) and ``how.steps`` signed steps, projected back into
    the budget; the face is encoded at ``face_box`` throughout. Returns the cloaked copy and
    {queries, shift}."""
    import cv2  # noqa: PLC0415

    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    ys, xs = quality_region(rgb.shape[:2], face_box)
    rh, rw = ys.stop - ys.start, xs.stop - xs.start
    base = rgb.astype(np.float32)
    box = [as_box(face_box)]
    f0 = np.asarray(model.encode(rgb, box, how.jitters), np.float64)[0]
    rng = np.random.default_rng([how.seed, 46])
    queries = 0

    def make(delta: np.ndarray) -> np.ndarray:
        up = cv2.resize(delta.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR)
        out = base.copy()
        out[ys, xs] += up
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def loss(delta: np.ndarray) -> float:
        nonlocal queries
        queries += 1
        return float(np.linalg.norm(np.asarray(model.encode(make(delta), box, how.jitters), np.float64)[0] - f0))

    delta = np.zeros((how.grid, how.grid, 3), np.float32)
    epsilon = how.epsilon
    sigma, step = epsilon / 4, epsilon / 4
    for _ in range(how.steps):
        g = np.zeros_like(delta)
        for _ in range(how.pairs):
            u = rng.standard_normal(delta.shape).astype(np.float32)
            g += (
                loss(np.clip(delta + sigma * u, -epsilon, epsilon))
                - loss(np.clip(delta - sigma * u, -epsilon, epsilon))
            ) * u
        delta = np.clip(delta + step * np.sign(g), -epsilon, epsilon)
    out = make(delta)
    shift = loss(delta)
    return out, {"queries": queries, "shift": shift}
