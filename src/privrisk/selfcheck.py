"""Self-check: how findable is one person, given two photos of them.

Your "public profile photo" is hidden in a gallery of the consenting sample faces plus model
distractors; your other photo plays a stranger's snapshot. :func:`findability` says at which rank
(and distance) the snapshot finds you at each gallery size: counted exactly among the real sample
faces ("measured"), and beyond them from the tail model fitted on the sample set
(:mod:`privrisk.tailmodel`; expected rank and the chance of rank 1, with a range over two tail models
and their bootstrap refits: "modelled" where the real impostor pairs can check it, "extrapolated"
past that). The count among the Gaussian model distractors held in memory fails held-out validation:
it is kept beside as ``gaussian_rank``, never as a value or a range end. Photos are taken as bytes
and never written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import index as faiss_index
from . import tailmodel
from .config import SELF_CHECK_FACES, ExposureSettings, FaceSettings
from .distractors import DistractorModel
from .embeddings import EmbeddingCache, embed_batch, embed_image
from .errors import FaceNotFound, ImageError
from .exposure import ExposureScore, IdentificationCurves, LinkEstimate, LinkSource, score, usable_photos
from .faces import Face
from .manifest import read_manifest
from .models import FaceModel
from .profiles import UserProfile
from .samples import dataset_dir, sample_manifest

DEFAULT_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000)


@dataclass(frozen=True)
class SampleWorld:
    """The consenting sample gallery, a distractor model fitted to it, and distractors in memory."""

    vectors: np.ndarray  # (n, d) neutral sample photos (d = the embedder's length, 128 for dlib's)
    subjects: list[str]
    images: list[str]
    model: DistractorModel
    distractors: np.ndarray
    index: Any  # FAISS exact index over the distractors (ids = positions); faiss has no type information
    tail_models: tuple = ()  # tail models fitted on the sample set (sample_data/tail_model.json)

    @property
    def n_sample(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class DistractorDraw:
    """The model distractors a sample world holds in memory: how many, drawn from which seed."""

    n: int = 1_000_000
    seed: int = 2011


def build_sample_world(
    model: FaceModel | None = None,
    *,
    cache: EmbeddingCache | None = None,
    distractors: DistractorDraw = DistractorDraw(),
    root=None,
    workers: int | None = 1,
    settings: FaceSettings = FaceSettings(),
) -> SampleWorld:
    """Embed the sample set (neutral for the gallery; both for fitting the distractor model) and draw
    ``distractors.n`` seeded distractors. Done once per process; the app keeps it as a shared resource."""
    root = dataset_dir(root)
    rows = {kind: read_manifest(sample_manifest(kind), root).rows for kind in ("neutral", "smiling")}
    results = {
        kind: embed_batch([r.image for r in rs], settings, model=model, cache=cache, workers=workers)
        for kind, rs in rows.items()
    }
    ok = [(r, res) for r, res in zip(rows["neutral"], results["neutral"]) if res.ok]
    vectors = np.array([res.faces[0].embedding for _, res in ok], np.float32)
    every = np.vstack(
        [vectors] + [np.array([res.faces[0].embedding for res in results["smiling"] if res.ok], np.float32)]
    )
    dm = DistractorModel.fit(every)
    drawn = (
        dm.sample(distractors.n, seed=distractors.seed) if distractors.n else np.zeros((0, every.shape[1]), np.float32)
    )
    index = faiss_index.build_index(drawn)
    return SampleWorld(
        vectors=vectors,
        subjects=[r.subject_id for r, _ in ok],
        images=[str(r.image) for r, _ in ok],
        model=dm,
        distractors=drawn,
        index=index,
        tail_models=tuple(tailmodel.load_models()),
    )


def embed_one_face(data: bytes, name: str, model: FaceModel, settings: FaceSettings = SELF_CHECK_FACES) -> Face:
    """The one face in an uploaded photo (bytes, kept in memory). Raises :class:`ImageError`
    (unreadable, too large), :class:`FaceNotFound` or :class:`SeveralFaces` with a friendly reason."""
    result = embed_image(data, model, settings, name=name)
    if result.error is not None:
        if result.error == "no face found":
            raise FaceNotFound(
                name,
                "no face found - use a clear, front-facing photo with your face at least "
                f"{settings.min_face_px} pixels wide",
            )
        raise ImageError(name, result.error)
    return result.chosen("error")[0]


@dataclass(frozen=True)
class SizeResult:
    gallery_size: int
    rank: float  # exact rank when measured, expected rank when predicted
    p_rank1: float  # 1 or 0 when searched exactly; the tail model's probability when extrapolated
    measured: bool  # True when counted exactly (real faces and drawn distractors)
    kind: str = "simulated"  # "measured" (real faces only), "modelled" / "extrapolated" (tail model), or
    # "simulated" (drawn distractors, only where no tail model is loaded)
    p_rank1_range: tuple | None = None  # the tail models' range for the chance of rank 1
    gaussian_rank: float | None = None  # rank among drawn Gaussian distractors: a comparison only (fails validation)


@dataclass(frozen=True)
class Findability:
    distance: float  # between your two photos
    threshold: float
    nearest_sample: str  # the sample subject closest to your snapshot (a lookalike)
    nearest_sample_distance: float
    nearest_sample_image: str
    sizes: tuple[SizeResult, ...]

    @property
    def is_match(self) -> bool:
        return self.distance <= self.threshold

    def at(self, size: int) -> SizeResult:
        return min(self.sizes, key=lambda s: abs(np.log10(s.gallery_size) - np.log10(size)))

    def to_dict(self) -> dict:
        return {
            "distance": self.distance,
            "threshold": self.threshold,
            "match": self.is_match,
            "nearest_sample": self.nearest_sample,
            "nearest_sample_distance": self.nearest_sample_distance,
            "sizes": [
                {**vars(s), "p_rank1_range": list(s.p_rank1_range) if s.p_rank1_range else None} for s in self.sizes
            ],
        }


def findability(
    profile_photo: np.ndarray, snapshot: np.ndarray, world: SampleWorld, *, sizes=DEFAULT_SIZES, threshold: float = 0.6
) -> Findability:
    """Where the snapshot ranks your profile photo in galleries of ``sizes`` people (you, the sample
    faces, then distractors)."""
    p = np.asarray(profile_photo, np.float32).reshape(1, -1)
    q = np.asarray(snapshot, np.float32).reshape(1, -1)
    d = float(np.linalg.norm(p - q))
    # if the profile photo is itself one of the sample images, it is not counted twice
    distinct = np.linalg.norm(world.vectors - p, axis=1) > 1e-4
    sample_d = np.linalg.norm(world.vectors - q, axis=1)[distinct]
    sample_names = [s for s, keep in zip(world.subjects, distinct) if keep]
    sample_images = [s for s, keep in zip(world.images, distinct) if keep]
    nearest = int(np.argmin(sample_d)) if len(sample_d) else -1
    n_d = len(world.distractors)
    if n_d:
        lims, d2, ids = world.index.range_search(q, d * d)
        closer_positions = np.sort(ids[d2 < d * d])
    else:
        closer_positions = np.zeros(0, np.int64)
    sizes = [int(n) for n in sizes]
    n_distr_all = np.array([max(n - 1 - min(n - 1, len(sample_d)), 0) for n in sizes], np.float64)
    tail, p1_tail, p1_lo, p1_hi = _tail_predictions(world.tail_models, q, d, n_distr_all)
    rows = []
    for j, n in enumerate(sizes):
        others = n - 1  # people in the gallery besides you
        in_sample = min(others, len(sample_d))
        sample_closer = int((sample_d[:in_sample] < d).sum())
        n_distr = others - in_sample
        no_real_ahead = float(sample_closer == 0)
        rng = (float(no_real_ahead * p1_lo[j]), float(no_real_ahead * p1_hi[j])) if p1_lo is not None else None
        if n_distr == 0 or (n_distr <= n_d and not world.tail_models):
            # real faces only (or, without a tail model, the drawn distractors are all there is)
            closer = sample_closer + int(np.searchsorted(closer_positions, n_distr))
            hit = float(closer == 0)
            kind = "measured" if n_distr == 0 else "simulated"
            rows.append(SizeResult(n, float(1 + closer), hit, n_distr == 0, kind, (hit, hit)))
        elif n_distr <= n_d:
            # the tail model speaks; the count among the drawn Gaussian distractors fails the held-out
            # validation, so it is only kept beside (gaussian_rank), never as the value or a range end
            closer = sample_closer + int(np.searchsorted(closer_positions, n_distr))
            checkable = world.tail_models[0].n_pairs
            kind = "modelled" if n_distr <= checkable else "extrapolated"
            expected = 1 + sample_closer + n_distr * tail
            rows.append(
                SizeResult(n, float(expected), float(no_real_ahead * p1_tail[j]), False, kind, rng, float(1 + closer))
            )
        else:
            expected = 1 + sample_closer + n_distr * tail
            rows.append(SizeResult(n, float(expected), float(no_real_ahead * p1_tail[j]), False, "extrapolated", rng))
    return Findability(
        distance=d,
        threshold=threshold,
        nearest_sample=sample_names[nearest] if nearest >= 0 else "",
        nearest_sample_distance=float(sample_d[nearest]) if nearest >= 0 else float("inf"),
        nearest_sample_image=sample_images[nearest] if nearest >= 0 else "",
        sizes=tuple(rows),
    )


def _tail_predictions(models, q: np.ndarray, d: float, n_distr: np.ndarray):
    """Per-distractor chance F (primary tail model) and the chance that none of n_distr others is
    closer than ``d``: the primary model's value and the range over every model and replicate."""
    if not models:
        return 0.0, np.ones(len(n_distr)), None, None
    replicates = []
    for m in models:
        for rep in range(len(m.boot) + 1):
            replicates.append(
                tailmodel.rank_probabilities(
                    m, tailmodel.Captures(q), np.array([d]), n_distr, params=tailmodel.replicate_params(m, rep)
                )[0]
            )
    vals = np.array(replicates)
    primary = models[0]
    f = float(tailmodel.pair_cdf(primary, q, np.array([d]))[0, 0])
    point = tailmodel.rank_probabilities(primary, tailmodel.Captures(q), np.array([d]), n_distr)[0]
    per_model, start = [], 0
    for m in models:
        block = vals[start : start + len(m.boot) + 1]
        start += len(m.boot) + 1
        per_model.append(np.quantile(block, [0.025, 0.975], axis=0))
    lo = np.minimum(np.min([pm[0] for pm in per_model], axis=0), point)
    hi = np.maximum(np.max([pm[1] for pm in per_model], axis=0), point)
    return f, point, lo, hi


def decision_threshold(model=None) -> float:
    """The attacker's match threshold: the face model's own decision threshold (its
    ``decision_threshold``: 0.6 for dlib), else the gallery's default (``gallery.threshold``)."""
    from .config import GallerySettings

    value = getattr(model, "decision_threshold", None)
    return float(value) if value is not None else float(GallerySettings().threshold)


def identity_doubt(result: Findability) -> str | None:
    """Why the two photos may not be of one person, in plain words (None when they match): their
    distance is above the attacker's threshold. A page asks "is this really you?" before going on."""
    if result.is_match:
        return None
    return (
        f"your two photos are at distance {result.distance:.3f}, above this face model's match threshold of "
        f"{result.threshold:g}: to the model they look like two different people"
    )


def searched_link(result: Findability, audience_size: int, k: int = 10) -> tuple[SizeResult, LinkEstimate]:
    """The chance a stranger's snapshot leads to your profile, from your own search (measured beats
    modelled): the row counted at the largest gallery size up to ``audience_size`` (the audience's own
    size when it was counted), and 1 when your profile photo came within the top ``k`` there, else 0.
    The note says which size was counted and, when the audience's gallery is larger, the extrapolated
    chance of rank 1 at its size. With no counted row, the extrapolated row's chance and range."""
    counted = [s for s in result.sizes if s.measured and s.gallery_size <= audience_size]
    at_size = result.at(audience_size)
    if not counted:
        lo, hi = at_size.p_rank1_range or (at_size.p_rank1, at_size.p_rank1)
        note = f"from your own photos, extrapolated to {at_size.gallery_size:,} people (chance of rank 1)"
        return at_size, LinkEstimate(at_size.p_rank1, lo, hi, "extrapolated", None, at_size.gallery_size, 1,
                                     1, at_size.p_rank1, (lo, hi), notes=(note,))  # fmt: skip
    row = max(counted, key=lambda s: s.gallery_size)
    p = 1.0 if row.rank <= k else 0.0
    notes = [f"from your own photos: rank {row.rank:,.0f} among {row.gallery_size:,} people (counted)"]
    if row.gallery_size < audience_size and at_size.p_rank1_range:
        lo, hi = at_size.p_rank1_range
        notes.append(f"among {audience_size:,} people the chance of rank 1 is extrapolated: {lo:.0%}-{hi:.0%}")
    return row, LinkEstimate(p, p, p, row.kind, None, row.gallery_size, k, 1, p, (p, p), notes=tuple(notes))


def search_link_source(result: Findability) -> LinkSource:
    """A ``link_from`` for :func:`privrisk.exposure.score` and the change searches: wherever an audience
    other than friends can see a photo of your face, the chance of being linked comes from your own
    search (:func:`searched_link`); otherwise (friends; no photo visible) from the usual rule."""

    def link_from(profile: UserProfile, audience: str, settings: ExposureSettings) -> LinkEstimate | None:
        if audience == "friend" or usable_photos(profile, audience, settings.max_photos) == 0:
            return None
        size = settings.stranger_gallery_size if audience == "stranger" else settings.fof_gallery_size
        return searched_link(result, size, settings.top_k)[1]

    return link_from


def score_from_search(
    result: Findability,
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
) -> tuple[ExposureScore, str]:
    """The exposure score of ``profile`` for ``audience`` when photos were searched: the link comes from
    :func:`searched_link` (your search), not from the population curves, wherever the audience can see a
    photo of your face. Returns the score and one plain sentence that says where its chance came from."""
    scored = score(profile, curves, audience, settings, link_from=search_link_source(result))
    if scored.link.curve is not None or audience == "friend" or scored.link.photos == 0:
        return scored, scored.explain()
    size = settings.stranger_gallery_size if audience == "stranger" else settings.fof_gallery_size
    row, link = searched_link(result, size, settings.top_k)
    who = audience.replace("_", " ")
    if row.measured:
        found = (
            f"your search found your profile photo at rank {row.rank:,.0f} among {row.gallery_size:,} people "
            f"(counted on your photos), {'within' if link.p else 'outside'} the top {settings.top_k} a {who} checks"
        )
    else:
        found = (
            f"your search puts the chance of coming first among {row.gallery_size:,} people at "
            f"{link.lo:.0%}-{link.hi:.0%} (extrapolated from your photos)"
        )
    extra = f" ({link.notes[-1]})" if len(link.notes) > 1 else ""
    lo_s, hi_s = scored.score_range
    number = (
        f"{scored.score:.0f}" if round(lo_s) == round(hi_s) else f"{scored.score:.0f} (range {lo_s:.0f}-{hi_s:.0f})"
    )
    return scored, f"Exposure {number} out of 100 for a {who}: {found}{extra}."


def search_headline(result: Findability, size: int = 1_000_000) -> str:
    """The search's answer in one plain sentence: at the largest gallery counted up to ``size`` (what
    was measured comes first), then, when ``size`` itself was extrapolated, its range."""
    row = result.at(size)
    counted = [s for s in result.sizes if s.measured and s.gallery_size <= row.gallery_size]
    lo, hi = row.p_rank1_range or (row.p_rank1, row.p_rank1)
    beyond = f"Among {row.gallery_size:,} people the chance that it comes first is extrapolated: {lo:.0%}-{hi:.0%}."
    if not counted:
        return beyond
    c = max(counted, key=lambda s: s.gallery_size)
    if c.rank == 1:
        head = f"Your snapshot found your profile photo first among {c.gallery_size:,} people (counted)."
    else:
        ahead = int(c.rank) - 1
        head = (
            f"Your snapshot put your profile photo at rank {c.rank:,.0f} among {c.gallery_size:,} people: "
            f"{ahead:,} {'person' if ahead == 1 else 'people'} came before you (counted)."
        )
    return head if c is row else f"{head} {beyond}"


def search_clause(result: Findability, size: int = 1_000_000) -> str:
    """The person's own search as a clause for :func:`privrisk.scenarios.first_screen`, where the open
    model's modelled answer for a second photo would stand: the largest gallery counted up to ``size``
    first (measured beats modelled), then the search's own chance at ``size`` when that was not counted."""
    from .scenarios import percent_words

    row = result.at(size)
    counted = [s for s in result.sizes if s.measured and s.gallery_size <= row.gallery_size]
    parts = []
    if counted:
        c = max(counted, key=lambda s: s.gallery_size)
        parts.append(
            f"put you {'first' if c.rank == 1 else f'at rank {c.rank:,.0f}'} among {c.gallery_size:,} people (counted)"
        )
    if not row.measured:
        lo, hi = (percent_words(p) for p in (row.p_rank1_range or (row.p_rank1, row.p_rank1)))
        parts.append(
            f"give you a chance of {lo if lo == hi else f'{lo} to {hi}'} of coming first among "
            f"{row.gallery_size:,} ({row.kind} from your search)"
        )
    return f"your own two photos, searched here with the open 2017 model, {' and '.join(parts)}, a lower bound"


def searched_first_screen(result: Findability, found, world: SampleWorld, *, change=None, score=None) -> list[str]:
    """The self-check's first screen: :func:`privrisk.scenarios.first_screen` (what ``privrisk score``
    shows), led by the measured facts of the person's two photos and with their own search in place
    of the open model's modelled answer for a second photo."""
    from .scenarios import first_screen

    facts = facts_for_distance(result.distance, world)
    return first_screen(found, change=change, score=score, facts=facts, own_search=search_clause(result))


# --- measured facts first ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoFacts:
    """One photo as measured: face width in pixels, whether the detector found the face, and a
    sharpness measure of the face (variance of the Laplacian of its grey crop; higher is sharper)."""

    name: str
    face_width_px: int | None
    detected: bool
    sharpness: float | None


SHARE_CI_METHOD = (
    "exact (Clopper-Pearson) 95% over the pairs, treated as independent: too narrow, since the pairs come "
    "from far fewer people, each in many pairs (no subject bootstrap here)"
)


@dataclass(frozen=True)
class MeasuredFacts:
    """What is measured about a person before any scenario: the distance between their two photos
    and where it falls among the real impostor distances of the consenting sample faces."""

    distance: float
    n_impostor_pairs: int  # pairs of photos of two different sample people, measured here
    n_impostor_closer: int  # of them, at or under ``distance``
    n_people: int
    photos: tuple[PhotoFacts, ...] = ()

    @property
    def share(self) -> float:
        return self.n_impostor_closer / self.n_impostor_pairs if self.n_impostor_pairs else float("nan")

    @property
    def share_ci95(self) -> tuple[float, float]:
        from .metrics import proportion_interval

        return proportion_interval(self.n_impostor_closer, self.n_impostor_pairs)

    def sentences(self) -> list[str]:
        """The facts in plain words, each with its n."""
        lo, hi = self.share_ci95
        out = [
            f"Your two photos are {self.distance:.3f} apart (the open model's distance; 0 is identical).",
            f"Of the {self.n_impostor_pairs:,} pairs of photos of two different people measured here "
            f"({self.n_people} consenting people), {self.n_impostor_closer:,} are as close or closer "
            f"({self.share:.2%}; exact 95% interval {lo:.2%} to {hi:.2%}, with the pairs treated as independent: "
            "too narrow, since each person appears in many pairs).",
        ]
        for p in self.photos:
            seen = "the detector finds the face" if p.detected else "the detector does not find the face"
            width = f"face {p.face_width_px} pixels wide" if p.face_width_px else "face width unknown"
            sharp = f", sharpness {p.sharpness:.0f}" if p.sharpness is not None else ""
            out.append(f"{p.name}: {width}, {seen}{sharp}.")
        return out

    def to_dict(self) -> dict:
        return {
            "distance": self.distance,
            "n_impostor_pairs": self.n_impostor_pairs,
            "n_impostor_closer": self.n_impostor_closer,
            "n_people": self.n_people,
            "impostor_share": self.share,
            "impostor_share_ci95": list(self.share_ci95),
            "impostor_share_ci95_method": SHARE_CI_METHOD,
            "kind": "measured",
            "photos": [vars(p) for p in self.photos],
            "sentences": self.sentences(),
        }


def photo_facts(name: str, rgb: np.ndarray | None, face: Face | None) -> PhotoFacts:
    """:class:`PhotoFacts` of one photo (``face`` None: the detector found no face in it)."""
    if face is None or rgb is None:
        return PhotoFacts(name, None, False, None)
    import cv2

    top, right, bottom, left = (int(v) for v in face.box)
    crop = rgb[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
    sharp = None
    if crop.size:
        grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
        sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return PhotoFacts(name, int(face.width_px), True, sharp)


def impostor_distances(world: SampleWorld) -> np.ndarray:
    """Every distance between photos of two different sample people (the world's gallery), sorted."""
    v = np.asarray(world.vectors, np.float64)
    s = np.asarray(world.subjects)
    d = np.sqrt(np.maximum((v**2).sum(1)[:, None] + (v**2).sum(1)[None, :] - 2 * v @ v.T, 0))
    iu = np.triu_indices(len(v), 1)
    return np.sort(d[iu][(s[:, None] != s[None, :])[iu]])


def measured_facts(
    profile_photo: np.ndarray, snapshot: np.ndarray, world: SampleWorld, photos: tuple[PhotoFacts, ...] = ()
) -> MeasuredFacts:
    """The measured facts that lead a person's answer (the app and ``privrisk findability`` call it):
    the distance between their photos and how many real impostor pairs here are as close."""
    d = float(np.linalg.norm(np.asarray(profile_photo, np.float64) - np.asarray(snapshot, np.float64)))
    return facts_for_distance(d, world, photos)


def facts_for_distance(distance: float, world: SampleWorld, photos: tuple[PhotoFacts, ...] = ()) -> MeasuredFacts:
    """:class:`MeasuredFacts` for a distance already measured between a person's two photos."""
    imp = impostor_distances(world)
    closer = int(np.searchsorted(imp, float(distance), side="right"))
    return MeasuredFacts(float(distance), int(len(imp)), closer, len(set(world.subjects)), tuple(photos))
