"""What several stages share: manifest rows embedded, subject-level ranking against an in-memory
gallery, identification metrics with their intervals, one per-probe table row, and a cache of
deterministic stage results keyed by their inputs and the code that computes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import index as faiss_index
from .. import metrics
from ..config import ExperimentConfig
from ..embeddings import EmbeddingCache, Workers, artifact_key, embed_batch
from ..fileio import json_default
from ..manifest import ManifestRow
from ..models import EMBEDDING_DIM

__all__ = [
    "Embedded",
    "Log",
    "embed_rows",
    "exact_ci",
    "identification",
    "memo",
    "pct",
    "ProbeSearch",
    "Searches",
    "probe_row",
    "rank_against",
    "source_version",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Embedded:
    """Manifest rows whose photo had a face: subject, embedding (n, d), image name and face box
    per row, and the rows skipped with the reason."""

    subjects: list[str]
    vectors: np.ndarray
    names: list[str]
    boxes: list
    skipped: list[tuple[str, str]]


def embed_rows(
    rows: Sequence[ManifestRow], cfg: ExperimentConfig, cache: EmbeddingCache | None, progress: bool
) -> Embedded:
    results = embed_batch(
        [r.image for r in rows],
        cfg.faces,
        cache=cache,
        workers=Workers(cfg.workers or None, ray_address=cfg.ray_address or None),
        progress=progress,
    )
    subjects, vectors, names, boxes, skipped = [], [], [], [], []
    for row, res in zip(rows, results):
        if not res.ok:
            skipped.append((str(row.image), str(res.error)))
            continue
        face = res.faces[0]
        subjects.append(row.subject_id)
        vectors.append(face.embedding)
        names.append(str(row.image))
        boxes.append(face.box)
    dim = len(vectors[0]) if vectors else EMBEDDING_DIM
    return Embedded(subjects, np.asarray(vectors, np.float32).reshape(len(vectors), dim), names, boxes, skipped)


def rank_against(
    gallery_vectors: np.ndarray, gallery_labels: Sequence | np.ndarray, probe_vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subject-level ranking of probes against an in-memory gallery through FAISS (exact)."""
    from ..matching import rank_subjects

    index = faiss_index.build_index(gallery_vectors)
    d, i = faiss_index.search(index, probe_vectors, min(len(gallery_vectors), max(k * 4, k)))
    return rank_subjects(d, i, np.asarray(gallery_labels), k)


def identification(
    truth_codes: np.ndarray,
    in_gallery: np.ndarray,
    cand: np.ndarray,
    dist: np.ndarray,
    cfg: ExperimentConfig,
    seed: int,
) -> dict:
    """E1/E2 metrics from subject-level candidates (codes) and distances; misses have -1 / inf.

    Every rate carries its count and an exact (Clopper-Pearson) 95% interval; TPIR at each FPIR
    also gets a subject-level bootstrap interval (threshold re-chosen per resample)."""
    ranks = metrics.true_rank(cand, truth_codes)
    mated = in_gallery
    mated_rank, mated_dist = ranks[mated], np.where(ranks[mated] == 1, dist[mated, 0], np.inf)
    nonmated_best = dist[~mated, 0]
    n_m, n_nm = int(mated.sum()), int((~mated).sum())
    t = cfg.gallery.threshold
    k_tpir = int(((mated_rank == 1) & (mated_dist <= t)).sum())
    k_fpir = int((nonmated_best <= t).sum())
    out = {
        "n_probes": int(len(truth_codes)),
        "n_mated": n_m,
        "n_nonmated": n_nm,
        "rank1": metrics.rank_k(mated_rank, 1),
        "rank5": metrics.rank_k(mated_rank, 5),
        "rank10": metrics.rank_k(mated_rank, 10),
        "rank1_ci95": list(metrics.clopper_pearson(int((mated_rank <= 1).sum()), n_m)),
        "rank5_ci95": list(metrics.clopper_pearson(int((mated_rank <= 5).sum()), n_m)),
        "rank10_ci95": list(metrics.clopper_pearson(int((mated_rank <= 10).sum()), n_m)),
        "rank_ci_method": f"Clopper-Pearson (exact) over the {n_m} mated probes",
        "cmc": metrics.cmc(mated_rank, max_rank=min(20, cfg.top_k)).tolist(),
        "tpir_at_fpir": {f"{f:g}": metrics.tpir_at_fpir(mated_rank, mated_dist, nonmated_best, f) for f in cfg.fpir},
        "tpir_at_threshold": k_tpir / n_m if n_m else float("nan"),
        "tpir_at_threshold_ci95": list(metrics.clopper_pearson(k_tpir, n_m)),
        "fpir_at_threshold": k_fpir / n_nm if n_nm else None,
        "fpir_at_threshold_ci95": list(metrics.clopper_pearson(k_fpir, n_nm)) if n_nm else None,
        "fpir_at_threshold_k": k_fpir,
        "fpir_at_threshold_n": n_nm,
        "threshold": t,
        "det": metrics.det_curve(mated_rank, mated_dist, nonmated_best),
    }
    boot = metrics.bootstrap_tpir(
        metrics.OpenSetProbes(mated_rank, mated_dist, truth_codes[mated], nonmated_best, truth_codes[~mated]),
        cfg.fpir,
        n_boot=cfg.bootstrap,
        seed=seed,
    )
    for f in cfg.fpir:
        entry = out["tpir_at_fpir"][f"{f:g}"]
        entry["tpir_ci95_subject_bootstrap"] = boot[f"{f:g}"]
        entry["ci_note"] = (
            f"{n_nm} non-mated probes: the lowest FPIR this sample can resolve is about {3 / max(n_nm, 1):.3f} "
            f"(3 / n); {'enough' if entry['resolvable'] else 'not enough'} for FPIR {f:g}"
        )
    return out


class ProbeSearch(NamedTuple):
    """One probe's search: its true subject code, whether that subject is in the gallery, and the
    ranked candidate codes (-1: none) with their distances."""

    truth: int
    mated: bool
    cand: Sequence[int]
    dist: Sequence[float]


@dataclass(frozen=True)
class Searches:
    """Several probes' searches (each row a :class:`ProbeSearch`): ``truth`` and ``mated`` (n,),
    ``cand`` and ``dist`` (n, k)."""

    truth: np.ndarray
    mated: np.ndarray
    cand: np.ndarray
    dist: np.ndarray


def probe_row(experiment: str, probe: str, names: Sequence[str], search: ProbeSearch, threshold: float) -> dict:
    """A row of the per-probe table: the probe's truth, its rank, the decision at the gallery
    threshold (a match at distance <= ``threshold``) and the candidates."""
    truth, mated, cand, dist = search
    top = [(names[c], float(d)) for c, d in zip(cand, dist) if c >= 0]
    best_ok = bool(top) and top[0][1] <= threshold
    return {
        "experiment": experiment,
        "probe": probe,
        "truth": names[truth],
        "in_gallery": bool(mated),
        "rank": next((r + 1 for r, (s, _) in enumerate(top) if s == names[truth]), ""),
        "decision": "match" if best_ok else "no match",
        "decision_correct": (best_ok and top[0][0] == names[truth]) if mated else not best_ok,
        "candidates": ";".join(f"{s}:{d:.4f}" for s, d in top),
    }


def pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1%}"


def exact_ci(k: int, n: int) -> list | None:
    """Clopper-Pearson 95% interval of k successes in n trials (None when n = 0)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


# the code a cached stage result depends on: this package, the chaining module, the settings and the modules the
# cached stages (scaling, demographic differentials) compute with (a folder: its modules)
_SOURCES = ("experiment.py", "config.py", "tailmodel", "distractors.py", "index.py", "metrics.py", "fairness")


def source_version() -> str:
    """A hash of the code the cached stages run: a change to any of it makes a new cache key."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    sources = [package / s for s in _SOURCES]
    files = [f for s in sources for f in (sorted(s.glob("*.py")) if s.is_dir() else [s])]
    for path in [*sorted(Path(__file__).resolve().parent.glob("*.py")), *files]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def memo(cache: EmbeddingCache | None, log: Log, kind: str, inputs: Sequence, compute: Callable[[], dict]) -> dict:
    """``compute()``, or its result from an earlier run whose inputs (and the code that computes
    it: :func:`source_version`) were the same. The result must be deterministic given the inputs,
    and JSON-able; any timing inside it was measured in the run that computed it, which
    ``from_cache`` says."""
    if cache is None:
        return compute()
    key = artifact_key(kind, source_version(), *inputs)
    hit = cache.get_arrays(key)
    if hit is not None:
        log(f"{kind}: same inputs and code as an earlier run: its results are read from the cache")
        out = json.loads(str(hit["json"]))
        out["from_cache"] = "computed in an earlier run with the same inputs and code; its timings are that run's"
        return out
    out = compute()
    cache.put_arrays(key, {"json": np.array(json.dumps(out, default=json_default))})
    return out
