"""Settings, declared once.

Every setting is a dataclass field made by :func:`setting` with its default, help text and
allowed range. That one declaration feeds TOML loading and validation (:func:`from_dict`), the
CLI flags, the app's widgets, the saved copy of a run's configuration (:func:`to_dict`) and the
settings reference of the docs site (:func:`describe`, called by ``scripts/docs_hooks.py`` when the site
is built; ``tests/test_docs.py`` fails when a settings class is left out of it).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .errors import ConfigError


def setting(
    default: Any, help: str, *, choices: tuple | None = None, min: float | None = None, max: float | None = None
) -> Any:
    """A dataclass field carrying its help text and allowed values."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FaceSettings:
    """How faces are found and encoded. Everything that changes an embedding is in here."""

    detector: str = setting(
        "hog", "face detector: 'hog' (fast, CPU) or 'cnn' (slower, finds more angles)", choices=("hog", "cnn")
    )
    upsample: int = setting(
        0, "times the image is upsampled in the first detection pass (more finds smaller faces, slower)", min=0, max=3
    )
    retry_upsample: int = setting(
        1,
        "when the first pass finds no face, detect again with this many upsamplings "
        "(0 = no second pass; upsample = 1 with retry_upsample = 0 is privrisk 0.1's "
        "detection, exactly)",
        min=0,
        max=3,
    )
    cnn_max_side: int = setting(
        400,
        "the cnn detector's upsampling rule: when its first pass finds no face, the retry upsamples as many "
        "times (1 or 2) as keep the image within this many pixels on the longer side (dlib's MMOD model finds "
        "faces from about 80 px; each upsampling doubles the side and quadruples the cost)",
        min=64,
        max=4096,
    )
    detect_max_side: int = setting(
        640,
        "images are shrunk to this many pixels on the longer side for "
        "detection; faces are still encoded from the larger image",
        min=64,
        max=8192,
    )
    max_side: int = setting(
        2048, "images are shrunk to this many pixels on the longer side when loaded", min=64, max=16384
    )
    max_pixels: int = setting(
        40_000_000, "images declaring more pixels are refused unread (bomb guard)", min=1, max=2_000_000_000
    )
    max_bytes: int = setting(50 * 1024 * 1024, "files larger than this are refused", min=1)
    jitters: int = setting(
        1, "times each face is re-sampled when encoding (higher: slower, slightly better)", min=1, max=100
    )
    engine: str = setting(
        "fast",
        "which runtime computes dlib's face descriptor: 'fast' (dlib's own network and weights on ONNX "
        "Runtime, equal to dlib's within 1e-4; see docs/engine.md) or 'dlib' (dlib itself, the reference). "
        "Galleries built with either are searchable with either",
        choices=("dlib", "fast"),
    )
    min_face_px: int = setting(20, "faces narrower than this (in original pixels) are ignored", min=1)
    multiple_faces: str = setting(
        "largest",
        "when an image has several faces: keep the 'largest', keep 'all', or skip the image as an 'error'",
        choices=("largest", "all", "error"),
    )

    embedder: str = setting(
        "dlib",
        "the face model that makes embeddings: 'dlib' (dlib's ResNet, 128-d) or 'onnx:PATH' for any ONNX "
        "face-embedding model (preprocessing from embedder_options or PATH.json; see docs/attackers.md)",
    )
    embedder_options: str = setting(
        "",
        "an ONNX embedder's preprocessing as key=value pairs, e.g. 'input_size=112,channels=BGR,mean=0,std=1,"
        "alignment=arcface,metric=cosine' (override its sidecar PATH.json)",
    )

    def __post_init__(self) -> None:
        if self.embedder != "dlib" and not (self.embedder.startswith("onnx:") and self.embedder[5:].strip()):
            raise ValueError(f"embedder: {self.embedder!r} is neither 'dlib' nor 'onnx:PATH'")

    def same_embeddings(self, other: FaceSettings) -> bool:
        """Whether faces found and encoded under ``other`` are found and encoded as under these settings,
        given the same embedder (``model_id``): everything but where the embedder's file lies."""
        return dataclasses.replace(self, embedder="dlib", embedder_options="", engine="dlib") == dataclasses.replace(
            other, embedder="dlib", embedder_options="", engine="dlib"
        )

    def cache_key(self, model_id: str) -> str:
        """What an embedding depends on; two settings with equal keys give equal embeddings.
        ``model_id`` names the embedder (an ONNX model's includes its file hash and preprocessing)."""
        retry = f"|retry={self.retry_upsample}" if self.retry_upsample > self.upsample else ""
        if self.detector == "cnn":  # the cnn detector's retry follows its own rule
            retry = f"|cnnside={self.cnn_max_side}"
        # dlib's keys are unchanged from before the engine setting, so existing caches stay valid.
        engine = "" if self.engine == "dlib" else f"|engine={self.engine}"
        return (
            f"{model_id}|det={self.detector}|up={self.upsample}{retry}|dside={self.detect_max_side}"
            f"|side={self.max_side}|jit={self.jitters}{engine}"
        )

    @property
    def upsample_passes(self) -> tuple[int, ...]:
        """The detection passes in order: the first pass, then the retry when it finds no face.

        Counting faces ('all' keeps every face, 'error' refuses several) needs the small ones too,
        so those policies run the upsampled pass alone."""
        if self.retry_upsample <= self.upsample:
            return (self.upsample,)
        if self.multiple_faces != "largest":
            return (self.retry_upsample,)
        return (self.upsample, self.retry_upsample)

    def passes(self, side: int) -> tuple[int, ...]:
        """The detection passes for an image whose detection copy is ``side`` pixels on its longer side.

        'hog': :attr:`upsample_passes`. 'cnn': ``upsample``, then, when it finds no face, a retry that
        upsamples as many times (at most 2) as keep the image within ``cnn_max_side`` pixels (no retry
        when even one would not; a face that small in so large an image is not looked for)."""
        if self.detector != "cnn":
            return self.upsample_passes
        fits = [k for k in (1, 2) if k > self.upsample and side * 2**k <= self.cnn_max_side]
        if not fits:
            return (self.upsample,)
        if self.multiple_faces != "largest":
            return (fits[-1],)
        return (self.upsample, fits[-1])


#: The self-checks' attacker (findability, protect, the photo check, the trainer's "myth or defence"): the
#: strongest detector privrisk has, dlib's CNN (MMOD), on a copy shrunk to 320 px on its longer side (a face
#: of a quarter of the photo's width or more: about 1.5 s per photo on a CPU core). A protection judged
#: against HOG alone can look like it works only because HOG misses the face.
SELF_CHECK_FACES = FaceSettings(detector="cnn", detect_max_side=320)


@dataclass(frozen=True)
class GallerySettings:
    """How a gallery indexes and decides."""

    index_type: str = setting(
        "auto",
        "FAISS index: 'flat' (exact), 'ivf' or 'hnsw' (approximate, for large "
        "galleries), or 'auto': exact up to 250,000 faces, HNSW above",
        choices=("auto", "flat", "ivf", "hnsw"),
    )
    threshold: float = setting(
        0.6,
        "a candidate closer than this Euclidean distance is declared a match "
        "(0.6 is dlib's recommended operating point)",
        min=0.0,
        max=4.0,
    )
    threshold_rule: str = setting(
        "auto",
        "how the threshold is set: 'given' (threshold as set), 'fmr' (chosen at threshold_fmr on impostor pairs "
        "of people held out from those it then scores), 'auto' ('given' for dlib's embedder, whose published "
        "threshold is 0.6; 'fmr' for any other: dlib's 0.6 means nothing to another model)",
        choices=("auto", "given", "fmr"),
    )
    threshold_fmr: float = setting(
        0.001, "false-match rate a chosen threshold is set at (threshold_rule 'fmr')", min=1e-6, max=0.5
    )
    threshold_holdout: float = setting(
        0.3,
        "share of an experiment's people held out (never scored) whose impostor pairs choose the threshold "
        "(threshold_rule 'fmr')",
        min=0.05,
        max=0.8,
    )
    nprobe: int = setting(16, "IVF lists searched per query (ivf only)", min=1, max=65536)
    hnsw_ef_search: int = setting(128, "HNSW search breadth (hnsw only)", min=1, max=65536)

    def resolved_rule(self, embedder: str) -> str:
        """'given' or 'fmr': the threshold rule for ``embedder`` ('auto' resolved)."""
        if self.threshold_rule != "auto":
            return self.threshold_rule
        return "given" if embedder == "dlib" else "fmr"

    def given_statement(self, embedder: str) -> str:
        """Where a given threshold comes from, in words."""
        if embedder == "dlib" and self.threshold == 0.6:
            return "dlib's published threshold (0.6)"
        return f"given by the user ({self.threshold:g})"


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"Path": Path})  # noqa: S307 - our own annotations
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        checked = [_check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(checked) if origin is tuple else checked
    if annotation is Any:
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of settings, got {type(value).__name__}")
        return from_dict(annotation, value, where)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, checking names, types, ranges and choices.

    Unknown keys are errors (a typo must not silently fall back to a default). Raises
    :class:`ConfigError` naming the key and the reason.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where + '.' if where else ''}{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in data.items():
        f = known[name]
        key = f"{where}.{name}" if where else name
        value = _check_type(value, hints[name], key)
        _check_range(value, f.metadata, key)
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def _check_range(value: Any, meta: typing.Mapping, key: str) -> None:
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if meta.get("choices") and item not in meta["choices"]:
            raise ConfigError(f"{key}: {item!r} is not one of {', '.join(map(repr, meta['choices']))}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if meta.get("min") is not None and item < meta["min"]:
                raise ConfigError(f"{key}: {item} is below the minimum {meta['min']}")
            if meta.get("max") is not None and item > meta["max"]:
                raise ConfigError(f"{key}: {item} is above the maximum {meta['max']}")


def to_dict(obj: Any) -> dict:
    """A plain, JSON/TOML-ready dict of a settings dataclass (paths become strings)."""

    def convert(value):
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(obj)


def replace(obj: Any, **changes: Any) -> Any:
    """Like :func:`dataclasses.replace`, but validated like a loaded file."""
    merged = to_dict(obj) | changes
    return from_dict(type(obj), merged)


def load_toml(path: str | os.PathLike, cls: type) -> Any:
    """Read a TOML file into ``cls``; errors name the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _default(f: dataclasses.Field) -> Any:
    """A field's default value (every setting has one: :func:`setting` gives it)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"setting {f.name!r} has no default")


def describe(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) for every setting of ``cls``, nested tables included."""
    rows = []
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        default = _default(f)
        if dataclasses.is_dataclass(default):
            rows.extend(describe(type(default), prefix=f"{name}."))
        else:
            rows.append(
                (name, to_dict(default) if isinstance(default, (list, tuple)) else default, f.metadata.get("help", ""))
            )
    return rows


def setting_info(cls: type, dotted: str) -> dict:
    """What a setting declares: ``default``, ``help``, ``choices``, ``min``, ``max`` (for the app's
    widgets and the CLI). ``dotted`` names a nested setting, e.g. ``"offline.shots"``."""
    head, _, rest = dotted.partition(".")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if head not in fields:
        raise KeyError(f"{cls.__name__} has no setting {head!r}")
    f = fields[head]
    default = _default(f)
    if rest:
        return setting_info(type(default), rest)
    return {"default": default, **f.metadata}


def with_values(obj: Any, values: dict[str, Any]) -> Any:
    """A validated copy of settings ``obj`` with dotted names set, e.g.
    ``with_values(cfg, {"offline.shots": 1, "gallery.threshold": 0.5})``."""
    data = to_dict(obj)
    for dotted, value in values.items():
        *path, last = dotted.split(".")
        node = data
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{dotted}: {part!r} is not a table of settings")
            node = node[part]
        if last not in node:
            raise ConfigError(f"{dotted}: unknown setting")
        node[last] = value
    return from_dict(type(obj), data)


# --- settings of the exposure score

#: The default photo a stranger has of you: E2's 'street' snapshot (see :mod:`privrisk.exposure` for why).
DEFAULT_CURVE = "offline_to_online/street"


@dataclass(frozen=True)
class ExposureSettings:
    curve: str = setting(
        DEFAULT_CURVE,
        "identification curve of the audience's photo of you: "
        "'offline_to_online/<level>' (a snapshot; default the 'street' level) or "
        "'online_to_online' (another online photo)",
    )
    top_k: int = setting(10, "candidates the audience checks (10 as in the paper; 1 = rank 1 only)", choices=(1, 10))
    stranger_gallery_size: int = setting(1_000_000_000, "gallery a stranger searches (platform scale)", min=1)
    fof_gallery_size: int = setting(
        40_000, "gallery a friend of a friend searches (a friends-of-friends network)", min=1
    )
    max_photos: int = setting(50, "usable face photos counted at most", min=1)
    scenario_gallery_size: int = setting(
        0, "one more gallery size for the scenarios, besides 10^4, 10^6, 10^8 and 10^9 (0: none)", min=0
    )
    sensitivity: dict = setting({}, "override field sensitivities, e.g. {phone = 1.0} (CLI: --sensitivity FILE)")
