"""privrisk's benchmark suite: speed, memory and scale, side by side with what users run today.

    python3 -m uv run --locked python benchmarks/run.py            # full, ~10-15 min on 2 cores
    python3 -m uv run --locked python benchmarks/run.py --quick    # under 2 minutes

Every figure is measured in this run, next to its baseline measured in the same run, and
reported with their ratio. Writes benchmarks/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from privrisk import index as faiss_index
from privrisk.config import FaceSettings
from privrisk.distractors import DistractorModel
from privrisk.embeddings import BATCH_IMAGES, EmbeddingCache, Workers, embed_batch, embed_image, embed_images
from privrisk.manifest import read_manifest
from privrisk.models import library_versions, load_face_model
from privrisk.samples import dataset_dir, sample_manifest

ROOT = Path(__file__).resolve().parents[1]

N_QUERIES = 1000


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def rss_parts_mb() -> dict:
    """Resident memory split into private (anonymous) and file-backed (memory-mapped files) pages."""
    parts = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                parts[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"anon_mb": parts.get("RssAnon", 0.0), "file_mb": parts.get("RssFile", 0.0)}


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def memory_bandwidth() -> float:
    """Bytes per second for one streaming read of 1 GiB (best of 3)."""
    a = np.ones(256 * 1024 * 1024, np.float32)
    t, _ = timed(lambda: a.sum(), repeat=3)
    return a.nbytes / t


def sample_embeddings(cache: EmbeddingCache):
    root = dataset_dir()
    out = {}
    for kind in ("neutral", "smiling"):
        rows = read_manifest(sample_manifest(kind), root).rows
        res = embed_batch([r.image for r in rows], cache=cache)
        out[kind] = (
            np.array([r.faces[0].embedding for r in res], np.float32),
            [r.subject_id for r in rows],
            [str(r.image) for r in rows],
        )
    return out


def recall(exact_ids, approx_ids, k):
    hits = [len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits))


def bench_search(size: int, real: np.ndarray, model: DistractorModel, rng, quick: bool) -> dict:
    import face_recognition

    gallery = np.vstack([real, model.sample(size - len(real), seed=size)]).astype(np.float32)
    picks = rng.choice(size, N_QUERIES, replace=False)
    queries = (gallery[picks] + rng.normal(0, 0.02, (N_QUERIES, 128))).astype(np.float32)
    row = {"gallery_size": size, "queries": N_QUERIES, "k": 10}

    # baseline 1: face_recognition.face_distance over a Python list of encodings, one query at a time
    known = list(gallery)
    n_loop = min(N_QUERIES, max(3, int(2e6 // size)))
    t, _ = timed(lambda: [np.argsort(face_recognition.face_distance(known, q))[:10] for q in queries[:n_loop]])
    row["face_distance_loop_s"] = t * N_QUERIES / n_loop
    row["face_distance_loop_note"] = (
        f"timed {n_loop} queries, extrapolated to {N_QUERIES}" if n_loop < N_QUERIES else "all queries timed"
    )
    known = None  # free the list before the next baseline

    # baseline 2: numpy brute force, vectorised over query blocks
    g2 = (gallery**2).sum(1)

    def numpy_search():
        out = []
        for s in range(0, N_QUERIES, 100):
            q = queries[s : s + 100]
            d = g2[None, :] - 2 * q @ gallery.T
            top = np.argpartition(d, 10, axis=1)[:, :10]
            out.append(np.take_along_axis(top, np.argsort(np.take_along_axis(d, top, 1), 1), 1))
        return np.vstack(out)

    row["numpy_bruteforce_s"], _ = timed(numpy_search)

    # ours: exact FAISS, then the approximate types
    before = rss_mb()
    flat = faiss_index.build_index(gallery, index_type="flat")
    row["flat_rss_mb"] = rss_mb() - before
    row["flat_s"], (_, exact) = timed(lambda: faiss_index.search(flat, queries, 10), repeat=2)
    single = [timed(lambda: faiss_index.search(flat, queries[i : i + 1], 10))[0] for i in range(15)]
    row["flat_single_query_s"] = float(np.median(single))
    row["flat_bytes_per_query"] = gallery.nbytes
    import faiss

    row["flat_index_mb"] = faiss.serialize_index(flat).nbytes / 1e6
    flat = None
    for kind in ("ivf", "hnsw"):
        if kind == "hnsw" and quick and size > 100_000:
            continue
        before = rss_mb()
        t_build, index = timed(
            lambda: faiss_index.build_index(
                gallery,
                index_type=kind,
                params=faiss_index.IndexParams(nprobe=64, nlist=min(1024, faiss_index.ivf_lists(size))),
            )
        )
        row[f"{kind}_build_s"] = t_build
        row[f"{kind}_rss_mb"] = rss_mb() - before
        row[f"{kind}_s"], (_, ids) = timed(lambda: faiss_index.search(index, queries, 10), repeat=2)
        row[f"{kind}_qps"] = N_QUERIES / row[f"{kind}_s"]
        row[f"{kind}_recall1"] = recall(exact, ids, 1)
        row[f"{kind}_recall10"] = recall(exact, ids, 10)
        row[f"{kind}_index_mb"] = faiss.serialize_index(index).nbytes / 1e6
        row[f"{kind}_single_query_s"] = float(
            np.median([timed(lambda: faiss_index.search(index, queries[i : i + 1], 10))[0] for i in range(15)])
        )
        index = None
    row["truth_at_rank1"] = float((exact[:, 0] == picks).mean())
    return row


def bench_embedding(quick: bool) -> dict:
    import face_recognition

    root = dataset_dir()
    n = 20 if quick else 102
    rows = {k: read_manifest(sample_manifest(k), root).rows[:n] for k in ("neutral", "smiling")}
    paths = [r.image for r in rows["neutral"]] + [r.image for r in rows["smiling"]]
    load_face_model()  # both sides start with the model loaded

    def naive():
        vecs = []
        for p in paths:
            img = face_recognition.load_image_file(p)
            locs = face_recognition.face_locations(img)
            vecs.append(face_recognition.face_encodings(img, locs)[0] if locs else np.zeros(128))
        return np.array(vecs)

    t_naive, naive_vecs = timed(naive)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp) / "e.sqlite")
        t_cold, ours = timed(lambda: embed_batch(paths, cache=cache, workers=os.cpu_count()))
        t_warm, _ = timed(lambda: embed_batch(paths, cache=cache, workers=os.cpu_count()))
    ours_vecs = np.array([r.faces[0].embedding if r.ok else np.zeros(128) for r in ours])

    def rank1(v):
        g, p = v[:n], v[n:]
        d = ((p[:, None] - g[None]) ** 2).sum(-1)
        return int((d.argmin(1) == np.arange(n)).sum())

    return {
        "images": len(paths),
        "image_px": "800x800",
        "naive_s": t_naive,
        "ours_cold_s": t_cold,
        "ours_warm_s": t_warm,
        "naive_img_per_s": len(paths) / t_naive,
        "ours_cold_img_per_s": len(paths) / t_cold,
        "ours_warm_img_per_s": len(paths) / t_warm,
        "naive_rank1": rank1(naive_vecs),
        "ours_rank1": rank1(ours_vecs),
        "cores": os.cpu_count(),
    }


def bench_end_to_end(search_rows: list[dict]) -> dict:
    """Load + detect + embed one probe photo (median of 10), plus one search, per gallery size: with
    privrisk 0.1's settings (always one upsampling, exact index) and with today's defaults (an
    upsampled pass only when the first finds no face; 'auto' index: exact to 250,000 faces, HNSW
    above), side by side in this run."""
    root = dataset_dir()
    probes = [r.image for r in read_manifest(sample_manifest("smiling"), root).rows[:10]]
    out = {}
    variants = (
        (
            "privrisk 0.1 (upsample 1, exact, engine dlib)",
            FaceSettings(upsample=1, retry_upsample=0, engine="dlib"),
            "flat",
        ),
        ("default, engine dlib", FaceSettings(engine="dlib"), "auto"),
        ("default", FaceSettings(), "auto"),
    )
    for label, settings, index_type in variants:
        model = load_face_model(settings)
        det, emb, found = [], [], 0
        for p in probes:
            r = embed_image(p, model, settings)
            det.append(r.seconds["detect"] + r.seconds["load"])
            emb.append(r.seconds["embed"])
            found += r.ok
        part = {
            "detect_s": float(np.median(det)),
            "embed_s": float(np.median(emb)),
            "faces_found": found,
            "probes": len(probes),
            "by_size": [],
        }
        for row in search_rows:
            kind = faiss_index.resolve_index_type(index_type, row["gallery_size"])
            if f"{kind}_single_query_s" not in row:
                continue
            search = row[f"{kind}_single_query_s"]
            part["by_size"].append(
                {
                    "gallery_size": row["gallery_size"],
                    "index": kind,
                    "search_s": search,
                    "recall1": row.get(f"{kind}_recall1", 1.0),
                    "seconds_per_probe": part["detect_s"] + part["embed_s"] + search,
                }
            )
        out[label] = part
    return out


def bench_compressed(model: DistractorModel, n: int, rng) -> dict:
    """A compressed, sharded gallery of ``n`` model distractors on disk: build, memory, recall."""
    from privrisk.shards import ShardedIndex, ShardLayout, build_shards

    chunk = 1_000_000
    with tempfile.TemporaryDirectory(dir=str(ROOT / "benchmarks" / "results")) as tmp:
        base = rss_mb()
        train = model.sample(100_000, seed=999)
        t_build, meta = timed(
            lambda: build_shards(
                (model.sample(min(chunk, n - s), seed=10_000 + s // chunk) for s in range(0, n, chunk)),
                tmp,
                train,
                ShardLayout(nlist=1024, m=32, shard_size=5_000_000),
            )
        )
        picks = np.sort(rng.choice(n, N_QUERIES, replace=False))
        raw = np.memmap(Path(tmp) / "vectors.f32", dtype="<f4", mode="r", shape=(n, 128))
        queries = (np.asarray(raw[picks]) + rng.normal(0, 0.02, (N_QUERIES, 128))).astype(np.float32)
        # exact ground truth, streamed over the raw file one million at a time
        best_d = np.full((N_QUERIES, 10), np.inf, np.float32)
        best_i = np.full((N_QUERIES, 10), -1, np.int64)
        t0 = time.perf_counter()
        for s in range(0, n, chunk):
            d, i = faiss_index.search(faiss_index.build_index(np.asarray(raw[s : s + chunk])), queries, 10)
            d_all, i_all = np.hstack([best_d, d]), np.hstack([best_i, i + s])
            order = np.argsort(d_all, axis=1)[:, :10]
            best_d, best_i = np.take_along_axis(d_all, order, 1), np.take_along_axis(i_all, order, 1)
        t_exact = time.perf_counter() - t0
        del raw
        out = {
            "n": n,
            "shards": len(meta["shards"]),
            "nlist": meta["nlist"],
            "pq_bytes": meta["m"],
            "build_s": t_build,
            "exact_search_s": t_exact,
            "index_files_mb": sum((Path(tmp) / s["file"]).stat().st_size for s in meta["shards"]) / 1e6,
            "raw_vectors_mb": (Path(tmp) / "vectors.f32").stat().st_size / 1e6,
        }
        for nprobe in (16, 64):
            before = rss_parts_mb()
            index = ShardedIndex(tmp, nprobe=nprobe, rerank=100)
            t, (_, ids) = timed(lambda: index.search(queries, 10))
            after = rss_parts_mb()
            out[f"nprobe{nprobe}"] = {
                "search_s": t,
                "qps": N_QUERIES / t,
                "recall1": recall(best_i, ids, 1),
                "recall10": recall(best_i, ids, 10),
                "private_memory_growth_mb": after["anon_mb"] - before["anon_mb"],
                "mapped_file_pages_mb": after["file_mb"] - before["file_mb"],
            }
            index = None
        out["rss_during_mb"] = rss_mb() - base
        out["memory_per_million_faces_mb"] = out["index_files_mb"] / (n / 1e6)
    return out


def bench_ray() -> dict:
    """Embedding throughput on a Ray cluster on loopback with 1 and with 2 worker nodes (cold cache)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on loopback
    import ray
    from ray.cluster_utils import Cluster

    root = dataset_dir()
    paths = [r.image for k in ("neutral", "smiling") for r in read_manifest(sample_manifest(k), root).rows]
    out = {"images": len(paths)}
    for workers in (1, 2):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(workers):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                t, _ = timed(
                    lambda: embed_batch(
                        paths,
                        cache=EmbeddingCache(Path(tmp) / "e.sqlite"),
                        workers=Workers(ray_address=cluster.address),
                    )
                )
            out[f"workers{workers}_s"] = t
            out[f"workers{workers}_img_per_s"] = len(paths) / t
        finally:
            ray.shutdown()
            cluster.shutdown()
    out["speedup"] = out["workers1_s"] / out["workers2_s"]
    return out


def bench_detectors(n: int = 10) -> dict:
    """Time per image of each face detector (hog and cnn, each with its upsampling rule), on 2 cores
    (embed_batch with 2 workers, no cache), side by side on the same images: sample photos (800 px,
    detected on a 640 px copy), and E2 captures at the webcam (face 80 px), street (40 px) and far
    (24 px) levels. Also the self-checks' cnn setting (a 320 px copy) on the sample photos."""
    import io

    from PIL import Image

    from privrisk.captures import CaptureSource, make_captures
    from privrisk.config import DEFAULT_LEVELS, SELF_CHECK_FACES
    from privrisk.embeddings import file_sha256

    model = load_face_model()
    root = dataset_dir()
    rows = read_manifest(sample_manifest("smiling"), root).rows[:n]
    sets: dict[str, list] = {"photo 800 px": [(str(r.image), Path(r.image).read_bytes()) for r in rows]}
    levels = {lv.name: lv for lv in DEFAULT_LEVELS}
    for name in ("webcam", "street", "far"):
        items = []
        for i, r in enumerate(rows):
            boxes = model.detect(np.asarray(Image.open(r.image).convert("RGB")), "hog", 1)
            if not boxes:
                continue
            source = CaptureSource(str(r.image), file_sha256(r.image), boxes[0], 2048)
            (cap,) = make_captures(source, levels[name], (2011, 0, i), 1, FaceSettings(), model.model_id)
            items.append((cap.name, cap.render(model)))
        side = Image.open(io.BytesIO(items[0][1])).size[0] if items else 0
        sets[f"{name} capture ({side} px)"] = items
    variants = {
        "hog": FaceSettings(detector="hog"),
        "cnn": FaceSettings(detector="cnn"),
        "cnn, self-check (320 px copy)": SELF_CHECK_FACES,
    }
    out: dict = {"images_per_set": n, "workers": 2, "rows": []}
    for set_name, items in sets.items():
        row: dict = {"images": set_name, "n": len(items)}
        for label, settings in variants.items():
            if label.startswith("cnn, self") and not set_name.startswith("photo"):
                continue
            t0 = time.perf_counter()
            res = embed_batch(items, settings, cache=None, workers=2)
            wall = time.perf_counter() - t0
            row[label] = {"s_per_image": wall / max(len(items), 1), "found": sum(r.ok for r in res)}
        row["cnn_over_hog"] = row["cnn"]["s_per_image"] / max(row["hog"]["s_per_image"], 1e-9)
        out["rows"].append(row)
        log(f"detectors on {set_name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if isinstance(v, dict)))
    # after every embed_batch above: dlib's cnn detector running in this process makes later batches
    # spawn their workers instead of forking them (models.fork_is_safe), which would slow those rows
    for row, items in zip(out["rows"], sets.values(), strict=True):
        row["cnn_engines"] = cnn_engines_side_by_side(items, FaceSettings(detector="cnn"))
        log(f"cnn detector on {row['images']}, dlib and fast: {row['cnn_engines']}")
    out["note"] = (
        "seconds per image = wall time of embed_batch(workers=2, no cache) / images: load, detect (with each "
        "detector's upsampling rule), landmarks and dlib's embedding; measured side by side in this run. "
        "cnn_engines: the cnn detector alone (detect_faces with its upsampling rule, one process), dlib's "
        "against the fast engine's (privrisk.mmodnet, one ONNX Runtime thread) on the same images, and "
        "whether every box was the same."
    )
    return out


def cnn_engines_side_by_side(items: list[tuple[str, bytes]], settings: FaceSettings) -> dict:
    """Seconds per image of dlib's cnn detector and of the fast engine's (privrisk.mmodnet) on the same
    images, as privrisk's detect_faces calls them (its shrinking and upsampling rule), one after the
    other in this process; and whether their boxes were all the same."""
    from privrisk.faces import detect_faces
    from privrisk.images import load_image
    from privrisk.models import DlibFaceModel, FastFaceModel

    dlib_model = load_face_model(dataclasses.replace(settings, engine="dlib"))
    fast_model = load_face_model(dataclasses.replace(settings, engine="fast"))
    if not isinstance(fast_model, FastFaceModel) or not isinstance(dlib_model, DlibFaceModel):
        return {"note": "the fast engine is not available here"}
    images = [load_image(data, name=name) for name, data in items]
    seconds, boxes = {}, {}
    for label, model in (("dlib", dlib_model), ("fast", fast_model)):
        model.detect(images[0].rgb[:64, :64], "cnn", 0)  # load the detector outside the timing
        t0 = time.perf_counter()
        boxes[label] = [detect_faces(model, image, settings) for image in images]
        seconds[label] = (time.perf_counter() - t0) / max(len(images), 1)
    return {
        "dlib_s_per_image": seconds["dlib"],
        "fast_s_per_image": seconds["fast"],
        "dlib_over_fast": seconds["dlib"] / max(seconds["fast"], 1e-9),
        "same_boxes": boxes["dlib"] == boxes["fast"],
        "faces": sum(len(b) for b in boxes["dlib"]),
        "load": os.getloadavg()[0],
    }


def ten_photos_of_one_person(subject: str = "066") -> tuple[list[tuple[str, bytes]], bytes]:
    """Ten photos of one person, made in memory from their neutral sample photo (re-framed, scaled
    from about 80 to 400 px face width, re-encoded), and their smiling photo as the stranger's snapshot."""
    import io

    from PIL import Image

    root = dataset_dir()
    base = Image.open(root / "neutral" / f"{subject}.jpg").convert("RGB")
    w, h = base.size
    photos = []
    for i in range(10):
        m = 0.04 * (i % 4)  # a little of each edge cut away, varying
        framed = base.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))
        scale = 0.2 + 0.08 * i
        framed = framed.resize((max(64, int(framed.width * scale)), max(64, int(framed.height * scale))))
        buf = io.BytesIO()
        framed.save(buf, "JPEG", quality=95 - 3 * i)
        photos.append((f"photo-{i + 1}.jpg", buf.getvalue()))
    return photos, (root / "smiling" / f"{subject}.jpg").read_bytes()


def bench_self_check_photos(level: str = "safe_at_1e6", subject: str = "066") -> dict:
    """The self-check "which of my photos give me away" on 10 photos of one person, as the app runs
    it once the server is warm (face model and sample world loaded; not timed): per photo, its
    findability and the least damaging protection at ``level``, all in memory."""
    from privrisk.photocheck import check_photos
    from privrisk.protect import LEVELS, Attacker, Search
    from privrisk.selfcheck import DistractorDraw, build_sample_world

    model = load_face_model()
    with tempfile.TemporaryDirectory() as tmp:
        world = build_sample_world(model, cache=EmbeddingCache(Path(tmp) / "e.sqlite"), distractors=DistractorDraw(n=0))
    # the person plays a visitor, who is not among the sample faces: their own sample photo would
    # otherwise count as a look-alike ahead of them
    keep = [s != subject for s in world.subjects]
    world = dataclasses.replace(
        world,
        vectors=world.vectors[np.array(keep)],
        subjects=[s for s, k in zip(world.subjects, keep) if k],
        images=[s for s, k in zip(world.images, keep) if k],
    )
    photos, snapshot = ten_photos_of_one_person(subject)
    seconds, rows = timed(lambda: check_photos(photos, snapshot, Search(world, Attacker(model)), level=level))
    per_photo = [
        {
            "face_width": r.before.face_width if r.before else None,
            "rank": r.before.rank if r.before else None,
            "rank1_upper": r.risk(LEVELS[level]) if r.before else None,
            "protection": (
                f"{r.protection.transform} {r.protection.strength}" if r.protection and r.protection.transform else None
            ),
            "settings_embedded": sum(c.detected is not None for c in r.protection.tried) if r.protection else 0,
            "error": r.error,
        }
        for r in rows
    ]
    return {
        "photos": len(photos),
        "subject": subject,
        "level": level,
        "seconds": seconds,
        "seconds_per_photo": seconds / len(photos),
        "cores": os.cpu_count(),
        "protected": sum(1 for r in rows if r.protection is not None and r.protection.image is not None),
        "settings_embedded": sum(p["settings_embedded"] for p in per_photo),
        "per_photo": per_photo,
    }


def bench_demo() -> dict:
    """The demo, cold (empty cache) then warm, with the fast engine and with dlib in this run (cold
    fast, cold dlib, warm fast, warm dlib, so a change in the machine's load falls on both); where
    the cold runs' time goes (from the demo's own progress lines); the other detectors' subset (dlib's
    cnn on 30 people's captures), which is outside the demo's budget, on its own line; and whether
    the two engines' results.json agree (same ranks, decisions and counts; floats within 1e-4)."""
    from privrisk.cli.experiments import DEMO_DETECTOR_PEOPLE

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for label, engine in (("cold", "fast"), ("cold", "dlib"), ("warm", "fast"), ("warm", "dlib")):
            config = tmp / f"{engine}.toml"  # the demo's own settings, with the engine
            config.write_text(f'[faces]\nengine = "{engine}"\n[offline]\ndetector_people = {DEMO_DETECTOR_PEOPLE}\n')
            env = {**os.environ, "PRIVRISK_CACHE_DIR": str(tmp / f"cache-{engine}")}
            run_dir = tmp / f"{engine}-{label}"
            cmd = [sys.executable, "-m", "privrisk.cli", "demo", "--out", str(run_dir), "--config", str(config)]
            load = os.getloadavg()[0]
            seconds, stages = _timed_lines(cmd, env, tmp)
            out[f"{engine}_{label}_s"] = seconds
            out[f"{engine}_{label}_load"] = [round(load, 1), round(os.getloadavg()[0], 1)]
            res = json.loads((run_dir / "results.json").read_text().replace(str(run_dir), "<out>"))
            out[f"{engine}_{label}_other_detectors_s"] = other = other_detectors_seconds(res)
            out[f"{engine}_{label}_budget_s"] = seconds - other
            if label == "cold":
                out[f"{engine}_cold_stages"] = stages
                results[engine] = res
            log(f"demo {engine} {label}: {seconds:.0f} s, of which the other detectors {other:.0f} s")
        diffs = compare_results(results["fast"], results["dlib"])
        diffs += compare_tables(tmp / "fast-cold", tmp / "dlib-cold")
    out["results_identical"] = not diffs
    out["results_n_differences"] = len(diffs)
    out["results_differences"] = diffs[:20]
    out["cold_s"], out["warm_s"] = out["fast_cold_s"], out["fast_warm_s"]  # the keys earlier runs used
    return out


def other_detectors_seconds(results: dict) -> float:
    """Wall time E2 spent on the detectors other than ``faces.detector`` (the cnn subset), summed over
    the levels: what the run records for each (``per_detector``), outside the demo's budget."""
    configured = results["config"]["faces"]["detector"]
    total = 0.0
    for level in results["experiments"]["offline_to_online"]["levels"].values():
        for det, view in ((level.get("per_detector") or {}).get("detectors") or {}).items():
            if det != configured and view.get("seconds") is not None:
                total += view["seconds"]
    return total


SUITE_LANES = {  # the lanes of docs/tests.md; "full suite" is the README's test command (all tests)
    "fast lane": ["-m", "not model and not browser and not slow"],
    "full suite": [],
}


def bench_suite() -> dict:
    """Test lanes timed side by side in this run: the fast lane (fake model: the engine plays no part),
    and the whole suite as the README's test command runs it (``pytest``, in parallel on the cores as
    pyproject.toml's addopts say) with ``--engine fast`` and with ``--engine dlib`` (tests/conftest.py),
    each with an empty cache folder; the 25 slowest tests of each, the worker count and the machine's
    load (1-minute load average) before and after."""
    out: dict = {"cores": os.cpu_count(), "lanes": {}}
    for lane, engine in (("fast lane", "fast"), ("full suite", "fast"), ("full suite", "dlib")):
        cmd = [sys.executable, "-m", "pytest", *SUITE_LANES[lane], "-p", "no:cacheprovider"]
        cmd += ["--durations=25", f"--engine={engine}"]
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.run(
                cmd, cwd=ROOT, env={**os.environ, "PRIVRISK_CACHE_DIR": tmp}, capture_output=True, text=True
            )
            seconds = time.perf_counter() - t0
        if proc.returncode not in (0, 1):  # pytest could not run the tests (usage, collection, interrupt)
            raise RuntimeError(f"{lane}, engine {engine}: pytest exited {proc.returncode}: {proc.stderr[-300:]}")
        lines = proc.stdout.splitlines()
        slowest = []
        for line in lines:
            m = re.match(r"^(\d+\.\d+)s (call|setup|teardown)\s+(\S+)", line)
            if m:
                slowest.append({"seconds": float(m[1]), "phase": m[2], "test": m[3]})
        workers = re.search(r"created: (\d+)/\d+ workers", proc.stdout)
        out["lanes"][f"{lane}, engine {engine}"] = {
            "command": "pytest " + " ".join(cmd[3:]),
            "seconds": seconds,
            "passed": proc.returncode == 0,
            "summary": lines[-1].strip("= ") if lines else proc.stderr[-200:],
            "workers": int(workers[1]) if workers else 1,
            "load": [round(load, 1), round(os.getloadavg()[0], 1)],
            "slowest": slowest,
        }
        log(f"{lane}, engine {engine}: {seconds:.0f} s ({out['lanes'][f'{lane}, engine {engine}']['summary']})")
    return out


def _timed_lines(cmd: list[str], env: dict, cwd: Path) -> tuple[float, list[dict]]:
    """Run ``cmd``; its wall time and each progress line on stderr with the seconds since the start."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stages = []
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("[privrisk]"):
            stages.append({"at_s": round(time.perf_counter() - t0, 2), "line": line[10:].strip()[:160]})
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return time.perf_counter() - t0, stages


_VOLATILE = {"engine", "versions", "privrisk_version"}  # besides timings (keys with seconds, or ending _s)


def compare_results(a, b, where: str = "") -> list[str]:
    """Where two results.json differ beyond float32 rounding: text, whole numbers and booleans must be
    equal, other numbers within 1e-4 (absolute, or relative for large ones); timings, paths and the
    engine setting are skipped."""
    key = where.rsplit(".", 1)[-1].split("[")[0]
    if key in _VOLATILE or "seconds" in key or key.endswith("_s"):
        return []
    if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) == {"far", "tar"}:
        return _compare_curves(a, b, where)
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in compare_results(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_results(x, y, f"{where}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-4 * max(1.0, abs(a)):
            return []
        return [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _compare_curves(a: dict, b: dict, where: str) -> list[str]:
    """A ROC stored as points picked by index among every distinct distance: float32 rounding makes
    different pairs tie exactly in the two runs, so the picks land one or two distances apart
    (docs/engine.md). Both are samples of one staircase when no decision changed: each point of
    ``a`` must then lie in the box spanned by two consecutive points of ``b`` (each coordinate
    between theirs), and the other way round. A pair that moved past another of the other kind
    bends the staircase and puts points off it."""
    fa, ta, fb, tb = (np.asarray(v, np.float64) for v in (a["far"], a["tar"], b["far"], b["tar"]))
    if len(fa) != len(fb):
        return [f"{where}: {len(fa)} vs {len(fb)} points"]

    eps = 1e-9  # rounding of the stored rates only: one pair off is a changed decision

    def off_curve(f, t, f2, t2):  # points (f, t) outside every box of consecutive points of (f2, t2)
        lo_f, hi_f = np.minimum(f2[:-1], f2[1:]) - eps, np.maximum(f2[:-1], f2[1:]) + eps
        lo_t, hi_t = np.minimum(t2[:-1], t2[1:]) - eps, np.maximum(t2[:-1], t2[1:]) + eps
        inside = (f[:, None] >= lo_f) & (f[:, None] <= hi_f) & (t[:, None] >= lo_t) & (t[:, None] <= hi_t)
        return np.flatnonzero(~inside.any(axis=1))

    bad = [(i, fa[i], ta[i]) for i in off_curve(fa, ta, fb, tb)] + [
        (i, fb[i], tb[i]) for i in off_curve(fb, tb, fa, ta)
    ]
    return [f"{where}: point {i} ({f:.5f}, {t:.5f}) is off the other run's curve" for i, f, t in bad[:3]]


def compare_tables(a: Path, b: Path) -> list[str]:
    """Where two runs' per-probe and accretion tables differ: every rank, decision, candidate order
    and profile must be equal; candidate distances (printed to 4 decimals) within 1.5e-4."""
    import csv

    diffs = []
    for name in ("probes.csv", "accretion.csv"):
        with open(a / name, newline="") as fa, open(b / name, newline="") as fb:
            rows_a, rows_b = list(csv.DictReader(fa)), list(csv.DictReader(fb))
        if len(rows_a) != len(rows_b):
            diffs.append(f"{name}: {len(rows_a)} vs {len(rows_b)} rows")
            continue
        for i, (ra, rb) in enumerate(zip(rows_a, rows_b)):
            for col in ra:
                x, y = ra[col].replace(str(a), "<out>"), rb[col].replace(str(b), "<out>")
                if col == "candidates" and x != y:
                    ca = [c.split(":") for c in x.split(";") if c]
                    cb = [c.split(":") for c in y.split(";") if c]
                    same = [s for s, _ in ca] == [s for s, _ in cb] and all(
                        abs(float(da) - float(db)) <= 1.5e-4 for (_, da), (_, db) in zip(ca, cb)
                    )
                    if not same:
                        diffs.append(f"{name} row {i} candidates: {x[:60]} vs {y[:60]}")
                elif x != y:
                    diffs.append(f"{name} row {i} {col}: {x[:40]!r} vs {y[:40]!r}")
    return diffs


def bench_engine(quick: bool) -> dict:
    """The fast engine against dlib on the same faces, side by side in this run: every sample photo
    and every E2 capture the demo makes (quick: one in ten), each embedded with both engines (same
    detector, so the same faces); the largest difference per component; the time of the embedding
    step (landmarks, chip, network) per face; and the network alone on the same chips."""
    import dlib
    import face_recognition

    from privrisk.experiment import load_config
    from privrisk.models import weights_path
    from privrisk.stages.offline import _captures, probe_sources
    from privrisk.stages.split import enrol, split_subjects

    cfg = load_config(None)
    fast_s = dataclasses.replace(cfg.faces, engine="fast")
    dlib_s = dataclasses.replace(cfg.faces, engine="dlib")
    fast_m, dlib_m = load_face_model(fast_s), load_face_model(dlib_s)
    if fast_m.engine != "fast":
        raise RuntimeError("the fast engine is not available here")
    root = dataset_dir()
    g = read_manifest(sample_manifest("neutral"), root)
    p = read_manifest(sample_manifest("smiling"), root)
    with tempfile.TemporaryDirectory() as tmp:  # the demo's split and probe boxes, to make its captures
        split = split_subjects(cfg, root, g, p, np.random.default_rng(cfg.seed), lambda _m: None)
        enrolled = enrol(cfg, split, Path(tmp), EmbeddingCache(Path(tmp) / "e.sqlite"), False, lambda _m: None)
        sources = probe_sources(cfg, enrolled)
        captures = [
            c
            for li, level in enumerate(cfg.offline.levels)
            for c in _captures(cfg, enrolled, sources, level, li, fast_m.model_id).items
        ]
    photos = [str(r.image) for r in (*g.rows, *p.rows)]
    items = photos + captures
    log(f"engine: {len(photos)} sample photos and {len(captures)} E2 captures")
    if quick:
        items = items[::10]
    out = {"photos": sum(isinstance(i, str) for i in items), "captures": sum(not isinstance(i, str) for i in items)}
    # Interleaved, batch by batch (captures are rendered once, then embedded by each engine), so a
    # change in the machine's load during the run weighs on both engines alike. Each engine embeds
    # the batch as embed_batch's workers do (embed_images: load, detect, then the batch's faces
    # encoded in one call; the fast engine runs their chips through its network together, dlib one
    # image at a time); the fast engine also image by image (embed_image), for the figure without batching.
    runs = (("fast", fast_s, fast_m, True), ("fast_single", fast_s, fast_m, False), ("dlib", dlib_s, dlib_m, True))
    seconds = dict.fromkeys((r[0] for r in runs), 0.0)
    worst, n_faces, same_boxes, diffs = 0.0, 0, 0, []
    load = os.getloadavg()[0]
    for start in range(0, len(items), BATCH_IMAGES):
        chunk = [item if isinstance(item, str) else item.render(dlib_m) for item in items[start : start + BATCH_IMAGES]]
        got = {}
        for name, settings, model, together in runs:
            got[name] = (
                embed_images(chunk, model, settings)
                if together
                else [embed_image(data, model, settings) for data in chunk]
            )
            seconds[name] += sum(r.seconds.get("embed", 0.0) for r in got[name])
        for a, a1, b in zip(got["fast"], got["fast_single"], got["dlib"], strict=True):
            if [f.box for f in a.faces] == [f.box for f in b.faces] == [f.box for f in a1.faces]:
                same_boxes += 1
                for fa, fa1, fb in zip(a.faces, a1.faces, b.faces):
                    d = float(
                        max(np.abs(fa.embedding - fb.embedding).max(), np.abs(fa1.embedding - fb.embedding).max())
                    )
                    worst = max(worst, d)
                    diffs.append(d)
                    n_faces += 1
        if start % 200 < BATCH_IMAGES:
            log(f"engine: {start}/{len(items)} images, {n_faces} faces, max diff {worst:.1e}")
    out["fast_embed_s"], out["dlib_embed_s"] = seconds["fast"], seconds["dlib"]
    out["fast_single_embed_s"] = seconds["fast_single"]
    out.update(
        images=len(items),
        images_with_same_faces=same_boxes,
        faces_compared=n_faces,
        max_abs_diff=worst,
        median_max_abs_diff=float(np.median(diffs)) if diffs else None,
        batch_images=BATCH_IMAGES,
        fast_embed_ms_per_face=1e3 * out["fast_embed_s"] / max(n_faces, 1),
        fast_single_embed_ms_per_face=1e3 * out["fast_single_embed_s"] / max(n_faces, 1),
        dlib_embed_ms_per_face=1e3 * out["dlib_embed_s"] / max(n_faces, 1),
        load=[round(load, 1), round(os.getloadavg()[0], 1)],
    )
    out["embed_speedup"] = out["dlib_embed_s"] / out["fast_embed_s"]
    out["embed_speedup_single"] = out["dlib_embed_s"] / out["fast_single_embed_s"]

    # the network alone, on the same chips: dlib's compute_face_descriptor vs the ONNX Runtime session
    chips = []
    for path in photos[: 20 if quick else 50]:
        img = face_recognition.load_image_file(path)
        boxes = dlib_m.detect(img, "hog", 1)[:1]
        for shape in face_recognition.api._raw_face_landmarks(img, boxes, model="large"):
            chips.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
    rec = dlib.face_recognition_model_v1(weights_path())
    descriptor = fast_m._descriptor
    descriptor(np.stack(chips[:2]))  # the session is made
    t_dlib = t_fast = t_fast1 = float("inf")
    for _ in range(3):  # alternating rounds, best of each
        t, ref = timed(lambda: np.array(rec.compute_face_descriptor(chips), np.float32))
        t_dlib = min(t_dlib, t)
        t, mine = timed(lambda: descriptor(np.stack(chips)))  # in batches of 16
        t_fast = min(t_fast, t)
        t, _ = timed(lambda: [descriptor(chip[None]) for chip in chips])  # one chip at a time
        t_fast1 = min(t_fast1, t)
    out.update(
        network_chips=len(chips),
        network_dlib_ms_per_face=1e3 * t_dlib / len(chips),
        network_fast_ms_per_face=1e3 * t_fast / len(chips),
        network_fast_bs1_ms_per_face=1e3 * t_fast1 / len(chips),
        network_speedup=t_dlib / t_fast,
        network_max_abs_diff=float(np.abs(ref - mine).max()),
        onnxruntime_threads=1,
    )
    return out


def targets(res: dict) -> list[dict]:
    by = {r["gallery_size"]: r for r in res["search"]}
    rows = []

    def add(name, value, goal, ok, detail):
        rows.append(
            {"target": name, "measured": value, "goal": goal, "met": None if ok is None else bool(ok), "detail": detail}
        )

    if 100_000 in by:
        r = by[100_000]
        ratio = r["face_distance_loop_s"] / r["flat_s"]
        add(
            "exact FAISS vs face_distance loop at 10^5",
            f"{ratio:,.0f}x",
            ">= 100x",
            ratio >= 100,
            f"{r['face_distance_loop_s']:.1f} s vs {r['flat_s']:.3f} s for {N_QUERIES} queries",
        )
    big = max(by)
    r = by[big]
    approx = [(k, r[f"{k}_qps"], r[f"{k}_recall1"]) for k in ("ivf", "hnsw") if f"{k}_qps" in r]
    good = [a for a in approx if a[2] >= 0.99 and a[1] >= 1000]
    best = max(good or approx, key=lambda a: (a[2] >= 0.99, a[1]))
    add(
        f"approximate index at {big:,}",
        f"{best[0]}: {best[1]:,.0f} q/s, recall@1 {best[2]:.3f}",
        "recall@1 >= 0.99 and >= 1,000 q/s" + ("" if big >= 1_000_000 else " (at 10^6 in the full run)"),
        bool(good),
        ", ".join(f"{k}: {q:,.0f} q/s, recall@1 {rc:.3f}" for k, q, rc in approx),
    )
    bound = r["flat_bytes_per_query"] / res["memory_bandwidth_bytes_s"]
    ratio = r["flat_single_query_s"] / bound
    add(
        f"exact single query at {big:,} vs memory-bandwidth bound",
        f"{ratio:.2f}x the bound",
        "<= 3x",
        ratio <= 3,
        f"{r['flat_single_query_s'] * 1e3:.1f} ms; scanning {r['flat_bytes_per_query'] / 1e6:.0f} MB at "
        f"{res['memory_bandwidth_bytes_s'] / 1e9:.1f} GB/s takes {bound * 1e3:.1f} ms",
    )
    e = res["embedding"]
    ratio = e["naive_s"] / e["ours_cold_s"]
    add(
        "batch embedding (cold cache) vs naive loop",
        f"{ratio:.2f}x",
        ">= 2.3x, same rank-1",
        ratio >= 2.3 and e["naive_rank1"] == e["ours_rank1"],
        f"{e['images']} images: {e['naive_img_per_s']:.1f} vs {e['ours_cold_img_per_s']:.1f} img/s; warm "
        f"{e['ours_warm_img_per_s']:.0f} img/s; rank-1 {e['naive_rank1']} vs {e['ours_rank1']}",
    )
    if "compressed" in res:
        c = res["compressed"]
        best = max((c[k] for k in ("nprobe16", "nprobe64")), key=lambda v: v["recall10"])
        add(
            f"compressed sharded gallery of {c['n']:,} on disk",
            f"recall@10 {best['recall10']:.3f}",
            "recall@10 >= 0.95",
            best["recall10"] >= 0.95,
            f"{c['shards']} IVF-PQ shards, {c['index_files_mb']:,.0f} MB of index ({c['memory_per_million_faces_mb']:.0f} MB "
            f"per 10^6 faces) + {c['raw_vectors_mb']:,.0f} MB raw vectors on disk; built in {c['build_s']:.0f} s; "
            f"{best['qps']:,.0f} q/s; while searching, private memory grew {best['private_memory_growth_mb']:,.0f} MB "
            f"and {best['mapped_file_pages_mb']:,.0f} MB of mapped file pages were resident",
        )
    for label, e2e in res["end_to_end"].items():
        last = e2e["by_size"][-1]
        add(
            f"end to end per probe at {last['gallery_size']:,} ({label})",
            f"{last['seconds_per_probe']:.3f} s",
            "<= 0.06 s at 10^6 with the defaults",
            last["seconds_per_probe"] <= 0.06,
            f"load+detect {e2e['detect_s']:.3f} + embed {e2e['embed_s']:.3f} + search {last['search_s']:.3f} s "
            f"({last['index']}, recall@1 {last.get('recall1', 1.0):.3f}); faces found {e2e['faces_found']}/{e2e['probes']}",
        )
    if "engine" in res:
        nan = float("nan")  # figures a results file from before they were measured does not have
        e = {
            "batch_images": 1,
            "fast_single_embed_ms_per_face": nan,
            "embed_speedup_single": nan,
            "network_fast_bs1_ms_per_face": nan,
            "load": ["?", "?"],
            **res["engine"],
        }
        add(
            "embedding engine: fast vs dlib, same faces",
            f"{e['embed_speedup']:.1f}x per face, max diff {e['max_abs_diff']:.1e}",
            ">= 10x per face (the whole embedding step: landmarks, chip, network), >= 1,000 faces, max abs diff <= 1e-4",
            e["embed_speedup"] >= 10 and e["faces_compared"] >= 1000 and e["max_abs_diff"] <= 1e-4,
            f"whole embedding step (dlib's 68-point landmarks and chip, which both engines share, and the network), "
            f"images in batches of {e['batch_images']} as the embedding workers run them: dlib "
            f"{e['dlib_embed_ms_per_face']:.1f} vs {e['fast_embed_ms_per_face']:.1f} ms per face; one image at a "
            f"time {e['fast_single_embed_ms_per_face']:.1f} ms ({e['embed_speedup_single']:.1f}x); load "
            f"{e['load'][0]}-{e['load'][1]}; {e['faces_compared']} faces compared in {e['images']} images "
            f"({e['photos']} sample photos, {e['captures']} E2 captures), {e['images_with_same_faces']} with the same "
            f"faces found; largest difference {e['max_abs_diff']:.1e}, median per face {e['median_max_abs_diff']:.1e}. "
            f"The network alone on the same {e['network_chips']} chips: dlib {e['network_dlib_ms_per_face']:.1f} vs "
            f"{e['network_fast_ms_per_face']:.1f} ms per face in batches of 16, "
            f"{e['network_fast_bs1_ms_per_face']:.1f} ms one at a time ({e['network_speedup']:.0f}x batched; "
            f"ONNX Runtime, {e['onnxruntime_threads']} thread)",
        )
    if "demo" in res and "dlib_cold_s" in res["demo"]:
        d = res["demo"]
        same = (
            "identical results.json (ranks, decisions, counts; floats within 1e-4)"
            if d["results_identical"]
            else ("results.json differ: " + "; ".join(d["results_differences"][:3]))
        )
        budget = "fast_cold_budget_s" in d  # runs before the cnn subset was set apart had no such key
        cold, warm = (d.get(f"fast_{x}_budget_s", d[f"fast_{x}_s"]) for x in ("cold", "warm"))
        dlib_cold, dlib_warm = (d.get(f"dlib_{x}_budget_s", d[f"dlib_{x}_s"]) for x in ("cold", "warm"))
        apart = (
            f"; the cnn subset, outside the budget: {d['fast_cold_other_detectors_s']:.0f} s more (dlib engine "
            f"{d['dlib_cold_other_detectors_s']:.0f} s); load average {d['fast_cold_load']} / {d['dlib_cold_load']}"
            if budget
            else ""
        )
        add(
            "demo, cold (empty cache)" + (", without the cnn subset" if budget else ""),
            f"{cold:.0f} s",
            "<= 40 s",
            cold <= 40,
            f"engine dlib in this run: {dlib_cold:.0f} s ({dlib_cold / cold:.2f}x){apart}; {same}",
        )
        add(
            "demo, warm",
            f"{warm:.0f} s",
            "<= 8 s",
            warm <= 8,
            f"engine dlib in this run: {dlib_warm:.0f} s",
        )
    if "suite" in res:
        lanes = res["suite"]["lanes"]
        fast_lane, sf, sd = (
            lanes.get(k) for k in ("fast lane, engine fast", "full suite, engine fast", "full suite, engine dlib")
        )
        if fast_lane:
            top = ", ".join(f"{t['test'].split('::')[-1]} {t['seconds']:.0f} s" for t in fast_lane["slowest"][:3])
            add(
                "fast lane",
                f"{fast_lane['seconds']:.0f} s",
                "<= 45 s",
                fast_lane["seconds"] <= 45,
                f"{fast_lane['summary']}; slowest: {top}; load average {fast_lane['load']}",
            )
        if sf and sd:
            top = ", ".join(f"{t['test'].split('::')[-1]} {t['seconds']:.0f} s" for t in sf["slowest"][:3])
            add(
                "full suite (the README's test command)",
                f"{sf['seconds']:.0f} s",
                "<= 6 min",
                sf["seconds"] <= 360 and sf["passed"],
                f"engine dlib in this run: {sd['seconds']:.0f} s ({sd['seconds'] / sf['seconds']:.2f}x); "
                f"{sf.get('workers', 1)} workers; {sf['summary']} / {sd['summary']}; slowest: {top}; "
                f"load average {sf['load']} / {sd['load']}",
            )
    if "self_check_photos" in res:
        sc = res["self_check_photos"]
        add(
            f"self-check of {sc['photos']} photos ({sc['level']})",
            f"{sc['seconds']:.1f} s",
            "< 30 s on 2 cores",
            sc["seconds"] < 30,
            f"{sc['seconds_per_photo']:.1f} s per photo, {sc['settings_embedded']} transformed copies embedded, "
            f"{sc['protected']} protected copies; {sc['cores']} cores",
        )
    return rows


def _merge_section(out: Path, previous: dict, name: str, section: dict, date: str) -> None:
    """``--only``: one section re-run into the existing results, dated, with the targets and
    ``latest.md`` recomputed from the merged whole."""
    previous[name] = section
    previous.setdefault("section_dates", {})[name] = date
    previous["targets"] = targets(previous)
    (out / "latest.json").write_text(json.dumps(previous, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(previous))
    print(markdown(previous))


def markdown(res: dict) -> str:
    rerun = res.get("section_dates") or {}
    lines = [
        f"privrisk benchmarks, {res['date']}, {res['machine']} ({'quick' if res['quick'] else 'full'} run)",
        *(
            ["", "Sections re-run alone since (`--only`): " + ", ".join(f"{k} {v}" for k, v in sorted(rerun.items()))]
            if rerun
            else []
        ),
        "",
        "| target | measured | goal | met | detail |",
        "|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        lines.append(
            f"| {t['target']} | {t['measured']} | {t['goal']} | {'-' if t['met'] is None else 'yes' if t['met'] else '**no**'} | {t['detail']} |"
        )
    lines += [
        "",
        "| gallery | face_distance loop | numpy | FAISS flat | IVF (q/s, R@1, R@10) | HNSW (q/s, R@1, R@10) "
        "| flat index MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["search"]:

        def approx(k):
            return (
                f"{r[k + '_qps']:,.0f}, {r[k + '_recall1']:.3f}, {r[k + '_recall10']:.3f}"
                if k + "_qps" in r
                else "not run"
            )

        lines.append(
            f"| {r['gallery_size']:,} | {r['face_distance_loop_s']:.2f} s | {r['numpy_bruteforce_s']:.2f} s | "
            f"{r['flat_s']:.3f} s | {approx('ivf')} | {approx('hnsw')} | {r['flat_index_mb']:.0f} |"
        )
    lines.append(
        f"\nTimes are for {N_QUERIES} queries, top-10. The face_distance loop is extrapolated where noted in "
        "latest.json. Memory is in latest.json (serialized index size and RSS growth)."
    )
    if "ray" in res:
        r = res["ray"]
        lines.append(
            f"\nRay, {r['images']} sample photos, cold cache: 1 worker {r['workers1_img_per_s']:.1f} img/s, "
            f"2 workers {r['workers2_img_per_s']:.1f} img/s ({r['speedup']:.2f}x)."
        )
    if "detectors" in res:
        lines += [
            "",
            "Face detectors on 2 cores, seconds per image (faces found), side by side in this run:",
            "",
            "| images | n | hog | cnn | cnn / hog | cnn, self-check (320 px copy) |",
            "|---|---|---|---|---|---|",
        ]
        for r in res["detectors"]["rows"]:

            def cell(k, r=r):
                return f"{r[k]['s_per_image']:.3f} s ({r[k]['found']})" if k in r else "-"

            lines.append(
                f"| {r['images']} | {r['n']} | {cell('hog')} | {cell('cnn')} | {r['cnn_over_hog']:.0f}x | "
                f"{cell('cnn, self-check (320 px copy)')} |"
            )
        engines = [r for r in res["detectors"]["rows"] if "dlib_s_per_image" in r.get("cnn_engines", {})]
        if engines:
            lines += [
                "",
                "The cnn detector alone (its upsampling rule, one process), dlib's against the fast engine's "
                "(privrisk.mmodnet), on the same images in this run:",
                "",
                "| images | n | dlib | fast | dlib / fast | same boxes | load |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in engines:
                e = r["cnn_engines"]
                lines.append(
                    f"| {r['images']} | {r['n']} | {e['dlib_s_per_image']:.3f} s | {e['fast_s_per_image']:.3f} s | "
                    f"{e['dlib_over_fast']:.1f}x | {'yes' if e['same_boxes'] else 'NO'} ({e['faces']} faces) | "
                    f"{e['load']:.1f} |"
                )
    if "demo" in res:
        d = res["demo"]
        line = f"\nDemo wall time: cold {d['cold_s']:.0f} s, warm {d['warm_s']:.0f} s"
        if "dlib_cold_s" in d:
            line += f" (engine dlib, same run: cold {d['dlib_cold_s']:.0f} s, warm {d['dlib_warm_s']:.0f} s)"
        lines.append(line + ".")
        if "fast_cold_other_detectors_s" in d:
            lines.append(
                f"\nThe cnn subset (E2's other detector on 30 people, outside the demo's budget): "
                f"{d['fast_cold_other_detectors_s']:.0f} s of the fast engine's cold run, "
                f"{d['dlib_cold_other_detectors_s']:.0f} s of dlib's; without it, cold {d['fast_cold_budget_s']:.0f} s "
                f"(dlib {d['dlib_cold_budget_s']:.0f} s)."
            )
        for stage in d.get("fast_cold_stages", []):
            lines.append(f"- {stage['at_s']:.1f} s: {stage['line']}")
    if "suite" in res:
        lines.append("\n| test lane | seconds | result | load average | slowest |\n|---|---|---|---|---|")
        for name, lane in res["suite"]["lanes"].items():
            top = "; ".join(f"{t['test']} {t['seconds']:.1f} s" for t in lane["slowest"][:5])
            lines.append(f"| {name} | {lane['seconds']:.0f} | {lane['summary']} | {lane['load']} | {top} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (under 2 minutes)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    ap.add_argument(
        "--only",
        choices=["compressed", "ray", "end_to_end", "demo", "self_check_photos", "detectors", "engine", "suite"],
        help="run one section and merge it into the existing latest.json",
    )
    ap.add_argument("--compressed-size", type=int, default=10_000_000, help="faces in the compressed gallery")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    rng = np.random.default_rng(0)
    res = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": library_versions(),
    }
    out = Path(args.out)
    if args.only in ("engine", "demo", "suite"):  # sections that need neither the bandwidth nor the distractors
        previous = json.loads((out / "latest.json").read_text())
        log(f"only: {args.only}")
        run = {"engine": lambda: bench_engine(args.quick), "demo": bench_demo, "suite": bench_suite}[args.only]
        _merge_section(out, previous, args.only, run(), res["date"])
        return 0
    log("memory bandwidth")
    res["memory_bandwidth_bytes_s"] = memory_bandwidth()
    log("sample embeddings and the distractor model")
    with tempfile.TemporaryDirectory() as tmp:
        emb = sample_embeddings(EmbeddingCache(Path(tmp) / "e.sqlite"))
    model = DistractorModel.fit(np.vstack([emb["neutral"][0], emb["smiling"][0]]))
    if args.only:
        previous = json.loads((out / "latest.json").read_text())
        log(f"only: {args.only}")
        if args.only == "end_to_end":
            section = bench_end_to_end(previous["search"])
        elif args.only == "self_check_photos":
            section = bench_self_check_photos()
        elif args.only == "detectors":
            section = bench_detectors()
        else:
            section = bench_compressed(model, args.compressed_size, rng) if args.only == "compressed" else bench_ray()
        _merge_section(out, previous, args.only, section, res["date"])
        return 0
    res["search"] = []
    for size in [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]:
        log(f"search at {size:,}")
        res["search"].append(bench_search(size, emb["neutral"][0], model, rng, args.quick))
    log("embedding throughput")
    res["embedding"] = bench_embedding(args.quick)
    log("embedding engine: fast vs dlib on the same faces")
    res["engine"] = bench_engine(args.quick)
    log("end to end")
    res["end_to_end"] = bench_end_to_end(res["search"])
    log("self-check of 10 photos")
    res["self_check_photos"] = bench_self_check_photos()
    log("face detectors side by side (hog, cnn) on 2 cores")
    res["detectors"] = bench_detectors(4 if args.quick else 10)
    if not args.quick:
        log(f"compressed gallery of {args.compressed_size:,}")
        res["compressed"] = bench_compressed(model, args.compressed_size, rng)
        log("Ray cluster on loopback, 1 and 2 workers")
        res["ray"] = bench_ray()
        log("demo, cold and warm")
        res["demo"] = bench_demo()
        log("test lanes, engine fast and dlib")
        res["suite"] = bench_suite()
    res["targets"] = targets(res)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    res["seconds_total"] = time.perf_counter() - t_start
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(res))
    print(markdown(res))
    log(f"done in {res['seconds_total']:.0f} s: {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
