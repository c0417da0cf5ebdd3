"""A persistent, consent-aware face gallery: SQLite metadata plus a FAISS index file beside it.

Layout of a gallery directory::

    gallery.sqlite        faces (subject, image, content hash, consent, source, box, embedding)
                          and meta (settings, model, index type, version)
    index-<version>.faiss the FAISS index of exactly the faces at that version

SQLite is the source of truth; every change commits in one transaction and bumps ``version``.
The index file is derived: written to a temp file and renamed into place, named after the
version it holds. Opening a gallery whose index file is missing or stale (a crash between the
commit and the rename) rebuilds it, so index and metadata always agree. Building from a
manifest skips faces already present, so re-running an interrupted build finishes it without
duplicates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import index as faiss_index
from .config import FaceSettings, GallerySettings, from_dict, to_dict
from .embeddings import EmbeddingCache, EmbedResult, Progress, Workers, embed_batch
from .errors import FaceNotFound, GalleryError, SeveralFaces
from .faces import Face
from .manifest import Manifest, ManifestRow, Refusal
from .models import EMBEDDING_DIM, FaceModel, embedder_id, load_face_model

FORMAT_VERSION = 1
DB_NAME = "gallery.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id TEXT NOT NULL,
    image TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    face_no INTEGER NOT NULL DEFAULT 0,
    consent TEXT NOT NULL,
    consent_ref TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    box TEXT NOT NULL,
    width_px INTEGER NOT NULL,
    added_at REAL NOT NULL,
    embedding BLOB NOT NULL,
    UNIQUE (subject_id, sha256, face_no)
);
CREATE INDEX IF NOT EXISTS faces_subject ON faces(subject_id);
"""


@dataclass(frozen=True)
class FaceRecord:
    """One face to enrol, with the consent it rests on."""

    subject_id: str
    image: str
    sha256: str
    face: Face
    consent: str
    consent_ref: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)
    face_no: int = 0


@dataclass
class BuildReport:
    """What a build or an add did: counts, and every refused row or skipped image with its reason."""

    added: int = 0
    already_present: int = 0
    refused: list[Refusal] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    threshold: dict | None = None  # the threshold chosen by rule 'fmr' (metrics.threshold_at_fmr)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "added": self.added,
            "already_present": self.already_present,
            "refused": [str(r) for r in self.refused],
            "skipped": [{"image": i, "reason": r} for i, r in self.skipped],
        }


class Gallery:
    """Open with :meth:`open` or :meth:`create`; close with :meth:`close` (or use ``with``)."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn
        self._index = None
        self._index_version = -1
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        try:
            self.face_settings: FaceSettings = from_dict(FaceSettings, json.loads(meta["face_settings"]))
            self.settings: GallerySettings = from_dict(GallerySettings, json.loads(meta["gallery_settings"]))
            self.model_id: str = meta["model_id"]
            self.embedding_dim: int = int(meta.get("embedding_dim", EMBEDDING_DIM))
            # how the threshold was set, in words (galleries made before the rule existed: given)
            self.threshold_rule: str = meta.get(
                "threshold_rule", self.settings.given_statement(self.face_settings.embedder)
            )
            fmt = int(meta["format_version"])
        except (KeyError, ValueError) as exc:
            raise GalleryError(f"{path}: gallery metadata is incomplete or damaged ({exc})") from None
        if fmt != FORMAT_VERSION:
            raise GalleryError(f"{path}: gallery format {fmt} is not supported (this privrisk reads {FORMAT_VERSION})")

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        face_settings: FaceSettings = FaceSettings(),
        settings: GallerySettings = GallerySettings(),
        model_id: str | None = None,
    ) -> Gallery:
        """Create an empty gallery in ``path`` (created if needed; must not hold a gallery already)."""
        path = Path(path)
        if (path / DB_NAME).exists():
            raise GalleryError(f"{path}: a gallery already exists here")
        path.mkdir(parents=True, exist_ok=True)
        # Built under a temp name and renamed, so a killed create leaves no half-made gallery.
        tmp = path / f".{DB_NAME}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(_SCHEMA)
            with conn:
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("format_version", str(FORMAT_VERSION)),
                        ("face_settings", json.dumps(to_dict(face_settings))),
                        ("gallery_settings", json.dumps(to_dict(settings))),
                        ("model_id", model_id or embedder_id(face_settings)),
                        ("version", "0"),
                        ("created_at", str(time.time())),
                    ],
                )
        finally:
            conn.close()
        os.replace(tmp, path / DB_NAME)
        conn = _connect(path / DB_NAME)
        return cls(path, conn)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Gallery:
        """Open an existing gallery directory."""
        path = Path(path)
        db = path / DB_NAME
        if not db.is_file():
            raise GalleryError(f"{path}: no gallery here (no {DB_NAME}); build one with `privrisk gallery build`")
        try:
            conn = _connect(db)
            conn.execute("SELECT COUNT(*) FROM faces").fetchone()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path}: gallery database is damaged ({exc})") from None
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading --------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]

    def subjects(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT subject_id FROM faces ORDER BY subject_id")]

    def has(self, subject_id: str, sha256: str) -> bool:
        return (
            self._conn.execute(
                "SELECT 1 FROM faces WHERE subject_id=? AND sha256=? LIMIT 1", (subject_id, sha256)
            ).fetchone()
            is not None
        )

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, (n, embedding_dim) float32 embeddings), in id order."""
        rows = self._conn.execute("SELECT id, embedding FROM faces ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), self.embedding_dim)
        return ids, vectors.astype(np.float32)

    def faces(self, ids: Iterable[int] | None = None) -> dict[int, dict]:
        """Metadata of the given face ids (all when None): subject, image, consent, box, ..."""
        cols = "id, subject_id, image, sha256, consent, consent_ref, source, meta, box, width_px, added_at"
        if ids is None:
            rows = self._conn.execute(f"SELECT {cols} FROM faces").fetchall()
        else:
            wanted = sorted({int(i) for i in ids if int(i) >= 0})
            rows = []
            for start in range(0, len(wanted), 900):
                chunk = wanted[start : start + 900]
                rows += self._conn.execute(
                    f"SELECT {cols} FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
        keys = cols.split(", ")
        out = {}
        for row in rows:
            rec = dict(zip(keys, row))
            rec["meta"] = json.loads(rec["meta"])
            rec["box"] = tuple(json.loads(rec["box"]))
            out[rec.pop("id")] = rec
        return out

    def info(self) -> dict:
        return {
            "path": str(self.path),
            "faces": len(self),
            "subjects": len(self.subjects()),
            "version": self.version,
            "model_id": self.model_id,
            "embedder": self.face_settings.embedder,
            "embedding_dim": self.embedding_dim,
            "index_type": self.settings.index_type,
            "index_in_use": faiss_index.resolve_index_type(self.settings.index_type, len(self)),
            "threshold": self.settings.threshold,
            "threshold_rule": self.threshold_rule,
            "face_settings": to_dict(self.face_settings),
            "index_file": self._index_path(self.version).name,
        }

    def fingerprint(self) -> str:
        """A hash of the gallery's content (subjects, images, embeddings), independent of timing."""
        digest = hashlib.sha256()
        for row in self._conn.execute(
            "SELECT subject_id, image, sha256, face_no, consent, embedding FROM faces "
            "ORDER BY subject_id, sha256, face_no"
        ):
            digest.update(json.dumps(row[:5]).encode())
            digest.update(row[5])
        return digest.hexdigest()

    # --- the index ------------------------------------------------------------------------------

    def _index_path(self, version: int) -> Path:
        return self.path / f"index-{version}.faiss"

    @property
    def index(self):
        """The FAISS index for the current version; loaded from disk or rebuilt if missing or stale."""
        version = self.version
        if self._index is not None and self._index_version == version:
            return self._index
        path = self._index_path(version)
        index = None
        if path.is_file():
            try:
                index = faiss_index.load_index(path)
                if index.ntotal != len(self):
                    index = None
            except RuntimeError:
                index = None
        if index is None:
            index = self._write_index(version)
        faiss_index.configure(index, nprobe=self.settings.nprobe, hnsw_ef_search=self.settings.hnsw_ef_search)
        self._index, self._index_version = index, version
        return index

    def _write_index(self, version: int):
        ids, vectors = self.embeddings()
        index = faiss_index.build_index(
            vectors,
            ids,
            self.settings.index_type,
            nprobe=self.settings.nprobe,
            hnsw_ef_search=self.settings.hnsw_ef_search,
        )
        faiss_index.save_index(index, self._index_path(version))
        self._clean_stale_files(keep=version)
        return index

    def _clean_stale_files(self, keep: int) -> None:
        for p in self.path.glob("index-*.faiss"):
            if p.name != self._index_path(keep).name:
                p.unlink(missing_ok=True)
        for p in [*self.path.glob(".index-*.tmp"), *self.path.glob(f".{DB_NAME}.*.tmp")]:
            p.unlink(missing_ok=True)

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Distances and face ids of the ``k`` nearest faces of each query (see :func:`index.search`).
        Queries of another length than the gallery's embeddings are refused (another embedder made them)."""
        q = np.asarray(queries, np.float32)
        dim = q.shape[-1] if q.ndim >= 1 and q.size else self.embedding_dim
        if dim != self.embedding_dim:
            raise GalleryError(
                f"{self.path}: the gallery holds {self.embedding_dim}-d embeddings made by {self.model_id}; "
                f"the query has {dim} values: another embedder made it"
            )
        return faiss_index.search(self.index, queries, k)

    def check_embedder(self, model_id: str, embedder: str = "") -> None:
        """Refuse a search whose embeddings come from another embedder than the gallery's, naming both."""
        if model_id != self.model_id:
            ours = f"{self.model_id} ({self.face_settings.embedder})"
            theirs = f"{model_id} ({embedder})" if embedder else model_id
            raise GalleryError(
                f"{self.path}: the gallery was built with embedder {ours}, the search uses {theirs}; "
                "distances between two embedders mean nothing: search with the gallery's embedder or rebuild it"
            )

    # --- writing --------------------------------------------------------------------------------

    def add(self, records: Sequence[FaceRecord], *, write_index: bool = True) -> tuple[int, int]:
        """Enrol faces in one transaction; returns (added, already present)."""
        added = 0
        dims = {int(np.asarray(rec.face.embedding).size) for rec in records}
        if len(dims) > 1 or (dims and len(self) and dims != {self.embedding_dim}):
            raise GalleryError(
                f"{self.path}: embeddings of {sorted(dims)} values cannot join a gallery of "
                f"{self.embedding_dim}-d embeddings made by {self.model_id}"
            )
        with self._conn:
            if dims and not len(self):
                self.embedding_dim = dims.pop()
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('embedding_dim', ?)", (str(self.embedding_dim),)
                )
            for rec in records:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO faces (subject_id, image, sha256, face_no, consent, consent_ref, source,"
                    " meta, box, width_px, added_at, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        rec.subject_id,
                        rec.image,
                        rec.sha256,
                        rec.face_no,
                        rec.consent,
                        rec.consent_ref,
                        rec.source,
                        json.dumps(rec.meta, sort_keys=True),
                        json.dumps(list(rec.face.box)),
                        rec.face.width_px,
                        time.time(),
                        np.asarray(rec.face.embedding, dtype="<f4").tobytes(),
                    ),
                )
                added += cur.rowcount
            if added:
                self._bump_version()
        if write_index and added:
            self._index = None
            _ = self.index
        return added, len(records) - added

    def remove_subject(self, subject_id: str) -> int:
        """Remove every face of ``subject_id`` (e.g. consent withdrawn); returns how many."""
        with self._conn:
            removed = self._conn.execute("DELETE FROM faces WHERE subject_id=?", (subject_id,)).rowcount
            if removed:
                self._bump_version()
        if removed:
            self._index = None
            _ = self.index
        return removed

    def set_threshold(self, value: float, statement: str) -> None:
        """Record the match threshold and the rule that set it (``statement``, in words)."""
        self.settings = dataclasses.replace(self.settings, threshold=float(value))
        self.threshold_rule = statement
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('gallery_settings', ?)", (json.dumps(to_dict(self.settings)),)
            )
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('threshold_rule', ?)", (statement,))

    def choose_threshold(self) -> dict:
        """Set the threshold at ``settings.threshold_fmr`` on impostor pairs of the gallery's own people
        (the photos searched later are not among them); returns what :func:`metrics.threshold_at_fmr` says."""
        from .metrics import threshold_at_fmr  # noqa: PLC0415

        ids, vectors = self.embeddings()
        meta = self.faces()
        labels = np.array([meta[int(i)]["subject_id"] for i in ids])
        try:
            chosen = threshold_at_fmr(
                vectors,
                labels,
                self.settings.threshold_fmr,
                who="people enrolled in this gallery (not the photos searched later)",
            )
        except ValueError as exc:
            raise GalleryError(f"{self.path}: cannot choose a threshold: {exc}") from None
        self.set_threshold(chosen["value"], chosen["statement"])
        return chosen

    def _bump_version(self) -> None:
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def records_from_results(
    rows: Sequence[ManifestRow], results: Sequence[EmbedResult], policy: str, report: BuildReport
) -> list[FaceRecord]:
    """Turn embedding results of manifest rows into gallery records; failures go to ``report``."""
    records = []
    for row, result in zip(rows, results):
        if result.error is not None and result.error != "no face found":
            report.skipped.append((str(row.image), result.error))
            continue
        try:
            faces = result.chosen(policy)
        except (FaceNotFound, SeveralFaces) as exc:
            report.skipped.append((str(row.image), exc.reason))
            continue
        if result.sha256 is None:  # a manifest row is an image file, which always has one
            report.skipped.append((str(row.image), "no content hash: not read from a file"))
            continue
        for no, face in enumerate(faces):
            records.append(
                FaceRecord(
                    subject_id=row.subject_id,
                    image=str(row.image),
                    sha256=result.sha256,
                    face=face,
                    consent=row.consent,
                    consent_ref=row.consent_ref,
                    source=row.source,
                    meta=row.meta,
                    face_no=no,
                )
            )
    return records


def build_gallery(
    manifest: Manifest,
    path: str | os.PathLike,
    *,
    face_settings: FaceSettings = FaceSettings(),
    settings: GallerySettings = GallerySettings(),
    model: FaceModel | None = None,
    cache: EmbeddingCache | None = None,
    workers: int | None = None,
    progress: bool | Progress = False,
    chunk_size: int = 10_000,
    ray_address: str | None = None,
) -> BuildReport:
    """Build (or finish building) the gallery at ``path`` from a consent manifest.

    Creates the gallery if absent, else checks it was made with the same settings and model.
    Embeddings are checkpointed in ``cache``; each chunk of rows is committed in one transaction,
    so a killed build loses no finished embedding and a re-run adds exactly what is missing.
    Returns a :class:`BuildReport`.
    """
    path = Path(path)
    if model is None and face_settings.embedder != "dlib":  # an unusable model file fails here, before any change
        model = load_face_model(face_settings)
    model_id = model.model_id if model is not None else embedder_id(face_settings)
    if (path / DB_NAME).exists():
        gallery = Gallery.open(path)
        if gallery.model_id != model_id:
            try:
                gallery.check_embedder(model_id, face_settings.embedder)
            finally:
                gallery.close()
        if not gallery.face_settings.same_embeddings(face_settings):  # the engine is not compared (docs/engine.md)
            gallery.close()
            raise GalleryError(
                f"{path}: gallery was built with other face settings or another model; use a new directory"
            )
        if gallery.settings.index_type != settings.index_type:
            gallery.close()
            raise GalleryError(
                f"{path}: gallery uses index type {gallery.settings.index_type!r}, not {settings.index_type!r}"
            )
    else:
        gallery = Gallery.create(path, face_settings, settings, model_id)
    report = BuildReport(refused=list(manifest.refused))
    policy = "error" if face_settings.multiple_faces == "error" else "largest"
    rows = list(manifest.rows)
    try:
        # Embeddings land in the cache as they are computed (the checkpoint of a long build);
        # each chunk then enters the gallery in one transaction.
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            results = embed_batch(
                [r.image for r in chunk],
                face_settings,
                model=model,
                cache=cache,
                workers=Workers(workers, ray_address=ray_address),
                progress=progress,
            )
            added, present = gallery.add(records_from_results(chunk, results, policy, report), write_index=False)
            report.added += added
            report.already_present += present
        if settings.resolved_rule(face_settings.embedder) == "fmr" and len(gallery):
            report.threshold = gallery.choose_threshold()
        _ = gallery.index  # write the index of the final version
    finally:
        gallery.close()
    return report
