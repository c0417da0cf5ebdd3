"""Galleries beyond one machine's memory: compressed, sharded FAISS indexes on disk.

A flat index of 10^8 faces is 51 GB. :func:`build_shards` writes a gallery as several IVF-PQ
index files (each face compressed to ``m`` bytes; one coarse quantizer and codebook trained once
and shared) plus the raw float32 vectors in one file. :class:`ShardedIndex` opens the shards
memory-mapped, asks each for its ``rerank`` best candidates, and re-ranks the union with exact
distances read from the raw file, so memory holds only what the queries touch.

Layout of a shard directory::

    shards.json            what is there (sizes, parameters), written last and atomically
    shard-<i>.faiss        IVF-PQ index of ids [start_i, end_i)
    vectors.f32            all raw vectors, row = id
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import index as faiss_index
from .fileio import atomic_write
from .models import EMBEDDING_DIM


def build_shards(
    chunks: Iterable[np.ndarray],
    out_dir: str | os.PathLike,
    train: np.ndarray,
    *,
    nlist: int = 1024,
    m: int = 32,
    shard_size: int = 5_000_000,
    seed: int = 0,
) -> dict:
    """Write a sharded IVF-PQ gallery from ``chunks`` of (n, d) vectors; ids follow input order.

    ``train`` is a sample of the vectors for the coarse quantizer and the PQ codebooks."""
    faiss = faiss_index.faiss_module()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_x = faiss_index.as_matrix(train)
    dim = train_x.shape[1]
    trained = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x8")
    trained.cp.seed = seed
    trained.train(train_x)
    shards: list[dict] = []
    current, start, total = None, 0, 0
    with open(out / "vectors.f32.tmp", "wb") as raw:
        for chunk in chunks:
            x = faiss_index.as_matrix(chunk, dim)
            raw.write(x.astype("<f4").tobytes())
            pos = 0
            while pos < len(x):
                if current is None:
                    current, start = faiss.clone_index(trained), total
                take = min(len(x) - pos, shard_size - current.ntotal)
                current.add_with_ids(x[pos : pos + take], np.arange(total, total + take, dtype=np.int64))
                pos, total = pos + take, total + take
                if current.ntotal >= shard_size:
                    shards.append(_save_shard(current, out, len(shards), start, total))
                    current = None
        raw.flush()
        os.fsync(raw.fileno())
    if current is not None and current.ntotal:
        shards.append(_save_shard(current, out, len(shards), start, total))
    os.replace(out / "vectors.f32.tmp", out / "vectors.f32")
    meta = {"n": total, "dim": dim, "nlist": nlist, "m": m, "shards": shards, "bytes_per_face_compressed": m + 8}
    atomic_write(out / "shards.json", json.dumps(meta, indent=1))
    return meta


def _save_shard(index, out: Path, no: int, start: int, end: int) -> dict:
    name = f"shard-{no}.faiss"
    faiss_index.save_index(index, out / name)
    return {"file": name, "start": start, "end": end}


class ShardedIndex:
    """Search a shard directory: IVF-PQ candidates from every shard, exact re-ranking from disk."""

    def __init__(self, directory: str | os.PathLike, *, nprobe: int = 64, rerank: int = 100, memory_map: bool = True):
        faiss = faiss_index.faiss_module()
        self.dir = Path(directory)
        meta = json.loads((self.dir / "shards.json").read_text())
        self.n = meta["n"]
        flag = faiss.IO_FLAG_MMAP if memory_map else 0
        self.shards = []
        for s in meta["shards"]:
            idx = faiss.read_index(str(self.dir / s["file"]), flag)
            faiss.extract_index_ivf(idx).nprobe = nprobe
            self.shards.append(idx)
        self.vectors = np.memmap(
            self.dir / "vectors.f32", dtype="<f4", mode="r", shape=(self.n, int(meta.get("dim", EMBEDDING_DIM)))
        )
        raw_map = getattr(self.vectors, "_mmap", None)
        if raw_map is not None and hasattr(mmap, "MADV_RANDOM"):
            raw_map.madvise(mmap.MADV_RANDOM)  # re-ranking reads scattered rows: no read-ahead
        self.rerank = rerank

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and ids of the ``k`` nearest faces, as :func:`privrisk.index.search`."""
        q = faiss_index.as_matrix(queries, self.vectors.shape[1])
        cand = np.hstack([shard.search(q, self.rerank)[1] for shard in self.shards])  # (nq, shards*rerank)
        dist = np.full(cand.shape, np.inf, np.float32)
        for row in range(len(q)):
            ids = cand[row]
            ok = ids >= 0
            if ok.any():
                vecs = np.asarray(self.vectors[np.sort(ids[ok])])
                order = np.argsort(ids[ok], kind="stable")
                exact = np.empty(ok.sum(), np.float32)
                exact[order] = np.linalg.norm(vecs - q[row], axis=1)
                dist[row, ok] = exact
        top = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(dist, top, 1), np.where(
            np.isfinite(np.take_along_axis(dist, top, 1)), np.take_along_axis(cand, top, 1), -1
        )
