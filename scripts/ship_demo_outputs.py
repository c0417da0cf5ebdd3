"""Refresh the files the project ships from a demo run: what the exposure score, the trainer page
and `privrisk calibrate` read by default.

    python3 -m uv run --locked privrisk demo --out runs/demo
    python3 -m uv run --locked python scripts/ship_demo_outputs.py runs/demo/results.json

Writes sample_data/identification_curves.json (exposure.curves.export_curves), sample_data/tail_model.json
(the tail models the demo fitted on the sample set) and sample_data/fairness_summary.json
(fairness.plain_words). Tests check that each equals what a fresh demo run gives.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from privrisk.exposure.curves import export_curves
from privrisk.fairness import plain_words
from privrisk.fileio import atomic_write, json_default

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="a demo run's results.json")
    args = ap.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    out = ROOT / "sample_data"
    atomic_write(out / "identification_curves.json", json.dumps(export_curves(results), indent=1) + "\n")
    models = (results["scaling_detail"].get("tail_models") or {}).get("models", [])
    atomic_write(out / "tail_model.json", json.dumps({"models": models}, default=json_default) + "\n")
    atomic_write(out / "fairness_summary.json", json.dumps(plain_words(results["fairness"]), indent=2) + "\n")
    print(f"wrote identification_curves.json, tail_model.json ({len(models)} models), fairness_summary.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
