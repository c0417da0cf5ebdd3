"""``privrisk protect`` and ``privrisk findability``: one person's photos against a stranger's
snapshot, among the consenting sample faces (E4's verbs for one person)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, embedding_cache, print_json, wrap

EXIT_NOT_PROTECTED = 3  # protect: no setting reaches the level, so no copy was written


def _sample_world(args):
    """The consenting sample faces and the shipped tail models (no distractors: platform sizes come
    from the closed form). The sample photos' embeddings may come from the cache; the user's never do."""
    from ..models import load_face_model
    from ..selfcheck import DistractorDraw, build_sample_world

    model = load_face_model()
    return model, build_sample_world(
        model, cache=embedding_cache(args), distractors=DistractorDraw(n=0), workers=args.workers
    )


def _self_check_settings(args):
    from ..config import SELF_CHECK_FACES, replace

    return replace(SELF_CHECK_FACES, detector=args.detector)


def _attacker_line(settings, model) -> str:
    return (
        f"attacker: {settings.detector} detector (on a copy of at most {settings.detect_max_side} px), embedder "
        f"{model.model_id}, match within 0.6 (dlib's published threshold)"
    )


def _read_photo(path: str):
    from ..images import load_image

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


def _write_if_still_protected(res, path: str, search) -> dict:
    """The protected copy as it would be written (JPEG re-encoded at quality 95, or PNG) judged again,
    in memory, and written to ``path`` only when it still meets the level: the JSON fields this adds
    (``written``, and ``out`` or the ``reason`` no copy was written)."""
    import cv2

    from ..fileio import atomic_write
    from ..protect import photo_findability

    suffix = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix != ".png" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(suffix, res.image[:, :, ::-1], params)
    data = buf.tobytes()
    # the file as written (JPEG re-encoded at quality 95) is judged again, in memory
    (written,) = photo_findability(
        [data],
        res.snapshot_vector,
        search,
        names=[path],
        exclude=[res.original_vector],
        boxes=[res.face_box],
    )
    fields: dict[str, object] = {
        "written": written.to_dict() | {"encoding": "JPEG quality 95" if suffix != ".png" else "PNG"}
    }
    upper = written.rank1_upper(res.gallery_size)
    if upper is None:
        fields["reason"] = f"the encoded file could not be judged ({written.note}); no copy written"
    elif written.safe(res.gallery_size, res.target):
        atomic_write(Path(path), data)
        fields["out"] = path
    else:
        fields["reason"] = (
            f"the encoded file no longer meets the level (measured rank {written.rank}, upper end {upper:.1%}); "
            "no copy written"
        )
    return fields


def _print_protect(res, out: dict, attacker: str) -> None:
    """``protect``'s answer in words: the attacker, the level, the original and the copy, and what was written."""
    from ..tailmodel import GROUP_BLIND_CAVEAT
    from ..transforms import TRANSFORMS

    print(attacker)
    print(
        f"level {res.level}: the upper end of the chance of rank 1 among {res.gallery_size:,} must be under {res.target:.0%}"
    )
    print(f"snapshot: {res.snapshot}")
    print(f"original: {_findability_line(res.before)}")
    if res.after is not None and res.transform is not None and res.quality is not None:  # set together
        q = res.quality
        print(f"copy ({TRANSFORMS[res.transform].label(res.strength)}): {_findability_line(res.after)}")
        print(f"quality of the copy: SSIM {q.ssim:.3f}, PSNR {q.psnr:.1f} dB (face and margin)")
    print(out.get("reason", res.reason))
    print(f"wrote {out['out']}" if out["out"] else "no copy written")
    print(GROUP_BLIND_CAVEAT)


def cmd_protect(args) -> int:
    from ..errors import ImageError
    from ..protect import Attacker, ProtectOptions, Search, protect
    from ..tailmodel import GROUP_BLIND_CAVEAT

    if Path(args.out).suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise ImageError(args.out, "the protected copy is written as .jpg, .jpeg or .png")
    rgb = _read_photo(args.image)
    snapshot = _read_photo(args.snapshot) if args.snapshot else None
    model, world = _sample_world(args)
    settings = _self_check_settings(args)
    search = Search(world, Attacker(model, settings))
    res = protect(
        rgb,
        args.level,
        args.transform,
        snapshot,
        search=search,
        options=ProtectOptions(name=args.image, seed=args.seed),
    )
    attacker = _attacker_line(settings, model)
    out = {"image": args.image, **res.to_dict(), "out": None, "caveat": GROUP_BLIND_CAVEAT, "attacker": attacker}
    if res.image is not None:  # res.protected
        out |= _write_if_still_protected(res, args.out, search)
    if args.json:
        print_json(out)
    else:
        _print_protect(res, out, attacker)
    if out["out"] or (res.after is None and "already" in res.reason):
        return EXIT_OK
    return EXIT_NOT_PROTECTED


def cmd_findability(args) -> int:
    from ..protect import Attacker, Search, photo_findability
    from ..selfcheck import PhotoFacts, facts_for_distance
    from ..tailmodel import GROUP_BLIND_CAVEAT

    photos = [_read_photo(p) for p in args.images]
    snapshot = _read_photo(args.snapshot)
    model, world = _sample_world(args)
    settings = _self_check_settings(args)
    rows = photo_findability(photos, snapshot, Search(world, Attacker(model, settings)), names=args.images)
    attacker = _attacker_line(settings, model)
    facts = [
        facts_for_distance(r.distance, world, (PhotoFacts(r.name, r.face_width, bool(r.detected), None),))
        if r.distance is not None
        else None
        for r in rows
    ]
    if args.json:
        print_json(
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
            print(wrap(" ".join(f.sentences()), "  "))
    print(attacker)
    print(f"snapshot {args.snapshot} searched against each photo, hidden among {len(world.vectors)} sample faces:")
    for r in rows:
        print(wrap(_findability_line(r), "  "))
    print(
        "(rank: measured among the real sample faces; chances of rank 1 at platform sizes: the tail models' "
        "closed form, extrapolated, as a range)"
    )
    print(GROUP_BLIND_CAVEAT)
    return EXIT_OK


def add_photo_commands(sub, common: argparse.ArgumentParser, embed: argparse.ArgumentParser) -> None:
    """``protect`` and ``findability`` (E4's verbs for one person's photos)."""
    from ..config import PROTECT_LEVELS as LEVELS
    from ..transforms import TRANSFORMS

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
