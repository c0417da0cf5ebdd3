"""The app's page logic with AppTest and the fake face model (no dlib, a small synthetic world):
what re-runs when a widget changes, the trainer's enrolment form, and the experiment page's
question before writing into a non-empty folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, FakeFaceModel, encode_image, noise_image

PAGES = ROOT / "app_pages"


def png(seed: int, noise: float = 0.0, noise_seed: int = 99) -> bytes:
    return encode_image(Image.fromarray(noise_image(seed, size=(200, 200), noise=noise, noise_seed=noise_seed)), "PNG")


@pytest.fixture
def fake_app(monkeypatch):
    """The pages' shared resources replaced: the fake face model, and a world of 30 synthetic sample
    faces and 2,000 distractors around them (with the shipped tail models)."""
    from app_pages import common
    from privrisk import index, selfcheck, tailmodel

    model = FakeFaceModel()
    vectors = np.array([model.encode(noise_image(100 + i, size=(64, 64)), [(0, 64, 64, 0)])[0] for i in range(30)])
    rng = np.random.default_rng(5)
    distractors = (vectors[rng.integers(0, 30, 2000)] + rng.normal(0, 0.05, (2000, 128))).astype(np.float32)
    world = selfcheck.SampleWorld(
        vectors=vectors.astype(np.float32),
        subjects=[f"s{i:02d}" for i in range(30)],
        images=["synthetic"] * 30,
        model=None,
        distractors=distractors,
        index=index.build_index(distractors),
        tail_models=tuple(tailmodel.load_models()),
    )
    monkeypatch.setattr(common, "face_model", lambda: model)
    monkeypatch.setattr(common, "sample_world", lambda: world)
    calls = []
    real = selfcheck.findability

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(selfcheck, "findability", counted)
    return calls


def page(name):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(PAGES / name), default_timeout=60)


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_settings_changes_do_not_rerun_findability(fake_app):
    calls = fake_app
    at = page("self_check.py")
    at.run()
    at.checkbox(key="consent").check().run()
    at.file_uploader(key="profile_photo_0").set_value(("me.png", png(1), "image/png"))
    at.file_uploader(key="snapshot_0").set_value(("snap.png", png(1, noise=6.0), "image/png"))
    at.run()  # the photos are a form: picking them runs nothing until "Find me"
    assert len(calls) == 0 and "Rank among 1,000,000 people" not in metrics(at)
    at.file_uploader(key="profile_photo_0").set_value(("me.png", png(1), "image/png"))
    at.file_uploader(key="snapshot_0").set_value(("snap.png", png(1, noise=6.0), "image/png"))
    at.button(key="find_me_0").click().run()
    assert not at.exception, at.exception
    assert len(calls) == 1
    shown = metrics(at)
    assert "Rank among 1,000,000 people" in shown
    # profile settings and "who looks": the page re-runs, the score follows, findability does not re-run
    at.selectbox(key="preset").set_value("everything_public").run()
    assert metrics(at)["Range"] != shown["Range"]
    at.radio(key="audience").set_value(at.radio(key="audience").options[-1]).run()
    at.number_input(key="birth_year").set_value(1970).run()
    assert not at.exception, at.exception
    assert len(calls) == 1
    assert metrics(at)["Rank among 1,000,000 people"] == shown["Rank among 1,000,000 people"]
    # another snapshot is another search
    at.file_uploader(key="profile_photo_0").set_value(("me.png", png(1), "image/png"))
    at.file_uploader(key="snapshot_0").set_value(("other.png", png(7), "image/png"))
    at.button(key="find_me_0").click().run()
    assert len(calls) == 2
    # it is someone else: the page asks before it shows any answer (issue 22)
    assert any("Is this really you" in w.value for w in at.warning)
    assert "Rank among 1,000,000 people" not in metrics(at) and "Exposure score (stranger)" not in metrics(at)
    at.button(key="same_person_yes").click().run()
    assert "Rank among 1,000,000 people" in metrics(at) and len(calls) == 2
    # forget me drops the held result with everything else
    next(b for b in at.button if b.label == "Forget me").click().run()
    assert "findability" not in at.session_state and "same_person_confirmed" not in at.session_state


def test_trainer_enrols_through_a_form(fake_app):
    at = page("trainer.py")
    at.run()
    assert not at.exception, at.exception

    def fill(consent: bool):
        # (AppTest hands form values to one submission only, so each submission fills the form)
        at.text_input(key="vol_name_0").input("Ada")
        at.file_uploader(key="vol_file_0").set_value(("ada.png", png(3), "image/png"))
        at.checkbox(key="vol_consent_0").set_value(consent)

    fill(consent=False)
    # nothing is enrolled until "Enrol" is pressed
    at.run()
    assert len(at.session_state["live_gallery"].volunteers) == 0 and not at.error
    fill(consent=False)
    next(b for b in at.button if b.label == "Enrol").click().run()
    assert any("saying yes" in e.value for e in at.error)
    assert len(at.session_state["live_gallery"].volunteers) == 0
    fill(consent=True)
    next(b for b in at.button if b.label == "Enrol").click().run()
    assert not at.exception, at.exception
    assert any("Ada joined" in s.value for s in at.success), [e.value for e in at.error]
    assert at.session_state["enrol_round"] == 1  # a fresh, empty form for the next volunteer
    at.file_uploader(key="snap_file_0").set_value(("snap.png", png(3, noise=5.0), "image/png"))
    at.run()
    assert any("Identified: Ada" in s.value for s in at.success)
    # myth or defence: each change to Ada's enrolled photo, searched again live
    assert at.selectbox(key="defence_who_0").value == "volunteer-1"
    next(b for b in at.button if b.label == "Test every change").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["change"][0] == "original photo" and table["result"][0] == "still identified"
    assert set(table["result"]) == {"still identified", "match broken"}
    shown = metrics(at)
    broken = (table["result"][1:] == "match broken").sum()
    assert shown["Changes that break the match (defences)"] == f"{broken} of {len(table) - 1}"
    assert at.get("vega_lite_chart")  # the bars with the threshold line
    # the result stays on screen across re-runs, and goes with the volunteers on reset
    at.run()
    assert at.dataframe
    next(b for b in at.button if b.label.startswith("Reset")).click().run()
    assert "enrolled_photos" not in at.session_state and "defence" not in at.session_state


def test_experiment_page_asks_before_writing_into_a_foreign_folder(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("hello")
    at = page("experiment.py")
    at.run()
    at.text_input(key="exp_out").input(str(foreign)).run()
    assert any("not a privrisk run" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Run the experiment").disabled
    at.checkbox(key="exp_force").check().run()
    assert not next(b for b in at.button if b.label == "Run the experiment").disabled

    previous = tmp_path / "run"
    previous.mkdir()
    (previous / ".privrisk-run").write_text("privrisk\n")
    (previous / "results.json").write_text("{}")
    at.text_input(key="exp_out").input(str(previous)).run()
    assert any("previous privrisk run" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "Run the experiment").disabled
    at.checkbox(key="exp_replace").check().run()
    assert not next(b for b in at.button if b.label == "Run the experiment").disabled


def test_experiment_page_starts_from_a_config_file(tmp_path, monkeypatch):
    """PRIVRISK_APP_EXPERIMENT_CONFIG: the page's inputs start at the file's values; a bad file is one
    error naming the variable, the file and the key, and no page."""
    good = tmp_path / "lab.toml"
    good.write_text("seed = 7\n[offline]\nshots = 2\n")
    monkeypatch.setenv("PRIVRISK_APP_EXPERIMENT_CONFIG", str(good))
    at = page("experiment.py")
    at.run()
    assert not at.exception and not at.error
    assert at.number_input(key="exp_seed").value == 7 and at.number_input(key="exp_shots").value == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[offline]\nshots = 0\n")
    monkeypatch.setenv("PRIVRISK_APP_EXPERIMENT_CONFIG", str(bad))
    at = page("experiment.py")
    at.run()
    (error,) = at.error
    assert "PRIVRISK_APP_EXPERIMENT_CONFIG" in error.value and str(bad) in error.value
    assert "offline.shots" in error.value and not at.button


def test_my_photos_checks_each_photo_in_memory(fake_app, monkeypatch, short_ladders):
    from privrisk import photocheck

    calls = []
    real = photocheck.check_photos

    def counted(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(photocheck, "check_photos", counted)
    at = page("my_photos.py")
    at.run()
    assert any("Tick the box" in i.value for i in at.info)
    at.checkbox(key="mp_consent").check().run()
    # photo 1 is the snapshot's person; photo 2 someone else; photo 3 is not an image
    at.file_uploader(key="mp_photos_0").set_value(
        [("me.png", png(1), "image/png"), ("other.png", png(7), "image/png"), ("notes.png", b"hello", "image/png")]
    )
    at.file_uploader(key="mp_snapshot_0").set_value(("snap.png", png(1, noise=6.0), "image/png"))
    at.button(key="mp_check_0").click().run()
    assert not at.exception, at.exception
    assert calls == [3]
    # other.png is someone else: the page asks before any verdict (issue 22)
    assert any("Is this really you" in w.value and "other.png" in w.value for w in at.warning)
    assert not at.dataframe
    at.button(key="mp_same_person_yes").click().run()
    assert calls == [3]
    table = at.dataframe[0].value
    assert list(table["photo"]) == ["me.png", "other.png", "notes.png"]  # the most revealing first
    assert table["verdict"][0] == "gives you away" and table["verdict"][2] == "not checked"
    assert table["rank now"][0].startswith("1 of ")
    assert table["rank now"][2] == "unknown" and at.dataframe[1].value["face width (px)"][2] == "unknown"
    assert "%-" in at.dataframe[1].value["chance of coming first among 10^6 (extrapolated)"][0]
    assert "not a recognised image" in table["why not checked"][2]
    assert "None" not in table.to_string() + at.dataframe[1].value.to_string()
    # the ranges come from the group-blind tail models: the page says whom they describe
    assert any("group-blind tail model" in c.value and "average person" in c.value for c in at.caption)
    # another level re-checks; a re-run with nothing changed does not
    at.radio(key="mp_level").set_value("safe_at_1e9").run()
    assert calls == [3, 3]
    at.run()
    assert calls == [3, 3]
    next(b for b in at.button if b.label == "Forget me").click().run()
    assert "photo_check" not in at.session_state


def test_my_photos_refuses_more_than_ten(fake_app):
    at = page("my_photos.py")
    at.run()
    at.checkbox(key="mp_consent").check().run()
    at.file_uploader(key="mp_photos_0").set_value([(f"p{i}.png", png(i), "image/png") for i in range(11)])
    at.file_uploader(key="mp_snapshot_0").set_value(("snap.png", png(1, noise=6.0), "image/png"))
    at.button(key="mp_check_0").click().run()
    assert any("at most 10" in e.value for e in at.error)
    assert "photo_check" not in at.session_state


def test_trainer_flags_a_sample_set_volunteer_and_checks_the_original_first(fake_app):
    """Issue 22: a volunteer enrolled from a sample person's photo is not enrolled until the trainer
    chooses; myth or defence stops with a reason when the untouched photo does not find the volunteer."""
    from helpers import noise_image

    sample_photo = encode_image(Image.fromarray(noise_image(105, size=(64, 64))), "PNG")  # sample person s05
    at = page("trainer.py")
    at.run()
    at.text_input(key="vol_name_0").input("Sam")
    at.file_uploader(key="vol_file_0").set_value(("sam.png", sample_photo, "image/png"))
    at.checkbox(key="vol_consent_0").set_value(True)
    next(b for b in at.button if b.label == "Enrol").click().run()
    assert not at.exception, at.exception
    assert len(at.session_state["live_gallery"].volunteers) == 0
    assert any("matches sample person s05" in e.value for e in at.error)
    at.button(key="pending_as_sample").click().run()
    gallery = at.session_state["live_gallery"]
    assert [v.name for v in gallery.volunteers] == ["Sam"] and "s05" not in gallery.sample_subjects
    assert any("Sample person s05 is now the volunteer" in s.value for s in at.success)
    # a snapshot of someone else: the untouched photo does not find Sam, so no change is scored
    at.file_uploader(key="snap_file_0").set_value(("other.png", png(7), "image/png"))
    at.run()
    next(b for b in at.button if b.label == "Test every change").click().run()
    assert not at.exception, at.exception
    assert any("No changes scored" in e.value and "untouched photo does not find Sam" in e.value for e in at.error)
    assert not at.dataframe and not metrics(at)
