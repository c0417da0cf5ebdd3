"""Compare two runs' results.json, timings, versions and machine aside, with the portability tolerance
(tests/reproducibility.py: counts, ranks and decisions exactly, floats to rtol 1e-4). Run it from the
repository root, e.g. a refactor's demo against the demo of the commit it started from:

    python3 -m uv run --locked python scripts/compare_results.py before/results.json after/results.json

Exit 0 and 'same numbers' when they agree; otherwise exit 1 and the differences (the dataset paths
differ when the two runs were made from different folders)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reproducibility import json_differences  # noqa: E402

EXACT = {
    "versions",
    "date",
    "started",
    "finished",
    "machine",
    "path",
    "out",
    "host",
    "config_path",
    "report",
    "from_cache",
}


def skip(k: str) -> bool:
    kl = k.lower()
    return kl in EXACT or kl.endswith("_s") or any(w in kl for w in ("time", "timing", "seconds", "elapsed"))


def strip(x, key=""):
    if isinstance(x, dict):
        return {k: strip(v, k) for k, v in x.items() if not skip(k)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


want = strip(json.loads(Path(sys.argv[1]).read_text()))
got = strip(json.loads(Path(sys.argv[2]).read_text()))
d = json_differences(got, want)
if d:
    print(f"{len(d)} differences:")
    print("\n".join(d[:60]))
    sys.exit(1)
print("same numbers")
