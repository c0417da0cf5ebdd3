"""Measure what extra photos of one person add (E2's multi-shot fusion, 1 to N shots).

The exposure score needs the best of n photos of one face, measured rather than assumed
independent. E2 fuses several captures of a person by taking, for every gallery subject, the best
distance over the captures. This script repeats E2's captures with the experiment's seeds (the
first ``shots`` are E2's own captures, so they come from the embedding cache) and adds more, then
reports, per capture level and per number of captures j, the share of mated persons found at rank 1
and within the top 10 of the real gallery, averaged over every subset of j captures, with a 95%
range from a bootstrap over persons, and the gain in log-odds over one capture with its paired
bootstrap range (``<metric>_gain_range``).

    flock /tmp/privrisk-heavy.lock python3 -m uv run --locked python scripts/measure_multi_photo.py \
        --out sample_data/multi_photo_gain.json

Writes JSON that ``privrisk.exposure.multi_photo.MultiPhotoGain`` reads, with its inputs recorded
(``inputs``: :func:`privrisk.exposure.multi_photo.multi_photo_inputs`) and, per level, the counts with E2's own
captures (``e2_own_captures``: the first ``shots_in_e2`` captures, as the demo fuses them; the
``rankK`` lists average over every subset of j captures, so at j = 3 they differ from the demo's).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

from privrisk.captures import CaptureSource, make_captures
from privrisk.embeddings import EmbeddingCache, EmbedRun, default_cache_path, embed_batch
from privrisk.experiment import load_config
from privrisk.exposure.multi_photo import multi_photo_inputs
from privrisk.gallery import Gallery, build_gallery
from privrisk.images import load_image
from privrisk.manifest import read_manifest
from privrisk.models import dlib_model_id, library_versions
from privrisk.samples import dataset_dir, sample_manifest
from privrisk.stages.common import embed_rows, rank_against


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--work", default="/tmp/privrisk-multi-photo")
    args = ap.parse_args()
    cfg = load_config(None)
    cache = EmbeddingCache(default_cache_path())
    rng = np.random.default_rng(cfg.seed)
    root = Path(cfg.dataset_dir) if cfg.dataset_dir else dataset_dir()
    g_manifest = read_manifest(cfg.gallery_manifest or sample_manifest("neutral"), root)
    p_manifest = read_manifest(cfg.probe_manifest or sample_manifest("smiling"), root)
    common = sorted(set(g_manifest.subjects) & set(p_manifest.subjects))
    n_unseen = int(round(cfg.unseen_share * len(common)))
    unseen = set(rng.permutation(common)[:n_unseen].tolist())  # the experiment's split, same seed
    rows = tuple(r for r in g_manifest.rows if r.subject_id not in unseen)
    gdir = Path(args.work) / "gallery"
    if gdir.exists():
        import shutil

        shutil.rmtree(gdir)
    build_gallery(
        dataclasses.replace(g_manifest, rows=rows),
        gdir,
        face_settings=cfg.faces,
        settings=cfg.gallery,
        run=EmbedRun(cache=cache, progress=False),
    )
    with Gallery.open(gdir) as gallery:
        gal_ids, gal_vecs = gallery.embeddings()
        meta = gallery.faces()
    gal_subjects = [meta[int(i)]["subject_id"] for i in gal_ids]
    names = sorted(set(gal_subjects) | set(p_manifest.subjects))
    code = {s: i for i, s in enumerate(names)}
    gal_codes = np.array([code[s] for s in gal_subjects], np.int64)
    probes = embed_rows(p_manifest.rows, cfg, cache, False)
    mated = np.array([s in set(gal_subjects) for s in probes.subjects])
    truth = np.array([code[s] for s in probes.subjects])
    box_of = dict(zip(probes.names, probes.boxes))
    out = {
        "source": "scripts/measure_multi_photo.py (E2 captures, best distance over j captures, real gallery)",
        "seed": cfg.seed,
        "versions": library_versions(),
        "inputs": multi_photo_inputs(cfg, args.shots, args.boot),
        "gallery_size": int(len(set(gal_subjects))),
        "shots_in_e2": cfg.offline.shots,
        "n_boot": args.boot,
        "note": (
            "captures are re-degraded copies of one studio photo, so they differ less than real photos "
            "of a person; the gain measured here is likely a lower bound on what distinct photos add"
        ),
        "levels": {},
    }
    n_shots = args.shots
    for li, level in enumerate(cfg.offline.levels):
        items, owners, shot_no = [], [], []
        for pi, name in enumerate(probes.names):
            if not mated[pi]:
                continue
            image = load_image(name, max_side=cfg.faces.max_side)
            box = tuple(int(round(v * image.scale)) for v in box_of[name])
            # the experiment's own capture recipes (same seeds, landmark-placed occluders), so the
            # first shots are E2's captures and come from the same cache
            source = CaptureSource(name, image.sha256, box, cfg.faces.max_side)
            shots = make_captures(source, level, (cfg.seed, li, pi), n_shots, cfg.faces, dlib_model_id())
            items += shots
            owners += [pi] * len(shots)
            shot_no += list(range(len(shots)))
        res = embed_batch(items, cfg.faces, cache=cache, progress=False)
        persons = [pi for pi in range(len(probes.names)) if mated[pi]]
        pos = {pi: k for k, pi in enumerate(persons)}
        # distance of each capture to every gallery subject (inf where no face was detected)
        full = np.full((len(persons), n_shots, len(names)), np.inf, np.float32)
        ok = [j for j, r in enumerate(res) if r.ok]
        if ok:
            vecs = np.array([res[j].faces[0].embedding for j in ok], np.float32)
            c, d, _ = rank_against(gal_vecs, gal_codes, vecs, len(set(gal_subjects)))
            for row, j in enumerate(ok):
                valid = c[row] >= 0
                full[pos[owners[j]], shot_no[j], c[row][valid]] = d[row][valid]
        t = np.array([truth[pi] for pi in persons])
        per_j = {}
        e2_own: dict = {}
        for j in range(1, n_shots + 1):
            hit1, hit10 = np.zeros(len(persons)), np.zeros(len(persons))
            subsets = list(itertools.combinations(range(n_shots), j))
            for sub in subsets:
                fused = full[:, list(sub), :].min(axis=1)  # (persons, subjects)
                own = fused[np.arange(len(persons)), t]
                closer = (fused < own[:, None]).sum(axis=1)
                found = np.isfinite(own)
                hit1 += found & (closer == 0)
                hit10 += found & (closer < 10)
            per_j[j] = (hit1 / len(subsets), hit10 / len(subsets))
            if j == cfg.offline.shots:  # E2's own captures (the first shots), as the demo fuses them
                fused = full[:, list(range(j)), :].min(axis=1)
                own = fused[np.arange(len(persons)), t]
                closer = (fused < own[:, None]).sum(axis=1)
                e2_own = {
                    "rank1": int((np.isfinite(own) & (closer == 0)).sum()),
                    "rank10": int((np.isfinite(own) & (closer < 10)).sum()),
                }
        boot = np.random.default_rng([cfg.seed, 99, li]).integers(0, len(persons), (args.boot, len(persons)))
        entry = {
            "shots": list(range(1, n_shots + 1)),
            "n_persons": len(persons),
            "e2_own_captures": {**e2_own, "shots": cfg.offline.shots, "n": len(persons)},
        }
        for key, idx in (("rank1", 0), ("rank10", 1)):
            vals = [float(per_j[j][idx].mean()) for j in range(1, n_shots + 1)]
            rng_ = [
                [float(np.quantile(per_j[j][idx][boot].mean(1), q)) for q in (0.025, 0.975)]
                for j in range(1, n_shots + 1)
            ]
            entry[key], entry[f"{key}_range"] = vals, rng_
            # the gain itself, paired over the same resampled people: logit P(j) - logit P(1)
            base = np.clip(per_j[1][idx][boot].mean(1), 1e-6, 1 - 1e-6)
            gains = []
            for j in range(1, n_shots + 1):
                pj = np.clip(per_j[j][idx][boot].mean(1), 1e-6, 1 - 1e-6)
                g = np.log(pj / (1 - pj)) - np.log(base / (1 - base))
                gains.append([float(np.quantile(g, 0.025)), float(np.quantile(g, 0.975))])
            entry[f"{key}_gain_range"] = gains
        out["levels"][level.name] = entry
        print(
            level.name, {k: np.round(v, 3).tolist() for k, v in entry.items() if k in ("rank1", "rank10")}, flush=True
        )
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
