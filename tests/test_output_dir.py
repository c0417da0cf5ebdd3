"""Output folders: a previous privrisk run may be resumed or overwritten; any other non-empty folder
is refused with a typed error unless the caller says to overwrite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from privrisk.errors import OutputNotEmpty, PrivriskError
from privrisk.fileio import RUN_MARKER, claim_output_dir, is_privrisk_run


def test_missing_and_empty_folders_are_created_and_marked(tmp_path):
    for folder in (tmp_path / "new" / "nested", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        assert claim_output_dir(folder) == folder
        assert (folder / RUN_MARKER).is_file() and is_privrisk_run(folder)


def test_a_previous_run_is_resumed_without_asking(tmp_path):
    marked = tmp_path / "marked"
    claim_output_dir(marked)
    (marked / "gallery").mkdir()
    (marked / "probes.csv").write_text("x\n")  # a killed run's partial outputs
    claim_output_dir(marked)
    # a run from before the marker existed: its results.json says privrisk wrote it
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({"privrisk_version": "0.3", "seed": 1}))
    assert is_privrisk_run(old)
    claim_output_dir(old)
    assert (old / RUN_MARKER).is_file()


def test_a_foreign_folder_is_refused_unless_overwrite(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("hello")
    (foreign / "results.json").write_text('{"mine": true}')  # same name, not privrisk's
    with pytest.raises(OutputNotEmpty) as err:
        claim_output_dir(foreign)
    assert err.value.path == str(foreign) and "not a previous privrisk run" in err.value.reason
    assert isinstance(err.value, PrivriskError)
    assert not (foreign / RUN_MARKER).exists()  # nothing written on refusal
    claim_output_dir(foreign, overwrite=True)
    assert is_privrisk_run(foreign) and (foreign / "chapter1.tex").read_text() == "hello"
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(OutputNotEmpty, match="not a folder"):
        claim_output_dir(file, overwrite=True)


def test_run_experiment_refuses_before_touching_the_folder(tmp_path):
    from privrisk.config import ExperimentConfig
    from privrisk.experiment import run_experiment

    foreign = tmp_path / "photos"
    (foreign / "gallery").mkdir(parents=True)
    (foreign / "gallery" / "holiday.txt").write_text("keep me")
    with pytest.raises(OutputNotEmpty):
        run_experiment(ExperimentConfig(), foreign, progress=False, log=None)
    assert (foreign / "gallery" / "holiday.txt").read_text() == "keep me"  # gallery/ not deleted


def test_cli_refuses_with_one_line_and_exit_2(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.txt").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "privrisk.cli", "experiment", str(cfg), "--out", str(foreign), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force" in lines[0] and str(foreign) in lines[0]
    assert sorted(p.name for p in foreign.iterdir()) == ["a.txt"]
