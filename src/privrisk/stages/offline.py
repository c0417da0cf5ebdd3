"""E2 offline to online: each probe photo degraded into street / webcam captures (several shots,
made in the embedding workers and cached by recipe), each capture searched against the E1 gallery,
and a person's shots fused by taking each candidate's best distance."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..captures import CaptureSource, make_captures
from ..config import ExperimentConfig, replace, to_dict
from ..degrade import Degradation, applicable
from ..embeddings import EmbeddingCache, artifact_key, embed_batch, file_sha256
from ..images import load_image
from ..models import Box, as_box, embedder_id
from .common import Log, ProbeSearch, Searches, exact_ci, identification, pct, probe_row, rank_against
from .split import Enrolled

__all__ = ["FusedLevel", "OfflineResult", "ShotBest", "fused_arrays", "fusion_cost", "offline_to_online"]


@dataclass(frozen=True)
class FusedLevel:
    """One capture level's searches, what the scaling study and the differentials read: every
    detected shot's embedding and owner (row of the level's persons), the fused subject-level
    candidates and distances per person, each person's truth code and whether they are mated, and
    which probe (position among the embedded probes) each row is: a level that does not apply to
    some probes has fewer rows than there are probes."""

    shot_vecs: np.ndarray
    shot_owner: np.ndarray
    fused_c: np.ndarray
    fused_d: np.ndarray
    truth: np.ndarray
    mated: np.ndarray
    probe_index: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.shot_vecs, self.shot_owner, self.fused_c, self.fused_d, self.truth, self.mated, self.probe_index)

    def shot_probe(self) -> np.ndarray:
        """The probe each detected shot was made from (position among the embedded probes)."""
        return self.probe_index[self.shot_owner]


def fused_arrays(fused: dict[str, FusedLevel]) -> list:
    """E2's fused captures as plain arrays in a fixed order: part of a cache key."""
    return [[n, *[np.asarray(a) for a in fused[n].arrays()]] for n in sorted(fused)]


@dataclass(frozen=True)
class OfflineResult:
    """Metrics per level (``experiments.offline_to_online.levels``), the fused searches of every
    level with a mated person (by level name), and the per-probe table rows."""

    levels: dict[str, dict]
    fused: dict[str, FusedLevel]
    per_probe: list[dict]


@dataclass(frozen=True)
class _Captures:
    """A level's captures to embed: recipes, the row (person) and shot position of each, the
    probe index of each row, and the probes the level does not apply to."""

    items: list
    owners: list[int]
    shot_of: list[int]
    rows_used: list[int]
    not_applicable: list[int]


@dataclass(frozen=True)
class _Run:
    """What every level of one run shares: the config, the enrolled gallery and probes, each probe
    photo's source (:func:`probe_sources`), the cache, and where progress and log lines go."""

    cfg: ExperimentConfig
    enrolled: Enrolled
    sources: dict[str, tuple[str, Box]]
    cache: EmbeddingCache | None
    progress: bool
    log: Log


def offline_to_online(
    cfg: ExperimentConfig, enrolled: Enrolled, cache: EmbeddingCache | None, progress: bool, log: Log
) -> OfflineResult:
    levels, fused, per_probe = {}, {}, []
    sources = probe_sources(cfg, enrolled, cache)
    run = _Run(cfg, enrolled, sources, cache, progress, log)
    model_id = embedder_id(cfg.faces)
    for li, level in enumerate(cfg.offline.levels):
        caps = _captures(cfg, enrolled, sources, level, li, model_id)
        log(
            f"E2 level '{level.name}': embedding {len(caps.items)} degraded captures"
            + (
                f" ({len(caps.not_applicable)} photos not applicable: face narrower than {level.face_width_px} px)"
                if caps.not_applicable
                else ""
            )
        )
        res = embed_batch(caps.items, cfg.faces, cache=cache, workers=cfg.workers or None, progress=progress)
        m, fl = _level(cfg, enrolled, level, li, caps, res)
        m["per_detector"] = per_detector(run, level, li, caps, res)
        levels[level.name] = m
        if fl.mated.any():  # a level no gallery subject's photo can make has no scaling curve
            fused[level.name] = fl
        per_probe += _level_rows(cfg, enrolled, level, caps, fl)
        fu = m["fusion"]
        log(
            f"E2 '{level.name}': rank-1 {pct(m['rank1'])} over {m['n_mated']} mated probes "
            f"({len(caps.not_applicable)} not applicable); {m['detection_rate']:.0%} of captures had a detectable face; "
            f"fusing {cfg.offline.shots} shots: rank-1 {pct(fu['rank1_single'])} -> {pct(fu['rank1_fused'])}, "
            f"FPIR at {cfg.gallery.threshold:g} {pct(fu['fpir_single'])} -> {pct(fu['fpir_fused'])}"
        )
    return OfflineResult(levels, fused, per_probe)


def probe_sources(
    cfg: ExperimentConfig, enrolled: Enrolled, cache: EmbeddingCache | None = None
) -> dict[str, tuple[str, Box]]:
    """Each probe photo once: its content hash (what cached captures are keyed by) and its face box
    in the loaded photo's pixels; the captures themselves are made in the embedding workers. The
    loaded photos' scales are cached by the photos' content, the size limit and the loader's code,
    so a second run decodes no photo here."""
    names = enrolled.probes.names
    box_of = dict(zip(names, enrolled.probes.boxes))
    shas = [file_sha256(name) for name in names]
    key = artifact_key("probe-scales", _loader_version(), shas, cfg.faces.max_side)
    hit = cache.get_arrays(key) if cache is not None else None
    if hit is not None and len(hit["scale"]) == len(names):
        scales = [float(v) for v in hit["scale"]]
    else:
        scales = [load_image(name, max_side=cfg.faces.max_side).scale for name in names]
        if cache is not None:
            cache.put_arrays(key, {"scale": np.array(scales, np.float64)})
    return {name: (sha, as_box(v * sc for v in box_of[name])) for name, sha, sc in zip(names, shas, scales)}


@lru_cache(maxsize=1)
def _loader_version() -> str:
    """A hash of the code that decides a loaded photo's scale (part of the cached scales' key)."""
    return hashlib.sha256((Path(__file__).resolve().parents[1] / "images.py").read_bytes()).hexdigest()


def _captures(
    cfg: ExperimentConfig, enrolled: Enrolled, sources, level: Degradation, li: int, model_id: str
) -> _Captures:
    caps = _Captures([], [], [], [], [])
    for pi, name in enumerate(enrolled.probes.names):
        sha, box = sources[name]
        if not applicable(box, level):  # the face is already smaller: the level would enlarge it
            caps.not_applicable.append(pi)
            continue
        row = len(caps.rows_used)
        caps.rows_used.append(pi)
        shots = make_captures(
            CaptureSource(name, sha, box, cfg.faces.max_side),
            level,
            (cfg.seed, li, pi),
            cfg.offline.shots,
            cfg.faces,
            model_id,
        )
        caps.items.extend(shots)
        caps.owners.extend([row] * len(shots))
        caps.shot_of.extend(range(len(shots)))
    return caps


def detector_subset(cfg: ExperimentConfig, enrolled: Enrolled) -> list[int] | None:
    """The probes (positions among the embedded probes) the other detectors run on: a seeded subset
    of ``offline.detector_people`` mated people, or None for everyone."""
    n = cfg.offline.detector_people
    mated = [pi for pi, s in enumerate(enrolled.probes.subjects) if s in enrolled.in_gallery_subjects]
    if n == 0 or n >= len(mated):
        return None
    rng = np.random.default_rng([cfg.seed, 21])
    return sorted(int(i) for i in rng.choice(mated, n, replace=False))


def per_detector(run: _Run, level: Degradation, li: int, caps: _Captures, res) -> dict:
    """One level seen by each detector of ``offline.detectors``, side by side on the same captures:
    the share of captures with a face found and rank-1 of the fused shots over the mated people,
    each with its count and exact (Clopper-Pearson) 95% interval. The other detectors run on
    :func:`detector_subset` (everyone, or a seeded subset the demo uses to bound their cost); the
    configured detector is also reported on that subset, so the columns compare like with like."""
    cfg, enrolled = run.cfg, run.enrolled
    subset = detector_subset(cfg, enrolled)
    rows = [r for r, pi in enumerate(caps.rows_used) if subset is None or pi in set(subset)]
    shots = cfg.offline.shots
    n_mated_all = sum(s in enrolled.in_gallery_subjects for s in enrolled.probes.subjects)
    out: dict[str, Any] = {
        "people": (
            f"all {len(rows)} people the level applies to"
            if subset is None
            else f"a seeded subset of {len(subset)} of the {n_mated_all} mated people (seed [{cfg.seed}, 21]); "
            "intervals are wider than over everyone"
        ),
        "n_people": len(rows),
        "detectors": {},
    }
    for det in cfg.offline.detectors:
        faces = replace(cfg.faces, detector=det)
        if det == cfg.faces.detector:
            got = [res[r * shots + s] for r in rows for s in range(shots)]
            seconds = None
        else:
            model_id = embedder_id(faces)  # once: it reads every package's metadata
            items = [c for r in rows for c in _recapture(run, level, li, caps.rows_used[r], faces, model_id)]
            run.log(f"E2 '{level.name}': {det} detector on {len(items)} captures of {len(rows)} people")
            t0 = time.perf_counter()
            got = embed_batch(items, faces, cache=run.cache, workers=cfg.workers or None, progress=run.progress)
            seconds = time.perf_counter() - t0
        out["detectors"][det] = _detector_view(cfg, enrolled, caps, rows, got, faces) | {
            "seconds": seconds,
            "seconds_note": "wall time of this detector's run in this experiment (small when cached); outside the "
            "demo's budget"
            if seconds is not None
            else "the configured detector: timed with the level",
        }
    return out


def _recapture(run: _Run, level: Degradation, li: int, pi: int, faces, model_id: str) -> list:
    """Probe ``pi``'s captures at ``level`` (the same images as the level's), cached under ``faces``
    and its embedder's ``model_id`` (:func:`privrisk.models.embedder_id`)."""
    cfg = run.cfg
    name = run.enrolled.probes.names[pi]
    sha, box = run.sources[name]
    seed = (cfg.seed, li, pi)
    return make_captures(
        CaptureSource(name, sha, box, cfg.faces.max_side), level, seed, cfg.offline.shots, faces, model_id
    )


def _detector_view(cfg: ExperimentConfig, enrolled: Enrolled, caps: _Captures, rows: list[int], got, faces) -> dict:
    """Detection and fused rank-1 of ``rows`` (the level's persons) from their shots' results ``got``."""
    shots = cfg.offline.shots
    ok = [j for j, r in enumerate(got) if r.ok]
    dim = enrolled.gal_vecs.shape[1]
    vecs = np.array([got[j].faces[0].embedding for j in ok], np.float32).reshape(len(ok), dim)
    owner = np.array([j // shots for j in ok], np.int64)
    _c, _d, fused_c, fused_d = _fuse(cfg, enrolled, vecs, owner, len(rows))
    probes = enrolled.probes
    truth = np.array([enrolled.code[probes.subjects[caps.rows_used[r]]] for r in rows], np.int64)
    mated = np.array([probes.subjects[caps.rows_used[r]] in enrolled.in_gallery_subjects for r in rows], bool)
    hit = (fused_c[:, 0] == truth) & mated if len(rows) else np.zeros(0, bool)
    within = hit & (fused_d[:, 0] <= cfg.gallery.threshold) if len(rows) else np.zeros(0, bool)
    k_det, n_det, k1, n_m = len(ok), len(got), int(hit.sum()), int(mated.sum())
    return {
        "upsample_rule": upsample_rule(faces),
        "detection_rate": k_det / n_det if n_det else None,
        "detection_k": k_det,
        "detection_n": n_det,
        "detection_ci95": exact_ci(k_det, n_det),
        "rank1": k1 / n_m if n_m else None,
        "rank1_k": k1,
        "rank1_n": n_m,
        "rank1_ci95": exact_ci(k1, n_m),
        "tpir_at_threshold": int(within.sum()) / n_m if n_m else None,
        "tpir_at_threshold_ci95": exact_ci(int(within.sum()), n_m),
    }


def upsample_rule(faces) -> str:
    """A detector's upsampling rule, in words."""
    if faces.detector == "cnn":
        return (
            f"cnn: upsample {faces.upsample}; when no face is found, again upsampled as many times (at most 2) as "
            f"keep the image within {faces.cnn_max_side} px"
        )
    passes = faces.upsample_passes
    return f"hog: upsample {passes[0]}" + (
        f"; when no face is found, again at upsample {passes[1]}" if len(passes) > 1 else ""
    )


def _level(
    cfg: ExperimentConfig, enrolled: Enrolled, level: Degradation, li: int, caps: _Captures, res
) -> tuple[dict, FusedLevel]:
    """A level's metrics (identification of the fused shots, detection, what fusing gains) and
    its fused searches."""
    probes, code = enrolled.probes, enrolled.code
    in_gallery_subjects = enrolled.in_gallery_subjects
    rows_used = caps.rows_used
    ok = [j for j, r in enumerate(res) if r.ok]
    shot_vecs = np.array([res[j].faces[0].embedding for j in ok], np.float32).reshape(
        len(ok), enrolled.gal_vecs.shape[1]
    )
    shot_owner = np.array([caps.owners[j] for j in ok], np.int64)
    shot_index = np.array([caps.shot_of[j] for j in ok], np.int64)
    top_c, top_d, fused_c, fused_d = _fuse(cfg, enrolled, shot_vecs, shot_owner, len(rows_used))
    lv_truth = np.array([code[probes.subjects[pi]] for pi in rows_used], np.int64)
    lv_mated = np.array([probes.subjects[pi] in in_gallery_subjects for pi in rows_used], bool)
    m = identification(lv_truth, lv_mated, fused_c, fused_d, cfg, cfg.seed + li + 1)
    detected = np.zeros(len(rows_used), bool)
    detected[np.unique(shot_owner)] = True
    m.update(
        level=to_dict(level),
        n_gallery=len(enrolled.gal_vecs),
        shots=cfg.offline.shots,
        detection_rate=float(len(ok) / max(len(caps.items), 1)),
        persons_with_a_detected_shot=float(detected.mean()) if len(rows_used) else None,
        n_applicable=len(rows_used),
        n_not_applicable=len(caps.not_applicable),
        not_applicable=[probes.names[pi] for pi in caps.not_applicable],
        fusion=fusion_cost(
            ShotBest(top_c, top_d, shot_owner, shot_index),
            cfg.offline.shots,
            Searches(lv_truth, lv_mated, fused_c, fused_d),
            cfg.gallery.threshold,
        ),
    )
    probe_index = np.array(rows_used, np.int64)
    return m, FusedLevel(shot_vecs, shot_owner, fused_c, fused_d, lv_truth, lv_mated, probe_index)


def _fuse(cfg: ExperimentConfig, enrolled: Enrolled, shot_vecs, shot_owner, n_persons: int):
    """Each shot's best candidate and distance, and per person each gallery subject's best distance
    over their shots: the fused top ``cfg.top_k`` candidates (-1 where none) and distances."""
    full = np.full((n_persons, len(enrolled.names)), np.inf, np.float32)
    top_c, top_d = np.full(len(shot_vecs), -1, np.int64), np.full(len(shot_vecs), np.inf, np.float32)
    if len(shot_vecs):
        k_all = len(set(enrolled.gal_subjects))
        c_s, d_s, _ = rank_against(enrolled.gal_vecs, enrolled.gal_codes, shot_vecs, k_all)
        top_c, top_d = c_s[:, 0].astype(np.int64), d_s[:, 0]
        for row in range(len(shot_vecs)):
            valid = c_s[row] >= 0
            np.minimum.at(full[shot_owner[row]], c_s[row][valid], d_s[row][valid])
    order = np.argsort(full, axis=1, kind="stable")[:, : cfg.top_k]
    fused_d = np.take_along_axis(full, order, axis=1)
    fused_c = np.where(np.isfinite(fused_d), order, -1)
    return top_c, top_d, fused_c, fused_d


def _level_rows(
    cfg: ExperimentConfig, enrolled: Enrolled, level: Degradation, caps: _Captures, fl: FusedLevel
) -> list[dict]:
    """The per-probe table's rows of one level; probes it does not apply to say so."""
    probes, names, code = enrolled.probes, enrolled.names, enrolled.code
    in_gallery_subjects = enrolled.in_gallery_subjects
    experiment = f"offline_to_online/{level.name}"
    row_of = {pi: row for row, pi in enumerate(caps.rows_used)}
    rows = []
    for pi, p in enumerate(probes.names):
        if pi in row_of:
            i = row_of[pi]
            search = ProbeSearch(fl.truth[i], fl.mated[i], fl.fused_c[i], fl.fused_d[i])
            rows.append(probe_row(experiment, p, names, search, cfg.gallery.threshold))
        else:
            none = ProbeSearch(code[probes.subjects[pi]], probes.subjects[pi] in in_gallery_subjects, [], [])
            na = probe_row(experiment, p, names, none, cfg.gallery.threshold)
            rows.append(na | {"decision": "not applicable", "decision_correct": ""})
    return rows


@dataclass(frozen=True)
class ShotBest:
    """Each detected shot's best candidate code and its distance, the person (row) it belongs to and its
    position among that person's shots."""

    cand: np.ndarray
    dist: np.ndarray
    owner: np.ndarray
    index: np.ndarray


def fusion_cost(best: ShotBest, shots: int, fused: Searches, threshold: float) -> dict:
    """What fusing a person's shots (best distance per candidate) gains and costs, against one shot.

    Single shot = each person's first capture alone (a failed detection is a miss and no alarm);
    the per-shot lists repeat it for every capture position. Rank-1 is over mated persons; FPIR at
    the threshold is the share of non-mated persons whose best candidate is within ``threshold``
    (a false identification); TPIR is rank 1 and within the threshold. Counts and exact
    (Clopper-Pearson) 95% intervals come with every rate.
    """
    n_persons, fused_c, fused_d = len(fused.truth), fused.cand, fused.dist
    single_c = np.full((shots, n_persons), -1, np.int64)
    single_d = np.full((shots, n_persons), np.inf)
    single_c[best.index, best.owner] = best.cand
    single_d[best.index, best.owner] = best.dist
    truth, mated = np.asarray(fused.truth), np.asarray(fused.mated, bool)
    n_m, n_n = int(mated.sum()), int((~mated).sum())

    def rates(c, d):  # c, d: (n_persons,) best candidate and its distance
        hit = (c == truth) & mated
        within = d <= threshold
        return int(hit.sum()), int((hit & within).sum()), int((within & ~mated).sum())

    single = [rates(single_c[s], single_d[s]) for s in range(shots)]
    fused_r = rates(
        fused_c[:, 0] if len(fused_c) else np.zeros(0, np.int64), fused_d[:, 0] if len(fused_d) else np.zeros(0)
    )
    share = lambda k, n: k / n if n else None  # noqa: E731
    out: dict[str, Any] = {"threshold": float(threshold), "shots": int(shots), "n_mated": n_m, "n_nonmated": n_n}
    for key, j, n in (("rank1", 0, n_m), ("tpir", 1, n_m), ("fpir", 2, n_n)):
        out[f"{key}_single"], out[f"{key}_fused"] = share(single[0][j], n), share(fused_r[j], n)
        out[f"n_{key}_single"], out[f"n_{key}_fused"] = single[0][j], fused_r[j]
        out[f"{key}_single_ci95"], out[f"{key}_fused_ci95"] = exact_ci(single[0][j], n), exact_ci(fused_r[j], n)
        out[f"{key}_single_per_shot"] = [share(r[j], n) for r in single]
    out["note"] = (
        "single = each person's first capture alone; fused = best distance per candidate over all "
        f"{shots} captures; FPIR = non-mated persons whose best candidate is within the threshold"
    )
    return out
