"""Crash safety of experiment runs, no network at run time, and the app's local-only defaults."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tomllib

from helpers import ROOT, no_network_env

SMALL = """
seed = 7
bootstrap = 50
[offline]
shots = 1
headline = "webcam"
timing_probes = 2
detector_people = 10  # the cnn detector beside hog on a seeded subset, as the demo runs it (default: everyone)
[[offline.levels]]
name = "webcam"
face_width_px = 80
[[offline.levels]]
name = "far"
face_width_px = 24
[scaling]
sizes = [100, 1000]
extrapolate = [1000000]
validation_distractors = 200
tail_bootstrap = 10
"""


def _strip(x):
    if isinstance(x, dict):
        return {
            k: _strip(v)
            for k, v in x.items()
            # timings, and the note that a deterministic result was read from the cache (a killed run
            # may have stored it), are not results
            if not k.startswith("seconds") and k not in ("search_seconds_per_probe_at_max", "outputs", "from_cache")
        }
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_network_is_really_blocked_by_the_guard(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=2)"],
        env=no_network_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "blocked by privrisk" in out.stderr


@pytest.mark.model
def test_experiment_killed_at_10_random_points_resumes_to_the_same_results(tmp_path, london, shared_cache_dir):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    # the session's embedding cache: the kills fall after the reference run has filled it with this
    # config's embeddings, so what is killed and resumed is the experiment's own outputs
    env = no_network_env(tmp_path, PRIVRISK_CACHE_DIR=shared_cache_dir)  # no network, ever
    cmd = [sys.executable, "-m", "privrisk.cli", "experiment", str(cfg), "-q", "--out"]
    ref = subprocess.run(cmd + [str(tmp_path / "ref")], env=env, capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-2000:]
    t0 = time.perf_counter()
    subprocess.run(cmd + [str(tmp_path / "warm")], env=env, check=True, capture_output=True, timeout=900)
    warm = time.perf_counter() - t0
    reference = _strip(json.loads((tmp_path / "ref" / "results.json").read_text()))
    reference_csv = (tmp_path / "ref" / "probes.csv").read_text()
    rng = np.random.default_rng(11)
    for attempt, when in enumerate(rng.uniform(0.5, max(warm, 1.0), size=10)):
        out = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            cmd + [str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(when)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done = subprocess.run(cmd + [str(out)], env=env, capture_output=True, text=True, timeout=900)
        where = f"attempt {attempt}, killed after {when:.1f} s"
        assert done.returncode == 0, (where, done.stderr[-2000:])
        assert _strip(json.loads((out / "results.json").read_text())) == reference, where
        assert (out / "probes.csv").read_text() == reference_csv, where
        assert not list(out.rglob("*.tmp")), (where, list(out.rglob("*.tmp")))


def test_app_defaults_are_local_and_quiet():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["browser"]["gatherUsageStats"] is False
    assert 0 < config["server"]["maxUploadSize"] <= 50


def test_nothing_unpickles():
    offenders = []
    for path in list((ROOT / "src").rglob("*.py")) + list((ROOT / "app_pages").rglob("*.py")) + [ROOT / "app.py"]:
        text = path.read_text()
        if "import pickle" in text or "pickle.load" in text or "np.load(" in text and "allow_pickle=True" in text:
            offenders.append(str(path))
    assert not offenders


def test_a_writer_killed_mid_write_leaves_a_temp_file_the_next_run_sweeps(tmp_path):
    from privrisk.fileio import sweep_temp_files

    script = (
        "import os, signal, sys\n"
        "from privrisk.fileio import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    target = tmp_path / "results.json"
    target.write_text("old, whole")
    keep = tmp_path / "notes.tmp"  # a user's file that merely ends in .tmp is not ours
    keep.write_text("mine")
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".results.json.*.tmp"))
    assert len(left) == 1  # SIGKILL skips the cleanup: this is why the sweep exists
    assert target.read_text() == "old, whole"
    assert sweep_temp_files(tmp_path) == left
    assert not list(tmp_path.glob(".*.tmp")) and keep.read_text() == "mine" and target.read_text() == "old, whole"
