"""Seconds per identification, uncached, in this process: E1 (a clean photo) and E2's headline
level (its captures made, detected, embedded and fused), each split into its steps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import index as faiss_index
from ..captures import CaptureSource, make_captures
from ..config import ExperimentConfig
from ..degrade import Degradation
from ..embeddings import embed_loaded
from ..images import load_image
from ..models import as_box, load_face_model
from .common import Embedded, Log
from .split import Enrolled

__all__ = ["Timing", "time_identifications", "timing"]


@dataclass(frozen=True)
class Timing:
    """The split of one identification's seconds for E1 and for E2's headline level."""

    online: dict
    offline: dict

    def online_fields(self) -> dict:
        return {"seconds_per_probe": self.online["total"], "seconds_split": self.online}

    def offline_fields(self) -> dict:
        return {"seconds_per_probe": self.offline["total"], "seconds_split": self.offline}


def timing(cfg: ExperimentConfig, enrolled: Enrolled, log: Log) -> Timing:
    log("timing identifications (uncached)")
    probes, gal_vecs = enrolled.probes, enrolled.gal_vecs
    box_of = dict(zip(probes.names, probes.boxes))
    head_level = next(lv for lv in cfg.offline.levels if lv.name == cfg.offline.headline)
    offline = time_identifications(cfg, probes, box_of, gal_vecs, head_level, cfg.offline.shots)
    online = time_identifications(cfg, probes, box_of, gal_vecs, None, 1)
    return Timing(online, offline)


def time_identifications(
    cfg: ExperimentConfig,
    probes: Embedded,
    box_of: dict[str, Sequence[float]],
    gal_vecs: np.ndarray,
    level: Degradation | None,
    shots: int,
) -> dict:
    """Seconds per identification, uncached, in this process: making the captures (when ``level``
    is given; clean photos otherwise), detecting and embedding their faces, then one search."""

    model = load_face_model(cfg.faces)
    n = min(cfg.offline.timing_probes, len(probes.names))
    make = det = emb = srch = 0.0
    index = faiss_index.build_index(gal_vecs)
    for pi in range(n):
        name = probes.names[pi]
        t0 = time.perf_counter()
        image = load_image(name, max_side=cfg.faces.max_side)
        shot_images = [image]
        if level is not None:
            box = as_box(v * image.scale for v in box_of[name])
            source = CaptureSource(name, image.sha256, box, cfg.faces.max_side)
            recipes = make_captures(source, level, (cfg.seed, 99, pi), shots, cfg.faces, model.model_id)
            shot_images = [load_image(c.render(model), name=c.name) for c in recipes]
        make += time.perf_counter() - t0
        vecs = []
        for shot_img in shot_images:
            faces, sec = embed_loaded(model, shot_img, cfg.faces)
            det += sec["detect"]
            emb += sec["embed"]
            vecs += [f.embedding for f in faces[:1]]
        t0 = time.perf_counter()
        if vecs:
            faiss_index.search(index, np.array(vecs), cfg.top_k)
        srch += time.perf_counter() - t0
    return {
        "load_and_capture": make / n,
        "detect": det / n,
        "embed": emb / n,
        "search": srch / n,
        "total": (det + emb + srch) / n,
        "total_with_load_and_capture": (make + det + emb + srch) / n,
        "n_timed": n,
        "captures_per_identification": shots,
        "note": "one process, uncached, against the experiment's gallery; load_and_capture is reading the "
        "photo and, for E2, making its degraded captures (a stranger's camera does this part)",
    }
