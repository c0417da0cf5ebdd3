"""Any ONNX face-embedding model as the embedder, run by ONNX Runtime.

An embedder turns an aligned face crop into a vector. privrisk's default is dlib's ResNet
(``embedder = "dlib"``); ``embedder = "onnx:PATH"`` runs the ONNX model at ``PATH`` instead (an
ArcFace-type network, OpenCV's SFace, ...). Detection and landmarks still come from dlib: only
the embedding changes.

How a face is prepared for the model (:class:`Preprocessing`) comes, in this order of
precedence, from the ``embedder_options`` setting (``"input_size=112,channels=BGR,..."``), a JSON
sidecar beside the model (``PATH.json``, e.g. ``model.onnx.json``) and the model's own input
shape. The alignment is either the common 5-point ArcFace template (``alignment = "arcface"``:
eyes, nose tip and mouth corners, taken from dlib's 68 landmarks, mapped by a similarity
transform) or dlib's own 150 px face chip (``alignment = "dlib"``, 25% padding).

The model's identity (:func:`onnx_model_id`) is the SHA-256 of the file plus a hash of the
preprocessing: a changed file or option is another embedder, with its own cache entries, and a
gallery made with one refuses a search with another.

This module loads nothing at import; :class:`OnnxFaceModel` imports ``onnxruntime`` when built.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, EmbedderError

Box = tuple[int, int, int, int]  # (top, right, bottom, left), as privrisk.models.Box

# The 5-point template of ArcFace-type models (insightface's ``arcface_dst``) for a 112x112 crop:
# the eye on the left of the image, the other eye, the nose tip, the left and right mouth corners.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ALIGNMENTS = ("arcface", "dlib")
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Preprocessing:
    """How a face becomes the model's input.

    ``input_size``: the square crop's side in pixels (0 = from the model's input shape, else 112
    for ArcFace alignment and 150 for dlib's). ``channels``: 'RGB' or 'BGR'. ``mean`` / ``std``:
    per channel (in the model's channel order), applied as ``(pixel - mean) / std`` to 0-255
    values. ``alignment``: 'arcface' (5 points, similarity transform to the template scaled to
    ``input_size``) or 'dlib' (dlib's face chip, 25% padding). ``metric``: 'cosine' (embeddings
    are L2-normalised, so Euclidean distance is a monotone function of cosine similarity) or
    'euclidean' (kept as the model gives them)."""

    input_size: int = 0
    channels: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    alignment: str = "arcface"
    metric: str = "cosine"

    def __post_init__(self) -> None:
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be 'RGB' or 'BGR', not {self.channels!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, not {self.alignment!r}")
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', not {self.metric!r}")
        if self.input_size != 0 and not 16 <= self.input_size <= 1024:
            raise ValueError(f"input_size must be between 16 and 1024 (0 = from the model), not {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise ValueError("mean and std need 3 values each (or one for all channels), std not 0")

    def canonical(self) -> str:
        """A stable text of these options (part of the model's identity)."""
        return json.dumps(asdict(self), sort_keys=True)


def _three(value: Any, key: str) -> tuple[float, float, float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number or 3 numbers, not {value!r}") from None
    if len(floats) == 1:
        floats = floats * 3
    if len(floats) != 3:
        raise ValueError(f"{key} must be a number or 3 numbers, not {value!r}")
    return (floats[0], floats[1], floats[2])


def _coerce(data: dict, where: str) -> dict:
    """Options from a sidecar or the options text, checked and typed."""
    known = {f.name for f in fields(Preprocessing)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown option {key!r} (known: {', '.join(sorted(known))})")
        try:
            if key == "input_size":
                out[key] = int(value)
            elif key in ("mean", "std"):
                out[key] = _three(value, key)
            else:
                out[key] = str(value).upper() if key == "channels" else str(value).lower()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: option {key}: {exc}") from None
    return out


def parse_options(text: str) -> dict:
    """``"input_size=112,channels=BGR,mean=0,std=1"`` -> a dict; per-channel values with ``/``
    (``mean=123.7/116.3/103.5``)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"faces.embedder_options: {part!r} is not key=value")
        value = value.strip()
        out[key.strip()] = value.split("/") if "/" in value else value
    return _coerce(out, "faces.embedder_options")


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """The JSON sidecar of a model: the model's path with ``.json`` appended (``m.onnx.json``)."""
    return Path(str(model_path) + SIDECAR_SUFFIX)


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """The preprocessing options in the model's sidecar, or {} when it has none."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the sidecar must hold a JSON object of options")
    data = {k: v for k, v in data.items() if not k.startswith("_")}  # "_comment" and the like
    return _coerce(data, str(path))


def preprocessing_for(model_path: str | os.PathLike, options: str = "") -> Preprocessing:
    """The given preprocessing of a model: its sidecar, overridden by ``options``."""
    merged = read_sidecar(model_path) | parse_options(options)
    try:
        return Preprocessing(**merged)
    except ValueError as exc:
        raise ConfigError(f"{model_path}: preprocessing options: {exc}") from None


def parse_embedder(spec: str) -> tuple[str, str]:
    """``"dlib"`` -> ("dlib", ""); ``"onnx:PATH"`` -> ("onnx", PATH). Anything else is a ConfigError."""
    if spec == "dlib":
        return "dlib", ""
    if spec.startswith("onnx:") and spec[5:].strip():
        return "onnx", spec[5:].strip()
    raise ConfigError(f"faces.embedder: {spec!r} is neither 'dlib' nor 'onnx:PATH' (a path to an ONNX model)")


def model_file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the model file; a missing or unreadable file is an :class:`EmbedderError`."""
    p = Path(path)
    if not p.is_file():
        raise EmbedderError(p, "no such model file" if not p.exists() else "not a regular file")
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise EmbedderError(p, f"cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def onnx_model_id(path: str | os.PathLike, options: str = "") -> str:
    """The identity of an ONNX embedder: the file's SHA-256 and a hash of its given preprocessing
    (the options and sidecar; what is read from the model itself follows from the file)."""
    return _model_id(model_file_sha256(path), preprocessing_for(path, options))


def _model_id(sha256: str, given: Preprocessing) -> str:
    return f"onnx:sha256={sha256}:pre={hashlib.sha256(given.canonical().encode()).hexdigest()[:12]}"


# --- alignment ------------------------------------------------------------------------------------


def five_points(shape68: np.ndarray) -> np.ndarray:
    """The 5 ArcFace points from dlib's 68: centres of the two eyes (image-left first), the nose
    tip (point 30) and the mouth corners (48, 54). ``shape68``: (68, 2) x, y."""
    pts = np.asarray(shape68, dtype=np.float64).reshape(68, 2)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) that best maps ``src`` onto ``dst`` in
    least squares (Umeyama 1991, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_arcface(rgb: np.ndarray, shape68: np.ndarray, size: int = 112) -> np.ndarray:
    """The face warped onto the ArcFace template (scaled to ``size``): (size, size, 3) uint8 RGB."""
    import cv2  # noqa: PLC0415 - heavy, only when a face is aligned

    m = similarity_transform(five_points(shape68), ARCFACE_TEMPLATE_112 * (size / 112.0))
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# --- the model --------------------------------------------------------------------------------------


class OnnxFaceModel:
    """An ONNX face-embedding model behind privrisk's face-model interface.

    ``faces`` is the dlib face model that detects faces and finds landmarks (anything with
    ``detect``, ``landmarks`` and ``shapes``); :meth:`encode` aligns each face and runs the ONNX
    network. Raises :class:`EmbedderError` for a missing file, a file that is not an ONNX model,
    an input that is not one square image of 3 channels, or an output that is not one vector per
    face; and, when encoding, for non-finite embeddings."""

    def __init__(self, path: str | os.PathLike, faces: Any, options: str = "") -> None:
        self.path = Path(path)
        self._faces = faces
        self.sha256 = model_file_sha256(self.path)
        given = preprocessing_for(self.path, options)
        self.model_id = _model_id(self.sha256, given)
        self._session = _session(self.path)
        self._input, self._layout, self._batch_fixed, size = _input_spec(self.path, self._session)
        if size and given.input_size and size != given.input_size:
            raise EmbedderError(
                self.path,
                f"wrong input shape: the model takes {size}x{size} images, the options say {given.input_size}",
            )
        chosen = given.input_size or size or (112 if given.alignment == "arcface" else 150)
        self.preprocessing = replace(given, input_size=chosen)
        self._lock = threading.Lock()
        self.embedding_dim = self._probe_dim()

    # detection and landmarks: dlib's
    def detect(self, rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Box]:
        return self._faces.detect(rgb, detector, upsample)

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict[str, list[tuple[int, int]]]]:
        return self._faces.landmarks(rgb, boxes)

    def crops(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """The aligned face crops the model sees: (n, size, size, 3) uint8 RGB."""
        size = self.preprocessing.input_size
        if not boxes:
            return np.zeros((0, size, size, 3), np.uint8)
        if self.preprocessing.alignment == "dlib":
            return np.asarray(self._faces.chips(rgb, boxes, size), np.uint8).reshape(len(boxes), size, size, 3)
        shapes = self._faces.shapes(rgb, boxes)
        return np.stack([align_arcface(rgb, s, size) for s in shapes])

    def encode(self, rgb: np.ndarray, boxes: Sequence[Box], jitters: int = 1) -> np.ndarray:
        """(len(boxes), embedding_dim) float32; ``jitters`` is dlib's option and is not used here."""
        if not boxes:
            return np.zeros((0, self.embedding_dim), np.float32)
        out = self._run(self._blob(self.crops(rgb, boxes)))
        if out.shape != (len(boxes), self.embedding_dim):
            raise EmbedderError(self.path, f"gave output of shape {out.shape} for {len(boxes)} face(s)")
        return self._finish(out)

    def _blob(self, crops: np.ndarray) -> np.ndarray:
        p = self.preprocessing
        x: np.ndarray = crops.astype(np.float32)
        if p.channels == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)
        if self._layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        parts = [blob[i : i + 1] for i in range(len(blob))] if self._batch_fixed else [blob]
        outs = []
        with self._lock:
            for part in parts:
                try:
                    y = self._session.run(None, {self._input: part})[0]
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise EmbedderError(self.path, f"failed to run on a face ({type(exc).__name__}: {exc})") from None
                outs.append(np.asarray(y, np.float32).reshape(len(part), -1))
        return np.concatenate(outs)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        if not np.isfinite(out).all():
            raise EmbedderError(self.path, "gave non-finite embeddings (NaN or infinity) for a face")
        if self.preprocessing.metric == "cosine":
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            if (norms == 0).any():
                raise EmbedderError(self.path, "gave an all-zero embedding, which has no direction to compare")
            return np.ascontiguousarray(out / norms, dtype=np.float32)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _probe_dim(self) -> int:
        """The embedding's length, from one run on a grey crop (also checks the model runs)."""
        size = self.preprocessing.input_size
        out = self._run(self._blob(np.full((1, size, size, 3), 128, np.uint8)))
        if out.shape[0] != 1 or out.shape[1] < 2:
            raise EmbedderError(self.path, f"gave output of shape {out.shape}; expected one vector per face")
        return int(out.shape[1])


def _session(path: Path):
    try:
        from .dlibnet import import_onnxruntime  # noqa: PLC0415 - only when an ONNX embedder is used

        ort = import_onnxruntime()
    except ImportError as exc:
        raise EmbedderError(path, f"onnxruntime is not installed ({exc}); install privrisk's dependencies") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # embedding runs one process per core; also keeps the bits the same
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise EmbedderError(path, f"not a usable ONNX model ({reason})") from None


def _input_spec(path: Path, session) -> tuple[str, str, bool, int]:
    """(input name, 'NCHW' or 'NHWC', whether the batch is fixed at 1, square side or 0 if free)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise EmbedderError(path, f"wrong input shape: the model takes {len(inputs)} inputs; expected one image batch")
    shape = list(inputs[0].shape)
    if len(shape) != 4:
        raise EmbedderError(path, f"wrong input shape {shape}: expected 4 dimensions (batch, channels, height, width)")
    if shape[1] == 3:
        layout, hw = "NCHW", shape[2:4]
    elif shape[3] == 3:
        layout, hw = "NHWC", shape[1:3]
    else:
        raise EmbedderError(path, f"wrong input shape {shape}: no dimension of 3 colour channels")
    fixed = [d for d in hw if isinstance(d, int) and d > 0]
    if len(fixed) == 2 and fixed[0] != fixed[1]:
        raise EmbedderError(path, f"wrong input shape {shape}: the face crop must be square")
    batch_fixed = isinstance(shape[0], int) and shape[0] == 1
    if isinstance(shape[0], int) and shape[0] > 1:
        raise EmbedderError(path, f"wrong input shape {shape}: a fixed batch of {shape[0]}")
    return inputs[0].name, layout, batch_fixed, fixed[0] if fixed else 0
