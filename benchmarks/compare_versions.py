"""Do the speed defaults keep results trustworthy? privrisk now against an earlier commit, same seed.

    python3 -m uv run --locked python benchmarks/compare_versions.py --base 67e966c

Runs the demo three times, each with its own empty embedding cache (so no run reuses another's
embeddings):

1. the base commit's code (``git archive``), with its defaults;
2. this checkout with the legacy settings (``faces.upsample = 1``, ``faces.retry_upsample = 0``,
   ``gallery.index_type = "flat"``): every number the base reports must come out identical;
3. this checkout with the new defaults: every rank-1 and FPIR must stay inside the base's exact
   (Clopper-Pearson) 95% interval, and the faces found over all sample photos and E2 captures must
   not fall.

Writes ``benchmarks/results/compare_versions.json`` and prints the verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]

LEGACY = """
[faces]
upsample = 1
retry_upsample = 0
[gallery]
index_type = "flat"
"""


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def _numbers(x, path=""):
    """Every number in a results tree, by dotted path, timings and run-specific fields left out."""
    skip = ("seconds", "search_seconds", "config", "versions", "dataset", "privrisk_version", "skipped")
    out = {}
    if isinstance(x, dict):
        for k, v in x.items():
            if any(str(k).startswith(s) for s in skip):
                continue
            out |= _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out |= _numbers(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        out[path] = x
    return out


def _run_demo(pythonpath: Path, out: Path, cache: Path, config: str | None) -> tuple[dict, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(pythonpath),
        "PRIVRISK_CACHE_DIR": str(cache),
        "PRIVRISK_DATASET_DIR": str(ROOT / "sample_data"),
    }
    cmd = [sys.executable, "-m", "privrisk.cli"]
    if config is None:
        cmd += ["demo", "--out", str(out), "--quiet"]
    else:
        cfg = out.parent / f"{out.name}.toml"
        cfg.write_text(config)
        cmd += ["experiment", str(cfg), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=out.parent)
    return json.loads((out / "results.json").read_text()), time.perf_counter() - t0


def _exact_interval(k: int, n: int) -> tuple[float, float]:
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def _rates(results: dict) -> dict:
    """(rate, successes, n) for each rank-1 and FPIR at the threshold the results report."""
    out = {}
    e = results["experiments"]
    rows = {"online_to_online": e["online_to_online"]} | {
        f"offline/{k}": v for k, v in e["offline_to_online"]["levels"].items()
    }
    for name, m in rows.items():
        n_m, n_nm = m["n_mated"], m["n_nonmated"]
        out[f"{name} rank-1"] = (m["rank1"], round(m["rank1"] * n_m), n_m)
        if m.get("fpir_at_threshold") is not None and n_nm:
            out[f"{name} FPIR at threshold"] = (m["fpir_at_threshold"], round(m["fpir_at_threshold"] * n_nm), n_nm)
    return out


def _faces_found(results: dict) -> int:
    """Sample photos with a face (both manifests) plus E2 captures with a face."""
    e = results["experiments"]
    photos = 2 * 102 - len(e["online_to_online"].get("skipped", []))
    captures = 0
    for m in e["offline_to_online"]["levels"].values():
        captures += round(m["detection_rate"] * m["n_probes"] * m["shots"])
    return photos + captures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="67e966c", help="commit to compare against")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compare_versions.json"))
    args = ap.parse_args(argv)
    report: dict = {"base": args.base}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", args.base, "src", "sample_data"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp / "base", filter="data")
        log(f"base {args.base}, its defaults")
        base, report["base_s"] = _run_demo(tmp / "base" / "src", tmp / "base_run", tmp / "cache_base", None)
        log("this checkout, legacy settings")
        legacy, report["legacy_s"] = _run_demo(ROOT / "src", tmp / "legacy_run", tmp / "cache_legacy", LEGACY)
        log("this checkout, new defaults")
        new, report["new_s"] = _run_demo(ROOT / "src", tmp / "new_run", tmp / "cache_new", None)

    b, l_ = _numbers(base), _numbers(legacy)
    common = sorted(set(b) & set(l_))
    differ = [k for k in common if b[k] != l_[k]]
    report["legacy_identical"] = {
        "numbers_compared": len(common),
        "differing": differ[:50],
        "only_in_base": sorted(set(b) - set(l_))[:50],
        "ok": not differ,
    }
    checks = []
    base_rates, new_rates = _rates(base), _rates(new)
    for name, (rate, k, n) in base_rates.items():
        lo, hi = _exact_interval(k, n)
        new_rate = new_rates.get(name, (None,))[0]
        checks.append(
            {
                "metric": name,
                "base": rate,
                "base_ci95": [lo, hi],
                "base_n": n,
                "new": new_rate,
                "ok": new_rate is not None and lo - 1e-12 <= new_rate <= hi + 1e-12,
            }
        )
    report["new_defaults_within_base_ci"] = checks
    report["faces_found"] = {"base": _faces_found(base), "new": _faces_found(new)}
    report["faces_found"]["ok"] = report["faces_found"]["new"] >= report["faces_found"]["base"]
    report["ok"] = report["legacy_identical"]["ok"] and all(c["ok"] for c in checks) and report["faces_found"]["ok"]
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"legacy settings reproduce {args.base}: {report['legacy_identical']['ok']} "
        f"({len(common)} numbers compared, {len(differ)} differ)"
    )
    for c in checks:
        print(
            f"  {c['metric']:<40} base {c['base']:.3f} [{c['base_ci95'][0]:.3f}, {c['base_ci95'][1]:.3f}] "
            f"n={c['base_n']}  new {c['new'] if c['new'] is None else round(c['new'], 3)}  "
            f"{'inside' if c['ok'] else 'OUTSIDE'}"
        )
    print(f"faces found: base {report['faces_found']['base']}, new {report['faces_found']['new']}")
    print(
        f"demo wall time: base {report['base_s']:.0f} s, legacy {report['legacy_s']:.0f} s, new {report['new_s']:.0f} s "
        "(each with an empty cache; other work on the machine inflates all three)"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
