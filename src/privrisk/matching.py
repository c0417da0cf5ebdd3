"""Matches: ranked candidate subjects for each probe, and a match / no-match decision.

Search returns faces; people care about subjects. :func:`rank_subjects` folds a face-level
result into one row per subject (its closest face), vectorised over all probes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    distance: float
    face_id: int


@dataclass(frozen=True)
class Match:
    """Ranked candidates for one probe; ``is_match`` says whether the best one passes the threshold."""

    probe: str
    candidates: tuple[Candidate, ...]
    threshold: float
    error: str | None = None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def is_match(self) -> bool:
        return self.best is not None and self.best.distance <= self.threshold

    def to_dict(self) -> dict:
        return {
            "probe": self.probe,
            "error": self.error,
            "decision": "match" if self.is_match else "no match",
            "threshold": self.threshold,
            "candidates": [
                {
                    "rank": r + 1,
                    "subject_id": c.subject_id,
                    "distance": round(float(c.distance), 6),
                    "face_id": int(c.face_id),
                }
                for r, c in enumerate(self.candidates)
            ],
        }


def rank_subjects(
    distances: np.ndarray, ids: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse face-level neighbours to subject-level ranks.

    ``distances``/``ids`` are (n, m) search results, nearest first; ``labels`` maps a face id to an
    integer subject label (``labels[id]``; negative ids are padding). Returns (subject labels (n, k),
    distances (n, k), face ids (n, k)), each subject at most once per row, padded with -1 / inf.
    """
    n, m = ids.shape
    valid = ids >= 0
    subj = np.where(valid, labels[np.where(valid, ids, 0)], -1)
    # A face is kept when no nearer face in the same row has the same subject.
    same = (subj[:, :, None] == subj[:, None, :]) & np.tri(m, m, -1, dtype=bool)[None]
    first = valid & ~same.any(axis=2)
    order = np.argsort(~first, axis=1, kind="stable")[:, :k]
    keep = np.take_along_axis(first, order, axis=1)
    out_s = np.where(keep, np.take_along_axis(subj, order, axis=1), -1)
    out_d = np.where(keep, np.take_along_axis(distances, order, axis=1), np.inf).astype(np.float32)
    out_i = np.where(keep, np.take_along_axis(ids, order, axis=1), -1)
    if out_s.shape[1] < k:
        pad = k - out_s.shape[1]
        out_s = np.pad(out_s, ((0, 0), (0, pad)), constant_values=-1)
        out_d = np.pad(out_d, ((0, 0), (0, pad)), constant_values=np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
    return out_s, out_d, out_i


def matches_from_search(
    probes: list[str], distances: np.ndarray, ids: np.ndarray, subject_of: dict[int, str], k: int, threshold: float
) -> list[Match]:
    """Build :class:`Match` objects for named probes from a face-level search result."""
    names = sorted(set(subject_of.values()))
    code = {s: i for i, s in enumerate(names)}
    size = int(max(subject_of, default=-1)) + 1
    labels = np.full(max(size, 1), -1, dtype=np.int64)
    for face_id, subject in subject_of.items():
        labels[face_id] = code[subject]
    s, d, f = rank_subjects(distances, ids, labels, k)
    out = []
    for row, probe in enumerate(probes):
        cands = tuple(Candidate(names[s[row, j]], float(d[row, j]), int(f[row, j])) for j in range(k) if s[row, j] >= 0)
        out.append(Match(probe=probe, candidates=cands, threshold=threshold))
    return out


def match_embeddings(gallery, vectors, probes: list[str], *, k: int = 5, threshold: float | None = None) -> list[Match]:
    """Rank the gallery's subjects for each row of ``vectors`` (one per probe name)."""
    threshold = gallery.settings.threshold if threshold is None else threshold
    # Ask FAISS for more faces than k so that subjects with several photos still fill k ranks.
    distances, ids = gallery.search(vectors, min(max(k * 4, k), max(len(gallery), 1)))
    subject_of = {i: rec["subject_id"] for i, rec in gallery.faces(ids.ravel()).items()}
    return matches_from_search(probes, distances, ids, subject_of, k, threshold)


def match_images(
    gallery,
    sources,
    *,
    model=None,
    cache=None,
    workers: int | None = None,
    k: int = 5,
    threshold: float | None = None,
    progress=False,
    ray_address: str | None = None,
    face_settings=None,
    engine: str | None = None,
) -> list[Match]:
    """Embed each image with the gallery's face settings (or ``face_settings``, which must use the
    gallery's embedder: another raises :class:`GalleryError` naming both) and rank the gallery's
    subjects for its largest face. An image that cannot be used gets a Match with ``error`` set and
    no candidates. ``engine`` ('dlib' or 'fast') computes the descriptors with another engine than
    the gallery's (both compute the same descriptor)."""
    from .embeddings import Workers, embed_batch
    from .models import embedder_id

    sources = [str(s) for s in sources]
    threshold = gallery.settings.threshold if threshold is None else threshold
    settings = gallery.face_settings if face_settings is None else face_settings
    if engine is not None:
        settings = dataclasses.replace(settings, engine=engine)
    # a search with another embedder than the gallery's is refused before any photo is read
    gallery.check_embedder(model.model_id if model is not None else embedder_id(settings), settings.embedder)
    results = embed_batch(
        sources,
        settings,
        model=model,
        cache=cache,
        workers=Workers(workers, ray_address=ray_address),
        progress=progress,
    )
    good = [(i, r.faces[0].embedding) for i, r in enumerate(results) if r.ok]
    found = (
        match_embeddings(
            gallery,
            np.array([v for _, v in good], np.float32).reshape(len(good), -1),
            [results[i].name for i, _ in good],
            k=k,
            threshold=threshold,
        )
        if good
        else []
    )
    out: list[Match] = [Match(probe=r.name, candidates=(), threshold=threshold, error=r.error) for r in results]
    for (i, _), match in zip(good, found):
        out[i] = match
    return out
