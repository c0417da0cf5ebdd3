"""Acquisti-style re-identification experiments: the pipeline that chains the stages.

:func:`run_experiment` takes an :class:`ExperimentConfig` (TOML file or defaults) and an output
folder, and runs

- E1 online to online: pseudonymous photos (probes) against identified profile photos (gallery),
  open set: a share of probe subjects is not in the gallery;
- E2 offline to online: probes degraded into street / webcam captures, several shots fused;
- E3 accretion: what a stranger learns from each re-identified person's synthetic profile;
- scaling: identification against galleries padded with model distractors, measured to 10^6
  and extrapolated to 10^9.

It writes ``results.json``, ``probes.csv``, plots and ``report.html`` (via :mod:`privrisk.report`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import index as faiss_index
from . import metrics
from .config import FaceSettings, GallerySettings, load_toml, setting, to_dict
from .degrade import Degradation, degrade, encode_png
from . import tailmodel
from .distractors import DistractorModel, predicted_rank1, validate
from .embeddings import EmbeddingCache, embed_batch, embed_loaded
from .errors import ConfigError
from .gallery import Gallery, build_gallery
from .images import load_image
from .manifest import Manifest, read_manifest
from .models import library_versions
from .profiles import FIELDS, generate_profiles, national_id_inference
from .samples import dataset_dir, sample_manifest

DEFAULT_LEVELS = [
    Degradation(name="webcam", face_width_px=80, blur_sigma=1.0, jpeg_quality=40),
    Degradation(name="street", face_width_px=40, blur_sigma=1.2, jpeg_quality=30),
    Degradation(name="far", face_width_px=24, blur_sigma=1.5, jpeg_quality=30),
    Degradation(name="sunglasses", face_width_px=80, blur_sigma=1.0, jpeg_quality=40, occlusion="sunglasses"),
]


@dataclass(frozen=True)
class OfflineSettings:
    shots: int = setting(3, "captures per person, fused by taking each candidate's best distance (the paper took 3)",
                         min=1, max=20)
    levels: list[Degradation] = setting(DEFAULT_LEVELS, "capture conditions, from mild to harsh ([[offline.levels]] tables)")
    headline: str = setting("webcam", "level reported as experiments.offline_to_online")
    timing_probes: int = setting(10, "probes timed uncached (detect / embed / search split)", min=1, max=1000)


@dataclass(frozen=True)
class ScalingSettings:
    sizes: list[int] = setting([100, 1_000, 10_000, 100_000, 1_000_000], "gallery sizes measured with distractors")
    extrapolate: list[int] = setting([10_000_000, 100_000_000, 1_000_000_000], "gallery sizes predicted by the model")
    validation_distractors: int = setting(2000, "distractors drawn to compare impostor distances (KS test)", min=100)


@dataclass(frozen=True)
class AccretionSettings:
    visibility: dict = setting({}, "override visibility distributions: field = [only_me, friends, fof, public]")
    birth_countries: dict = setting({}, "override birth-country shares, e.g. {US = 0.8, KR = 0.1, GB = 0.1}")


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
    ray_address: str = setting("", "embed the photo files on this Ray cluster ('host:port', or 'local'); "
                               "empty = this machine")
    faces: FaceSettings = setting(FaceSettings(), "[faces] table: detection and encoding")
    gallery: GallerySettings = setting(GallerySettings(), "[gallery] table: index and threshold")
    offline: OfflineSettings = setting(OfflineSettings(), "[offline] table: E2 capture conditions")
    scaling: ScalingSettings = setting(ScalingSettings(), "[scaling] table: distractor galleries")
    accretion: AccretionSettings = setting(AccretionSettings(), "[accretion] table: synthetic profiles")


def load_config(path: str | os.PathLike | None) -> ExperimentConfig:
    """The config in ``path`` (TOML), or the defaults when None. Errors name the file and the key."""
    cfg = ExperimentConfig() if path is None else load_toml(path, ExperimentConfig)
    try:
        _check_consistency(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return cfg


def _check_consistency(cfg: ExperimentConfig) -> None:
    names = [lv.name for lv in cfg.offline.levels]
    if cfg.offline.headline not in names:
        raise ConfigError(f"offline.headline: {cfg.offline.headline!r} is not one of the levels ({', '.join(names)})")
    if len(set(names)) != len(names):
        raise ConfigError("offline.levels: level names must be unique")
    for key in ("sizes", "extrapolate"):
        values = getattr(cfg.scaling, key)
        if any(v < 1 for v in values) or list(values) != sorted(values):
            raise ConfigError(f"scaling.{key}: must be increasing positive sizes")
    if any(not 0 < f < 1 for f in cfg.fpir):
        raise ConfigError("fpir: each rate must be between 0 and 1")


Log = Callable[[str], None]


def _stderr_log(message: str) -> None:
    print(f"[privrisk] {message}", file=sys.stderr, flush=True)


@dataclass
class _Embedded:
    subjects: list[str]
    vectors: np.ndarray
    names: list[str]
    boxes: list
    skipped: list[tuple[str, str]]


def _embed_rows(rows, cfg: ExperimentConfig, cache, progress) -> _Embedded:
    results = embed_batch([r.image for r in rows], cfg.faces, cache=cache, workers=cfg.workers or None,
                          progress=progress, ray_address=cfg.ray_address or None)
    subjects, vectors, names, boxes, skipped = [], [], [], [], []
    for row, res in zip(rows, results):
        if not res.ok:
            skipped.append((str(row.image), res.error))
            continue
        face = res.faces[0]
        subjects.append(row.subject_id)
        vectors.append(face.embedding)
        names.append(str(row.image))
        boxes.append(face.box)
    return _Embedded(subjects, np.asarray(vectors, np.float32).reshape(len(vectors), 128), names, boxes, skipped)


def _rank_against(gallery_vectors, gallery_labels, probe_vectors, k: int):
    """Subject-level ranking of probes against an in-memory gallery through FAISS (exact)."""
    from .matching import rank_subjects

    index = faiss_index.build_index(gallery_vectors)
    d, i = faiss_index.search(index, probe_vectors, min(len(gallery_vectors), max(k * 4, k)))
    return rank_subjects(d, i, np.asarray(gallery_labels), k)


def _identification(truth_codes, in_gallery, cand, dist, cfg, seed) -> dict:
    """E1/E2 metrics from subject-level candidates (codes) and distances; misses have -1 / inf."""
    ranks = metrics.true_rank(cand, truth_codes)
    mated = in_gallery
    mated_rank, mated_dist = ranks[mated], np.where(ranks[mated] == 1, dist[mated, 0], np.inf)
    nonmated_best = dist[~mated, 0]
    hits1 = (mated_rank == 1).astype(float)
    out = {
        "n_probes": int(len(truth_codes)), "n_mated": int(mated.sum()), "n_nonmated": int((~mated).sum()),
        "rank1": metrics.rank_k(mated_rank, 1), "rank5": metrics.rank_k(mated_rank, 5),
        "rank10": metrics.rank_k(mated_rank, 10),
        "rank1_ci95": list(metrics.bootstrap_ci(hits1, n_boot=cfg.bootstrap, seed=seed)),
        "cmc": metrics.cmc(mated_rank, max_rank=min(20, cfg.top_k)).tolist(),
        "tpir_at_fpir": {f"{f:g}": metrics.tpir_at_fpir(mated_rank, mated_dist, nonmated_best, f) for f in cfg.fpir},
        "tpir_at_threshold": float(((mated_rank == 1) & (mated_dist <= cfg.gallery.threshold)).mean()),
        "fpir_at_threshold": float((nonmated_best <= cfg.gallery.threshold).mean()) if (~mated).any() else None,
        "det": metrics.det_curve(mated_rank, mated_dist, nonmated_best),
    }
    for f in cfg.fpir:
        out["tpir_at_fpir"][f"{f:g}"]["ci_note"] = (
            f"{out['n_nonmated']} non-mated probes: the lowest FPIR this sample can resolve is "
            f"{1 / max(out['n_nonmated'], 1):.3f}")
    return out


def run_experiment(config: ExperimentConfig, out_dir: str | os.PathLike, *, cache: EmbeddingCache | None = None,
                   progress: bool = True, log: Log | None = _stderr_log) -> dict:
    """Run E1-E3 and the scaling study; write every output into ``out_dir``; return results."""
    log = log or (lambda _m: None)
    cfg = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    root = Path(cfg.dataset_dir) if cfg.dataset_dir else dataset_dir()
    g_manifest = read_manifest(cfg.gallery_manifest or sample_manifest("neutral"), root)
    p_manifest = read_manifest(cfg.probe_manifest or sample_manifest("smiling"), root)

    # --- split: which probe subjects have an identified photo in the gallery --------------------------
    common = sorted(set(g_manifest.subjects) & set(p_manifest.subjects))
    if len(common) < 3:
        raise ConfigError("fewer than 3 subjects appear in both manifests; nothing to measure")
    n_unseen = int(round(cfg.unseen_share * len(common)))
    unseen = set(rng.permutation(common)[:n_unseen].tolist())
    gallery_rows = tuple(r for r in g_manifest.rows if r.subject_id not in unseen)
    log(f"E1 split: {len(common) - n_unseen} subjects in the gallery, {n_unseen} probe subjects left out (seed {cfg.seed})")

    # --- the gallery: built from the consent manifest, persisted beside the results --------------------
    gdir = out / "gallery"
    if gdir.exists():
        import shutil
        shutil.rmtree(gdir)
    sub_manifest = dataclasses.replace(g_manifest, rows=gallery_rows)
    log("embedding gallery photos")
    build = build_gallery(sub_manifest, gdir, face_settings=cfg.faces, settings=cfg.gallery, cache=cache,
                          workers=cfg.workers or None, progress=progress, ray_address=cfg.ray_address or None)
    with Gallery.open(gdir) as gallery:
        gal_ids, gal_vecs = gallery.embeddings()
        gal_meta = gallery.faces()
    gal_subjects = [gal_meta[int(i)]["subject_id"] for i in gal_ids]
    names = sorted(set(gal_subjects) | set(p_manifest.subjects))
    code = {s: i for i, s in enumerate(names)}
    gal_codes = np.array([code[s] for s in gal_subjects], np.int64)
    in_gallery_subjects = set(gal_subjects)

    log("embedding probe photos")
    probes = _embed_rows(p_manifest.rows, cfg, cache, progress)
    meta_by_subject = {r.subject_id: r.meta for r in (*g_manifest.rows, *p_manifest.rows)}

    # --- E1 online to online ------------------------------------------------------------------------
    cand, dist, _ = _rank_against(gal_vecs, gal_codes, probes.vectors, cfg.top_k)
    # probes whose face was not found are misses: add them as empty rows
    p_subjects = list(probes.subjects) + [_subject_of(p_manifest, n) for n, _ in probes.skipped]
    cand = np.vstack([cand, np.full((len(probes.skipped), cfg.top_k), -1)])
    dist = np.vstack([dist, np.full((len(probes.skipped), cfg.top_k), np.inf, np.float32)])
    truth = np.array([code[s] for s in p_subjects], np.int64)
    mated = np.array([s in in_gallery_subjects for s in p_subjects])
    e1 = _identification(truth, mated, cand, dist, cfg, cfg.seed)
    e1.update(n_gallery=len(gal_vecs), skipped=[{"image": i, "reason": r} for i, r in [*build.skipped, *probes.skipped]])
    ranks1 = metrics.true_rank(cand, truth)
    e1["by_gender"] = metrics.breakdown(ranks1[mated] == 1, [meta_by_subject.get(s, {}).get("gender", "unknown")
                                                              for s in np.array(p_subjects)[mated]])
    e1["by_ethnicity"] = metrics.breakdown(ranks1[mated] == 1, [meta_by_subject.get(s, {}).get("ethnicity", "unknown")
                                                                 for s in np.array(p_subjects)[mated]])
    # verification ROC: every probe against every gallery face
    allpairs = np.sqrt(np.maximum(((probes.vectors[:, None, :] - gal_vecs[None, :, :]) ** 2).sum(-1), 0))
    same = np.array([code[s] for s in probes.subjects])[:, None] == gal_codes[None, :]
    genuine, impostor = allpairs[same], allpairs[~same]
    roc = metrics.roc(genuine, impostor)
    pick = np.unique(np.linspace(0, len(roc["far"]) - 1, 300).astype(int))
    e1["verification"] = {"eer": roc["eer"], "curve": {"far": [roc["far"][j] for j in pick],
                                                       "tar": [roc["tar"][j] for j in pick]}, "n_genuine": int(genuine.size), "n_impostor": int(impostor.size),
                          "tar_at_far": {f"{f:g}": metrics.tar_at_far(genuine, impostor, f) for f in (0.01, 0.001)}}
    per_probe = [_probe_row("online_to_online", p, names, truth[i], cand[i], dist[i], mated[i], cfg)
                 for i, p in enumerate(list(probes.names) + [n for n, _ in probes.skipped])]
    log(f"E1 online to online: rank-1 {e1['rank1']:.3f} over {e1['n_mated']} mated probes")

    # --- E2 offline to online -------------------------------------------------------------------------
    e2_levels, e2_fused = {}, {}
    box_of = dict(zip(probes.names, probes.boxes))
    for li, level in enumerate(cfg.offline.levels):
        items, owners = [], []
        for pi, (name, subject) in enumerate(zip(probes.names, probes.subjects)):
            image = load_image(name, max_side=cfg.faces.max_side)
            s = image.scale
            box = tuple(int(round(v * s)) for v in box_of[name])
            for shot in range(cfg.offline.shots):
                shot_rng = np.random.default_rng([cfg.seed, li, pi, shot])
                rgb = degrade(image.rgb, box, level, shot_rng)
                items.append((f"{Path(name).stem}-{level.name}-{shot}.png", encode_png(rgb)))
                owners.append(pi)
        log(f"E2 level '{level.name}': embedding {len(items)} degraded captures")
        res = embed_batch(items, cfg.faces, cache=cache, workers=cfg.workers or None, progress=progress)
        ok = [j for j, r in enumerate(res) if r.ok]
        shot_vecs = np.array([res[j].faces[0].embedding for j in ok], np.float32).reshape(len(ok), 128)
        shot_owner = np.array([owners[j] for j in ok], np.int64)
        # fuse: each gallery subject's best distance over a person's shots
        full = np.full((len(probes.names), len(names)), np.inf, np.float32)
        if len(ok):
            k_all = len(set(gal_subjects))
            c_s, d_s, _ = _rank_against(gal_vecs, gal_codes, shot_vecs, k_all)
            for row in range(len(ok)):
                valid = c_s[row] >= 0
                np.minimum.at(full[shot_owner[row]], c_s[row][valid], d_s[row][valid])
        order = np.argsort(full, axis=1, kind="stable")[:, :cfg.top_k]
        fused_d = np.take_along_axis(full, order, axis=1)
        fused_c = np.where(np.isfinite(fused_d), order, -1)
        lv_truth = np.array([code[s] for s in probes.subjects], np.int64)
        lv_mated = np.array([s in in_gallery_subjects for s in probes.subjects])
        m = _identification(lv_truth, lv_mated, fused_c, fused_d, cfg, cfg.seed + li + 1)
        detected = np.zeros(len(probes.names), bool)
        detected[np.unique(shot_owner)] = True
        m.update(level=to_dict(level), n_gallery=len(gal_vecs), shots=cfg.offline.shots,
                 detection_rate=float(len(ok) / max(len(items), 1)),
                 persons_with_a_detected_shot=float(detected.mean()))
        e2_levels[level.name] = m
        e2_fused[level.name] = (shot_vecs, shot_owner, fused_c, fused_d, lv_truth, lv_mated)
        per_probe += [_probe_row(f"offline_to_online/{level.name}", p, names, lv_truth[i], fused_c[i], fused_d[i],
                                 lv_mated[i], cfg) for i, p in enumerate(probes.names)]
        log(f"E2 '{level.name}': rank-1 {m['rank1']:.3f}, {m['detection_rate']:.0%} of captures had a detectable face")

    log("timing identifications (uncached)")
    head_level = next(lv for lv in cfg.offline.levels if lv.name == cfg.offline.headline)
    timing = _time_identifications(cfg, probes, box_of, gal_vecs, head_level, cfg.offline.shots)
    headline = dict(e2_levels[cfg.offline.headline])
    headline.update(level_name=cfg.offline.headline, seconds_per_probe=timing["total"], seconds_split=timing)
    e1_timing = _time_identifications(cfg, probes, box_of, gal_vecs, None, 1)
    e1.update(seconds_per_probe=e1_timing["total"], seconds_split=e1_timing)

    # --- E3 accretion -----------------------------------------------------------------------------------
    e3, e3_rows = _accretion(cfg, names, probes, cand, dist, truth, mated, meta_by_subject)
    log(f"E3 accretion: {e3['n_identified']} re-identified; SSN first 5 predictable for "
        f"{e3['ssn_predictable_fraction']:.0%}, mean {e3['mean_fields_learned']:.1f} fields learned")

    # --- scaling ---------------------------------------------------------------------------------------
    log("scaling: fitting the distractor model and searching padded galleries")
    scaling = _scaling(cfg, gal_vecs, gal_codes, probes, truth, mated, cand, dist, e2_fused, log)

    results = {
        "privrisk_version": library_versions().get("privrisk", "0"),
        "seed": cfg.seed,
        "config": to_dict(cfg),
        "versions": library_versions() | {"model_id": _model_id(gdir), "python": sys.version.split()[0]},
        "dataset": {"root": str(root), "gallery_manifest": str(g_manifest.path), "probe_manifest": str(p_manifest.path),
                    "refused_rows": [str(r) for r in (*g_manifest.refused, *p_manifest.refused)]},
        "experiments": {
            "online_to_online": e1,
            "offline_to_online": headline | {"levels": e2_levels},
            "accretion": e3,
        },
        "scaling": scaling["measured"],
        "scaling_detail": scaling,
        "seconds_total": time.perf_counter() - t_start,
    }
    from .report import write_outputs

    write_outputs(out, results, per_probe, e3_rows)
    log(f"done in {results['seconds_total']:.0f} s: {out / 'report.html'}")
    return results


def _subject_of(manifest: Manifest, image: str) -> str:
    for r in manifest.rows:
        if str(r.image) == image:
            return r.subject_id
    return "?"


def _model_id(gdir: Path) -> str:
    with Gallery.open(gdir) as g:
        return g.model_id


def _probe_row(experiment, probe, names, truth, cand, dist, mated, cfg) -> dict:
    top = [(names[c], float(d)) for c, d in zip(cand, dist) if c >= 0]
    best_ok = bool(top) and top[0][1] <= cfg.gallery.threshold
    return {
        "experiment": experiment, "probe": probe, "truth": names[truth], "in_gallery": bool(mated),
        "rank": next((r + 1 for r, (s, _) in enumerate(top) if s == names[truth]), ""),
        "decision": "match" if best_ok else "no match",
        "decision_correct": (best_ok and top[0][0] == names[truth]) if mated else not best_ok,
        "candidates": ";".join(f"{s}:{d:.4f}" for s, d in top),
    }


def _time_identifications(cfg, probes, box_of, gal_vecs, level: Degradation | None, shots: int) -> dict:
    """Seconds per identification, uncached, in this process: detect and embed over ``shots``
    captures (clean photos when ``level`` is None), then one search."""
    from .models import load_face_model

    model = load_face_model()
    n = min(cfg.offline.timing_probes, len(probes.names))
    det = emb = srch = 0.0
    index = faiss_index.build_index(gal_vecs)
    for pi in range(n):
        image = load_image(probes.names[pi], max_side=cfg.faces.max_side)
        box = tuple(int(round(v * image.scale)) for v in box_of[probes.names[pi]])
        vecs = []
        for shot in range(shots):
            shot_img = image
            if level is not None:
                rgb = degrade(image.rgb, box, level, np.random.default_rng([cfg.seed, 99, pi, shot]))
                shot_img = load_image(encode_png(rgb), name="timing.png")
            faces, sec = embed_loaded(model, shot_img, cfg.faces)
            det += sec["detect"]
            emb += sec["embed"]
            vecs += [f.embedding for f in faces[:1]]
        t0 = time.perf_counter()
        if vecs:
            faiss_index.search(index, np.array(vecs), cfg.top_k)
        srch += time.perf_counter() - t0
    return {"detect": det / n, "embed": emb / n, "search": srch / n, "total": (det + emb + srch) / n, "n_timed": n,
            "captures_per_identification": shots, "note": "one process, uncached, against the experiment's gallery"}


def _accretion(cfg, names, probes, cand, dist, truth, mated, meta_by_subject):
    ages = {s: m.get("age") for s, m in meta_by_subject.items() if str(m.get("age", "")).isdigit()}
    sexes = {s: m.get("gender") for s, m in meta_by_subject.items() if m.get("gender") in ("female", "male")}
    profiles = {p.subject_id: p for p in generate_profiles(
        names, seed=cfg.seed, visibility={k: tuple(v) for k, v in cfg.accretion.visibility.items()} or None,
        birth_countries=cfg.accretion.birth_countries or None, sexes=sexes, ages=ages)}
    identified = []
    for i in range(len(probes.names)):
        if mated[i] and cand[i, 0] == truth[i] and dist[i, 0] <= cfg.gallery.threshold:
            identified.append(names[truth[i]])
    rows, n_fields, ssn, rrn = [], [], 0, 0
    field_counts = {f: 0 for f in FIELDS}
    for sid in identified:
        prof = profiles[sid]
        visible = prof.visible_to("stranger")
        inference = national_id_inference(prof.values["birth_country"], int(prof.values["birth_date"][:4]), visible)
        learned = [f for f in visible if f != "profile_photo"]
        for f in visible:
            field_counts[f] += 1
        n_fields.append(len(learned))
        ssn += bool(inference and inference.scheme == "US SSN" and inference.digits_predictable >= 5)
        rrn += bool(inference and inference.scheme == "KR RRN" and inference.digits_predictable >= 7)
        rows.append({"subject_id": sid, "pseudonym": prof.pseudonym, "birth_country": prof.values["birth_country"],
                     "fields_learned": learned,
                     "national_id": dataclasses.asdict(inference) if inference else None,
                     "travel_plans_visible": "travel_plans" in visible})
    n = max(len(identified), 1)
    countries = [profiles[s].values["birth_country"] for s in identified]
    return {
        "n_identified": len(identified),
        "n_profiles": len(profiles),
        "mean_fields_learned": float(np.mean(n_fields)) if n_fields else 0.0,
        "ssn_predictable_fraction": ssn / n,
        "ssn_predictable_fraction_of_us_born": ssn / max(countries.count("US"), 1),
        "rrn_predictable_fraction": rrn / n,
        "rrn_predictable_fraction_of_kr_born": rrn / max(countries.count("KR"), 1),
        "field_visible_share": {f: c / n for f, c in field_counts.items()},
        "note": "profiles are synthetic (seeded); identification is E1's decision at the gallery threshold",
    }, rows


TAIL_BOOT = 100  # subject-bootstrap refits per tail model and fold
SEED_SIZE = 100_000  # gallery size at which three distractor seeds are searched exactly
KIND_RULE = ("measured: real faces only (gallery size <= the real gallery); simulated: Gaussian model distractors "
             "drawn and searched exactly, at sizes where the deciding per-distractor probability 1/(N - n_real) is "
             "at least 1/(number of real impostor pairs), i.e. still checkable on real pairs; extrapolated: beyond "
             "that (or not searched), where only the tail model speaks")


def _smallest_ids(index, n_max: int, vecs: np.ndarray, radii: np.ndarray, k: int = 10) -> np.ndarray:
    """(n, k): the k smallest distractor ids (= positions in the draw) within each query's radius,
    padded with n_max; queries with a non-finite radius get no ids. Queries go to FAISS in batches of
    similar radius, each batch as one range search at the batch's largest radius."""
    out = np.full((len(vecs), k), n_max, np.int64)
    if n_max == 0 or not len(vecs):
        return out
    finite = np.isfinite(radii)
    order = np.where(finite)[0][np.argsort(radii[finite], kind="stable")]
    for start in range(0, len(order), 64):
        batch = order[start:start + 64]
        r2 = radii[batch].astype(np.float32) ** 2
        lims, d2, ids = index.range_search(np.ascontiguousarray(vecs[batch]), float(r2.max()))
        for j, q in enumerate(batch):
            lo, hi = lims[j], lims[j + 1]
            inside = np.sort(ids[lo:hi][d2[lo:hi] <= r2[j]])[:k]
            out[q, :len(inside)] = inside
    return out


def _person_ids(shot_ids: np.ndarray, owner: np.ndarray, n_persons: int, n_max: int, k: int = 10) -> np.ndarray:
    """Union over each person's captures of the distractor ids within radius: the k smallest."""
    out = np.full((n_persons, k), n_max, np.int64)
    for p_ in range(n_persons):
        ids = np.unique(shot_ids[owner == p_])
        ids = ids[ids < n_max][:k]
        out[p_, :len(ids)] = ids
    return out


def _curve_spec(vecs, owner, row_fold, truth, cand, dist, mated_person, top_k):
    """Per-person arrays a curve needs: genuine radius, real rank, real best impostor / best distance."""
    ranks = metrics.true_rank(cand, truth)
    n = len(truth)
    g = np.full(n, np.nan)
    imp_best = np.full(n, np.inf)
    for i in range(n):
        if np.isfinite(ranks[i]):
            g[i] = dist[i, int(ranks[i]) - 1]
        wrong = np.where((cand[i] >= 0) & (cand[i] != truth[i]))[0]
        if len(wrong):
            imp_best[i] = dist[i, wrong[0]]
    return {"vecs": vecs, "owner": owner, "fold": row_fold, "rank": ranks, "g": g, "imp_best": imp_best,
            "best": np.where(cand[:, 0] >= 0, dist[:, 0], np.inf), "mated": mated_person, "top_k": top_k}


def _closed_form(spec, fold_models, n_other, theta, rep, rng):
    """Rank-1, rank-10, FPIR at theta and wrong-top-under-theta for one tail model and replicate,
    (4, sizes); rep > 0 also resamples persons (sampling uncertainty)."""
    m = spec["mated"]
    n = len(m)
    radius_row = np.nan_to_num(spec["g"][spec["owner"]], nan=0.0)
    mp = np.where(m)[0]
    nm = np.where(~m)[0]
    if rep > 0:
        mp = rng.choice(mp, len(mp)) if len(mp) else mp
        nm = rng.choice(nm, len(nm)) if len(nm) else nm
    rank = spec["rank"]
    s1 = tailmodel.crossfit_survival(fold_models, spec["fold"], spec["vecs"], radius_row, spec["owner"], n, n_other,
                                     rep=rep)
    allowed = np.where(np.isfinite(rank), 10 - np.nan_to_num(rank, posinf=99), -1)
    s10 = tailmodel.crossfit_survival(fold_models, spec["fold"], spec["vecs"], radius_row, spec["owner"], n, n_other,
                                      allowed=allowed, rep=rep)
    r1 = ((rank == 1)[:, None] * s1)[mp].mean(axis=0) if len(mp) else np.full(len(n_other), np.nan)
    r10 = ((rank <= 10)[:, None] * s10)[mp].mean(axis=0) if len(mp) else np.full(len(n_other), np.nan)
    sth = tailmodel.crossfit_survival(fold_models, spec["fold"], spec["vecs"], np.full(len(spec["owner"]), theta),
                                      spec["owner"], n, n_other, rep=rep)
    fpir = (1 - (spec["best"] > theta)[:, None] * sth)[nm].mean(axis=0) if len(nm) else np.full(len(n_other), np.nan)
    rw = np.minimum(np.nan_to_num(spec["g"], nan=theta), theta)
    sw = tailmodel.crossfit_survival(fold_models, spec["fold"], spec["vecs"], rw[spec["owner"]], spec["owner"], n,
                                     n_other, rep=rep)
    wrong = (1 - (spec["imp_best"] > rw)[:, None] * sw)[mp].mean(axis=0) if len(mp) else np.full(len(n_other), np.nan)
    return np.array([r1, r10, fpir, wrong])


def _threshold_for_fpir(fold_models, probe_vecs, probe_fold, n_other_sizes, target=0.01, rep=0):
    """Distance threshold at which a share ``target`` of searches by people not enrolled would have a
    candidate under it, in a gallery of N others drawn from the model (every real probe as a searcher)."""
    owners = np.arange(len(probe_vecs))
    out = []
    for n_other in n_other_sizes:
        lo, hi = 0.0, 1.5
        for _ in range(24):
            mid = (lo + hi) / 2
            s = tailmodel.crossfit_survival(fold_models, probe_fold, probe_vecs, np.full(len(owners), mid), owners,
                                            len(owners), [max(n_other, 1)], rep=rep)[:, 0]
            if (1 - s).mean() > target:
                hi = mid
            else:
                lo = mid
        out.append((lo + hi) / 2)
    return np.array(out)


def _gaussian_prediction(model, spec, sizes, cfg, n_real) -> dict:
    """The old readers' ``predicted``: the Gaussian distractor model's saddlepoint rank-1 (unchanged
    from before the tail model; it fails the held-out validation, so ``points`` supersede it)."""
    m = spec["mated"]
    persons = np.where(m)[0]
    hit = spec["rank"][persons] == 1
    g = np.where(hit, spec["g"][persons], np.inf)
    gp = {p_: k for k, p_ in enumerate(persons)}
    rows = [r for r in range(len(spec["owner"])) if spec["owner"][r] in gp]
    owners = np.array([gp[spec["owner"][r]] for r in rows], np.int64)
    radii = np.array([g[k] for k in owners]) if rows else np.zeros(0)
    vecs = spec["vecs"][rows] if rows else np.zeros((0, 128), np.float32)
    single = len(rows) == len(persons) and np.array_equal(owners, np.arange(len(persons)))
    pred = predicted_rank1(model, vecs, np.where(np.isfinite(radii), radii, 1e-6), hit.astype(float),
                           [int(s) for s in sizes] + list(cfg.scaling.extrapolate), n_real,
                           owners=None if single else owners, seed=cfg.seed)
    pred["note"] = "Gaussian distractor model (fails the held-out validation); kept for old readers, see points"
    return pred


def _scaling(cfg, gal_vecs, gal_codes, probes, truth, mated, cand, dist, e2_fused, log) -> dict:
    """Identification against galleries of the real subjects plus other faces, as labelled points:
    measured on real faces at the real gallery size; simulated with Gaussian model distractors searched
    exactly; extrapolated by the tail model (:mod:`privrisk.tailmodel`) in closed form. Ranges cover a
    subject bootstrap with refitting, two tail models, three distractor seeds and the exact search."""
    allreal = np.vstack([gal_vecs, probes.vectors])
    model = DistractorModel.fit(allreal)
    n_vec = len(probes.vectors)
    probe_codes = np.array([truth[i] for i in range(n_vec)])
    check = validate(model, probes.vectors, probe_codes, gal_vecs, gal_codes,
                     n_distractors=cfg.scaling.validation_distractors, seed=cfg.seed + 7)
    theta = cfg.gallery.threshold

    # --- tail models: cross-validated on held-out people, and fitted on everyone for reuse ----------
    log("scaling: fitting and cross-validating the tail models (2 kinds x 5 folds, subject bootstrap)")
    cvs, full = {}, []
    try:
        for kind in tailmodel.KINDS:
            cvs[kind] = tailmodel.cross_validate(probes.vectors, probe_codes, gal_vecs, gal_codes, kind=kind,
                                                 n_boot=TAIL_BOOT, seed=cfg.seed)
            full.append(tailmodel.to_json(tailmodel.fit(probes.vectors, probe_codes, gal_vecs, gal_codes, kind=kind,
                                                         n_boot=TAIL_BOOT, seed=cfg.seed)))
    except ValueError as exc:  # too few people or pairs: no tail model, so nothing past the searched sizes
        log(f"scaling: no tail model ({exc}); sizes past the exact search get no prediction")
        cvs, full = {}, []
        check["validation"] = {"error": str(exc), "tail_model": "none"}
    if cvs:
        validation = tailmodel.validation_json(cvs["gpd"])
        validation["other_models"] = [tailmodel.validation_json(cvs[k]) for k in tailmodel.KINDS if k != "gpd"]
        check["validation"] = validation
        n_pairs = validation["n_real_pairs"]
        probe_fold = cvs["gpd"]["fold_of"]  # same folds for every kind (same seed and subjects)
    else:
        n_pairs = int((probe_codes[:, None] != gal_codes[None, :]).sum())
        probe_fold = np.zeros(n_vec, np.int64)

    # --- exact search over Gaussian distractors --------------------------------------------------
    n_real = len(gal_vecs)
    sizes = [s for s in cfg.scaling.sizes if s >= n_real] or [n_real]
    n_max = max(sizes) - n_real
    distractors = model.sample(n_max, seed=cfg.seed + 11) if n_max > 0 else np.zeros((0, 128), np.float32)
    index = faiss_index.build_index(distractors)

    specs = {}
    m_idx = np.arange(n_vec)
    specs["online_to_online"] = _curve_spec(probes.vectors, m_idx, probe_fold, truth[:n_vec], cand[:n_vec],
                                            dist[:n_vec], mated[:n_vec], cfg.top_k)
    for name, (shot_vecs, shot_owner, fc, fd, lt, lm) in e2_fused.items():
        specs[f"offline_to_online/{name}"] = _curve_spec(shot_vecs, shot_owner, probe_fold[shot_owner], lt, fc, fd,
                                                         lm, cfg.top_k)

    def exact_counts(spec, idx, size_cap):
        """Per person: the 10 smallest distractor ids within the genuine radius (union over captures)."""
        radii = spec["g"][spec["owner"]]
        ids = _smallest_ids(idx, size_cap, spec["vecs"], np.where(np.isfinite(radii), radii, np.nan))
        return _person_ids(ids, spec["owner"], len(spec["mated"]), size_cap)

    def exact_rates(spec, ids, n_other):
        m = spec["mated"]
        rank = spec["rank"][m]
        ahead = (ids[m] < n_other).sum(axis=1)
        return float(((rank == 1) & (ahead == 0)).mean()), float((rank - 1 + ahead <= 9).mean())

    t0 = time.perf_counter()
    exact_ids = {name: exact_counts(spec, index, n_max) for name, spec in specs.items()}
    search_s = (time.perf_counter() - t0) / max(len(specs), 1) / max(n_vec, 1)
    # seed spread: two more draws at SEED_SIZE (or the largest searched size below it)
    seed_size = max([s for s in sizes if n_real < s <= SEED_SIZE], default=None)
    seed_runs = {name: [exact_rates(spec, exact_ids[name], seed_size - n_real)] if seed_size else []
                 for name, spec in specs.items()}
    if seed_size:
        for extra in (12, 13):
            d_x = model.sample(seed_size - n_real, seed=cfg.seed + extra)
            idx_x = faiss_index.build_index(d_x)
            for name, spec in specs.items():
                seed_runs[name].append(exact_rates(spec, exact_counts(spec, idx_x, seed_size - n_real),
                                                   seed_size - n_real))
        log(f"scaling: 3 distractor seeds searched at {seed_size:,}")

    # --- closed-form predictions for every size, model and replicate --------------------------------
    all_sizes = sorted(set([n_real] + [int(s) for s in sizes] + [int(s) for s in cfg.scaling.extrapolate]))
    n_other = np.array([s - n_real for s in all_sizes], np.float64)
    rng = np.random.default_rng(cfg.seed + 17)
    kinds = list(cvs)
    nan_rep = np.full((2, 4, len(all_sizes)), np.nan)
    pred = {name: {kind: np.array([_closed_form(spec, cvs[kind]["fold_models"], n_other, theta, rep, rng)
                                   for rep in range(TAIL_BOOT + 1)]) for kind in kinds} or {"gpd": nan_rep}
            for name, spec in specs.items()}  # (reps, 4, sizes)
    thr_fpir = {kind: np.array([_threshold_for_fpir(cvs[kind]["fold_models"], probes.vectors, probe_fold, n_other,
                                                    rep=rep) for rep in range(0, TAIL_BOOT + 1, 20)])
                for kind in kinds} or {"gpd": np.full((1, len(all_sizes)), np.nan)}
    thr_point = thr_fpir["gpd"][0]
    thr_lo = np.min([v.min(axis=0) for v in thr_fpir.values()], axis=0)
    thr_hi = np.max([v.max(axis=0) for v in thr_fpir.values()], axis=0)

    def kind_of(size):
        if size <= n_real:
            return "measured"
        if size in sizes and (size - n_real) <= n_pairs:
            return "simulated"
        return "extrapolated"

    curves, measured_old = {}, {}
    for name, spec in specs.items():
        m = spec["mated"]
        n_m, n_nm = int(m.sum()), int((~m).sum())
        rank = spec["rank"]
        seeds = seed_runs[name]
        spread = (np.ptp([r[0] for r in seeds]), np.ptp([r[1] for r in seeds])) if len(seeds) > 1 else (0.0, 0.0)
        points = []
        for j, size in enumerate(all_sizes):
            kind = kind_of(size)
            reps = pred[name]
            lo = np.nanmin([np.nanquantile(v[1:], 0.025, axis=0)[:, j] for v in reps.values()]
                           + [v[0][:, j] for v in reps.values()], axis=0)
            hi = np.nanmax([np.nanquantile(v[1:], 0.975, axis=0)[:, j] for v in reps.values()]
                           + [v[0][:, j] for v in reps.values()], axis=0)
            model_val = reps["gpd"][0][:, j]
            pt = {"gallery_size": int(size), "kind": kind, "n_persons": n_m, "n_nonmated": n_nm}
            if kind == "measured":
                k1 = int((rank[m] == 1).sum())
                k10 = int((rank[m] <= 10).sum())
                kf = int((spec["best"][~m] <= theta).sum())
                kw = int(((spec["imp_best"][m] < np.nan_to_num(spec["g"][m], nan=np.inf))
                          & (spec["imp_best"][m] <= theta)).sum())
                vals = [(k1, n_m), (k10, n_m), (kf, n_nm), (kw, n_m)]
                out = [(k / n if n else None, list(tailmodel.wilson(k, n)) if n else None) for k, n in vals]
            else:
                exact = exact_rates(spec, exact_ids[name], size - n_real) if size in sizes and n_m else None
                out = []
                for q in range(4):
                    v = float(model_val[q]) if np.isfinite(model_val[q]) else None
                    a, b = float(lo[q]), float(hi[q])
                    if q < 2 and exact is not None:
                        if kind == "simulated":
                            v = exact[q]
                        a, b = min(a, exact[q]), max(b, exact[q])
                        a, b = a - spread[q], b + spread[q]
                    if v is not None and not (np.isfinite(a) and np.isfinite(b)):
                        a = b = v
                    out.append((v, [max(0.0, float(a)), min(1.0, float(b))] if v is not None else None))
            (pt["rank1"], pt["rank1_range"]), (pt["rank10"], pt["rank10_range"]) = out[0], out[1]
            (pt["fpir_at_threshold"], pt["fpir_range"]) = out[2]
            (pt["wrong_top_under_threshold"], pt["wrong_top_range"]) = out[3]
            ok = np.isfinite(thr_point[j])
            pt["threshold_for_fpir_1pct"] = float(thr_point[j]) if ok else None
            pt["threshold_for_fpir_1pct_range"] = [float(thr_lo[j]), float(thr_hi[j])] if ok else None
            points.append(pt)
        old = [{"gallery_size": int(s), "rank1": exact_rates(spec, exact_ids[name], s - n_real)[0] if n_m else 0.0}
               for s in sizes]
        measured_old[name] = old
        curves[name] = {
            "measured": old,
            "predicted": _gaussian_prediction(model, spec, sizes, cfg, n_real),
            "points": points,
            "seed_spread": {"gallery_size": seed_size, "seeds": [cfg.seed + 11, cfg.seed + 12, cfg.seed + 13][:len(seeds)],
                            "rank1": [r[0] for r in seeds], "rank10": [r[1] for r in seeds]},
        }
    online = curves["online_to_online"]
    gpd_online = pred["online_to_online"]["gpd"][0][0]
    err = [abs(gpd_online[all_sizes.index(o["gallery_size"])] - o["rank1"]) for o in online["measured"]
           if np.isfinite(gpd_online[all_sizes.index(o["gallery_size"])])]
    return {
        "measured": online["points"],
        "curves": curves,
        "distractor_model": check,
        "tail_models": {"models": full},
        "kind_rule": KIND_RULE,
        "n_real_pairs": n_pairs,
        "threshold": theta,
        "model_max_abs_error_measured_sizes": float(max(err)) if err else None,
        "search_seconds_per_probe_at_max": search_s,
        "model": ("rank-1 at N = mean over mated people of 1[rank 1 among the real gallery] * E_a[(1 - F_p(g_p))^(N - "
                  "n_real)], rank-10 = mean of P(Binomial(N - n_real, F_p) <= 10 - real rank); F_p from the tail model "
                  "of the fold that left the person out (" + tailmodel.NAMES["gpd"] + "); the range spans that and "
                  "a second tail model (" + tailmodel.NAMES["normal"] + "), each over " + str(TAIL_BOOT)
                  + " subject-bootstrap refits with people resampled, the exact search over Gaussian distractors and "
                  "the spread of three distractor seeds. " + KIND_RULE),
    }
