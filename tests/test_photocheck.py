"""The self-check's per-photo check and the trainer's "myth or defence", with the fake face model:
what is checked, in which order, what breaks a match, and that nothing reaches the disk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import FakeFaceModel, encode_image, noise_image


def png(seed: int, noise: float = 0.0, noise_seed: int = 99) -> bytes:
    return encode_image(Image.fromarray(noise_image(seed, size=(200, 200), noise=noise, noise_seed=noise_seed)), "PNG")


@pytest.fixture(scope="module")
def model():
    return FakeFaceModel()


@pytest.fixture(scope="module")
def world(model):
    from privrisk import selfcheck, tailmodel

    vectors = np.array([model.encode(noise_image(100 + i, size=(64, 64)), [(0, 64, 64, 0)])[0] for i in range(30)])
    return selfcheck.SampleWorld(
        vectors=vectors.astype(np.float32),
        subjects=[f"s{i:02d}" for i in range(30)],
        images=["synthetic"] * 30,
        model=None,
        distractors=np.zeros((0, 128), np.float32),
        index=None,
        tail_models=tuple(tailmodel.load_models()),
    )


def test_check_photos_rows_errors_and_limits(model, world, tmp_path, monkeypatch, short_ladders):
    from privrisk.errors import ConfigError, FaceNotFound
    from privrisk.photocheck import MAX_PHOTOS, check_photos

    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere under it
    blank = encode_image(Image.new("RGB", (120, 120), "gray"), "PNG")
    photos = [("me.png", png(1)), ("other.png", png(7)), ("text.png", b"not an image"), ("wall.png", blank)]
    rows = check_photos(photos, png(1, noise=6.0), world=world, model=model)
    assert [r.name for r in rows] == [n for n, _ in photos]
    me, other, text, wall = rows
    assert me.ok and me.before.rank == 1 and me.before.detected and me.before.face_width == 200
    assert other.ok and other.before.distance > me.before.distance
    # the photo of the snapshot's person is the more revealing one at 10^6 (upper end of its range)
    assert me.risk(1_000_000) >= other.risk(1_000_000)
    for size in (1_000_000, 1_000_000_000):
        row = me.before.at(size)
        assert row.kind == "extrapolated" and row.p_rank1_range[0] <= row.p_rank1 <= row.p_rank1_range[1]
    assert not text.ok and "not a recognised image" in text.error and text.risk(10**6) == -1
    assert not wall.ok and "no face" in wall.error
    assert me.protection is not None and me.protection.level == "safe_at_1e6"
    assert "rgb" not in me.to_dict() and me.to_dict()["before"]["rank"] == 1
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="at most 10"):
        check_photos([("p.png", png(1))] * (MAX_PHOTOS + 1), png(1), world=world, model=model)
    with pytest.raises(ConfigError, match="level"):
        check_photos([("p.png", png(1))], png(1), world=world, model=model, level="safe_at_42")
    with pytest.raises(FaceNotFound):
        check_photos([("p.png", png(1))], blank, world=world, model=model)


def test_myth_or_defence_says_which_changes_break_the_match(model, world):
    from privrisk.trainer import LiveGallery, myth_or_defence

    gallery = LiveGallery(world.vectors, world.subjects)
    photo = noise_image(3, size=(200, 200))
    ada = gallery.enrol("Ada", model.encode(photo, [(0, 200, 200, 0)])[0], consent=True)
    gallery.enrol("Bo", model.encode(noise_image(4, size=(200, 200)), [(0, 200, 200, 0)])[0], consent=True)
    snapshot = model.encode(noise_image(3, size=(200, 200), noise=5.0), [(0, 200, 200, 0)])[0]
    trials = myth_or_defence(
        gallery, ada.volunteer_id, photo, snapshot, model, transforms={"jpeg": (50, 5), "crop": (0.9, 0.3)}
    )
    assert [t.label for t in trials] == [
        "original photo",
        "jpeg 50 quality",
        "jpeg 5 quality",
        "crop 0.9 of the face",
        "crop 0.3 of the face",
    ]
    original = trials[0]
    assert original.identified and original.rank == 1 and original.ssim == 1.0 and original.distance < 0.6
    for t in trials:
        assert t.identified == (t.rank == 1 and t.distance <= t.threshold)
        assert t.breaks_match == (not t.identified)
        assert 0 <= t.ssim <= 1
    # compression leaves the face; cutting most of it away breaks the match
    assert trials[1].identified and trials[-1].breaks_match and trials[-1].ssim < trials[1].ssim
    # the attacker it shows: the strongest detector, named
    assert all("CNN" in t.attacker and "strongest" in t.attacker for t in trials)
    # the gallery is left as it was: the volunteer's own photo is back in place
    assert gallery.identify(snapshot).best.subject_id == ada.volunteer_id
    # every transform's whole ladder by default
    from privrisk.countermeasures import TRANSFORMS

    assert len(myth_or_defence(gallery, ada.volunteer_id, photo, snapshot, model)) == 1 + sum(
        len(t.ladder) for t in TRANSFORMS.values()
    )
