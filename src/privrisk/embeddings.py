"""Face embeddings (128-d with dlib's model; any length with an ONNX embedder): one image (:func:`embed_image`) or a batch (:func:`embed_batch`).

Batches never die on one bad file: each item gets an :class:`EmbedResult` that is either ok
(with every face found) or skipped with the reason. Results are cached in SQLite by the image's
content hash plus everything that changes an embedding (model and face settings), so a
replaced image is noticed and unchanged ones are never recomputed. Cache misses are spread over
worker processes, with a bounded number of images in flight.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import FaceSettings
from .embedders import OnnxFaceModel
from .errors import ImageError, ModelUnavailable
from .faces import Face, choose_faces, detect_faces, original_width
from .images import ImageSource, LoadedImage, load_image
from .models import (
    DlibFaceModel,
    FaceModel,
    as_box,
    embedder_id,
    encode_many,
    fork_is_safe,
    load_face_model,
    resolve_engine,
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbedResult:
    """What embedding one image gave: its faces (all of them, largest first) or why it was skipped."""

    name: str
    sha256: str | None
    faces: tuple[Face, ...] = ()
    error: str | None = None
    seconds: dict = field(default_factory=dict)  # {"load", "detect", "embed"}; empty when cached
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def chosen(self, policy: str) -> list[Face]:
        """Faces kept under the several-faces policy; raises FaceNotFound / SeveralFaces."""
        return choose_faces(list(self.faces), policy, self.name)


def embed_loaded(model: FaceModel, image, settings: FaceSettings) -> tuple[list[Face], dict]:
    """Detect and encode every face of an already loaded image; returns (faces, seconds)."""
    return embed_loaded_many(model, [image], settings)[0]


def embed_loaded_many(model: FaceModel, images: Sequence, settings: FaceSettings) -> list[tuple[list[Face], dict]]:
    """:func:`embed_loaded` of each image, the faces of all of them encoded in one call
    (:func:`~privrisk.models.encode_many`: the fast engine runs their chips through its network
    together). Each image's ``embed`` seconds are its share, by faces, of that call."""
    boxes, detect_s = [], []
    for image in images:
        t0 = time.perf_counter()
        boxes.append(detect_faces(model, image, settings))
        detect_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    vectors = encode_many(model, [(image.rgb, b) for image, b in zip(images, boxes)], settings.jitters)
    embed_s = time.perf_counter() - t0
    n_faces = sum(len(b) for b in boxes)
    out = []
    for image, found, encoded, detect in zip(images, boxes, vectors, detect_s, strict=True):
        faces = []
        for box, vector in zip(found, encoded):
            s = image.scale or 1.0
            orig = as_box(v / s for v in box)
            faces.append(Face(box=orig, width_px=original_width(box, image), embedding=np.asarray(vector, np.float32)))
        faces.sort(key=lambda f: -f.width_px)
        share = len(found) / n_faces if n_faces else 1 / len(images)
        out.append((faces, {"detect": detect, "embed": embed_s * share}))
    return out


def embed_image(
    source: ImageSource, model: FaceModel, settings: FaceSettings = FaceSettings(), *, name: str | None = None
) -> EmbedResult:
    """Load one image and embed its faces. Image problems become a skipped result, not an exception;
    a missing model still raises :class:`ModelUnavailable`."""
    return embed_images([source], model, settings, names=[name])[0]


def embed_images(
    sources: Sequence[ImageSource | LoadedImage],
    model: FaceModel,
    settings: FaceSettings = FaceSettings(),
    *,
    names: Sequence[str | None] | None = None,
) -> list[EmbedResult]:
    """:func:`embed_image` of each source (``names[i]`` names an in-memory one), one result per
    source in order, with the faces of all of them encoded together (:func:`embed_loaded_many`)."""
    results: list[EmbedResult | None] = [None] * len(sources)
    loaded, load_s = [], []
    for i, (source, name) in enumerate(zip(sources, names or [None] * len(sources), strict=True)):
        t0 = time.perf_counter()
        if isinstance(source, LoadedImage):  # pixels already decoded (a rendered capture)
            loaded.append((i, source))
            load_s.append(0.0)
            continue
        try:
            image = load_image(
                source,
                name=name,
                max_side=settings.max_side,
                max_pixels=settings.max_pixels,
                max_bytes=settings.max_bytes,
            )
        except ImageError as exc:
            results[i] = EmbedResult(name=exc.path, sha256=None, error=exc.reason)
            continue
        loaded.append((i, image))
        load_s.append(time.perf_counter() - t0)
    embedded = embed_loaded_many(model, [image for _i, image in loaded], settings)
    for (i, image), (faces, seconds), load in zip(loaded, embedded, load_s, strict=True):
        seconds["load"] = load
        results[i] = EmbedResult(
            name=image.name,
            sha256=image.sha256,
            faces=tuple(faces),
            seconds=seconds,
            error=None if faces else "no face found",
        )
    return [r for r in results if r is not None]


def file_sha256(path: str | os.PathLike) -> str:
    """Content hash of a regular file (anything else raises OSError rather than blocking on a FIFO)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{path} is not a regular file")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EmbeddingCache:
    """SQLite cache: (image content hash, settings key) -> faces. Safe across threads; no pickle.

    Only deterministic outcomes are stored (faces, or "no face found"); unreadable files are
    not, so fixing a file and re-running picks it up.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (sha256 TEXT NOT NULL, settings TEXT NOT NULL,"
                " boxes TEXT NOT NULL, widths TEXT NOT NULL, vectors BLOB NOT NULL, created REAL NOT NULL,"
                " PRIMARY KEY (sha256, settings))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS artifacts (key TEXT PRIMARY KEY, npz BLOB NOT NULL, created REAL NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def get(self, sha256: str, settings_key: str) -> list[Face] | None:
        row = (
            self._conn()
            .execute(
                "SELECT boxes, widths, vectors FROM embeddings WHERE sha256=? AND settings=?", (sha256, settings_key)
            )
            .fetchone()
        )
        if row is None:
            return None
        boxes, widths = json.loads(row[0]), json.loads(row[1])
        if not boxes:
            return []
        vectors = np.frombuffer(row[2], dtype="<f4").reshape(len(boxes), -1)
        return [Face(box=tuple(b), width_px=w, embedding=v.copy()) for b, w, v in zip(boxes, widths, vectors)]

    def put(self, sha256: str, settings_key: str, faces: Sequence[Face]) -> None:
        vectors = np.asarray([f.embedding for f in faces], dtype="<f4")
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?)",
                (
                    sha256,
                    settings_key,
                    json.dumps([list(f.box) for f in faces]),
                    json.dumps([f.width_px for f in faces]),
                    vectors.tobytes(),
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    # --- other deterministic results (degraded captures, distractor searches), keyed by their inputs ---

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """Arrays stored under ``key`` by :meth:`put_arrays`, or None. Loaded without pickle."""
        row = self._conn().execute("SELECT npz FROM artifacts WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[0]), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        # numpy's stub matches **arrays against its keyword allow_pickle: bool; every value is an array
        np.savez(buf, **{name: np.asarray(a) for name, a in arrays.items()})  # type: ignore[arg-type]
        with self._conn() as conn:
            conn.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", (key, buf.getvalue(), time.time()))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def artifact_key(kind: str, *parts) -> str:
    """A cache key for a deterministic result: ``kind`` plus everything it depends on. Arrays count
    by dtype, shape and bytes; anything else by its JSON form (dataclasses as dicts)."""
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            digest.update(f"|nd{arr.dtype.str}{arr.shape}|".encode())
            digest.update(arr.tobytes())
        else:
            if dataclasses.is_dataclass(part) and not isinstance(part, type):
                part = dataclasses.asdict(part)
            digest.update(b"|" + json.dumps(part, sort_keys=True, default=str).encode())
    return f"{kind}:{digest.hexdigest()}"


def default_cache_path() -> Path:
    """``$PRIVRISK_CACHE_DIR/embeddings.sqlite``, else ``~/.cache/privrisk/embeddings.sqlite``."""
    base = os.environ.get("PRIVRISK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "privrisk"
    )
    return Path(base) / "embeddings.sqlite"


# --- worker processes -------------------------------------------------------------------------

_worker_model: FaceModel | None = None


def _worker_init(settings: FaceSettings | None = None) -> None:
    global _worker_model
    _worker_model = load_face_model(settings)


def _embed_items(items: Sequence, model: FaceModel, settings: FaceSettings) -> list[EmbedResult]:
    """One result per item (a path, a (name, bytes) pair or a recipe), in order; the faces of all
    of them are encoded together. A recipe that cannot be rendered is a skipped result."""
    results: list[EmbedResult | None] = [None] * len(items)
    todo, sources, names = [], [], []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            name, data = item
        elif _is_recipe(item):
            try:
                name, data = item.name, _rendered(item, model, settings)
            except ImageError as exc:
                results[i] = EmbedResult(name=item.name, sha256=None, error=f"cannot make the image: {exc.reason}")
                continue
        else:
            name, data = None, item
        todo.append(i)
        sources.append(data)
        names.append(name)
    for i, result in zip(todo, embed_images(sources, model, settings, names=names), strict=True):
        if _is_recipe(items[i]):
            result = dataclasses.replace(result, sha256=None)  # cached by its recipe, not by these bytes
        results[i] = result
    return [r for r in results if r is not None]


def _rendered(item, model: FaceModel, settings: FaceSettings) -> ImageSource | LoadedImage:
    """A recipe's image: its pixels as they are when :func:`load_image` would hand them back
    unchanged from a lossless PNG (:func:`_loads_unchanged`), else its encoded bytes."""
    rgb = item.render_rgb(model) if hasattr(item, "render_rgb") else None
    if rgb is None or not _loads_unchanged(rgb, settings):
        return item.render(model)
    h, w = rgb.shape[:2]
    return LoadedImage(rgb=np.ascontiguousarray(rgb), name=item.name, sha256="", original_size=(w, h), scale=1.0)


def _loads_unchanged(rgb: np.ndarray, settings: FaceSettings) -> bool:
    """Whether :func:`load_image` would hand back a rendered (H, W, 3) uint8 image's pixels as they
    are, encoded losslessly: no side over ``max_side`` (nothing shrunk), within ``max_pixels``, and
    even uncompressed within ``max_bytes`` (nothing refused)."""
    h, w = rgb.shape[:2]
    return (
        rgb.ndim == 3
        and rgb.shape[2] == 3
        and rgb.dtype == np.uint8
        and (not settings.max_side or max(h, w) <= settings.max_side)
        and h * w <= settings.max_pixels
        and h * w * 3 + 65_536 <= settings.max_bytes
    )


class Recipe(Protocol):
    """An image made on demand (see :func:`embed_batch`): cached under ``cache_key``, rendered
    only on a cache miss. Read-only members, so frozen dataclasses qualify."""

    @property
    def name(self) -> str: ...

    @property
    def cache_key(self) -> str: ...

    def render(self, model: FaceModel) -> bytes: ...


def _is_recipe(item) -> bool:
    """An image made on demand: has ``name``, ``cache_key`` and ``render(model) -> bytes``."""
    return hasattr(item, "render") and hasattr(item, "cache_key")


def _faces_to_arrays(faces: Sequence[Face]) -> dict[str, np.ndarray]:
    return {
        "boxes": np.array([list(f.box) for f in faces], np.int64).reshape(len(faces), 4),
        "widths": np.array([f.width_px for f in faces], np.int64),
        "vectors": np.array([f.embedding for f in faces], "<f4").reshape(len(faces), -1 if faces else 0),
    }


def _faces_from_arrays(arrays: dict[str, np.ndarray]) -> list[Face]:
    return [
        Face(box=as_box(b), width_px=int(w), embedding=np.asarray(e, np.float32).copy())
        for b, w, e in zip(arrays["boxes"], arrays["widths"], arrays["vectors"])
    ]


def _worker_embed(items: list, settings: FaceSettings) -> list[EmbedResult]:
    if _worker_model is None:  # the pool's initializer loads it
        raise ModelUnavailable("the embedding worker has no face model")
    return _embed_items(items, _worker_model, settings)


BATCH_IMAGES = 16  # images a worker embeds together: the fast engine's network runs their faces at once


def _chunks(todo: list[int], size: int) -> list[list[int]]:
    return [todo[i : i + size] for i in range(0, len(todo), size)]


@dataclass(frozen=True)
class Workers:
    """Where a batch's cache misses run: ``processes`` local worker processes (None: one per core;
    1: in the calling process) with at most ``max_in_flight`` images in flight at a time (None: two
    batches of up to :data:`BATCH_IMAGES` per process), or, with ``ray_address`` (``host:port`` or 'local'), Ray tasks on that cluster
    (:mod:`privrisk.cluster`); the results are the same."""

    processes: int | None = None
    max_in_flight: int | None = None
    ray_address: str | None = None


def embed_batch(
    sources: Iterable[str | os.PathLike | tuple[str, bytes] | Recipe],
    settings: FaceSettings = FaceSettings(),
    *,
    model: FaceModel | None = None,
    cache: EmbeddingCache | None = None,
    workers: int | Workers | None = None,
    progress: bool | Progress = False,
) -> list[EmbedResult]:
    """Embed many images; one :class:`EmbedResult` per source, in order.

    A source is a file path, a ``(name, image bytes)`` pair (for images made in memory), or a
    recipe: an object with ``name``, ``cache_key`` and ``render(model) -> bytes`` (an image made on
    demand, in the worker, such as :class:`privrisk.captures.Capture`). Recipes are cached under
    their ``cache_key``, so a cached one is never rendered.

    Cached images are answered from ``cache``. Misses run where ``workers`` says: a number of
    worker processes (default: all cores; 1 = in this process with ``model``, loading the real
    model if none is given), or a :class:`Workers` (also the number of images in flight, or a Ray
    cluster: ``Workers(ray_address=...)``, whose results are the same).
    ``progress`` is True for a progress bar on stderr, or a callable ``(done, total)``.
    """
    paths = [p if isinstance(p, tuple) or _is_recipe(p) else str(p) for p in sources]
    if model is None and settings.embedder != "dlib":  # checked here, not in a worker's initializer
        model = load_face_model(settings)
    report = _progress_reporter(progress, len(paths))
    model_id = model.model_id if model is not None else embedder_id(settings)
    # The key names the engine that will run: a given model's, else the settings' unless the fast
    # engine cannot be used here (then dlib runs, and its key is the one used).
    engine = getattr(model, "engine", settings.engine) if model is not None else resolve_engine(settings)
    batch = _Batch(paths, cache, dataclasses.replace(settings, engine=engine).cache_key(model_id), report)
    todo = [i for i in range(len(paths)) if not batch.from_cache(i)]

    where = workers if isinstance(workers, Workers) else Workers(workers)
    n_workers = where.processes if where.processes is not None else (os.cpu_count() or 1)
    if todo and where.ray_address:  # the nodes run the engine this process resolved, the one the cache key names
        _embed_on_ray(batch, todo, dataclasses.replace(settings, engine=engine), where.ray_address)
    elif todo and (n_workers <= 1 or len(todo) < 4 or model is not None and not _is_real(model)):
        local_model = model or load_face_model(settings)
        for chunk in _chunks(todo, BATCH_IMAGES):
            for i, result in zip(chunk, _embed_items([paths[i] for i in chunk], local_model, settings), strict=True):
                batch.store(i, result)
    elif todo:
        _embed_in_pool(batch, todo, settings, n_workers, where.max_in_flight)
    report(0, close=True)
    return [r for r in batch.results if r is not None]


class _Batch:
    """A batch's results by position: answered from the cache where it can, stored (and cached,
    when deterministic) as the embedding runs, with the progress reported."""

    def __init__(self, paths: list, cache: EmbeddingCache | None, key: str, report) -> None:
        self.paths, self.cache, self.key, self.report = paths, cache, key, report
        self.results: list[EmbedResult | None] = [None] * len(paths)

    def from_cache(self, i: int) -> bool:
        """Whether item ``i`` was answered from the cache (a file that cannot be read is not: the
        loader produces the precise error)."""
        path, cache = self.paths[i], self.cache
        if _is_recipe(path):
            arrays = cache.get_arrays(path.cache_key) if cache is not None else None
            if arrays is None:
                return False
            faces = _faces_from_arrays(arrays)
            self.results[i] = EmbedResult(
                name=path.name, sha256=None, faces=tuple(faces), cached=True, error=None if faces else "no face found"
            )
            self.report(1)
            return True
        try:
            digest = hashlib.sha256(path[1]).hexdigest() if isinstance(path, tuple) else file_sha256(path)
        except OSError:
            return False  # let the loader produce the precise error
        found = cache.get(digest, self.key) if cache is not None else None
        if found is None:
            return False
        self.results[i] = EmbedResult(
            name=path[0] if isinstance(path, tuple) else path,
            sha256=digest,
            faces=tuple(found),
            cached=True,
            error=None if found else "no face found",
        )
        self.report(1)
        return True

    def store(self, i: int, result: EmbedResult) -> None:
        self.results[i] = result
        cache, path = self.cache, self.paths[i]
        if cache is not None and _is_recipe(path):
            if result.ok or result.error == "no face found":  # deterministic outcomes only
                cache.put_arrays(path.cache_key, _faces_to_arrays(result.faces))
        elif cache is not None and result.sha256 is not None:
            cache.put(result.sha256, self.key, list(result.faces))
        self.report(1)


def _embed_on_ray(batch: _Batch, todo: list[int], settings: FaceSettings, ray_address: str) -> None:
    from .cluster import embed_on_ray

    paths = batch.paths
    if any(isinstance(paths[i], tuple) or _is_recipe(paths[i]) for i in todo):
        raise ValueError("the Ray path embeds image files; in-memory and rendered images run locally")
    embed_on_ray(
        [paths[i] for i in todo],
        settings,
        ray_address,
        embed_image,
        on_result=lambda j, result: batch.store(todo[j], result),
    )


def _embed_in_pool(
    batch: _Batch, todo: list[int], settings: FaceSettings, n_workers: int, max_in_flight: int | None
) -> None:
    """The misses in worker processes, in batches of up to :data:`BATCH_IMAGES` images (fewer when
    there are too few to keep every worker busy), at most ``max_in_flight`` images (default two
    batches per worker) at a time."""
    paths = batch.paths
    per = min(BATCH_IMAGES, max(1, len(todo) // (2 * n_workers)))
    if max_in_flight:
        per = min(per, max(1, max_in_flight // n_workers))
    window = max(1, (max_in_flight or 2 * per * n_workers) // per)  # batches in flight
    # fork: workers start at once, inherit a loaded model and need no `__main__` guard in
    # the caller's script. They only run image decoding and dlib, never FAISS/OpenMP.
    # fork only while it is safe (models.fork_is_safe: not after dlib's CNN detector ran here)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and fork_is_safe() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "fork":
        # Loaded here once, the model is inherited by every pool's workers: otherwise each pool
        # (a run makes several) waits seconds while its workers load dlib's models again.
        load_face_model(settings)
    with cf.ProcessPoolExecutor(
        max_workers=min(n_workers, len(todo)), mp_context=ctx, initializer=_worker_init, initargs=(settings,)
    ) as pool:
        pending: dict[cf.Future, list[int]] = {}
        queue = iter(_chunks(todo, per))
        for chunk in queue:
            pending[pool.submit(_worker_embed, [paths[i] for i in chunk], settings)] = chunk
            if len(pending) >= window:
                break
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                chunk = pending.pop(fut)
                try:
                    results = fut.result()
                except cf.process.BrokenProcessPool as exc:
                    raise ModelUnavailable(f"an embedding worker died ({exc})") from exc
                for i, result in zip(chunk, results, strict=True):
                    batch.store(i, result)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_worker_embed, [paths[i] for i in nxt], settings)] = nxt


def _is_real(model: FaceModel) -> bool:
    return isinstance(model, (DlibFaceModel, OnnxFaceModel))


def _progress_reporter(progress: bool | Progress, total: int):
    from .progress import reporter

    return reporter(progress, total, desc="embedding", unit="img")


@dataclass(frozen=True)
class EmbedRun:
    """How a library call that embeds photos runs the embedding (what it computes is the face
    settings' business): with ``model`` (None: the settings' own, loaded when needed), answering
    from ``cache`` first, in ``workers`` processes (None: one per core; 1: in this process) or on
    the Ray cluster at ``ray_address``, reporting ``progress`` (True: a bar on stderr, or a callable
    ``(done, total)``). :func:`~privrisk.gallery.build_gallery` and
    :func:`~privrisk.matching.match_images` take one."""

    model: FaceModel | None = None
    cache: EmbeddingCache | None = None
    workers: int | None = None
    progress: bool | Progress = False
    ray_address: str | None = None

    def embed(self, sources: Sequence[str | os.PathLike], settings: FaceSettings) -> list[EmbedResult]:
        """:func:`embed_batch` of ``sources`` with ``settings``, run this way."""
        return embed_batch(
            sources,
            settings,
            model=self.model,
            cache=self.cache,
            workers=Workers(self.workers, ray_address=self.ray_address),
            progress=self.progress,
        )
