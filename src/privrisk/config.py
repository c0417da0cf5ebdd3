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


# The fast engine's cnn detector (privrisk.mmodnet) is part of the embedding cache key: bump this
# whenever a change to it could move a box, so no box cached by an earlier version is reused.
FAST_CNN_VERSION = 1


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
        if self.engine == "fast" and self.detector == "cnn":  # boxes cached by one version of the fast detector
            engine += f"|cnnnet={FAST_CNN_VERSION}"
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


# --- settings of capture degradations (E2's capture levels; the renderer is privrisk.degrade)

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


# --- settings of the experiment's stages (privrisk.experiment chains the stages in privrisk.stages)

# What every default level shares: a hand-held snapshot's roll, head turn, light from one side,
# a little motion and focus blur, each drawn per shot.
_SNAPSHOT: dict[str, Any] = dict(
    rotation_deg=[-8.0, 8.0],
    yaw_deg=[-20.0, 20.0],
    light_strength=[0.0, 0.4],
    motion_blur_px=[0.0, 1.5],
    defocus_px=[0.0, 0.8],
)
#: privrisk protect's levels: the gallery size at which a protected photo's rank-1 range must end under
#: the target (declared here, not in privrisk.protect, so the CLI's parser reads them without importing it)
PROTECT_LEVELS = {"safe_at_1e6": 1_000_000, "safe_at_1e9": 1_000_000_000}

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
class OfflineSettings:
    shots: int = setting(
        3, "captures per person, fused by taking each candidate's best distance (the paper took 3)", min=1, max=20
    )
    levels: list[Degradation] = setting(
        DEFAULT_LEVELS, "capture conditions, from mild to harsh ([[offline.levels]] tables)"
    )
    headline: str = setting("webcam", "level reported as experiments.offline_to_online")
    detectors: list[str] = setting(
        ["hog", "cnn"],
        "detectors every level reports side by side (detection rate and rank-1, exact intervals), each with "
        "its upsampling rule; faces.detector's numbers feed everything else",
        choices=("hog", "cnn"),
    )
    detector_people: int = setting(
        0,
        "the detectors other than faces.detector run on a seeded subset of this many mated people (0 = everyone; "
        "the demo uses 30: dlib's cnn detector costs about 1 s per capture on a CPU)",
        min=0,
    )
    timing_probes: int = setting(5, "probes timed uncached (detect / embed / search split)", min=1, max=1000)


@dataclass(frozen=True)
class ScalingSettings:
    sizes: list[int] = setting([100, 1_000, 10_000, 100_000, 1_000_000], "gallery sizes measured with distractors")
    extrapolate: list[int] = setting([10_000_000, 100_000_000, 1_000_000_000], "gallery sizes predicted by the model")
    validation_distractors: int = setting(2000, "distractors drawn to compare impostor distances (KS test)", min=100)
    tail_bootstrap: int = setting(
        100,
        "subject-bootstrap refits of each tail model in each fold (the spread of the "
        "simulated and extrapolated ranges)",
        min=5,
        max=10_000,
    )
    calibration: str = setting(
        "",
        "a calibration saved by `privrisk calibrate --save FILE` on faces the model never saw: where it was not "
        "within its interval, simulated and extrapolated ranges widen (rule in the report)",
    )


@dataclass(frozen=True)
class AccretionSettings:
    visibility: dict = setting({}, "override visibility distributions: field = [only_me, friends, fof, public]")
    birth_countries: dict = setting({}, "override birth-country shares, e.g. {US = 0.8, KR = 0.1, GB = 0.1}")


# --- settings of demographic differentials (computed by privrisk.fairness)

#: distances at which per-group false match rates are reported by default
DEFAULT_THRESHOLDS = [0.45, 0.5, 0.55, 0.6]


@dataclass(frozen=True)
class FairnessSettings:
    group_columns: list[str] = setting(
        ["gender", "ethnicity"],
        "manifest columns holding self-reported group attributes; each is analysed for demographic differentials",
    )
    combine: bool = setting(True, "also analyse the combination of all group columns (e.g. gender+ethnicity)")
    thresholds: list[float] = setting(
        DEFAULT_THRESHOLDS,
        "distance thresholds at which per-group false match "
        "rates are reported (the operating threshold is always added)",
    )
    small_subjects: int = setting(
        10, "cells with fewer subjects are still shown, flagged 'small: indicative only'", min=1
    )


# --- settings of countermeasures (E4; the photo transforms' ladders are declared here, once) ---

#: the occluders the ``occlude`` transform places (:mod:`privrisk.transforms`)
OCCLUDERS = ("sunglasses", "mask", "sticker")
#: each photo transform's default ladder of strengths, mildest first (:data:`privrisk.transforms.TRANSFORMS`)
TRANSFORM_LADDERS: dict[str, tuple] = {
    "downscale": (96, 64, 48, 32, 24, 16, 12),
    "blur": (0.005, 0.01, 0.02, 0.03, 0.05, 0.08),
    "jpeg": (50, 30, 20, 10, 5),
    "crop": (0.9, 0.75, 0.6, 0.45, 0.3),
    "occlude": OCCLUDERS,
}


@dataclass(frozen=True)
class CountermeasureSettings:
    enabled: bool = setting(
        False,
        "run E4, the countermeasures experiment (opt-in: it is outside the demo's time budget; "
        "`privrisk experiment --countermeasures` turns it on too)",
    )
    transforms: list[str] = setting(
        list(TRANSFORM_LADDERS), "transforms applied to each person's gallery photo", choices=tuple(TRANSFORM_LADDERS)
    )
    downscale: list[int] = setting(
        list(TRANSFORM_LADDERS["downscale"]), "downscale ladder: face widths in px left, mildest first", min=1
    )
    blur: list[float] = setting(
        list(TRANSFORM_LADDERS["blur"]), "blur ladder: Gaussian sigma as a share of the face width", min=0.0, max=1.0
    )
    jpeg: list[int] = setting(list(TRANSFORM_LADDERS["jpeg"]), "JPEG ladder: qualities, mildest first", min=1, max=100)
    crop: list[float] = setting(
        list(TRANSFORM_LADDERS["crop"]), "crop ladder: share of the face's height kept from the top", min=0.05, max=1.0
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


# --- settings of an experiment run (the whole TOML file)


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = setting(2011, "seed for every random choice (gallery split, degradations, profiles, distractors)")
    dataset_dir: str = setting("", "folder the manifests' image paths are relative to (default: the sample set)")
    gallery_manifest: str = setting("", "manifest of identified photos (default: sample neutral photos)")
    probe_manifest: str = setting("", "manifest of pseudonymous photos (default: sample smiling photos)")
    unseen_share: float = setting(0.2, "share of probe subjects left out of the gallery (open set)", min=0.0, max=0.9)
    top_k: int = setting(10, "candidates kept per probe (the paper returned 10)", min=1, max=100)
    fpir: list[float] = setting([0.01, 0.001], "false-positive identification rates for TPIR")
    bootstrap: int = setting(1000, "bootstrap resamples for 95% intervals", min=50)
    workers: int = setting(0, "worker processes for embedding (0 = all cores)", min=0)
    ray_address: str = setting(
        "", "embed the photo files on this Ray cluster ('host:port', or 'local'); empty = this machine"
    )
    faces: FaceSettings = setting(FaceSettings(), "[faces] table: detection and encoding")
    gallery: GallerySettings = setting(GallerySettings(), "[gallery] table: index and threshold")
    offline: OfflineSettings = setting(OfflineSettings(), "[offline] table: E2 capture conditions")
    scaling: ScalingSettings = setting(ScalingSettings(), "[scaling] table: distractor galleries")
    accretion: AccretionSettings = setting(AccretionSettings(), "[accretion] table: synthetic profiles")
    fairness: FairnessSettings = setting(FairnessSettings(), "[fairness] table: demographic differentials")
    countermeasures: CountermeasureSettings = setting(
        CountermeasureSettings(), "[countermeasures] table: E4, what protects a public photo (opt-in)"
    )


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
