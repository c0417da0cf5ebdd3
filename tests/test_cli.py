import json
import subprocess
import sys

import pytest

from helpers import ROOT
from privrisk.cli import main


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "privrisk.cli", *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    out = run_cli("gallery", "info", tmp_path / "nothing")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no gallery here" in out.stderr
    assert "Traceback" not in out.stderr

    bad = tmp_path / "m.csv"
    bad.write_text("who,what\n1,2\n")
    out = run_cli("gallery", "build", bad, "--out", tmp_path / "g")
    assert out.returncode == 2 and "missing column" in out.stderr and "Traceback" not in out.stderr

    out = run_cli("gallery", "build", bad, "--out", tmp_path / "g", "--detector", "magic")
    assert out.returncode == 2 and "invalid choice" in out.stderr


@pytest.mark.model
def test_build_info_match_remove_on_the_sample(tmp_path, london):
    env = {**__import__("os").environ, "PRIVRISK_CACHE_DIR": str(tmp_path / "cache")}
    gallery = tmp_path / "g"
    manifest = tmp_path / "few.csv"
    lines = (ROOT / "sample_data" / "london_neutral.csv").read_text().splitlines()
    manifest.write_text("\n".join(lines[:6]) + "\n003,neutral/003.jpg,no,,,,,\n")
    out = run_cli("gallery", "build", manifest, "--images", london, "--out", gallery, "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["added"] == 5 and len(report["refused"]) == 1 and "consent" in report["refused"][0]

    info = json.loads(run_cli("gallery", "info", gallery, "--json", env=env).stdout)
    assert info["faces"] == 5 and info["index_type"] == "auto" and info["index_in_use"] == "flat"

    probe = london / "smiling" / "004.jpg"
    out = run_cli("match", gallery, probe, london / "README.md", "--json", "-k", "3", env=env)
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout)
    assert first["decision"] == "match" and first["candidates"][0]["subject_id"] == "004"
    assert len(first["candidates"]) == 3 and second["error"] and not second["candidates"]

    text = run_cli("match", gallery, probe, env=env).stdout
    assert "MATCH 004" in text

    out = run_cli("gallery", "remove", gallery, "004", env=env)
    assert out.returncode == 0 and "1 face(s) removed" in out.stdout
    out = run_cli("match", gallery, probe, "--json", env=env)
    assert json.loads(out.stdout)[0]["candidates"][0]["subject_id"] != "004"


def test_main_returns_codes_in_process(tmp_path, capsys):
    assert main(["gallery", "info", str(tmp_path)]) == 2
    assert "no gallery here" in capsys.readouterr().err


def test_protect_and_findability_say_the_range_is_for_an_average_person(tmp_path, capsys, monkeypatch):
    """The chances of rank 1 come from the group-blind tail model (its per-probe PIT fails): both
    commands print the caveat as one line, and put it in a field of their (valid) JSON."""
    import privrisk.cli.photos as cli_photos
    from helpers import FakeFaceModel, fake_sample_world, write_png
    from privrisk.tailmodel import GROUP_BLIND_CAVEAT

    fake = FakeFaceModel()
    world, photos, second = fake_sample_world(fake)
    monkeypatch.setattr(cli_photos, "_sample_world", lambda args: (fake, world))
    me, snap = write_png(tmp_path / "me.png", photos[0]), write_png(tmp_path / "snap.png", second[0])

    assert main(["findability", str(me), "--snapshot", str(snap), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["caveat"] == GROUP_BLIND_CAVEAT and data["photos"][0]["rank"] == 1
    assert main(["findability", str(me), "--snapshot", str(snap)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert GROUP_BLIND_CAVEAT in lines and "rank 1 among 1,000,000" in "\n".join(lines)

    out = tmp_path / "protected.png"
    code = main(["protect", str(me), "--snapshot", str(snap), "--out", str(out), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and data["caveat"] == GROUP_BLIND_CAVEAT and "before" in data
    main(["protect", str(me), "--snapshot", str(snap), "--out", str(out)])
    assert GROUP_BLIND_CAVEAT in capsys.readouterr().out.splitlines()
    for text in ("group-blind", "PIT", "average person", "more findable"):
        assert text in GROUP_BLIND_CAVEAT


def test_findability_leads_with_measured_facts(tmp_path, capsys, monkeypatch):
    """Issue 23: the distance between your photos and where it falls among the real impostor pairs
    measured here (an empirical share with its n) come first, with each photo's face width and
    whether the detector finds it."""
    import numpy as np

    import privrisk.cli.photos as cli_photos
    from helpers import FakeFaceModel, fake_sample_world, write_png
    from privrisk.metrics import proportion_interval
    from privrisk.selfcheck import impostor_distances, measured_facts

    fake = FakeFaceModel()
    world, photos, second = fake_sample_world(fake)
    monkeypatch.setattr(cli_photos, "_sample_world", lambda args: (fake, world))
    me, snap = write_png(tmp_path / "me.png", photos[0]), write_png(tmp_path / "snap.png", second[0])
    assert main(["findability", str(me), "--snapshot", str(snap), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    f = data["measured_facts"][0]
    n = len(world.subjects)
    assert f["n_impostor_pairs"] == n * (n - 1) // 2 and f["n_people"] == n
    imp = impostor_distances(world)
    assert f["n_impostor_closer"] == int((imp <= f["distance"]).sum())
    assert f["impostor_share_ci95"] == list(proportion_interval(f["n_impostor_closer"], f["n_impostor_pairs"]))
    assert f["photos"][0]["detected"] is True and f["photos"][0]["face_width_px"] == data["photos"][0]["face_width"]
    assert main(["findability", str(me), "--snapshot", str(snap)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Measured here, first:") and f"Of the {n * (n - 1) // 2:,} pairs" in out
    # the library function the app calls gives the same facts from two embeddings
    far = measured_facts(world.vectors[0], world.vectors[0] + 10.0, world)
    assert far.n_impostor_closer == far.n_impostor_pairs and far.share == 1.0
    same = measured_facts(world.vectors[0], world.vectors[0], world)
    assert same.distance == 0.0 and same.n_impostor_closer == int((imp <= 0).sum())
    assert np.isfinite(same.share)


def test_photo_facts_width_detection_and_sharpness():
    import cv2
    import numpy as np

    from privrisk.faces import Face
    from privrisk.selfcheck import photo_facts

    rgb = np.random.default_rng(0).integers(0, 255, (120, 120, 3)).astype(np.uint8)
    face = Face((10, 90, 90, 10), 80, np.zeros(128, np.float32))
    sharp = photo_facts("a", rgb, face)
    blurred = photo_facts("b", cv2.GaussianBlur(rgb, (0, 0), 3), face)
    assert sharp.face_width_px == 80 and sharp.detected and sharp.sharpness > blurred.sharpness > 0
    missed = photo_facts("c", rgb, None)
    assert not missed.detected and missed.face_width_px is None and missed.sharpness is None
