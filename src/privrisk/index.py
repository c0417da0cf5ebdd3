"""FAISS indexes over face embeddings (128-d with dlib's model; any length with another embedder): build, search, save, load. Arrays in, ``(D, I)`` out.

Distances are Euclidean (what face_recognition's 0.6 threshold is stated in), not FAISS's
squared L2. Every nearest-neighbour search in privrisk goes through :func:`search`; the all-pairs
distance matrices of the experiments (every probe against every face of a small gallery) come from
:func:`pairwise_distances`, in bounded memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .fileio import atomic_path
from .models import EMBEDDING_DIM

INDEX_TYPES = ("flat", "ivf", "hnsw")
#: 'auto' searches exactly up to this many faces (a single exact query over 250,000 faces scans
#: 128 MB, about 15 ms on 2 cores) and builds HNSW above it (recall@1 about 0.99 at 10^6; measured
#: in benchmarks/).
AUTO_EXACT_MAX = 250_000


#: the largest (rows x faces x dimensions) difference block :func:`pairwise_distances` holds at once
PAIRWISE_BLOCK_BYTES = 64 * 2**20


def pairwise_distances(a, b, *, block_bytes: int = PAIRWISE_BLOCK_BYTES) -> np.ndarray:
    """Euclidean distances from every row of ``a`` to every row of ``b`` (shape ``len(a) x len(b)``).

    Computed a block of rows of ``a`` at a time, so the difference array never exceeds
    ``block_bytes`` (a dense ``a[:, None] - b[None]`` over a user's large manifest would not fit in
    memory); each block uses the same arithmetic as the dense form, so the numbers are identical.
    The result has the dtype numpy gives ``a - b`` (float32 inputs stay float32)."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.result_type(a.dtype, b.dtype)
    out = np.empty((len(a), len(b)), dtype)
    rows = max(1, block_bytes // max(1, len(b) * max(1, a.shape[-1] if a.ndim > 1 else 1) * dtype.itemsize))
    for i in range(0, len(a), rows):
        diff = a[i : i + rows, None, :] - b[None, :, :]
        out[i : i + rows] = np.sqrt(np.maximum((diff**2).sum(-1), 0))
    return out


def resolve_index_type(index_type: str, n: int) -> str:
    """The concrete index for ``n`` vectors: 'auto' becomes 'flat' (exact) or 'hnsw' by size."""
    if index_type == "auto":
        return "flat" if n <= AUTO_EXACT_MAX else "hnsw"
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index type must be 'auto' or one of {', '.join(INDEX_TYPES)}, not {index_type!r}")
    return index_type


def faiss_module():
    """The ``faiss`` module, imported on first use (so ``import privrisk`` stays light)."""
    import faiss  # noqa: PLC0415

    return faiss


def as_matrix(vectors, dim: int | None = None) -> np.ndarray:
    """(n, d) float32 C-contiguous, also for n = 0 or a single vector. ``d`` is ``dim`` when given,
    else the vectors' own length (128, dlib's, for an empty 1-d input)."""
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if arr.size else arr.reshape(0, dim or EMBEDDING_DIM)
    if arr.ndim != 2 or arr.shape[1] < 1 or (dim is not None and arr.shape[1] != dim):
        raise ValueError(f"embeddings must have shape (n, {dim or 'd'}), got {arr.shape}")
    return arr


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors: about 4 sqrt(n), with at least 39 points per list."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39 or 1))


@dataclass(frozen=True)
class IndexParams:
    """How an approximate index is built and searched ('flat' uses none of them): IVF's ``nlist``
    lists (None: :func:`ivf_lists`), trained on a sample drawn with ``seed``, of which ``nprobe`` are
    searched per query; HNSW's ``hnsw_m`` links per node and search breadth ``hnsw_ef_search``."""

    nprobe: int = 16
    hnsw_ef_search: int = 128
    hnsw_m: int = 32
    nlist: int | None = None
    seed: int = 0


def build_index(vectors, ids=None, index_type: str = "flat", params: IndexParams = IndexParams()):
    """A FAISS index holding ``vectors`` under ``ids`` (default 0..n-1).

    'flat' is exact; 'ivf' (inverted lists, trained on a seeded sample of at most 64 vectors per
    list) and 'hnsw' (graph) are approximate and much faster on large galleries; 'auto' picks
    'flat' or 'hnsw' by size (:func:`resolve_index_type`). ``params`` tunes the approximate ones.
    """
    faiss = faiss_module()
    x = as_matrix(vectors)
    dim = x.shape[1]
    index_type = resolve_index_type(index_type, len(x))
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) != len(x):
        raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
    if index_type == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
    elif index_type == "ivf":
        quantizer = faiss.IndexFlatL2(dim)
        lists = params.nlist or ivf_lists(len(x))
        index = faiss.IndexIVFFlat(quantizer, dim, lists)
        index.cp.seed = params.seed
        if len(x):
            train = x
            if len(x) > 64 * lists:
                train = x[np.random.default_rng(params.seed).choice(len(x), 64 * lists, replace=False)]
            index.train(train)
        index.nprobe = params.nprobe
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m)
        inner.hnsw.efSearch = params.hnsw_ef_search
        index = faiss.IndexIDMap2(inner)
    else:
        raise ValueError(f"index type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}")
    if len(x):
        index.add_with_ids(x, ids)
    return index


def search(index, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery entries of each query: Euclidean distances (n, k) float32 and ids
    (n, k) int64, nearest first. Missing neighbours (k > gallery size) have id -1, distance inf."""
    q = as_matrix(queries, index.d)
    if len(q) == 0 or index.ntotal == 0 or k <= 0:
        k = max(k, 0)
        return np.full((len(q), k), np.inf, np.float32), np.full((len(q), k), -1, np.int64)
    d2, ids = index.search(q, k)
    dist = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
    dist[ids < 0] = np.inf
    return dist, ids.astype(np.int64)


def save_index(index, path: str | os.PathLike) -> None:
    """Write atomically (:func:`privrisk.fileio.atomic_path`): a temp file, then ``os.replace``."""
    with atomic_path(path) as tmp:
        faiss_module().write_index(index, str(tmp))


def load_index(path: str | os.PathLike):
    """Read an index written by :func:`save_index` (FAISS's own format; nothing is unpickled)."""
    return faiss_module().read_index(str(path))


def configure(index, *, nprobe: int | None = None, hnsw_ef_search: int | None = None) -> None:
    """Set search-time parameters on a loaded index."""
    faiss = faiss_module()
    inner = faiss.extract_index_ivf(index) if nprobe is not None and _is_ivf(index) else None
    if inner is not None:
        inner.nprobe = nprobe
    if hnsw_ef_search is not None:
        base = faiss.downcast_index(index.index) if hasattr(index, "index") else index
        if hasattr(base, "hnsw"):
            base.hnsw.efSearch = hnsw_ef_search


def _is_ivf(index) -> bool:
    try:
        faiss_module().extract_index_ivf(index)
        return True
    except RuntimeError:
        return False
