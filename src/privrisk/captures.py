"""E2's degraded captures as recipes: made where they are embedded, cached by what they are made of.

A :class:`Capture` names one shot of one person at one capture level: the source photo, its face
box, the level's settings and the shot's seed. It renders itself (load, find the landmarks an
occluder needs, :func:`privrisk.degrade.degrade`, PNG) inside the embedding worker, so the work
runs on every core, and its :attr:`Capture.cache_key` encodes everything the rendered capture and
its embedding depend on: the source photo's content hash, the box, the level, the seed, the
loader's size limit, :data:`privrisk.degrade.DEGRADE_VERSION` and the face settings and model. A
second run with the same inputs reads the embeddings from the cache without rendering anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import FaceSettings
from .degrade import DEGRADE_VERSION, Degradation, degrade, encode_png
from .embeddings import artifact_key
from .faces import face_landmarks
from .images import load_image
from .models import Box, FaceModel, as_box

__all__ = ["Capture", "CaptureSource", "make_captures"]

# per process: the last source photo decoded and the landmarks found in it (shots of one person
# arrive together, so one entry each is enough)
_last_image: dict = {}
_landmarks_seen: dict = {}


@dataclass(frozen=True)
class Capture:
    """One shot of one person at one capture level (picklable: it travels to worker processes)."""

    name: str
    source: str
    source_sha256: str
    box: Box  # the face in the loaded photo's pixels
    level: Degradation
    seed: tuple[int, ...]  # the shot's random stream: (experiment seed, level, person, shot)
    max_side: int
    cache_key: str = field(compare=False)

    def render(self, model: FaceModel) -> bytes:
        """The capture as PNG bytes; ``model`` finds landmarks when the level has an occluder."""
        return encode_png(self.render_rgb(model))

    def render_rgb(self, model: FaceModel) -> np.ndarray:
        """The capture's pixels, (H, W, 3) uint8: what :meth:`render`'s PNG decodes to (lossless),
        without the round trip through PNG when the embedding worker can take the array."""
        if _last_image.get("source") != self.source:
            _last_image.update(source=self.source, image=load_image(self.source, max_side=self.max_side))
        image = _last_image["image"]
        marks = None
        if self.level.occlusion != "none":
            key = (self.source_sha256, self.box)
            if key not in _landmarks_seen:
                _landmarks_seen.clear()
                _landmarks_seen[key] = face_landmarks(model, image.rgb, self.box)
            marks = _landmarks_seen[key] or None
        return degrade(image.rgb, self.box, self.level, np.random.default_rng(list(self.seed)), landmarks=marks)


@dataclass(frozen=True)
class CaptureSource:
    """The photo captures are made from: its path (captures are named after its stem), the sha256 of
    its content, the face box in it and the loader's size limit (``max_side``) the box is measured at."""

    path: str
    sha256: str
    box: Box
    max_side: int


def make_captures(
    source: CaptureSource,
    level: Degradation,
    seed: tuple[int, ...],
    shots: int,
    settings: FaceSettings,
    model_id: str,
) -> list[Capture]:
    """The ``shots`` captures of one source photo at one level (shot ``s`` uses ``(*seed, s)``)."""
    out = []
    stem, max_side = Path(source.path).stem, source.max_side
    for shot in range(shots):
        shot_seed = (*seed, shot)
        key = artifact_key(
            "capture",
            DEGRADE_VERSION,
            source.sha256,
            list(source.box),
            level,
            list(shot_seed),
            max_side,
            settings.cache_key(model_id),
        )
        out.append(
            Capture(
                name=f"{stem}-{level.name}-{shot}.png",
                source=source.path,
                source_sha256=source.sha256,
                box=as_box(source.box),
                level=level,
                seed=shot_seed,
                max_side=max_side,
                cache_key=key,
            )
        )
    return out
