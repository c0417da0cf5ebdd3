"""Seeded capture degradations for offline-to-online probes: a studio photo made to look like a
street or webcam snapshot. Arrays in, arrays out.

A capture is rendered in the order light and optics act on a real one: occluders (sunglasses over
the eyes, a mask over nose and mouth, both placed from the face's landmarks) -> shrinking to the
level's face width (never enlarging) -> directional light -> a pose-like head turn and roll ->
defocus, motion blur and lens blur -> contrast and brightness -> sensor noise -> JPEG.

Every shot draws its own parameters (:func:`draw_shot`) from the level's ranges, so the shots of
one person differ in light direction, blur, pose and compression, not only in noise.

The head turn is a perspective warp of the face treated as a plane turned about its vertical
axis: it foreshortens one side like a turned head does, but it is not a 3-D rotation (no
self-occlusion, no change of profile), so it is milder than a real pose change of the same angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .config import setting

#: Bump whenever a change here alters the pixels :func:`degrade` makes for the same inputs: cached
#: captures (:mod:`privrisk.captures`) are keyed by it.
DEGRADE_VERSION = "2"

Landmarks = dict  # face_recognition's layout: feature name -> [(x, y), ...] in the image's pixels

# features of dlib's 68-point layout, as face_recognition names them
EYES = ("left_eye", "right_eye")

_RANGES = ("brightness", "contrast", "rotation_deg", "yaw_deg", "light_strength", "motion_blur_px", "defocus_px")
_SCALAR_OR_RANGE = ("blur_sigma", "jpeg_quality")


@dataclass(frozen=True)
class Degradation:
    """One capture condition. Ranges [lo, hi] are drawn per shot from the seed."""

    name: str = setting("webcam", "label of this level in tables and plots")
    face_width_px: int = setting(
        80,
        "the whole photo is shrunk so the face is this wide (0 = keep size); a photo "
        "whose face is already narrower is not applicable for the level (never enlarged)",
        min=0,
    )
    blur_sigma: float | list[float] = setting(
        1.0,
        "Gaussian lens blur sigma in pixels, after resizing: a number or a [lo, hi] range drawn per shot",
        min=0.0,
        max=20.0,
    )
    jpeg_quality: int | list[int] = setting(
        40, "JPEG re-compression quality (100 = none): a number or a [lo, hi] range drawn per shot", min=1, max=100
    )
    brightness: list = setting([-30.0, 30.0], "range of added brightness (grey levels)", min=-255.0, max=255.0)
    contrast: list = setting([0.7, 1.1], "range of contrast factors", min=0.0, max=5.0)
    rotation_deg: list = setting(
        [-8.0, 8.0], "range of in-plane rotation (head roll) in degrees", min=-180.0, max=180.0
    )
    yaw_deg: list = setting(
        [0.0, 0.0],
        "range of pose-like head turn in degrees (a perspective warp of the face plane, milder than a real turn)",
        min=-60.0,
        max=60.0,
    )
    light_strength: list = setting(
        [0.0, 0.0],
        "range of directional-light strength: the face's lit side is "
        "brightened and its far side darkened by up to this share, from a direction "
        "drawn per shot",
        min=0.0,
        max=0.9,
    )
    motion_blur_px: list = setting(
        [0.0, 0.0],
        "range of motion-blur streak length in capture pixels, in a direction drawn per shot",
        min=0.0,
        max=50.0,
    )
    defocus_px: list = setting([0.0, 0.0], "range of defocus blur disk radius in capture pixels", min=0.0, max=20.0)
    noise_sigma: float = setting(3.0, "Gaussian sensor noise (grey levels)", min=0.0, max=100.0)
    occlusion: str = setting(
        "none",
        "'none', 'sunglasses' (two dark lenses over the eyes, placed from the "
        "landmarks) or 'mask' (a face mask over nose, mouth and chin)",
        choices=("none", "sunglasses", "mask"),
    )

    def __post_init__(self) -> None:
        for name in _RANGES + _SCALAR_OR_RANGE:
            value = getattr(self, name)
            if name in _SCALAR_OR_RANGE and not isinstance(value, (list, tuple)):
                continue
            if (
                not isinstance(value, (list, tuple))
                or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            ):
                raise ValueError(f"{name}: expected a range [lo, hi] of two numbers, got {value!r}")
            if value[0] > value[1]:
                raise ValueError(f"{name}: range [{value[0]}, {value[1]}] has lo above hi")


# E2's default capture levels, defined once: the experiment's ``offline.levels`` default, and the
# "street" level is the stranger's snapshot of the self-check's photo protection (privrisk.protect).
# What every default level shares: a hand-held snapshot's roll, head turn, light from one side,
# a little motion and focus blur, each drawn per shot.
_SNAPSHOT: dict[str, Any] = dict(
    rotation_deg=[-8.0, 8.0],
    yaw_deg=[-20.0, 20.0],
    light_strength=[0.0, 0.4],
    motion_blur_px=[0.0, 1.5],
    defocus_px=[0.0, 0.8],
)
DEFAULT_LEVELS = [
    Degradation(name="webcam", face_width_px=80, blur_sigma=[0.6, 1.4], jpeg_quality=[30, 60], **_SNAPSHOT),
    Degradation(name="street", face_width_px=40, blur_sigma=[0.8, 1.6], jpeg_quality=[25, 45], **_SNAPSHOT),
    Degradation(name="far", face_width_px=24, blur_sigma=[1.0, 2.0], jpeg_quality=[25, 45], **_SNAPSHOT),
    Degradation(
        name="sunglasses",
        face_width_px=80,
        blur_sigma=[0.6, 1.4],
        jpeg_quality=[30, 60],
        occlusion="sunglasses",
        **_SNAPSHOT,
    ),
    Degradation(
        name="mask", face_width_px=80, blur_sigma=[0.6, 1.4], jpeg_quality=[30, 60], occlusion="mask", **_SNAPSHOT
    ),
]


@dataclass(frozen=True)
class Shot:
    """The parameters one capture drew from its level's ranges."""

    blur_sigma: float
    jpeg_quality: int
    brightness: float
    contrast: float
    rotation_deg: float
    yaw_deg: float
    light_strength: float
    light_angle_deg: float
    motion_blur_px: float
    motion_angle_deg: float
    defocus_px: float

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _draw(value, rng: np.random.Generator) -> float:
    lo, hi = (value, value) if not isinstance(value, (list, tuple)) else value
    return float(rng.uniform(float(lo), float(hi)))  # always one draw, so later draws keep their place


def draw_shot(level: Degradation, rng: np.random.Generator) -> Shot:
    """Draw one capture's parameters from ``level``'s ranges (a fixed number of draws from ``rng``)."""
    return Shot(
        blur_sigma=_draw(level.blur_sigma, rng),
        jpeg_quality=int(round(_draw(level.jpeg_quality, rng))),
        brightness=_draw(level.brightness, rng),
        contrast=_draw(level.contrast, rng),
        rotation_deg=_draw(level.rotation_deg, rng),
        yaw_deg=_draw(level.yaw_deg, rng),
        light_strength=_draw(level.light_strength, rng),
        light_angle_deg=float(rng.uniform(0.0, 360.0)),
        motion_blur_px=_draw(level.motion_blur_px, rng),
        motion_angle_deg=float(rng.uniform(0.0, 180.0)),
        defocus_px=_draw(level.defocus_px, rng),
    )


def applicable(face_box: tuple[int, int, int, int], level: Degradation) -> bool:
    """True when the level can be made from this photo by shrinking (or keeping) it: the face is at
    least ``face_width_px`` wide. A smaller face would have to be enlarged, which adds no detail
    the camera never caught, so such a photo is not applicable for the level."""
    top, right, bottom, left = face_box
    return not level.face_width_px or (right - left) >= level.face_width_px


def degrade(
    rgb: np.ndarray,
    face_box: tuple[int, int, int, int],
    level: Degradation,
    rng: np.random.Generator,
    landmarks: Landmarks | None = None,
) -> np.ndarray:
    """A degraded copy of ``rgb`` (H, W, 3) uint8, given the face's box (top, right, bottom, left)
    and its landmarks (face_recognition's layout, in ``rgb`` pixels) for the occluders.

    Without ``landmarks`` the occluders are placed from the box at typical proportions
    (:func:`box_landmarks`); the experiment always passes the detected ones. The photo is never
    enlarged: a face narrower than the level's width keeps its size (see :func:`applicable`).
    """
    shot = draw_shot(level, rng)
    return render(rgb, face_box, level, shot, rng, landmarks)


def render(
    rgb: np.ndarray,
    face_box: tuple[int, int, int, int],
    level: Degradation,
    shot: Shot,
    rng: np.random.Generator,
    landmarks: Landmarks | None = None,
) -> np.ndarray:
    """Render one capture with the drawn parameters ``shot``; ``rng`` supplies the sensor noise."""
    import cv2  # noqa: PLC0415

    img: np.ndarray = rgb.astype(np.float32)
    top, right, bottom, left = face_box
    width, height = max(right - left, 1), max(bottom - top, 1)
    if level.occlusion != "none":
        marks = landmarks if landmarks is not None else box_landmarks(face_box)
        occlude(img, marks, level.occlusion, face_box)
    f = min(1.0, level.face_width_px / width) if level.face_width_px else 1.0
    if f < 1.0:  # shrink first: everything after works on the small capture
        size = (max(8, round(img.shape[1] * f)), max(8, round(img.shape[0] * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    cx, cy = (left + right) / 2 * f, (top + bottom) / 2 * f
    fw, fh = width * f, height * f
    if shot.light_strength > 0:
        img *= light_field(img.shape[:2], (cx, cy), fw, shot.light_strength, shot.light_angle_deg)[:, :, None]
    if shot.rotation_deg or shot.yaw_deg:
        m = pose_homography((cx, cy), fw, fh, shot.yaw_deg, shot.rotation_deg)
        img = cv2.warpPerspective(
            img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    if shot.defocus_px >= 0.5:
        img = cv2.filter2D(img, -1, disk_kernel(shot.defocus_px), borderType=cv2.BORDER_REFLECT)
    if shot.motion_blur_px >= 1.0:
        img = cv2.filter2D(
            img, -1, motion_kernel(shot.motion_blur_px, shot.motion_angle_deg), borderType=cv2.BORDER_REFLECT
        )
    if shot.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), shot.blur_sigma)
    img = img * shot.contrast + shot.brightness
    if level.noise_sigma > 0:
        img = img + rng.normal(0.0, level.noise_sigma, img.shape).astype(np.float32)
    out: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    if shot.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(shot.jpeg_quality)])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if not ok or decoded is None:  # not expected: the buffer was encoded just above
            raise RuntimeError(f"JPEG round trip at quality {shot.jpeg_quality} failed")
        out = decoded[:, :, ::-1]
    return np.ascontiguousarray(out)


# --- occluders --------------------------------------------------------------------------------

SUNGLASS_GREY = 20.0
MASK_RGB = (168.0, 196.0, 222.0)  # a pale blue surgical mask


def _points(marks: Landmarks, name: str) -> np.ndarray:
    return np.asarray(marks.get(name, ()), np.float64).reshape(-1, 2)


def sunglasses_mask(shape: tuple[int, int], marks: Landmarks) -> np.ndarray:
    """Boolean (H, W) mask of a pair of sunglasses: an elliptic lens over each eye, aligned with the
    line through the eyes, and a bridge between them. Sized from the distance d between the eye
    centres (lens 0.84 d wide and 0.6 d high, or wider when the eye's landmarks need it)."""
    import cv2  # noqa: PLC0415

    eyes = [_points(marks, n) for n in EYES]
    if any(len(e) == 0 for e in eyes):
        raise ValueError("sunglasses need both eyes' landmarks")
    centres = [e.mean(axis=0) for e in eyes]
    d = float(np.linalg.norm(centres[1] - centres[0])) or 1.0
    angle = math.degrees(math.atan2(centres[1][1] - centres[0][1], centres[1][0] - centres[0][0]))
    canvas = np.zeros(shape, np.uint8)
    for eye, c in zip(eyes, centres):
        half_w = max(0.42 * d, 0.75 * float(np.ptp(eye[:, 0])))
        half_h = max(0.30 * d, 1.5 * float(np.ptp(eye[:, 1])))
        cv2.ellipse(
            canvas,
            (int(round(c[0])), int(round(c[1]))),
            (int(round(half_w)), int(round(half_h))),
            angle,
            0,
            360,
            1,
            thickness=-1,
        )
    p0, p1 = np.round(centres[0]).astype(int), np.round(centres[1]).astype(int)
    cv2.line(canvas, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1, thickness=max(1, int(round(0.08 * d))))
    return canvas.astype(bool)


def face_mask_region(shape: tuple[int, int], marks: Landmarks, face_box: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean (H, W) mask of a face mask: from the upper nose bridge down over nose, mouth and
    chin, out to the jaw line (68-point 'chin' landmarks; from the box when only 5 points exist)."""
    import cv2  # noqa: PLC0415

    chin = _points(marks, "chin")
    if len(chin) < 17:
        chin = _points(box_landmarks(face_box), "chin")
    bridge = _points(marks, "nose_bridge")
    if len(bridge) >= 2:
        apex = bridge[1]
    else:  # 5-point landmarks: halfway between the eyes' line and the nose tip
        eyes = np.vstack([_points(marks, n) for n in EYES])
        apex = (eyes.mean(axis=0) + _points(marks, "nose_tip").mean(axis=0)) / 2
    centre = chin.mean(axis=0)
    jaw = centre + (chin[1:16] - centre) * 1.04  # the mask sits slightly outside the jaw line
    polygon = np.vstack([jaw, apex[None, :]])
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], 1)
    return canvas.astype(bool)


def occlude(img: np.ndarray, marks: Landmarks, kind: str, face_box: tuple[int, int, int, int]) -> np.ndarray:
    """Draw the occluder ``kind`` onto ``img`` (H, W, 3 float32) in place; returns ``img``."""
    if kind == "sunglasses":
        img[sunglasses_mask(img.shape[:2], marks)] = SUNGLASS_GREY
    elif kind == "mask":
        img[face_mask_region(img.shape[:2], marks, face_box)] = MASK_RGB
    elif kind != "none":
        raise ValueError(f"unknown occlusion {kind!r}")
    return img


def box_landmarks(face_box: tuple[int, int, int, int]) -> Landmarks:
    """Landmarks at typical proportions of a dlib face box (68-point layout), for when none were
    detected. Eyes at 32% of the box height and 30% / 70% of its width, nose tip at 62%, mouth at
    78-84%, jaw line from the eyes' height to just below the box."""
    top, right, bottom, left = face_box
    w, h = right - left, bottom - top

    def at(fx, fy):
        return (int(round(left + fx * w)), int(round(top + fy * h)))

    def eye(fx):
        return [
            at(fx + dx, 0.32 + dy)
            for dx, dy in ((-0.1, 0), (-0.04, -0.03), (0.04, -0.03), (0.1, 0), (0.04, 0.03), (-0.04, 0.03))
        ]

    return {
        "chin": [
            at(0.5 - 0.48 * math.cos(math.pi * i / 16), 0.30 + 0.72 * math.sin(math.pi * i / 16)) for i in range(17)
        ],
        "left_eyebrow": [at(0.18 + 0.06 * i, 0.22) for i in range(5)],
        "right_eyebrow": [at(0.58 + 0.06 * i, 0.22) for i in range(5)],
        "nose_bridge": [at(0.5, 0.32 + 0.08 * i) for i in range(4)],
        "nose_tip": [at(0.42 + 0.04 * i, 0.62) for i in range(5)],
        "left_eye": eye(0.30),
        "right_eye": eye(0.70),
        "top_lip": (
            [at(0.36 + 0.28 * i / 6, 0.78) for i in range(7)] + [at(0.6 - 0.2 * i / 4, 0.80) for i in range(5)]
        ),
        "bottom_lip": (
            [at(0.64 - 0.28 * i / 6, 0.84) for i in range(7)] + [at(0.4 + 0.2 * i / 4, 0.80) for i in range(5)]
        ),
    }


# --- light and optics -------------------------------------------------------------------------


def light_field(
    shape: tuple[int, int], centre: tuple[float, float], face_width: float, strength: float, angle_deg: float
) -> np.ndarray:
    """(H, W) gain of light from direction ``angle_deg``: 1 + strength on the lit side of the face,
    1 - strength on the far side, changing smoothly across the face (tanh of the offset along the
    light's direction, in half face widths)."""
    h, w = shape
    a = math.radians(angle_deg)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along = ((xs - centre[0]) * math.cos(a) + (ys - centre[1]) * math.sin(a)) / max(face_width / 2, 1.0)
    return (1.0 + strength * np.tanh(along)).astype(np.float32)


def pose_homography(
    centre: tuple[float, float], face_width: float, face_height: float, yaw_deg: float, roll_deg: float
) -> np.ndarray:
    """3x3 homography: the face plane turned by ``yaw_deg`` about its vertical axis and seen by a
    pinhole camera three face widths away, then rolled by ``roll_deg`` about the face centre."""
    import cv2  # noqa: PLC0415

    cx, cy = centre
    hw, hh = face_width / 2, face_height / 2
    dist = 3.0 * max(face_width, 1.0)
    a = math.radians(yaw_deg)
    src, dst = [], []
    for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        depth = dist / (dist + x * math.sin(a))
        src.append((cx + x, cy + y))
        dst.append((cx + x * math.cos(a) * depth, cy + y * depth))
    h = cv2.getPerspectiveTransform(np.array(src, np.float32), np.array(dst, np.float32)).astype(np.float64)
    r = np.vstack([cv2.getRotationMatrix2D((cx, cy), roll_deg, 1.0), [0.0, 0.0, 1.0]])
    return r @ h


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised defocus kernel: a disk of ``radius`` pixels with an anti-aliased rim."""
    r = int(math.ceil(radius))
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xs**2 + ys**2), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised motion-blur kernel: a straight streak ``length`` pixels long at ``angle_deg``."""
    half = length / 2
    r = int(math.ceil(half))
    size = 2 * r + 1
    k = np.zeros((size, size), np.float32)
    a = math.radians(angle_deg)
    steps = max(2, int(math.ceil(length * 4)))
    for t in np.linspace(-half, half, steps):
        x, y = r + t * math.cos(a), r + t * math.sin(a)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                k[y0 + dy, x0 + dx] += wgt
    return k / k.sum()


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless bytes of an array, so a degraded shot can be hashed and cached like a file."""
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("could not encode image")
    return buf.tobytes()
