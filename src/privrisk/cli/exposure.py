"""``privrisk score`` and ``privrisk population``: exposure scores of profile settings from the
identification curves."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .common import EXIT_OK, add_settings_flags, print_json, settings_from_args, wrap


def _curves(args):
    from ..exposure import IdentificationCurves

    cal = getattr(args, "calibration", None)
    if cal:
        from ..tailmodel import load_calibration

        cal = load_calibration(cal)
    if args.results:
        return IdentificationCurves.from_results(args.results, calibration=cal)
    return IdentificationCurves.shipped(calibration=cal)


def _gain(args):
    """E2's own fusion gain when ``--results`` is an experiment's results.json that has it, else the shipped one."""
    from ..exposure import MultiPhotoGain

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
    from ..exposure import load_sensitivity

    if getattr(args, "sensitivity", None):
        settings = dataclasses.replace(settings, sensitivity=load_sensitivity(args.sensitivity))
    return settings


def _print_scenarios(found, settings) -> None:
    """The scenarios at 10^4, 10^6, 10^9 (and the settings' own size): who, decision, attacker, range."""
    for sc in found:
        if sc.gallery_size in (10_000, 1_000_000, 1_000_000_000) or sc.gallery_size == settings.scenario_gallery_size:
            rng = "not covered" if sc.p_found is None else f"{sc.p_found[0]:.1%}-{sc.p_found[1]:.1%}"
            print(
                f"  {sc.who.replace('_', ' '):>16} {sc.gallery_size:>13,} {sc.decision:>12} "
                f"{sc.attacker:>26}: {rng} ({sc.kind})"
            )


def _print_details(scores: dict, changes: dict) -> None:
    """Per audience: the score in words, its notes and national-ID guess, and the changes that lower it."""
    for a, s in scores.items():
        print(wrap(f"{a.replace('_', ' ')}: {s.label} ({s.score_if_linked:.0f} if they were sure to find you)", ""))
        print(wrap(s.explain()))
        for note in s.link.notes:
            print(wrap(f"note: {note}", "    "))
        if s.national_id is not None:
            print(wrap(f"national ID: {s.national_id_text}."))
            print(wrap(s.national_id.plain, "    "))
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
            print(wrap(f"- {c}{high} ({len(c.settings)} setting(s); every audience: {effect})", "    "))


def cmd_score(args) -> int:
    from ..errors import ProfileError
    from ..exposure import ExposureSettings, Scorer, score, top_changes
    from ..profiles import AUDIENCES, PRESETS, load_profile, profile_from_dict
    from ..scenarios import first_screen, scenarios

    if (args.profile is None) == (args.preset is None):
        raise ProfileError("give a PROFILE.json or --preset NAME (one of: " + ", ".join(PRESETS) + ")")
    profile = load_profile(args.profile) if args.profile else profile_from_dict(PRESETS[args.preset], args.preset)
    settings = settings_from_args(args, ExposureSettings)
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
        print_json(
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
    print(wrap(" ".join(screen), ""))
    print("\nScenarios (p_found as a range; kind; 'not covered' where no valid source speaks):")
    _print_scenarios(found, settings)
    print("\nDetails:")
    _print_details(scores, changes)
    print(f"(identification curves: {curves.source}; multi-photo gain: {gain.source})")
    return EXIT_OK


def cmd_population(args) -> int:
    from ..exposure import ExposureSettings, population_analysis, population_plot
    from ..fileio import atomic_write
    from ..profiles import generate_profiles

    settings = settings_from_args(args, ExposureSettings)
    settings = _with_sensitivity(args, settings)
    people = [p.to_user_profile() for p in generate_profiles([f"{i:06d}" for i in range(args.n)], seed=args.seed)]
    analysis = population_analysis(people, _curves(args), args.audience, settings, _gain(args))
    analysis["seed"] = args.seed
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "population.json", json.dumps(analysis, indent=1) + "\n")
    atomic_write(out / "population.png", population_plot(analysis))
    if args.json:
        print_json({k: v for k, v in analysis.items() if not k.startswith("scores_")} | {"out": str(out)})
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


def add_exposure_commands(sub, common: argparse.ArgumentParser) -> None:
    """``score`` and ``population``, which share the identification-curve flags."""
    from ..config import ExposureSettings
    from ..profiles import AUDIENCES, PRESETS

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
    add_settings_flags(curves, ExposureSettings, "exposure settings")
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
