"""E4, what protects me: each mated person's gallery photo (their public photo) transformed at every
strength of every transform (:mod:`privrisk.transforms`), and searched again by the stranger's
snapshot, E2's fused captures at one level (default the exposure score's "street").

Identification is measured among the real gallery (everyone else's photos unchanged) and taken to
platform scale with the tail models' closed form, never with new searches; each person is scored by
the scaling study's fold model that never saw them. A transformed photo whose face the detector
misses is encoded at the face's known box (judged conservatively); "with this detector" is the view
where such a photo never enters the gallery. A seeded subset of people also gets the black-box
adversarial cloak. Settings: :class:`privrisk.config.CountermeasureSettings` (opt-in); statistics
and summaries: :mod:`.countermeasure_stats`; the product for one person's photos is
:mod:`privrisk.protect`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import tailmodel
from ..config import CountermeasureSettings, ExperimentConfig, FaceSettings, to_dict
from ..degrade import encode_png
from ..embeddings import EmbeddingCache, EmbedResult, artifact_key, embed_batch, file_sha256
from ..errors import ConfigError, ImageError
from ..faces import face_landmarks
from ..gallery import Gallery
from ..images import load_image
from ..index import pairwise_distances
from ..metrics import clopper_pearson, proportion_interval
from ..models import Box, FaceModel, as_box, embedder_id, load_face_model
from ..protect import face_overlap
from ..transforms import TRANSFORMS, Cloak, apply_transform, cloak, image_quality
from .common import Log
from .countermeasure_stats import (
    hub_matrix,
    hubness,
    notes,
    only_hidden,
    paired_test,
    ranking_at_equal_ssim,
    rate,
    summarise,
)
from .offline import FusedLevel
from .online import OnlineResult
from .scaling import held_out_tail_models
from .split import Enrolled

__all__ = [
    "CountermeasuresResult",
    "Snapshots",
    "GalleryPhotos",
    "TailModels",
    "E4Run",
    "E4Inputs",
    "run_countermeasures",
    "run_on_experiment",
]

#: bump when a change here alters the pixels of a transformed photo (cached embeddings are keyed by it)
E4_VERSION = "1"
_last_source: dict = {}  # per process: the last photo decoded (a person's settings arrive together)


@dataclass(frozen=True)
class TransformedPhoto:
    """A gallery photo at one transform and strength, made where it is embedded (picklable; cached by
    everything the pixels depend on)."""

    name: str
    source: str
    source_sha256: str
    box: Box  # in the source file's pixels
    transform: str
    strength: float | str  # a number, or an occluder's name
    max_side: int
    cache_key: str = field(compare=False)

    def image(self, model: FaceModel | None) -> tuple[np.ndarray, np.ndarray, Box]:
        """(original, transformed, box) in the loaded photo's pixels."""
        box = self.loaded_box()
        img = _last_source["image"]
        marks = None
        if self.transform == "occlude" and model is not None:
            key = ("marks", box)
            if key not in _last_source:
                _last_source[key] = face_landmarks(model, img.rgb, box) or None
            marks = _last_source[key]
        return img.rgb, apply_transform(img.rgb, box, self.transform, self.strength, landmarks=marks), box

    def loaded_box(self) -> Box:
        """The face's box in the loaded photo's pixels (the photo as decoded, at most ``max_side``)."""
        self._load()
        return as_box(v * _last_source["image"].scale for v in self.box)

    def _load(self) -> None:
        if _last_source.get("source") != self.source:
            img = load_image(self.source, max_side=self.max_side)
            _last_source.clear()
            _last_source.update(source=self.source, image=img)

    def render(self, model: FaceModel) -> bytes:
        return encode_png(self.image(model)[1])


@dataclass(frozen=True)
class CountermeasuresResult:
    """E4's results: one row per transform and strength (plus the untransformed baseline), a summary
    per transform and the ranking at equal SSIM. :meth:`to_dict` is ``experiments.countermeasures``."""

    settings: dict
    snapshot_level: str
    n_persons: int
    n_gallery: int
    baseline: dict
    rows: tuple
    summary: dict
    ranking: dict
    notes: tuple
    cloak: dict | None = None

    def to_dict(self) -> dict:
        return {
            "snapshot_level": self.snapshot_level,
            "n_persons": self.n_persons,
            "n_gallery": self.n_gallery,
            "baseline": self.baseline,
            "settings": [dict(r) for r in self.rows],
            "transforms": self.summary,
            "ranking_at_equal_ssim": self.ranking,
            "notes": list(self.notes),
            "cloak": self.cloak,
            "config": self.settings,
        }


# --- what E4 takes ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Snapshots:
    """The stranger's snapshots: shot vectors, each shot's person (``owner``, an index into
    ``person_labels``, each person's gallery label; several shots are fused by the best distance, as
    E2 does), and each shot's cross-fit fold when held-out tail models score them."""

    vectors: np.ndarray
    owner: np.ndarray
    person_labels: np.ndarray | None = None
    fold: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class GalleryPhotos:
    """The real gallery: face vectors, their labels, and each face's (path, box in the file's pixels)."""

    vectors: np.ndarray
    labels: np.ndarray
    photos: list


@dataclass(frozen=True, eq=False)
class TailModels:
    """The tail models that take rank-1 to platform scale in closed form: ``models`` fitted on
    everyone, and optionally ``held_out`` (per kind, {fold: the model that never saw the fold}), which
    then score each person (the snapshots carry each shot's fold)."""

    models: list
    held_out: list[dict] | None = None


@dataclass(frozen=True, eq=False)
class E4Run:
    """How E4 runs: the face settings and model (None: loaded from the settings), the embedding
    cache and workers, the seed, the attacker's match threshold, and where it logs."""

    face_settings: FaceSettings = FaceSettings()
    model: FaceModel | None = None
    cache: EmbeddingCache | None = None
    workers: int | None = None
    seed: int = 2011
    threshold: float = 0.6
    log: Log | None = None
    progress: bool = False

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


@dataclass(frozen=True, eq=False)
class E4Inputs:
    """The earlier stages E4 runs on: E1 (the probes' truth, for the tail models' held-out folds),
    E2's fused captures per level, and the scaling study's detail (its tail models)."""

    e1: OnlineResult
    fused: dict[str, FusedLevel]
    scaling: dict


# --- the people and their untransformed searches ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class _People:
    """The mated people E4 runs on (``n``), their snapshots (owner = index among them), and their
    searches of the untransformed gallery: ``best[i, l]`` is person i's best distance to label l,
    ``others`` the same with their own label set aside, ``mine[i]`` their gallery faces."""

    n: int
    snaps: Snapshots
    labels: np.ndarray
    best: np.ndarray
    own_col: np.ndarray
    others: np.ndarray
    mine: list


def _people(settings: CountermeasureSettings, snapshots: Snapshots, gallery: GalleryPhotos, seed: int) -> _People:
    g_lab = np.asarray(gallery.labels)
    labels = np.unique(g_lab)
    person_labels = np.asarray(snapshots.person_labels)
    persons = [p for p in range(len(person_labels)) if person_labels[p] in set(labels.tolist())]
    rng = np.random.default_rng([seed, 44])
    if settings.max_subjects and len(persons) > settings.max_subjects:
        persons = sorted(rng.choice(persons, settings.max_subjects, replace=False).tolist())
    n = len(persons)
    if n == 0:
        raise ConfigError("countermeasures: no snapshot person has a gallery photo")
    remap = {p: i for i, p in enumerate(persons)}
    keep = np.isin(snapshots.owner, persons)
    shots = np.asarray(snapshots.vectors, np.float32)[keep]
    owner = np.array([remap[int(o)] for o in np.asarray(snapshots.owner)[keep]], np.int64)
    fold = None if snapshots.fold is None else np.asarray(snapshots.fold)[keep]
    plab = person_labels[persons]
    # every shot against every gallery face, then each person's best distance per label
    d_all = pairwise_distances(shots, np.asarray(gallery.vectors, np.float32))
    lab_idx = np.searchsorted(labels, g_lab)
    best = np.full((n, len(labels)), np.inf)
    for r in range(len(shots)):
        np.minimum.at(best[owner[r]], lab_idx, d_all[r])
    own_col = np.searchsorted(labels, plab)
    others = best.copy()
    others[np.arange(n), own_col] = np.inf
    mine = [np.where(g_lab == plab[i])[0] for i in range(n)]  # each person's gallery faces
    return _People(n, Snapshots(shots, owner, plab, fold), labels, best, own_col, others, mine)


def _closed_form_rank1(
    tails: TailModels, snaps: Snapshots, own_d: np.ndarray, real_first: np.ndarray, n_other_sizes, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-1 at each size: mean over persons of 1[first among the real gallery] * P(no other face
    within the person's distance), per tail model and replicate (persons resampled in replicates);
    returns (point, lo, hi) per size, where the range spans every model's 2.5-97.5% quantiles. With
    ``tails.held_out`` and the shots' folds, each person is scored with the model of the fold that
    never saw them, as the scaling study does; without them, ``tails.models`` score everyone."""
    n = len(own_d)
    held_out = tails.held_out is not None and snaps.fold is not None
    radius = np.nan_to_num(own_d[snaps.owner], nan=0.0, posinf=0.0)
    rows = tailmodel.Captures(snaps.vectors, snaps.owner, n)
    rng = np.random.default_rng(seed)
    point: np.ndarray | None = None
    per_model = []
    for mi, m in enumerate(tails.held_out if held_out and tails.held_out is not None else tails.models):
        vals = []
        n_reps = len(next(iter(m.values())).boot) + 1 if held_out else len(m.boot) + 1
        for rep in range(n_reps):
            if held_out:
                assert snaps.fold is not None  # held_out says so
                s = tailmodel.crossfit_survival(tailmodel.CrossFit(m, snaps.fold), rows, radius, n_other_sizes, rep=rep)
            else:
                s = tailmodel.rank_probabilities(
                    m, rows, radius, n_other_sizes, params=tailmodel.replicate_params(m, rep)
                )
            hit = real_first[:, None] * s
            pick = np.arange(n) if rep == 0 else rng.integers(0, n, n)
            vals.append(hit[pick].mean(axis=0) if n else np.full(len(n_other_sizes), np.nan))
        arr = np.array(vals)
        if mi == 0:
            point = arr[0]
        per_model.append(np.quantile(arr, [0.025, 0.975], axis=0) if len(arr) > 1 else np.array([arr[0], arr[0]]))
    assert point is not None, "no tail model"
    lo = np.minimum(np.min([p[0] for p in per_model], axis=0), point)
    hi = np.maximum(np.max([p[1] for p in per_model], axis=0), point)
    return point, lo, hi


@dataclass(frozen=True, eq=False)
class _Measure:
    """What :func:`_measure` needs besides a setting's distances: the people, the tail models, the
    settings and the run."""

    people: _People
    tails: TailModels
    settings: CountermeasureSettings
    run: E4Run


def _measure(ctx: _Measure, own_d: np.ndarray, detected: np.ndarray | None) -> dict:
    """Rank-1, rank-10 and TPIR among the real gallery with each person's own best distance
    ``own_d``, the platform-scale rank-1 (closed form) and, given, the detection rate."""
    p, run, sizes = ctx.people, ctx.run, ctx.settings.platform_sizes
    rank = 1 + (p.others < own_d[:, None]).sum(axis=1)
    rank = np.where(np.isfinite(own_d), rank, 10**9)
    r1, r10 = int((rank == 1).sum()), int((rank <= 10).sum())
    tp = int(((rank == 1) & (own_d <= run.threshold)).sum())
    n_other = [max(int(s) - len(p.labels), 0) for s in sizes]
    point, lo, hi = _closed_form_rank1(ctx.tails, p.snaps, own_d, (rank == 1).astype(float), n_other, run.seed + 45)
    n_pairs = ctx.tails.models[0].n_pairs
    out = {
        "rank1": rate(r1, p.n),
        "rank10": rate(r10, p.n),
        "tpir_at_threshold": rate(tp, p.n) | {"threshold": run.threshold},
        "platform": {
            str(int(s)): {
                "rank1": float(point[j]),
                "range": [float(lo[j]), float(hi[j])],
                # closed form, nothing searched: never "simulated" (that is model distractors searched)
                "kind": "extrapolated" if n_other[j] > n_pairs else "model",
                "how": "tail models' closed form (no search)"
                + ("; past what the real impostor pairs can check" if n_other[j] > n_pairs else ""),
            }
            for j, s in enumerate(sizes)
        },
        "ranks": rank.tolist(),
    }
    if detected is not None:
        k = int(detected.sum())
        out["detection"] = {
            "rate": k / detected.size,
            "k": k,
            "n": int(detected.size),
            "ci95": list(proportion_interval(k, detected.size)),
        }
    return out


def _baseline(ctx: _Measure) -> dict:
    """The untransformed photos: each person's own best distance, searched as every setting is."""
    p = ctx.people
    baseline = _measure(ctx, np.array([p.best[i, p.own_col[i]] for i in range(p.n)]), None)
    baseline.update(ssim=1.0, psnr=None, transform="none", strength=None)
    baseline["hub"] = hubness(p.best[:, p.own_col], p.best, p.own_col)
    # the gallery faces were found by the detector, so the original's two views agree
    baseline["rank1_this_detector"] = dict(baseline["rank1"])
    return baseline


# --- the transformed gallery photos, embedded ------------------------------------------------------


class _ModelOnDemand:
    """The face model in this process (landmarks for occluders, encodings at a box), loaded once
    when first needed unless one was given."""

    def __init__(self, model: FaceModel | None, settings: FaceSettings) -> None:
        self._model, self._settings = model, settings

    def get(self) -> FaceModel:
        if self._model is None:
            self._model = load_face_model(self._settings)
        return self._model


@dataclass(frozen=True, eq=False)
class _Transformed:
    """Every transformed gallery photo (one per person's face and setting): ``at[(t, s, j)]`` is
    the row of face j at setting (t, s); each row's vector, whether the detector found the face,
    the face width left and the quality (SSIM, PSNR)."""

    grid: list
    at: dict
    vec: np.ndarray
    det: np.ndarray
    width_left: np.ndarray
    quality: np.ndarray


def _recipes(ctx: _Measure, gallery: GalleryPhotos, model_id: str) -> tuple[list, dict, list[TransformedPhoto]]:
    """(the settings grid, the row of each (transform, strength, face), one recipe per row)."""
    p, fs = ctx.people, ctx.run.face_settings
    faces_needed = sorted({int(j) for i in range(p.n) for j in p.mine[i]})
    grid = [(t, s) for t in ctx.settings.transforms for s in ctx.settings.ladder(t)]
    recipes: list[TransformedPhoto] = []
    at: dict[tuple[str, float | str, int], int] = {}
    for j in faces_needed:  # one photo's settings together: each worker decodes a photo once
        path, box = gallery.photos[j]
        sha = file_sha256(path)
        for t, s in grid:
            key = artifact_key(
                "countermeasure", E4_VERSION, sha, [int(v) for v in box], t, s, fs.max_side, fs.cache_key(model_id),
            )  # fmt: skip
            at[(t, s, j)] = len(recipes)
            recipes.append(
                TransformedPhoto(
                    f"{Path(str(path)).stem}-{t}-{s}.png", str(path), sha, as_box(box), t, s, fs.max_side, key,
                )
            )  # fmt: skip
    ctx.run.say(
        f"E4: embedding {len(recipes)} transformed gallery photos ({len(grid)} settings x {len(faces_needed)} photos)"
    )
    return grid, at, recipes


def _transformed(ctx: _Measure, gallery: GalleryPhotos, model_id: str, main: _ModelOnDemand) -> _Transformed:
    run = ctx.run
    grid, at, recipes = _recipes(ctx, gallery, model_id)
    res = embed_batch(
        recipes, run.face_settings, model=run.model, cache=run.cache, workers=run.workers, progress=run.progress
    )
    out = _Transformed(
        grid,
        at,
        np.zeros((len(recipes), np.asarray(gallery.vectors).shape[1]), np.float32),
        np.zeros(len(recipes), bool),
        np.zeros(len(recipes)),
        np.zeros((len(recipes), 2)),
    )
    for k, (rec, result) in enumerate(zip(recipes, res)):
        _one_transformed(out, k, (rec, result), run, main)
    return out


def _one_transformed(
    out: _Transformed, k: int, made_of: tuple[TransformedPhoto, EmbedResult], run: E4Run, main: _ModelOnDemand
) -> None:
    """Row ``k`` of ``out``: the photo's quality (cached), and its vector: the detected face at the
    known box, or the face encoded at the box when the detector missed it (cached)."""
    rec, result = made_of
    cache = run.cache
    made = None
    qkey = artifact_key("countermeasure-quality", rec.cache_key)
    q = cache.get_arrays(qkey) if cache is not None else None
    if q is None:
        made = rec.image(main.get() if rec.transform == "occlude" else None)
        qq = image_quality(*made)
        q = {"q": np.array([qq.ssim, qq.psnr if math.isfinite(qq.psnr) else np.nan])}
        if cache is not None:
            cache.put_arrays(qkey, q)
    out.quality[k] = q["q"]
    box = rec.loaded_box()
    near = [f for f in result.faces if face_overlap(f.box, box) > 0.3] if result.ok else []
    if near:
        out.vec[k], out.det[k] = max(near, key=lambda f: face_overlap(f.box, box)).embedding, True
    else:  # the detector missed it: encoded at the known box (a stronger detector would find it)
        bkey = artifact_key("countermeasure-at-box", rec.cache_key)
        hit = cache.get_arrays(bkey) if cache is not None else None
        if hit is None:
            made = made or rec.image(main.get())
            hit = {"v": np.asarray(main.get().encode(made[1], [box], run.face_settings.jitters), np.float32)[0]}
            if cache is not None:
                cache.put_arrays(bkey, hit)
        out.vec[k] = hit["v"]
    w0 = box[1] - box[3]
    out.width_left[k] = min(float(rec.strength), w0) if rec.transform == "downscale" else w0


# --- one row per setting ---------------------------------------------------------------------------


def _own_best(people: _People, tr: _Transformed, ks: list) -> tuple[np.ndarray, np.ndarray]:
    """Each person's best distance from their snapshot shots to their transformed photos (rows
    ``ks[i]``): over all of them (a photo the detector missed is judged at its known box), and over
    those whose face the detector found (inf when none). A person with no searchable shot gets inf in
    both (a miss, as in E2). Each photo's distance is computed once."""
    shots, owner = people.snaps.vectors, people.snaps.owner
    d = {
        k: float(np.linalg.norm(shots[owner == i] - tr.vec[k], axis=1).min())
        for i, kk in enumerate(ks)
        if (owner == i).any()
        for k in kk
    }
    every = np.array([min((d[k] for k in kk if k in d), default=np.inf) for kk in ks])
    found = np.array([min((d[k] for k in kk if k in d and tr.det[k]), default=np.inf) for kk in ks])
    return every, found


def _setting_row(ctx: _Measure, tr: _Transformed, setting: tuple, base_hits: np.ndarray) -> dict:
    """One transform at one strength: measured as the baseline is, in both views, with the paired
    test against the original, hubness and the photo's quality."""
    t, s = setting
    p = ctx.people
    ks = [[tr.at[(t, s, int(j))] for j in p.mine[i]] for i in range(p.n)]
    own, seen = _own_best(p, tr, ks)
    flat = [k for kk in ks for k in kk]
    m = _measure(ctx, own, tr.det[flat])
    # the same search as a platform running this detector would see it: a photo whose face the
    # detector misses never enters the gallery, so it cannot be found
    hits_seen = np.isfinite(seen) & (1 + (p.others < seen[:, None]).sum(axis=1) == 1)
    m["rank1_this_detector"] = rate(int(hits_seen.sum()), p.n)
    m["paired_this_detector_vs_baseline"] = paired_test(base_hits, hits_seen)
    photo_person = [i for i, kk in enumerate(ks) for _ in kk]
    m["hub"] = hubness(hub_matrix(p.snaps.vectors, p.snaps.owner, tr.vec[flat], photo_person, p.n), p.best, p.own_col)
    m["paired_vs_baseline"] = paired_test(base_hits, np.asarray(m["ranks"]) == 1)
    m["works_only_because_the_detector_misses"] = only_hidden(m, ctx.run.face_settings.detector)
    psnr = tr.quality[flat, 1]
    m.update(
        transform=t,
        strength=s,
        label=TRANSFORMS[t].label(s),
        ssim=float(tr.quality[flat, 0].mean()),
        ssim_min=float(tr.quality[flat, 0].min()),
        psnr=float(np.nanmean(psnr)) if np.isfinite(psnr).any() else None,
        face_width_left_median=float(np.median(tr.width_left[flat])),
    )
    ctx.run.say(
        f"E4 {TRANSFORMS[t].label(s)}: rank-1 {m['rank1']['rate']:.1%}, SSIM {m['ssim']:.3f}, "
        f"detected {m['detection']['rate']:.0%}, top-1 for others {m['hub']['photos']['k']}/{m['hub']['photos']['n']}"
    )
    return m


# --- the run ---------------------------------------------------------------------------------------


def run_countermeasures(
    settings: CountermeasureSettings,
    snapshots: Snapshots,
    gallery: GalleryPhotos,
    tails: TailModels,
    run: E4Run = E4Run(),
) -> CountermeasuresResult:
    """E4 on one gallery: each person's gallery photo(s) transformed at every strength, searched by
    their ``snapshots`` (several shots fused by the best distance, as E2 does) among the real
    ``gallery``; platform-scale rank-1 from the ``tails`` in closed form. Persons whose label has no
    gallery photo are skipped (not mated). With held-out tail models (and each snapshot's fold), each
    person's platform figures come from the fold model that never saw them; otherwise the models
    fitted on everyone score everyone."""
    if not tails.models:
        raise ConfigError("countermeasures: no tail models to take identification to platform scale")
    if tails.held_out is not None and (snapshots.fold is None or len(snapshots.fold) != len(snapshots.owner)):
        raise ConfigError("countermeasures: held-out tail models need one fold per snapshot")
    if tails.held_out is None:
        snapshots = Snapshots(snapshots.vectors, snapshots.owner, snapshots.person_labels)
    people = _people(settings, snapshots, gallery, run.seed)
    ctx = _Measure(people, tails, settings, run)
    baseline = _baseline(ctx)
    base_hits = np.asarray(baseline["ranks"]) == 1
    run.say(
        f"E4 countermeasures: {people.n} persons, snapshot level '{settings.snapshot_level}'; "
        f"baseline rank-1 {baseline['rank1']['rate']:.1%}"
    )
    # the transformed gallery photos, embedded through the cache (the sample set's files, never uploads)
    model_id = run.model.model_id if run.model is not None else embedder_id(run.face_settings)
    main = _ModelOnDemand(run.model, run.face_settings)
    tr = _transformed(ctx, gallery, model_id, main)
    rows = [_setting_row(ctx, tr, setting, base_hits) for setting in tr.grid]
    cloak_result = _cloak_on_people(ctx, gallery, main) if settings.cloak_subjects else None
    return CountermeasuresResult(
        settings=to_dict(settings),
        snapshot_level=settings.snapshot_level,
        n_persons=people.n,
        n_gallery=len(people.labels),
        baseline=baseline,
        rows=tuple(rows),
        summary=summarise(settings, baseline, rows, model_id, run.threshold),
        ranking=ranking_at_equal_ssim(rows, baseline["rank1"]["rate"], settings.reference_ssim),
        notes=notes(settings, people.n, tails.held_out is not None),
        cloak=cloak_result,
    )


# --- the adversarial cloak -------------------------------------------------------------------------


def _cloak_on_people(ctx: _Measure, gallery: GalleryPhotos, main: _ModelOnDemand) -> dict:
    """The cloak on a seeded choice of ``cloak_subjects`` people with a gallery photo and a shot."""
    p, run = ctx.people, ctx.run
    owner = p.snaps.owner
    pick = np.random.default_rng([run.seed, 47]).permutation(p.n)[: ctx.settings.cloak_subjects]
    pick = np.array(sorted(int(i) for i in pick if len(p.mine[i]) and (owner == i).any()), np.int64)
    run.say(f"E4: the adversarial cloak on {len(pick)} people's gallery photos")
    photos = []
    for i in pick:
        j = int(p.mine[i][0])
        img = load_image(gallery.photos[j][0], max_side=run.face_settings.max_side)
        photos.append((img.rgb, tuple(int(round(v * img.scale)) for v in gallery.photos[j][1])))
    result = _cloak_study(ctx, pick, photos, main.get())
    for c, v in result["conditions"].items():
        run.say(
            f"E4 cloak {c}: rank-1 {v['rank1']['rate']:.0%} (original {v['original_rank1']['rate']:.0%}), "
            f"shift kept {v['shift_kept']:.0%}"
        )
    return result


CONDITIONS = ("clean", "after JPEG 75", "after resize 0.5")


def _processed(img: np.ndarray, box: tuple, condition: str) -> tuple[np.ndarray, tuple]:
    """The photo and its face box after ``condition``: as is, JPEG 75, or resized by 0.5."""
    import cv2  # noqa: PLC0415

    if condition == "clean":
        return img, box
    if condition == "after JPEG 75":
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise ImageError("cloak study", "OpenCV could not re-encode the photo as JPEG 75")
        return decoded[:, :, ::-1], box
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return small, tuple(int(round(v * small.shape[1] / w)) for v in box)


def _cloak_study(ctx: _Measure, persons_idx: np.ndarray, photos: list, model: FaceModel) -> dict:
    """The cloak on ``persons_idx``: identification by their snapshots (rank among the real gallery)
    for the original and the cloaked photo, each also after JPEG 75 and a resize by 0.5, and whether
    the cloak's push survives each (it survives when at least half of its embedding shift remains)."""
    settings, seed, jitters = ctx.settings, ctx.run.seed, ctx.run.face_settings.jitters
    emb: dict[tuple[str, str], list[np.ndarray]] = {(k, c): [] for k in ("original", "cloaked") for c in CONDITIONS}
    quality, queries = [], []
    for p, (rgb, box) in zip(persons_idx, photos):
        cloaked, info = cloak(
            rgb, box, model, Cloak(epsilon=settings.cloak_epsilon, seed=seed + int(p), jitters=jitters)
        )
        quality.append(image_quality(rgb, cloaked, box))
        for kind, img in (("original", rgb), ("cloaked", cloaked)):
            for c in CONDITIONS:
                x, b = _processed(img, box, c)
                emb[(kind, c)].append(np.asarray(model.encode(np.ascontiguousarray(x), [b], jitters), np.float32)[0])
        queries.append(info["queries"])
    snap_shots = {int(i): ctx.people.snaps.vectors[ctx.people.snaps.owner == i] for i in persons_idx}
    hits = _CloakHits(persons_idx, snap_shots, ctx.people.others)
    out = _cloak_conditions(emb, hits)
    return _cloak_summary(settings, out, quality, queries, len(persons_idx))


@dataclass(frozen=True, eq=False)
class _CloakHits:
    """Whether each cloak person's snapshot finds their photo first among the real gallery."""

    persons_idx: np.ndarray
    snap_shots: dict
    others_best: np.ndarray

    def __call__(self, vecs) -> np.ndarray:
        own = np.array([np.linalg.norm(self.snap_shots[i] - v, axis=1).min() for i, v in zip(self.persons_idx, vecs)])
        return (self.others_best[self.persons_idx] >= own[:, None]).all(axis=1)

    def rank1(self, vecs) -> dict:
        n = len(self.persons_idx)
        k = int(self(vecs).sum())
        return {"rate": k / n, "k": k, "n": n, "ci95": list(clopper_pearson(k, n))}

    def paired(self, original, cloaked) -> dict:
        """Does the cloak lower rank-1? The same people with and without it: an exact (McNemar) test
        on the people it changes."""
        from scipy.stats import binomtest  # noqa: PLC0415

        a, b = self(original), self(cloaked)
        lost, gained = int((a & ~b).sum()), int((~a & b).sum())
        p = float(binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue) if lost + gained else 1.0
        return {
            "found_only_without_cloak": lost,
            "found_only_with_cloak": gained,
            "p_value": p,
            "lowers_rank1": p < 0.05,
        }


def _cloak_conditions(emb: dict, hits: _CloakHits) -> dict[str, dict]:
    out: dict[str, dict] = {}
    clean_shift = float(
        np.mean([np.linalg.norm(a - b) for a, b in zip(emb[("cloaked", "clean")], emb[("original", "clean")])])
    )
    for c in CONDITIONS:
        shift = float(np.mean([np.linalg.norm(a - b) for a, b in zip(emb[("cloaked", c)], emb[("original", c)])]))
        kept = shift / clean_shift if clean_shift > 0 else 0.0
        out[c] = {
            "original_rank1": hits.rank1(emb[("original", c)]),
            "rank1": hits.rank1(emb[("cloaked", c)]),
            "embedding_shift": shift,
            "shift_kept": kept,
            "survives": bool(kept >= 0.5) if c != "clean" else True,
            "effect": hits.paired(emb[("original", c)], emb[("cloaked", c)]),
        }
    return out


def _cloak_summary(settings: CountermeasureSettings, out: dict, quality: list, queries: list, n: int) -> dict:
    return {
        "method": (
            f"black-box cloak: NES gradient estimates (10 antithetic pairs per step, 12 signed steps, about "
            f"{int(np.mean(queries))} model queries per photo) of a perturbation of the face and margin, at most "
            f"{settings.cloak_epsilon:g} grey levels per pixel, on a 24 x 24 lattice scaled up; it pushes the face's "
            "embedding away from the original's. It survives a processing step when at least half of its embedding "
            "shift (cloaked against original, both processed the same way) remains; whether it protects is a "
            "separate question: a one-sided exact paired test (does it lower rank-1?) with and without it on the same people"
        ),
        "n": n,
        "epsilon": settings.cloak_epsilon,
        "ssim": float(np.mean([q.ssim for q in quality])),
        "psnr": float(np.mean([q.psnr for q in quality if math.isfinite(q.psnr)])) if quality else None,
        "conditions": out,
        "survives_jpeg75": out["after JPEG 75"]["survives"],
        "survives_resize_0.5": out["after resize 0.5"]["survives"],
        "lowers_rank1": out["clean"]["effect"]["lowers_rank1"],
        "verdict": (
            (
                "it lowers rank-1 (one-sided exact paired test, p < 0.05)"
                if out["clean"]["effect"]["lowers_rank1"]
                else "it does not measurably lower rank-1 (one-sided exact paired test, p >= 0.05): moving the embedding is not protection"
            )
            + "; its push "
            + ("survives" if out["after JPEG 75"]["survives"] else "does NOT survive")
            + " JPEG 75 and "
            + ("survives" if out["after resize 0.5"]["survives"] else "does NOT survive")
            + " a resize by 0.5"
        ),
    }


# --- inside the experiment -------------------------------------------------------------------------


def run_on_experiment(
    cfg: ExperimentConfig, enrolled: Enrolled, earlier: E4Inputs, cache: EmbeddingCache | None, log: Log, progress
) -> CountermeasuresResult:
    """:func:`run_countermeasures` inside :func:`privrisk.experiment.run_experiment`: against the E1
    gallery (``enrolled``), with E2's fused captures at ``cfg.countermeasures.snapshot_level`` as the
    stranger's snapshot, and the scaling study's tail models: each person scored by the fold's model
    that never saw them (the study's cross-fit, refitted here with the same seed and folds)."""
    level = earlier.fused[cfg.countermeasures.snapshot_level]
    log("E4: the tail models' held-out folds (the scaling study's cross-fit)")
    cross = held_out_tail_models(cfg, enrolled, earlier.e1)
    with Gallery.open(enrolled.gallery_dir) as g:
        gallery_ids, _ = g.embeddings()  # the same order as enrolled.gal_vecs
        meta = g.faces()
    return run_countermeasures(
        cfg.countermeasures,
        Snapshots(
            level.shot_vecs,
            level.shot_owner,
            level.truth,
            None if cross is None else cross[1][level.shot_probe()],
        ),
        GalleryPhotos(
            enrolled.gal_vecs, enrolled.gal_codes, [(meta[int(i)]["image"], meta[int(i)]["box"]) for i in gallery_ids]
        ),
        TailModels(
            [tailmodel.from_json(m) for m in earlier.scaling["tail_models"]["models"]],
            None if cross is None else cross[0],
        ),
        E4Run(
            face_settings=cfg.faces,
            cache=cache,
            workers=cfg.workers or None,
            seed=cfg.seed,
            threshold=cfg.gallery.threshold,
            log=log,
            progress=progress,
        ),
    )
