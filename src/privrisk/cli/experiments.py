"""``privrisk experiment``, ``privrisk demo`` and ``privrisk calibrate``: the research runs, and the
tail model checked on your own consenting faces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..fileio import stderr_log
from .common import EXIT_OK, embedding_cache, print_json


def _run(args, config) -> int:
    from ..config import replace
    from ..experiment import run_experiment

    if args.ray:
        config = replace(config, ray_address=args.ray)

    results = run_experiment(
        config,
        args.out,
        cache=embedding_cache(args),
        progress=not args.quiet,
        log=None if args.json else stderr_log,
        overwrite=args.force,
    )
    if args.json:
        print_json({k: results[k] for k in ("seed", "experiments", "scaling")} | {"out": str(args.out)})
        return EXIT_OK
    from ..report import summary_table

    print(summary_table(results))
    print(f"\nreport: {Path(args.out) / 'report.html'}")
    return EXIT_OK


def cmd_experiment(args) -> int:
    from ..config import with_values
    from ..experiment import load_config

    config = load_config(args.config)
    if getattr(args, "countermeasures", False):
        config = with_values(config, {"countermeasures.enabled": True})
    return _run(args, config)


DEMO_DETECTOR_PEOPLE = 30  # the demo runs the other detectors (cnn) on a seeded subset of this many people


def cmd_demo(args) -> int:
    from ..config import with_values
    from ..experiment import load_config

    config = load_config(args.config)
    if args.config is None:  # the demo's own settings: cnn on a seeded subset (its cost is outside the budget)
        config = with_values(config, {"offline.detector_people": DEMO_DETECTOR_PEOPLE})
    return _run(args, config)


def cmd_calibrate(args) -> int:
    from ..embeddings import EmbedRun
    from ..tailmodel import calibrate_manifest, calibration_record

    out = calibrate_manifest(
        args.manifest,
        args.images,
        models_path=args.results,
        run=EmbedRun(cache=embedding_cache(args), workers=args.workers, progress=not args.quiet and not args.json),
    )
    record = calibration_record(out)
    if args.save:
        from ..fileio import atomic_write

        atomic_write(Path(args.save), json.dumps(record, indent=2, allow_nan=False) + "\n")
    if args.json:
        print_json(record)
        return EXIT_OK
    print(
        f"{out['n_faces']} faces of {out['n_people']} people, {out['n_pairs']:,} impostor pairs "
        f"(tail models from {out['models_from']})"
    )
    for m in out["models"]:
        print(f"\n{m['tail_model']}")
        print(f"  {'distance':>8}  {'real pairs':>10}  {'real rate':>9}  {'model rate (95% interval)':>34}  verdict")
        for i, t in enumerate(out["thresholds"]):
            lo, hi = m["model_rate_ci95"][i]
            print(
                f"  {t:>8.2f}  {out['real_count'][i]:>10}  {out['real_rate'][i]:>9.2e}  "
                f"{m['model_rate'][i]:>10.2e} ({lo:.2e}-{hi:.2e})  {m['verdict'][i]}"
            )
    bts = out.get("backtest")
    if isinstance(bts, list):
        b0 = bts[0]
        print(
            f"\nBacktest: each tail model refitted on the {b0['n_pairs_fitted']:,} pairs farther apart than "
            f"{b0['cut']:.3f}, predicting the closer ones (real: exact Poisson 95%; predicted: bootstrap 95%)"
        )
        for b in bts:
            for i, t in enumerate(b["thresholds"]):
                rlo, rhi = b["real_count_ci95"][i]
                plo, phi = b["predicted_count_ci95"][i]
                print(
                    f"  {b['kind']:>6} under {t:.3f}: real {b['real_count'][i]} ({rlo:.1f}-{rhi:.1f}), "
                    f"predicted {b['predicted_count'][i]:.1f} ({plo:.1f}-{phi:.1f}): {b['verdict'][i]}"
                )
    elif isinstance(bts, dict):
        print(f"\nBacktest not run: {bts['error']}")
    for s in out["skipped"]:
        print(f"skipped {s['image']}: {s['reason']}")
    print(f"\nVerdict: the model's predicted impostor rates are {record['widening']['verdict']}.")
    if args.save:
        print(
            f"Saved to {args.save}; give it to `privrisk score --calibration {args.save}` or the experiment's "
            "scaling.calibration setting to widen their ranges accordingly."
        )
    return EXIT_OK


def add_run_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    """``experiment`` (a TOML config) and ``demo`` (the sample set)."""
    p = sub.add_parser(
        "experiment",
        parents=[common, embed],
        help="run the re-identification experiments (E1-E3, scaling) from a TOML config",
    )
    p.add_argument("config", help="TOML config (settings: docs/reference/settings.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (results.json, plots, report.html)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into OUT even when it is not empty and holds no previous privrisk run",
    )
    p.add_argument(
        "--countermeasures", action="store_true", help="also run E4, the countermeasures experiment (opt-in)"
    )
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", parents=[common, embed], help="run the experiments on the sample set with defaults")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default: runs/demo)")
    p.add_argument(
        "--config",
        metavar="CONFIG.toml",
        help="settings to use instead of the defaults, e.g. fewer "
        "scaling sizes for a quick look (the data stays the shipped sample set unless the file names other "
        "manifests)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into OUT even when it is not empty and holds no previous privrisk run",
    )
    p.set_defaults(func=cmd_demo)


def add_calibrate_command(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "calibrate",
        parents=[common, embed],
        help="check the tail model on your own consenting faces: real impostor rates beside the "
        "model's predicted rates and 95%% intervals",
    )
    p.add_argument("manifest", help="CSV with subject_id,image,consent columns (one photo per person is enough)")
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder the manifest's image paths are relative to (default: the manifest's folder)",
    )
    p.add_argument(
        "--results",
        metavar="RESULTS.json",
        help="tail models from a run's results.json or a tail-model "
        "JSON (default: the models fitted on the sample set, sample_data/tail_model.json)",
    )
    p.add_argument(
        "--save",
        metavar="FILE",
        help="write the calibration (plain JSON, with the widening it implies) to FILE, for "
        "`privrisk score --calibration FILE` and the experiment's scaling.calibration",
    )
    p.set_defaults(func=cmd_calibrate)
