"""Seeded capture degradations for offline-to-online probes: a studio photo made to look like a
street or webcam snapshot (small face, blur, JPEG, light, tilt, sunglasses). Arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import setting


@dataclass(frozen=True)
class Degradation:
    """One capture condition. Ranges (lo, hi) are drawn per shot from the seed."""

    name: str = setting("webcam", "label of this level in tables and plots")
    face_width_px: int = setting(80, "the whole photo is resized so the face is this wide (0 = keep size)", min=0)
    blur_sigma: float = setting(1.0, "Gaussian blur sigma in pixels, after resizing", min=0.0, max=20.0)
    jpeg_quality: int = setting(40, "JPEG re-compression quality (100 = none)", min=1, max=100)
    brightness: list = setting([-30.0, 30.0], "range of added brightness (grey levels)")
    contrast: list = setting([0.7, 1.1], "range of contrast factors")
    rotation_deg: list = setting([-8.0, 8.0], "range of in-plane rotation in degrees")
    noise_sigma: float = setting(3.0, "Gaussian sensor noise (grey levels)", min=0.0, max=100.0)
    occlusion: str = setting("none", "'none' or 'sunglasses' (a dark band over the eyes)",
                             choices=("none", "sunglasses"))


def degrade(rgb: np.ndarray, face_box: tuple[int, int, int, int], level: Degradation,
            rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of ``rgb`` (H, W, 3) uint8, given the face's box (top, right, bottom, left)."""
    import cv2  # noqa: PLC0415

    img = rgb.astype(np.float32)
    top, right, bottom, left = face_box
    if level.occlusion == "sunglasses":
        h = bottom - top
        y0, y1 = top + int(0.22 * h), top + int(0.45 * h)
        img[max(y0, 0):max(y1, 0), max(left, 0):max(right, 0)] = 20.0
    width = max(right - left, 1)
    f = level.face_width_px / width if level.face_width_px else 1.0
    if f != 1.0:  # shrink first: everything after works on the small capture
        size = (max(8, round(img.shape[1] * f)), max(8, round(img.shape[0] * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    angle = float(rng.uniform(*level.rotation_deg))
    if angle:
        cy, cx = (top + bottom) / 2 * f, (left + right) / 2 * f
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        img = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
    if level.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), level.blur_sigma)
    img = img * float(rng.uniform(*level.contrast)) + float(rng.uniform(*level.brightness))
    if level.noise_sigma > 0:
        img = img + rng.normal(0.0, level.noise_sigma, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if level.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(level.jpeg_quality)])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless bytes of an array, so a degraded shot can be hashed and cached like a file."""
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("could not encode image")
    return buf.tobytes()
