"""`privrisk calibrate`: real impostor rates on a new face set beside the tail model's predictions."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_tailmodel import clustered

from privrisk import tailmodel as tm
from privrisk.cli import main
from privrisk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fitted():
    faces, subjects, _ = clustered(seed=5, people=120)
    return tm.fit(faces[0::2], subjects[0::2], faces[1::2], subjects[1::2], n_boot=40, seed=5)


def test_calibrate_counts_pairs_by_hand_and_judges(fitted):
    faces, subjects, _ = clustered(seed=6, people=60, photos=1)
    thr = [0.55, 0.6, 0.65]
    out = tm.calibrate([fitted], faces, subjects, thresholds=thr)
    d = np.linalg.norm(faces[:, None].astype(np.float64) - faces[None], axis=2)[np.triu_indices(60, 1)]
    assert out["n_pairs"] == 60 * 59 // 2
    assert out["real_count"] == [int((d <= t).sum()) for t in thr]
    m = out["models"][0]
    for (lo, hi), r in zip(m["model_rate_ci95"], m["model_rate"]):
        assert 0 <= lo <= r <= hi <= 1
    assert set(m["verdict"]) <= {"within", "not within", "not judged (no pair on either side)"}


def test_calibrate_says_not_within_when_faces_are_more_alike(fitted):
    """A face set whose people are much closer together than the fit's: the model must say so."""
    faces, subjects, _ = clustered(seed=7, people=60, photos=1)
    centre = faces.mean(axis=0)
    squeezed = centre + 0.6 * (faces - centre)
    thr = [0.5, 0.6]
    out = tm.calibrate([fitted], squeezed, subjects, thresholds=thr)
    assert out["real_count"][0] > 0
    assert "not within" in out["models"][0]["verdict"]


def test_shipped_models_load_and_name_two_tails():
    models = tm.load_models()
    assert [m.kind for m in models] == ["gpd", "normal"]
    assert all(len(m.boot) >= 50 and len(m.std.mu) == 128 for m in models)


def test_bad_model_file_is_a_config_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON file"):
        tm.load_models(tmp_path / "x.json")
    (tmp_path / "r.json").write_text(json.dumps({"scaling_detail": {}}))
    with pytest.raises(ConfigError, match="no saved tail models"):
        tm.load_models(tmp_path / "r.json")


def test_cli_bad_results_file_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "privrisk.cli",
            "calibrate",
            str(ROOT / "sample_data" / "london_neutral.csv"),
            "--results",
            str(tmp_path / "missing.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "tail-model file not found" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.model
def test_cli_calibrate_on_sample_faces(tmp_path, london, capsys):
    """One photo per person is enough; the JSON carries rates, intervals and verdicts per threshold."""
    manifest = tmp_path / "one.csv"
    lines = (ROOT / "sample_data" / "london_neutral.csv").read_text().splitlines()
    manifest.write_text("\n".join(lines[:41]) + "\n")
    assert main(["calibrate", str(manifest), "--images", str(london), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_people"] == 40 and out["n_pairs"] == 40 * 39 // 2
    assert len(out["models"]) == 2 and all(len(m["verdict"]) == 4 for m in out["models"])
