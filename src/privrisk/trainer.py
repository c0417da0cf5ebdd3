"""The trainer's live round: volunteers enrol with consent into an in-memory gallery beside the
sample faces, a snapshot is identified, and a card says what a stranger now knows.

Nothing here touches the disk: a :class:`LiveGallery` lives in one app session and
:meth:`LiveGallery.reset` forgets every volunteer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import index as faiss_index
from .errors import PrivriskError
from .matching import Match, matches_from_search
from .profiles import FIELDS, Profile, generate_profiles, national_id_inference

if TYPE_CHECKING:
    from .protect import Attacker


@dataclass
class Volunteer:
    volunteer_id: str
    name: str
    embedding: np.ndarray
    profile: Profile


@dataclass
class LiveGallery:
    """Sample faces plus volunteers enrolled on the spot; exact FAISS search."""

    sample_vectors: np.ndarray
    sample_subjects: list[str]
    seed: int = 2011
    volunteers: list[Volunteer] = field(default_factory=list)

    def enrol(self, name: str, embedding: np.ndarray, consent: bool) -> Volunteer:
        """Add a volunteer who said yes. Their synthetic profile is seeded from their name."""
        if not consent:
            raise PrivriskError("a volunteer joins only after saying yes to the consent question")
        name = name.strip()
        if not name:
            raise PrivriskError("give the volunteer a name (a first name or a nickname is enough)")
        vid = f"volunteer-{len(self.volunteers) + 1}"
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{name}".encode()).digest()[:4], "big")
        (profile,) = generate_profiles([vid], seed=seed)
        profile = Profile(
            subject_id=vid,
            pseudonym=profile.pseudonym,
            values=profile.values | {"real_name": name},
            visibility=profile.visibility,
            public_photos=profile.public_photos,
        )
        volunteer = Volunteer(vid, name, np.asarray(embedding, np.float32), profile)
        self.volunteers.append(volunteer)
        return volunteer

    def reset(self) -> None:
        self.volunteers.clear()

    def sample_lookalike(self, embedding: np.ndarray, threshold: float = 0.6) -> tuple[str, float] | None:
        """The sample person this face matches (subject id, distance), or None when no sample face is
        within ``threshold``. A volunteer who matches a sample person (for instance one enrolled from
        the shipped sample photos) would be found as that person, and every lesson drawn from the demo
        would be false: the page refuses or asks first (see :meth:`drop_sample`)."""
        if not len(self.sample_vectors):
            return None
        d = np.linalg.norm(self.sample_vectors - np.asarray(embedding, np.float32).reshape(1, -1), axis=1)
        j = int(np.argmin(d))
        return (self.sample_subjects[j], float(d[j])) if d[j] <= threshold else None

    def drop_sample(self, subject_id: str | None = None) -> int:
        """Take the sample person ``subject_id`` (the volunteer continues as that identity: their sample
        photo no longer competes with them), or with None the whole sample set, out of this gallery.
        Returns how many sample faces were removed."""
        keep = [s != subject_id for s in self.sample_subjects] if subject_id else [False] * len(self.sample_subjects)
        removed = len(keep) - sum(keep)
        self.sample_vectors = self.sample_vectors[np.array(keep, bool)] if keep else self.sample_vectors
        self.sample_subjects = [s for s, k in zip(self.sample_subjects, keep) if k]
        return removed

    def identify(self, embedding: np.ndarray, k: int = 5, threshold: float = 0.6) -> Match:
        vectors = np.vstack([self.sample_vectors, *[v.embedding[None] for v in self.volunteers]]).astype(np.float32)
        labels = list(self.sample_subjects) + [v.volunteer_id for v in self.volunteers]
        index = faiss_index.build_index(vectors)
        d, i = faiss_index.search(index, np.asarray(embedding, np.float32)[None], min(len(labels), 4 * k))
        return matches_from_search(["snapshot"], d, i, dict(enumerate(labels)), k, threshold)[0]

    def volunteer(self, volunteer_id: str) -> Volunteer | None:
        return next((v for v in self.volunteers if v.volunteer_id == volunteer_id), None)


def stranger_card(volunteer: Volunteer) -> dict:
    """What a stranger who matched this face now knows, in plain words."""
    prof = volunteer.profile
    visible = prof.visible_to("stranger")
    birth_year = int(prof.values["birth_date"][:4])
    inference = national_id_inference(prof.values["birth_country"], birth_year, visible)
    known = {FIELDS[f]: v for f, v in visible.items() if f != "profile_photo"}
    ssn_flag = bool(inference and inference.digits_predictable)
    how = "The snapshot was matched to the public profile photo; the profile's public fields did the rest."
    if inference is not None and ssn_flag:
        how += f" From them a stranger can predict {inference.digits_predictable} digits of the {inference.scheme}."
    return {
        "name": volunteer.name,
        "pseudonym": prof.pseudonym,
        "known": known,
        "national_id": None
        if inference is None
        else {
            "scheme": inference.scheme,
            "digits": inference.digits_predictable,
            "of": inference.digits_total,
            "reason": inference.reason,
        },
        "national_id_predictable": ssn_flag,
        "how": how,
        "note": "This profile is synthetic: generated for the demonstration, not the volunteer's real data.",
    }


def differential_lesson(path=None) -> dict:
    """Who gets mistaken for someone else more often, in plain words: the summary the sample set's
    demographic analysis produced (``sample_data/fairness_summary.json``, made by
    :func:`privrisk.fairness.plain_words`), or the one at ``path``."""
    import json
    from pathlib import Path

    from .samples import sample_data_dir

    file = Path(path) if path else sample_data_dir() / "fairness_summary.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrivriskError(f"{file}: no demographic summary found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrivriskError(f"{file}: cannot read the demographic summary ({exc})") from None
    if not isinstance(data, dict) or "why" not in data or "source" not in data:
        raise PrivriskError(f"{file}: not a demographic summary (needs 'source' and 'why')")
    return data


# --- myth or defence: which changes to a public photo break a live match (issue 16, item 5) --------


@dataclass(frozen=True)
class DefenceTrial:
    """One transform of a volunteer's enrolled photo, and whether the snapshot still finds them.
    ``rank`` is the volunteer's rank among everyone in the live gallery (sample faces and volunteers,
    measured); ``identified`` is True when they come first within the threshold."""

    transform: str
    strength: object
    label: str
    distance: float
    threshold: float
    rank: int
    identified: bool
    detected: bool
    ssim: float
    attacker: str = ""  # the detector, embedder and threshold this trial was judged with, in words

    @property
    def breaks_match(self) -> bool:
        return not self.identified

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"breaks_match": self.breaks_match}


def myth_or_defence(
    gallery: LiveGallery,
    volunteer_id: str,
    enrolled_photo,
    snapshot: np.ndarray,
    attacker: Attacker,
    transforms=None,
) -> list[DefenceTrial]:
    """Each transform of :mod:`privrisk.transforms` applied to the volunteer's enrolled photo
    (``enrolled_photo``: RGB uint8 array, in memory), the copy embedded and put in the gallery in place
    of the original, and the ``snapshot`` embedding identified again, by ``attacker`` (face model,
    detection settings, match threshold). ``transforms`` maps a transform name to the strengths to try
    (default: every transform's whole ladder). The first row is the untouched photo; when it does not
    identify the volunteer, :class:`OriginalNotIdentified` says why and no change is scored. A copy
    whose face the detector misses is encoded at the original face's box (as a stronger detector would
    find it); ``detected`` says which."""
    from .faces import face_landmarks
    from .protect import find_face
    from .transforms import TRANSFORMS

    volunteer = gallery.volunteer(volunteer_id)
    if volunteer is None:
        raise PrivriskError(f"{volunteer_id}: no such volunteer in this gallery")
    model = attacker.face_model("myth or defence")
    rgb = np.ascontiguousarray(enrolled_photo, np.uint8)
    face = find_face(rgb, model, attacker.settings, name=volunteer.name)
    if face is None:
        raise PrivriskError(f"{volunteer.name}: no face found in the enrolled photo")
    marks = face_landmarks(model, rgb, face.box) or None
    ladders = {n: t.ladder for n, t in TRANSFORMS.items()} if transforms is None else dict(transforms)
    trial = _Trial(gallery, volunteer, np.asarray(snapshot, np.float32).reshape(-1), attacker)
    trials = [trial.judge(("none", None), rgb, face, rgb)]
    for name, ladder in ladders.items():
        for strength in ladder:
            trials.append(trial.transformed((name, strength), rgb, face, marks))
    return trials


@dataclass(frozen=True, eq=False)
class _Trial:
    """One volunteer's "myth or defence": the live gallery, the volunteer, the snapshot embedding
    and the attacker every change is judged by."""

    gallery: LiveGallery
    volunteer: Volunteer
    snap: np.ndarray
    attacker: Attacker

    def transformed(self, setting: tuple, rgb: np.ndarray, face, marks) -> DefenceTrial:
        from .protect import find_face
        from .transforms import apply_transform

        name, strength = setting
        out = apply_transform(rgb, face.box, name, strength, landmarks=marks)
        model = self.attacker.face_model("myth or defence")
        found = find_face(out, model, self.attacker.settings, at=face.box, name=self.volunteer.name)
        return self.judge(setting, out, found, rgb, face.box)

    def judge(self, setting: tuple, out: np.ndarray, found, rgb: np.ndarray, box=None) -> DefenceTrial:
        """The volunteer searched for with ``found`` (the copy's face) in place of their photo; the
        untouched photo (``setting`` ("none", None)) must identify them, else
        :class:`OriginalNotIdentified`."""
        from .transforms import TRANSFORMS, image_quality

        name, strength = setting
        threshold = self.attacker.threshold
        rank, first, d = _rank_with(self.gallery, self.volunteer.volunteer_id, found.embedding, self.snap)
        if name == "none" and not (first and d <= threshold):
            raise OriginalNotIdentified(_why_not_found(self.gallery, self.volunteer, self.snap, rank, d, threshold))
        return DefenceTrial(
            transform=name,
            strength=strength,
            label="original photo" if name == "none" else TRANSFORMS[name].label(strength),
            distance=d,
            threshold=threshold,
            rank=rank,
            identified=first and d <= threshold,
            detected=bool(found.detected),
            ssim=1.0 if name == "none" else image_quality(rgb, out, box).ssim,
            attacker=attacker_words(self.attacker.settings, self.attacker.model, threshold),
        )


class OriginalNotIdentified(PrivriskError):
    """The untouched enrolled photo does not find the volunteer: no change can be scored as a defence."""


def _why_not_found(gallery, volunteer, snap, rank: int, d: float, threshold: float) -> str:
    """Plain words for :class:`OriginalNotIdentified`: who the snapshot finds instead, and what to do."""
    match = gallery.identify(snap, threshold=threshold)
    best = match.best
    if d > threshold:
        cause = (
            f"the snapshot is at distance {d:.3f} from {volunteer.name}'s enrolled photo, above the match "
            f"threshold ({threshold:g}): to the model they are not the same person"
        )
    else:
        who = best.subject_id if best is not None else "someone else"
        other = f" ({who}, distance {best.distance:.3f})" if best is not None else ""
        cause = f"{volunteer.name} comes at rank {rank}: someone else is at least as close{other}"
        if best is not None and gallery.volunteer(best.subject_id) is None:
            cause += "; the volunteer looks like a sample person, so remove the sample set or use another photo"
    return (
        f"The untouched photo does not find {volunteer.name}, so the changes cannot be scored (every one would "
        f"look like a defence): {cause}. Take a new snapshot or enrol another photo of the volunteer."
    )


def attacker_words(settings, model, threshold: float) -> str:
    """The attacker a self-check shows, in words: detector, embedder and decision rule."""
    det = (
        "dlib's CNN (MMOD) face detector, the strongest privrisk has"
        if settings.detector == "cnn"
        else ("dlib's HOG face detector (a CNN detector finds more faces)")
    )
    return (
        f"The attacker shown: {det}; embedder {getattr(model, 'model_id', 'dlib')}; a match within distance "
        f"{threshold:g}. A change that only hides the face from a weaker detector is not counted as a defence."
    )


def _rank_with(gallery: LiveGallery, volunteer_id: str, embedding: np.ndarray, snapshot: np.ndarray):
    """The volunteer's subject rank for ``snapshot`` when their gallery photo is ``embedding``, whether
    nobody else is as close, and their distance (exact FAISS search over the live gallery; a tie goes
    against the volunteer)."""
    vectors = np.vstack(
        [gallery.sample_vectors]
        + [(embedding if v.volunteer_id == volunteer_id else v.embedding)[None] for v in gallery.volunteers]
    ).astype(np.float32)
    labels = np.array(list(gallery.sample_subjects) + [v.volunteer_id for v in gallery.volunteers])
    index = faiss_index.build_index(vectors)
    d, i = faiss_index.search(index, snapshot[None].astype(np.float32), len(labels))
    found = labels[i[0]]
    own = float(d[0][found == volunteer_id].min())
    others = {lab for lab, dist in zip(found, d[0]) if lab != volunteer_id and dist <= own}
    return 1 + len(others), not others, own
