"""Faces in an image: detection on a downscaled copy, boxes in image pixels, and the policy for
images with no face or with several.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .config import FaceSettings
from .errors import FaceNotFound, SeveralFaces
from .images import LoadedImage
from .models import Box, FaceModel


@dataclass(frozen=True)
class Face:
    """One face: its box in the original image's pixels, its width there, and its embedding."""

    box: Box
    width_px: int
    embedding: np.ndarray  # (d,) float32: 128 with dlib's embedder, the model's length with another


def detect_faces(model: FaceModel, image: LoadedImage, settings: FaceSettings) -> list[Box]:
    """Boxes (top, right, bottom, left) of the faces in ``image.rgb``, in ``image.rgb`` pixels.

    Detection runs on a copy shrunk to ``settings.detect_max_side``; the boxes are scaled back.
    Faces narrower than ``settings.min_face_px`` in the original photo are dropped. The first pass
    upsamples ``settings.upsample`` times; only when it finds no face does a second pass upsample
    ``settings.retry_upsample`` times (small faces cost the slow pass, large ones do not). Policies
    that count faces ('all', 'error') run the upsampled pass alone, so no small face beside a
    large one is missed.
    """
    rgb = image.rgb
    h, w = rgb.shape[:2]
    factor = min(1.0, settings.detect_max_side / max(h, w))
    small = rgb
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        small = np.ascontiguousarray(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)))
    boxes: list[Box] = []
    for upsample in settings.passes(max(small.shape[:2])):  # a second pass only when the first finds nothing
        for top, right, bottom, left in model.detect(small, settings.detector, upsample):
            box = (
                max(0, round(top / factor)),
                min(w, round(right / factor)),
                min(h, round(bottom / factor)),
                max(0, round(left / factor)),
            )
            if box[1] - box[3] < 1 or box[2] - box[0] < 1:
                continue
            if original_width(box, image) >= settings.min_face_px:
                boxes.append(box)
        if boxes:
            break
    return boxes


def original_width(box: Box, image: LoadedImage) -> int:
    """Width of ``box`` in the pixels of the original file."""
    return int(round((box[1] - box[3]) / (image.scale or 1.0)))


def choose_faces(faces: list[Face], policy: str, name: str) -> list[Face]:
    """Apply the several-faces policy: 'largest' keeps one, 'all' keeps every face, 'error' refuses.

    Raises :class:`FaceNotFound` when ``faces`` is empty and :class:`SeveralFaces` under 'error'.
    """
    if not faces:
        raise FaceNotFound(name, "no face found")
    if len(faces) == 1 or policy == "all":
        return list(faces)
    if policy == "error":
        raise SeveralFaces(name, f"{len(faces)} faces found; exactly one expected")
    if policy != "largest":
        raise ValueError(f"unknown several-faces policy {policy!r}")
    return [max(faces, key=lambda f: f.width_px)]


def face_landmarks(model: FaceModel, rgb: np.ndarray, box: Box) -> dict[str, list[tuple[int, int]]]:
    """Landmarks of the face at ``box`` in ``rgb`` (feature name -> (x, y) points in ``rgb`` pixels,
    face_recognition's 68-point layout); an empty dict when the model finds none."""
    found = model.landmarks(rgb, [box])
    return dict(found[0]) if found else {}
