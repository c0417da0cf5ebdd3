"""The split: which probe subjects have an identified photo in the gallery (open set: a share of
them is left out), the gallery built from the consent manifest beside the results, and the probe
photos embedded. Every later stage starts from :class:`Enrolled`."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embeddings import EmbeddingCache
from ..errors import ConfigError
from ..gallery import Gallery, build_gallery
from ..manifest import Manifest, ManifestRow
from .common import Embedded, Log, embed_rows

__all__ = ["Enrolled", "Split", "enrol", "model_id", "split_subjects", "subject_of"]


@dataclass(frozen=True)
class Split:
    """Subjects in both manifests, those left out of the gallery, and the gallery rows enrolled."""

    root: Path
    gallery_manifest: Manifest
    probe_manifest: Manifest
    common: list[str]
    unseen: frozenset[str]
    gallery_rows: tuple[ManifestRow, ...]


@dataclass(frozen=True)
class Enrolled:
    """The E1 gallery (embeddings and subject codes, as stored in ``gallery_dir``) and the probes.

    ``names`` lists every subject of the gallery and the probe manifest; a subject's code is its
    position there (``code``)."""

    split: Split
    gallery_dir: Path
    gallery_skipped: list[tuple[str, str]]
    gal_vecs: np.ndarray
    gal_codes: np.ndarray
    gal_subjects: list[str]
    names: list[str]
    code: dict[str, int]
    probes: Embedded
    meta_by_subject: dict[str, dict]

    @property
    def in_gallery_subjects(self) -> set[str]:
        return set(self.gal_subjects)


def split_subjects(cfg, root: Path, g_manifest: Manifest, p_manifest: Manifest, rng, log: Log) -> Split:
    """Leave ``cfg.unseen_share`` of the subjects in both manifests out of the gallery (seeded)."""
    common = sorted(set(g_manifest.subjects) & set(p_manifest.subjects))
    if len(common) < 3:
        raise ConfigError("fewer than 3 subjects appear in both manifests; nothing to measure")
    n_unseen = int(round(cfg.unseen_share * len(common)))
    unseen = set(rng.permutation(common)[:n_unseen].tolist())
    gallery_rows = tuple(r for r in g_manifest.rows if r.subject_id not in unseen)
    log(
        f"E1 split: {len(common) - n_unseen} subjects in the gallery, {n_unseen} probe subjects left out (seed {cfg.seed})"
    )
    return Split(root, g_manifest, p_manifest, common, frozenset(unseen), gallery_rows)


def enrol(cfg, split: Split, out: Path, cache: EmbeddingCache | None, progress, log: Log) -> Enrolled:
    """Build the gallery of the split's rows in ``out/gallery`` (replacing an earlier one), read
    its embeddings back, and embed the probe photos."""
    g_manifest, p_manifest = split.gallery_manifest, split.probe_manifest
    gdir = out / "gallery"
    if gdir.exists():
        shutil.rmtree(gdir)
    sub_manifest = dataclasses.replace(g_manifest, rows=split.gallery_rows)
    log("embedding gallery photos")
    build = build_gallery(
        sub_manifest,
        gdir,
        face_settings=cfg.faces,
        settings=cfg.gallery,
        cache=cache,
        workers=cfg.workers or None,
        progress=progress,
        ray_address=cfg.ray_address or None,
    )
    with Gallery.open(gdir) as gallery:
        gal_ids, gal_vecs = gallery.embeddings()
        gal_meta = gallery.faces()
    gal_subjects = [gal_meta[int(i)]["subject_id"] for i in gal_ids]
    names = sorted(set(gal_subjects) | set(p_manifest.subjects))
    code = {s: i for i, s in enumerate(names)}
    gal_codes = np.array([code[s] for s in gal_subjects], np.int64)

    log("embedding probe photos")
    probes = embed_rows(p_manifest.rows, cfg, cache, progress)
    meta_by_subject = {r.subject_id: r.meta for r in (*g_manifest.rows, *p_manifest.rows)}
    return Enrolled(
        split, gdir, list(build.skipped), gal_vecs, gal_codes, gal_subjects, names, code, probes, meta_by_subject
    )


def subject_of(manifest: Manifest, image: str) -> str:
    for r in manifest.rows:
        if str(r.image) == image:
            return r.subject_id
    return "?"


def model_id(gdir: Path) -> str:
    with Gallery.open(gdir) as g:
        return g.model_id
