"""``privrisk gallery build|add|remove|info`` and ``privrisk match``: consent-aware galleries and
searching them."""

from __future__ import annotations

import argparse
import json

from ..config import FaceSettings, GallerySettings, setting_info
from .common import EXIT_ERROR, EXIT_OK, add_settings_flags, embed_run, print_json, settings_from_args


def cmd_gallery_build(args) -> int:
    from ..gallery import build_gallery
    from ..manifest import read_manifest

    manifest = read_manifest(args.manifest, args.images)
    report = build_gallery(
        manifest,
        args.out,
        face_settings=settings_from_args(args, FaceSettings),
        settings=settings_from_args(args, GallerySettings),
        run=embed_run(args, not args.quiet),
    )
    return _print_build_report(args, report, args.out)


def cmd_gallery_add(args) -> int:
    from ..gallery import Gallery, build_gallery
    from ..manifest import read_manifest

    with Gallery.open(args.gallery) as g:
        face_settings, settings = g.face_settings, g.settings
    report = build_gallery(
        read_manifest(args.manifest, args.images),
        args.gallery,
        face_settings=face_settings,
        settings=settings,
        run=embed_run(args, not args.quiet),
    )
    return _print_build_report(args, report, args.gallery)


def _print_build_report(args, report, path) -> int:
    if args.json:
        print_json({"gallery": str(path), **report.to_dict()})
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
    from ..gallery import Gallery

    with Gallery.open(args.gallery) as g:
        removed = {s: g.remove_subject(s) for s in args.subjects}
    if args.json:
        print_json({"removed": removed})
    else:
        for subject, n in removed.items():
            print(f"{subject}: {n} face(s) removed" if n else f"{subject}: not in the gallery")
    return EXIT_OK if all(removed.values()) else EXIT_ERROR


def cmd_gallery_info(args) -> int:
    from ..gallery import Gallery

    with Gallery.open(args.gallery) as g:
        info = g.info()
    if args.json:
        print_json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, dict) else value}")
    return EXIT_OK


def cmd_match(args) -> int:
    from ..config import replace
    from ..gallery import Gallery
    from ..matching import match_images

    with Gallery.open(args.gallery) as g:
        changes = {"detector": args.detector, "embedder": args.embedder, "engine": args.engine}
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
            k=args.top,
            threshold=args.threshold,
            run=embed_run(args, not args.quiet and len(args.images) > 8),
        )
    if args.json:
        print_json([m.to_dict() | {"attacker": attacker} for m in matches])
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


def add_gallery_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
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
    add_settings_flags(p, FaceSettings, "face settings")
    add_settings_flags(p, GallerySettings, "gallery settings")
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


def add_match_command(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
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
