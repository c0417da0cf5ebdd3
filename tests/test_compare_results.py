"""scripts/compare_results.py: two runs agree when only timings, versions and cache flags differ, and
any count, decision or float beyond the portability tolerance is reported."""

import json
import subprocess
import sys

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "compare_results.py"


def _compare(tmp_path, before: dict, after: dict) -> subprocess.CompletedProcess:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(before))
    b.write_text(json.dumps(after))
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True, timeout=60)


def test_timings_versions_and_cache_flags_are_not_numbers_of_the_run(tmp_path):
    run = {"experiments": {"e1": {"rank1": 0.75, "n": 82, "seconds": 3.0}}, "versions": {"numpy": "2"}}
    other = {"experiments": {"e1": {"rank1": 0.75 * (1 + 1e-6), "n": 82, "seconds": 9.0}}, "versions": {"numpy": "3"}}
    other["scaling_detail"] = {"from_cache": True}
    run["scaling_detail"] = {}
    done = _compare(tmp_path, run, other)
    assert done.returncode == 0 and "same numbers" in done.stdout


def test_a_count_or_a_float_beyond_the_tolerance_is_reported(tmp_path):
    run = {"experiments": {"e1": {"rank1": 0.75, "n": 82}}}
    done = _compare(tmp_path, run, {"experiments": {"e1": {"rank1": 0.75, "n": 81}}})
    assert done.returncode == 1 and "n" in done.stdout
    done = _compare(tmp_path, run, {"experiments": {"e1": {"rank1": 0.7501, "n": 82}}})
    assert done.returncode == 1 and "rank1" in done.stdout
