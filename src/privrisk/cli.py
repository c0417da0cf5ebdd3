"""The ``privrisk`` command: parses options, calls the library, prints results.

Library errors (:class:`~privrisk.errors.PrivriskError`) become one line on stderr and exit
code 2; nothing here matches, scores or measures on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from . import __version__
from .config import FaceSettings, GallerySettings, from_dict, setting_info
from .errors import PrivriskError
from .fileio import stderr_log

EXIT_OK, EXIT_ERROR = 0, 2


def _add_settings_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One ``--flag`` per setting of ``cls``, with its help and choices (declared once in config)."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if kind not in (int, float, str):
            continue  # tables (dicts, lists) are set in config files, not flags
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"{cls.__name__}.{f.name}",
            default=None,
            type=kind if kind in (int, float) else str,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else f.name.upper(),
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
        )


def _settings_from_args(args: argparse.Namespace, cls: type):
    prefix = f"{cls.__name__}."
    given = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}
    return from_dict(cls, given)


def _cache(args):
    from .embeddings import EmbeddingCache, default_cache_path

    if getattr(args, "no_cache", False):
        return None
    return EmbeddingCache(Path(args.cache) / "embeddings.sqlite" if args.cache else default_cache_path())


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# --- gallery ------------------------------------------------------------------------------------


def cmd_gallery_build(args) -> int:
    from .gallery import build_gallery
    from .manifest import read_manifest

    manifest = read_manifest(args.manifest, args.images)
    report = build_gallery(
        manifest,
        args.out,
        face_settings=_settings_from_args(args, FaceSettings),
        settings=_settings_from_args(args, GallerySettings),
        cache=_cache(args),
        workers=args.workers,
        progress=not args.quiet,
        ray_address=args.ray,
    )
    return _print_build_report(args, report, args.out)


def cmd_gallery_add(args) -> int:
    from .gallery import Gallery, build_gallery
    from .manifest import read_manifest

    with Gallery.open(args.gallery) as g:
        face_settings, settings = g.face_settings, g.settings
    report = build_gallery(
        read_manifest(args.manifest, args.images),
        args.gallery,
        face_settings=face_settings,
        settings=settings,
        cache=_cache(args),
        workers=args.workers,
        progress=not args.quiet,
        ray_address=args.ray,
    )
    return _print_build_report(args, report, args.gallery)


def _print_build_report(args, report, path) -> int:
    if args.json:
        _print_json({"gallery": str(path), **report.to_dict()})
        return EXIT_OK
    print(
        f"gallery {path}: {report.added} face(s) added, {report.already_present} already present, "
        f"{len(report.refused)} row(s) refused, {len(report.skipped)} image(s) skipped"
    )
    for refusal in report.refused:
        print(f"  refused  {refusal}")
    for image, reason in report.skipped:
        print(f"  skipped  {image}: {reason}")
    return EXIT_OK


def cmd_gallery_remove(args) -> int:
    from .gallery import Gallery

    with Gallery.open(args.gallery) as g:
        removed = {s: g.remove_subject(s) for s in args.subjects}
    if args.json:
        _print_json({"removed": removed})
    else:
        for subject, n in removed.items():
            print(f"{subject}: {n} face(s) removed" if n else f"{subject}: not in the gallery")
    return EXIT_OK if all(removed.values()) else EXIT_ERROR


def cmd_gallery_info(args) -> int:
    from .gallery import Gallery

    with Gallery.open(args.gallery) as g:
        info = g.info()
    if args.json:
        _print_json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, dict) else value}")
    return EXIT_OK


# --- match ----------------------------------------------------------------------------------------


def cmd_match(args) -> int:
    from .config import replace
    from .gallery import Gallery
    from .matching import match_images

    with Gallery.open(args.gallery) as g:
        changes = {"detector": args.detector, "embedder": args.embedder}
        face_settings = replace(g.face_settings, **{k: v for k, v in changes.items() if v is not None})
        attacker = {
            "detector": face_settings.detector,
            "embedder": g.model_id,
            "threshold": args.threshold if args.threshold is not None else g.settings.threshold,
            "threshold_rule": "given on the command line" if args.threshold is not None else g.threshold_rule,
        }
        matches = match_images(
            g,
            args.images,
            face_settings=face_settings,
            cache=_cache(args),
            workers=args.workers,
            k=args.top,
            threshold=args.threshold,
            progress=not args.quiet and len(args.images) > 8,
            ray_address=args.ray,
            engine=args.engine,
        )
    if args.json:
        _print_json([m.to_dict() | {"attacker": attacker} for m in matches])
    else:
        print(
            f"attacker: {attacker['detector']} detector, embedder {attacker['embedder']}, "
            f"threshold {attacker['threshold']:g} ({attacker['threshold_rule']})"
        )
        for m in matches:
            if m.error:
                print(f"{m.probe}: skipped - {m.error}")
                continue
            best = m.best
            verdict = (f"MATCH {best.subject_id}" if m.is_match else "no match") if best else "no match (empty gallery)"
            print(f"{m.probe}: {verdict} (threshold {m.threshold:g})")
            for rank, c in enumerate(m.candidates, 1):
                print(f"  {rank:>3}. {c.subject_id:<20} distance {c.distance:.4f}")
    return EXIT_ERROR if all(m.error for m in matches) else EXIT_OK


# --- experiments --------------------------------------------------------------------------------


def _run(args, config) -> int:
    from .config import replace
    from .experiment import run_experiment

    if args.ray:
        config = replace(config, ray_address=args.ray)

    results = run_experiment(
        config,
        args.out,
        cache=_cache(args),
        progress=not args.quiet,
        log=None if args.json else stderr_log,
        overwrite=args.force,
    )
    if args.json:
        _print_json({k: results[k] for k in ("seed", "experiments", "scaling")} | {"out": str(args.out)})
        return EXIT_OK
    from .report import summary_table

    print(summary_table(results))
    print(f"\nreport: {Path(args.out) / 'report.html'}")
    return EXIT_OK


def cmd_experiment(args) -> int:
    from .config import with_values
    from .experiment import load_config

    config = load_config(args.config)
    if getattr(args, "countermeasures", False):
        config = with_values(config, {"countermeasures.enabled": True})
    return _run(args, config)


DEMO_DETECTOR_PEOPLE = 30  # the demo runs the other detectors (cnn) on a seeded subset of this many people


def cmd_demo(args) -> int:
    from .config import with_values
    from .experiment import load_config

    config = load_config(args.config)
    if args.config is None:  # the demo's own settings: cnn on a seeded subset (its cost is outside the budget)
        config = with_values(config, {"offline.detector_people": DEMO_DETECTOR_PEOPLE})
    return _run(args, config)


# --- exposure ---------------------------------------------------------------------------------------


def _curves(args):
    from .exposure import IdentificationCurves

    cal = getattr(args, "calibration", None)
    if cal:
        from .tailmodel import load_calibration

        cal = load_calibration(cal)
    if args.results:
        return IdentificationCurves.from_results(args.results, calibration=cal)
    return IdentificationCurves.shipped(calibration=cal)


def _gain(args):
    """E2's own fusion gain when ``--results`` is an experiment's results.json that has it, else the shipped one."""
    from .exposure import MultiPhotoGain

    if args.results:
        try:
            data = json.loads(Path(args.results).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None  # _curves() has already reported a bad file
        gain = MultiPhotoGain.from_results(data, str(args.results)) if isinstance(data, dict) else None
        if gain is not None:
            return gain
    return MultiPhotoGain.shipped()


def _with_sensitivity(args, settings):
    """``settings`` with the sensitivities of ``--sensitivity FILE``, if given."""
    from .exposure import load_sensitivity

    if getattr(args, "sensitivity", None):
        settings = dataclasses.replace(settings, sensitivity=load_sensitivity(args.sensitivity))
    return settings


def _wrap(text: str, indent: str = "  ") -> str:
    import textwrap

    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)


def cmd_score(args) -> int:
    from .errors import ProfileError
    from .exposure import ExposureSettings, Scorer, score, top_changes
    from .profiles import AUDIENCES, PRESETS, load_profile, profile_from_dict
    from .scenarios import first_screen, scenarios

    if (args.profile is None) == (args.preset is None):
        raise ProfileError("give a PROFILE.json or --preset NAME (one of: " + ", ".join(PRESETS) + ")")
    profile = load_profile(args.profile) if args.profile else profile_from_dict(PRESETS[args.preset], args.preset)
    settings = _settings_from_args(args, ExposureSettings)
    settings = _with_sensitivity(args, settings)
    curves = _curves(args)
    gain = _gain(args)
    audiences = AUDIENCES if args.audience == "all" else (args.audience,)
    scores = {a: score(profile, curves, a, settings, gain) for a in audiences}
    changes = {a: top_changes(profile, Scorer(curves, settings, gain), a) for a in audiences}
    found = scenarios(curves, extra_size=settings.scenario_gallery_size or None, stranger_curve=settings.curve)
    lead = "stranger" if "stranger" in scores else next(iter(scores))
    first = changes[lead][0].description if changes[lead] else None
    screen = first_screen(found, change=first, score=scores[lead].to_dict() if lead == "stranger" else None)
    if args.json:
        _print_json(
            {
                "first_screen": screen,
                "scenarios": [sc.to_dict() for sc in found],
                "curves": curves.source,
                "multi_photo_gain": gain.source,
                "settings": dataclasses.asdict(settings),
                "scores": {a: s.to_dict() for a, s in scores.items()},
                "top_changes": {a: [c.to_dict() for c in cs] for a, cs in changes.items()},
            }
        )
        return EXIT_OK
    print(_wrap(" ".join(screen), ""))
    print("\nScenarios (p_found as a range; kind; 'not covered' where no valid source speaks):")
    for sc in found:
        if sc.gallery_size in (10_000, 1_000_000, 1_000_000_000) or sc.gallery_size == settings.scenario_gallery_size:
            rng = "not covered" if sc.p_found is None else f"{sc.p_found[0]:.1%}-{sc.p_found[1]:.1%}"
            print(
                f"  {sc.who.replace('_', ' '):>16} {sc.gallery_size:>13,} {sc.decision:>12} "
                f"{sc.attacker:>26}: {rng} ({sc.kind})"
            )
    print("\nDetails:")
    for a, s in scores.items():
        print(_wrap(f"{a.replace('_', ' ')}: {s.label} ({s.score_if_linked:.0f} if they were sure to find you)", ""))
        print(_wrap(s.explain()))
        for note in s.link.notes:
            print(_wrap(f"note: {note}", "    "))
        if s.national_id is not None:
            print(_wrap(f"national ID: {s.national_id_text}."))
            print(_wrap(s.national_id.plain, "    "))
        if changes[a]:
            print(
                "  changes that lower it most (first: the largest drop per setting changed; a drop is what a "
                "change takes off the score plus what it takes off the range's upper end):"
            )
        else:
            print("  nothing left to hide from this audience")
        for c in changes[a]:
            effect = ", ".join(f"{b.replace('_', ' ')} {x:.0f} -> {y:.0f}" for b, (x, y) in c.effect.items())
            high = f", upper end {c.before_high:.0f} -> {c.after_high:.0f}" if c.before_high is not None else ""
            print(_wrap(f"- {c}{high} ({len(c.settings)} setting(s); every audience: {effect})", "    "))
    print(f"(identification curves: {curves.source}; multi-photo gain: {gain.source})")
    return EXIT_OK


def cmd_population(args) -> int:
    from .exposure import ExposureSettings, population_analysis, population_plot
    from .fileio import atomic_write
    from .profiles import generate_profiles

    settings = _settings_from_args(args, ExposureSettings)
    settings = _with_sensitivity(args, settings)
    people = [p.to_user_profile() for p in generate_profiles([f"{i:06d}" for i in range(args.n)], seed=args.seed)]
    analysis = population_analysis(people, _curves(args), args.audience, settings, _gain(args))
    analysis["seed"] = args.seed
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "population.json", json.dumps(analysis, indent=1) + "\n")
    atomic_write(out / "population.png", population_plot(analysis))
    if args.json:
        _print_json({k: v for k, v in analysis.items() if not k.startswith("scores_")} | {"out": str(out)})
    else:
        d, h = analysis["default"], analysis["hardened"]
        print(f"{analysis['n']} synthetic profiles, audience {analysis['audience']} (curve {analysis['curve']}):")
        for name, x in (("default settings", d), ("hardened:       ", h)):
            print(
                f"  {name} mean {x['mean']:.1f} (range {x['mean_range'][0]:.1f}-{x['mean_range'][1]:.1f}), "
                f"median {x['median']:.1f}, 90th percentile {x['p90']:.1f}"
            )
        print(f"plot: {out / 'population.png'}")
    return EXIT_OK


# --- calibrate -----------------------------------------------------------------------------------


def cmd_calibrate(args) -> int:
    from .tailmodel import calibrate_manifest, calibration_record

    out = calibrate_manifest(
        args.manifest,
        args.images,
        models_path=args.results,
        cache=_cache(args),
        workers=args.workers,
        progress=not args.quiet and not args.json,
    )
    record = calibration_record(out)
    if args.save:
        from .fileio import atomic_write

        atomic_write(Path(args.save), json.dumps(record, indent=2, allow_nan=False) + "\n")
    if args.json:
        _print_json(record)
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


# --- countermeasures: protect, findability --------------------------------------------------------

EXIT_NOT_PROTECTED = 3  # protect: no setting reaches the level, so no copy was written


def _sample_world(args):
    """The consenting sample faces and the shipped tail models (no distractors: platform sizes come
    from the closed form). The sample photos' embeddings may come from the cache; the user's never do."""
    from .models import load_face_model
    from .selfcheck import DistractorDraw, build_sample_world

    model = load_face_model()
    return model, build_sample_world(model, cache=_cache(args), distractors=DistractorDraw(n=0), workers=args.workers)


def _self_check_settings(args):
    from .config import SELF_CHECK_FACES, replace

    return replace(SELF_CHECK_FACES, detector=args.detector)


def _attacker_line(settings, model) -> str:
    return (
        f"attacker: {settings.detector} detector (on a copy of at most {settings.detect_max_side} px), embedder "
        f"{model.model_id}, match within 0.6 (dlib's published threshold)"
    )


def _read_photo(path: str):
    from .images import load_image

    return load_image(path).rgb


def _range_text(row) -> str:
    if row is None:
        return "n/a"
    lo, hi = row.p_rank1_range or (row.p_rank1, row.p_rank1)
    return f"{lo:.1%}-{hi:.1%} ({row.kind})"


def _findability_line(f) -> str:
    if f.distance is None:
        return f"{f.name}: {f.note}"
    sizes = "; ".join(f"rank 1 among {s.gallery_size:,}: {_range_text(s)}" for s in f.sizes)
    face = f"face {f.face_width} px" if f.face_width else "face"
    seen = "detected" if f.detected else "NOT detected (judged at its known box)"
    return (
        f"{f.name}: {face}, {seen}; distance to the snapshot {f.distance:.3f}; rank {f.rank} of {f.gallery_size} "
        f"among the sample faces (measured); {sizes}"
    )


def cmd_protect(args) -> int:
    import cv2

    from .countermeasures import TRANSFORMS, photo_findability, protect
    from .errors import ImageError
    from .fileio import atomic_write
    from .tailmodel import GROUP_BLIND_CAVEAT

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ImageError(args.out, "the protected copy is written as .jpg, .jpeg or .png")
    rgb = _read_photo(args.image)
    snapshot = _read_photo(args.snapshot) if args.snapshot else None
    model, world = _sample_world(args)
    settings = _self_check_settings(args)
    res = protect(
        rgb,
        args.level,
        args.transform,
        snapshot,
        world=world,
        model=model,
        settings=settings,
        name=args.image,
        seed=args.seed,
    )
    attacker = _attacker_line(settings, model)
    out = {"image": args.image, **res.to_dict(), "out": None, "caveat": GROUP_BLIND_CAVEAT, "attacker": attacker}
    if res.image is not None:  # res.protected
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix != ".png" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        ok, buf = cv2.imencode(suffix, res.image[:, :, ::-1], params)
        data = buf.tobytes()
        # the file as written (JPEG re-encoded at quality 95) is judged again, in memory
        (written,) = photo_findability(
            [data],
            res.snapshot_vector,
            world,
            model=model,
            settings=settings,
            names=[args.out],
            exclude=[res.original_vector],
            boxes=[res.face_box],
        )
        out["written"] = written.to_dict() | {"encoding": "JPEG quality 95" if suffix != ".png" else "PNG"}
        upper = written.rank1_upper(res.gallery_size)
        if upper is None:
            out["reason"] = f"the encoded file could not be judged ({written.note}); no copy written"
        elif written.safe(res.gallery_size, res.target):
            atomic_write(Path(args.out), data)
            out["out"] = args.out
        else:
            out["reason"] = (
                f"the encoded file no longer meets the level (measured rank {written.rank}, upper end {upper:.1%}); "
                "no copy written"
            )
    if args.json:
        _print_json(out)
    else:
        b = res.before
        print(attacker)
        print(
            f"level {res.level}: the upper end of the chance of rank 1 among {res.gallery_size:,} must be under {res.target:.0%}"
        )
        print(f"snapshot: {res.snapshot}")
        print(f"original: {_findability_line(b)}")
        if res.after is not None and res.transform is not None and res.quality is not None:  # set together
            q = res.quality
            print(f"copy ({TRANSFORMS[res.transform].label(res.strength)}): {_findability_line(res.after)}")
            print(f"quality of the copy: SSIM {q.ssim:.3f}, PSNR {q.psnr:.1f} dB (face and margin)")
        print(out.get("reason", res.reason))
        print(f"wrote {args.out}" if out["out"] else "no copy written")
        print(GROUP_BLIND_CAVEAT)
    if out["out"] or (res.after is None and "already" in res.reason):
        return EXIT_OK
    return EXIT_NOT_PROTECTED


def cmd_findability(args) -> int:
    from .countermeasures import photo_findability
    from .selfcheck import PhotoFacts, facts_for_distance
    from .tailmodel import GROUP_BLIND_CAVEAT

    photos = [_read_photo(p) for p in args.images]
    snapshot = _read_photo(args.snapshot)
    model, world = _sample_world(args)
    settings = _self_check_settings(args)
    rows = photo_findability(photos, snapshot, world, model=model, settings=settings, names=args.images)
    attacker = _attacker_line(settings, model)
    facts = [
        facts_for_distance(r.distance, world, (PhotoFacts(r.name, r.face_width, bool(r.detected), None),))
        if r.distance is not None
        else None
        for r in rows
    ]
    if args.json:
        _print_json(
            {
                "snapshot": args.snapshot,
                "measured_facts": [f.to_dict() if f else None for f in facts],
                "photos": [r.to_dict() for r in rows],
                "caveat": GROUP_BLIND_CAVEAT,
                "attacker": attacker,
                "detected": f"{sum(r.detected for r in rows)} of {len(rows)} photos",
            }
        )
        return EXIT_OK
    print("Measured here, first:")
    for f in facts:
        if f is not None:
            print(_wrap(" ".join(f.sentences()), "  "))
    print(attacker)
    print(f"snapshot {args.snapshot} searched against each photo, hidden among {len(world.vectors)} sample faces:")
    for r in rows:
        print(_wrap(_findability_line(r), "  "))
    print(
        "(rank: measured among the real sample faces; chances of rank 1 at platform sizes: the tail models' "
        "closed form, extrapolated, as a range)"
    )
    print(GROUP_BLIND_CAVEAT)
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privrisk",
        description="How findable are you from your face? "
        "Face-matching experiments and exposure scores on consenting data.",
    )
    parser.add_argument("--version", action="version", version=f"privrisk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, embed = _shared_flags()
    _add_gallery_commands(sub, common, embed)
    _add_match_command(sub, common, embed)
    _add_run_commands(sub, common, embed)
    _add_calibrate_command(sub, common, embed)
    _add_protect_commands(sub, common, embed)
    _add_exposure_commands(sub, common)
    return parser


def _shared_flags() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Parent parsers: output flags every command takes, and the embedding flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    embed = argparse.ArgumentParser(add_help=False)
    embed.add_argument(
        "--cache", metavar="DIR", help="embedding cache folder (default: $PRIVRISK_CACHE_DIR or ~/.cache/privrisk)"
    )
    embed.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    embed.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    embed.add_argument(
        "--ray", metavar="ADDRESS", default=None, help="embed on the Ray cluster at ADDRESS (host:port, or 'local')"
    )
    return common, embed


def _add_gallery_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    gal = sub.add_parser("gallery", help="build and manage consent-aware face galleries")
    gsub = gal.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)

    p = gsub.add_parser("build", parents=[common, embed], help="build a gallery from a consent manifest")
    p.add_argument("manifest", help="CSV with subject_id,image,consent columns")
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder the manifest's image paths are relative to (default: the manifest's folder)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="gallery directory to create or finish")
    _add_settings_flags(p, FaceSettings, "face settings")
    _add_settings_flags(p, GallerySettings, "gallery settings")
    p.set_defaults(func=cmd_gallery_build)

    p = gsub.add_parser("add", parents=[common, embed], help="add the subjects of a manifest to a gallery")
    p.add_argument("gallery", help="gallery directory")
    p.add_argument("manifest", help="CSV with subject_id,image,consent columns")
    p.add_argument("--images", metavar="DIR", help="folder the manifest's image paths are relative to")
    p.set_defaults(func=cmd_gallery_add)

    p = gsub.add_parser("remove", parents=[common], help="remove subjects (e.g. consent withdrawn)")
    p.add_argument("gallery", help="gallery directory")
    p.add_argument("subjects", nargs="+", help="subject ids")
    p.set_defaults(func=cmd_gallery_remove)

    p = gsub.add_parser("info", parents=[common], help="show a gallery's size, settings and model")
    p.add_argument("gallery", help="gallery directory")
    p.set_defaults(func=cmd_gallery_info)


def _add_match_command(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    p = sub.add_parser("match", parents=[common, embed], help="rank a gallery's subjects for one or more photos")
    p.add_argument("gallery", help="gallery directory")
    p.add_argument("images", nargs="+", help="photos to identify")
    p.add_argument("--top", "-k", type=int, default=5, help="candidates to list per photo (default: 5)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="match if the best distance is at most this (default: the gallery's threshold)",
    )
    p.add_argument(
        "--detector",
        choices=("hog", "cnn"),
        default=None,
        help="face detector for the photos (default: the gallery's); the attacker's detector",
    )
    p.add_argument(
        "--embedder",
        default=None,
        metavar="SPEC",
        help="'dlib' or 'onnx:PATH' (default: the gallery's); another embedder than the gallery's is refused",
    )
    engine = setting_info(FaceSettings, "engine")
    p.add_argument(
        "--engine",
        choices=engine["choices"],
        default=None,
        help=f"{engine['help']} (default: the gallery's)",
    )
    p.set_defaults(func=cmd_match)


def _add_run_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
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


def _add_calibrate_command(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
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


def _add_protect_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    """``protect`` and ``findability`` (E4's verbs for one person's photos)."""
    from .countermeasures import LEVELS, TRANSFORMS

    p = sub.add_parser(
        "protect",
        parents=[common, embed],
        help="write a protected copy of a photo: the least damaging transform at which a stranger's snapshot "
        "no longer finds it at platform scale",
    )
    p.add_argument("image", help="your photo (JPEG, PNG, ...); read into memory, never cached")
    p.add_argument(
        "--level",
        default="safe_at_1e6",
        choices=list(LEVELS),
        help="the upper end of the chance of rank 1 among 10^6 (or 10^9) people must be under 10%% (default: safe_at_1e6)",
    )
    p.add_argument("--out", required=True, metavar="OUT.jpg", help="the protected copy (.jpg or .png)")
    p.add_argument("--transform", choices=list(TRANSFORMS), help="only this transform (default: any)")
    p.add_argument(
        "--snapshot",
        metavar="IMAGE",
        help="a stranger's snapshot of you (default: one simulated from the photo at E2's street level)",
    )
    p.add_argument("--seed", type=int, default=2011, help="seed of the simulated snapshot (default: 2011)")
    _detector_flag(p)
    p.set_defaults(func=cmd_protect)

    p = sub.add_parser(
        "findability",
        parents=[common, embed],
        help="per photo of you: detected?, face width, distance to a snapshot, rank among the sample faces and "
        "the chance of rank 1 at 10^6 and 10^9",
    )
    p.add_argument("images", nargs="+", help="photos of you (profile photo, tagged photos, ...)")
    p.add_argument("--snapshot", required=True, metavar="IMAGE", help="a stranger's snapshot of you")
    _detector_flag(p)
    p.set_defaults(func=cmd_findability)


def _detector_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector",
        choices=("cnn", "hog"),
        default="cnn",
        help="the attacker's face detector (default: cnn, the strongest: a protection that works only because "
        "hog misses the face is no protection)",
    )


def _add_exposure_commands(sub, common: argparse.ArgumentParser) -> None:
    """``score`` and ``population``, which share the identification-curve flags."""
    from .config import ExposureSettings
    from .profiles import AUDIENCES, PRESETS

    curves = argparse.ArgumentParser(add_help=False)
    curves.add_argument(
        "--results",
        metavar="RESULTS.json",
        help="identification curves from an experiment's "
        "results.json (default: the curves the demo measured, sample_data/identification_curves.json)",
    )
    curves.add_argument(
        "--calibration",
        metavar="FILE",
        help="a calibration saved by `privrisk calibrate --save FILE`: where the tail model was not "
        "within its interval on those faces, the simulated and extrapolated ranges widen",
    )
    _add_settings_flags(curves, ExposureSettings, "exposure settings")
    curves.add_argument(
        "--sensitivity",
        metavar="FILE",
        help="field sensitivities from a JSON file, e.g. "
        '{"phone": 1.0, "interests": 0.1} (fields not named keep their documented defaults)',
    )

    p = sub.add_parser(
        "score",
        parents=[common, curves],
        help="exposure score of a profile's visibility settings, with the changes that lower it most",
    )
    p.add_argument("profile", nargs="?", help="profile JSON (schema: docs/reference/formats.md)")
    p.add_argument("--preset", choices=list(PRESETS), help="score a preset instead of a file")
    p.add_argument("--audience", default="stranger", choices=[*AUDIENCES, "all"], help="who looks (default: stranger)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "population",
        parents=[common, curves],
        help="exposure of synthetic profiles under default and hardened settings",
    )
    p.add_argument("--n", type=int, default=1000, help="number of synthetic profiles (default: 1000)")
    p.add_argument("--seed", type=int, default=2011, help="seed (default: 2011)")
    p.add_argument("--audience", default="stranger", choices=list(AUDIENCES), help="who looks (default: stranger)")
    p.add_argument("--out", default="runs/population", metavar="DIR", help="output folder (default: runs/population)")
    p.set_defaults(func=cmd_population)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PrivriskError as exc:
        print(f"privrisk: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("privrisk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the edge: one line, the traceback only on request
        if os.environ.get("PRIVRISK_DEBUG"):
            raise
        print(
            f"privrisk: internal error: {type(exc).__name__}: {exc} (set PRIVRISK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
