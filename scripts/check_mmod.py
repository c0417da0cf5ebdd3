"""Compare the fast CNN face detector (privrisk.mmodnet) with dlib's on the images privrisk hands it.

Every call privrisk makes to the cnn detector (``DlibFaceModel.detect(rgb, "cnn", upsample)``) is
answered by dlib as usual and, on the same array, by the fast detector; the script records both
detections (rectangle and confidence) and reports: calls, boxes, boxes matched, the largest
coordinate difference of matched boxes, boxes only one of them found, the largest confidence
difference, and each side's seconds. Run it from the repository root under the heavy lock:

    flock /tmp/privrisk-heavy.lock python3 -m uv run --locked python scripts/check_mmod.py photos OUT
    flock /tmp/privrisk-heavy.lock python3 -m uv run --locked python scripts/check_mmod.py demo OUT

``photos``: the sample photos as privrisk's ``detect_faces`` sees them with the cnn detector at the
default 640 px and at the self-check's 320 px (its upsampling rule included), plus upsampled passes
(1 at 320 px, 2 at 160 px) on every fourth photo so that dlib's upsampling is covered.
``demo``: a cold demo (no cache, one worker, so every call runs here) whose cnn calls are all
compared: E2's captures through the cnn detector (the demo's "cnn subset").
Writes OUT/calls.jsonl (one line per call) and OUT/summary.json; prints the summary.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from privrisk import mmodnet
from privrisk.models import DlibFaceModel, FastFaceModel

_state: dict = {}


def _dlib_detections(model: DlibFaceModel, rgb: np.ndarray, upsample: int) -> list:
    detector = model._api.api.cnn_face_detector
    with model._lock:
        found = detector(rgb, upsample)
    return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence)) for d in found]


def _compare(a: list, b: list) -> dict:
    """Match dlib's rectangles ``a`` with the fast ones ``b`` (nearest, at most one each)."""
    unused = list(range(len(b)))
    diffs, conf = [], []
    missed = 0
    for rect, c in a:
        if not unused:
            missed += 1
            continue
        j = min(unused, key=lambda k: max(abs(x - y) for x, y in zip(rect, b[k][0], strict=True)))
        d = max(abs(x - y) for x, y in zip(rect, b[j][0], strict=True))
        if d > 40:
            missed += 1
            continue
        unused.remove(j)
        diffs.append(d)
        conf.append(abs(c - b[j][1]))
    return {
        "matched": len(diffs),
        "missed": missed,
        "extra": len(unused),
        "max_px": max(diffs, default=0),
        "max_conf": max(conf, default=0.0),
    }


def _patched_detect(self, rgb, detector="hog", upsample=1):
    if detector != "cnn":
        return _original(self, rgb, detector, upsample)
    rgb = np.ascontiguousarray(rgb)
    t0 = time.perf_counter()
    ref = _dlib_detections(self, rgb, upsample)
    t1 = time.perf_counter()
    fast = _state["fast"].detections(rgb, upsample)
    t2 = time.perf_counter()
    raw = fast if fast is not None else _raw(rgb, upsample)
    row = {
        "label": _state.get("label", ""),
        "shape": list(rgb.shape),
        "upsample": upsample,
        "dlib": ref,
        "fast": raw,
        "near_tie": fast is None,
        "dlib_s": t1 - t0,
        "fast_s": t2 - t1,
    } | _compare(ref, raw)
    _state["out"].write(json.dumps(row) + "\n")
    _state["out"].flush()
    h, w = rgb.shape[:2]
    return [(max(t, 0), min(r, w), min(b, h), max(lft, 0)) for (lft, t, r, b), _c in ref]


_original = DlibFaceModel.detect


def _raw(rgb: np.ndarray, upsample: int) -> list:
    """The fast detector's answer without its near-tie rule."""
    image = rgb
    for _ in range(upsample):
        image = mmodnet.resize_rgb(image, *mmodnet.upsampled_size(*image.shape[:2]))
    scores, rects = _state["fast"].score_map(image)
    found = mmodnet.scores_to_boxes(scores, rects, _state["fast"].net) if rects else []
    return [(mmodnet.rect_down(rect, upsample), conf) for rect, conf in found]


def _photos() -> None:
    from privrisk.config import SELF_CHECK_FACES, FaceSettings
    from privrisk.faces import detect_faces
    from privrisk.images import load_image
    from privrisk.models import load_face_model

    model = load_face_model()
    paths = sorted(Path("sample_data").glob("*/*.jpg"))
    for i, path in enumerate(paths):
        image = load_image(str(path))
        for label, settings in (("640", FaceSettings(detector="cnn")), ("320", SELF_CHECK_FACES)):
            _state["label"] = f"{path.parent.name}/{path.name}@{label}"
            detect_faces(model, image, settings)
        if i % 4 == 0:
            for side, up in ((320, 1), (160, 2)):
                _state["label"] = f"{path.parent.name}/{path.name}@{side}up{up}"
                s = side / max(image.rgb.shape[:2])
                from PIL import Image

                size = (max(1, round(image.rgb.shape[1] * s)), max(1, round(image.rgb.shape[0] * s)))
                small = np.asarray(Image.fromarray(image.rgb).resize(size, Image.Resampling.BILINEAR))
                model.detect(small, "cnn", up)


def _demo(out: Path) -> None:
    from privrisk.cli import main

    _state["label"] = "demo"
    code = main(["demo", "--quiet", "--no-cache", "--workers", "1", "--out", str(out / "demo"), "--force"])
    if code:
        raise SystemExit(code)


def _summary(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    s = {
        "calls": len(rows),
        "dlib_boxes": sum(len(r["dlib"]) for r in rows),
        "fast_boxes": sum(len(r["fast"]) for r in rows),
        "matched": sum(r["matched"] for r in rows),
        "missed": sum(r["missed"] for r in rows),
        "extra": sum(r["extra"] for r in rows),
        "max_px": max((r["max_px"] for r in rows), default=0),
        "calls_with_any_difference": sum(1 for r in rows if r["max_px"] or r["missed"] or r["extra"]),
        "near_ties_left_to_dlib": sum(1 for r in rows if r.get("near_tie")),
        "differences_after_the_near_tie_rule": sum(
            1 for r in rows if (r["max_px"] or r["missed"] or r["extra"]) and not r.get("near_tie")
        ),
        "max_conf_diff": max((r["max_conf"] for r in rows), default=0.0),
        "dlib_s": sum(r["dlib_s"] for r in rows),
        "fast_s": sum(r["fast_s"] for r in rows),
        "by_upsample": {
            str(u): sum(1 for r in rows if r["upsample"] == u) for u in sorted({r["upsample"] for r in rows})
        },
    }
    return s


def main(argv: list[str]) -> int:
    what, out = argv[0], Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    _state["fast"] = mmodnet.load_fast_detector(mmodnet.default_path())
    # every cnn call, whichever engine's model makes it, is answered by dlib and compared with the fast detector
    DlibFaceModel.detect = _patched_detect  # type: ignore[method-assign]
    FastFaceModel.detect = _patched_detect  # type: ignore[method-assign]
    calls = out / "calls.jsonl"
    with calls.open("w") as fh:
        _state["out"] = fh
        if what == "photos":
            _photos()
        elif what == "demo":
            _demo(out)
        else:
            raise SystemExit(f"unknown set {what!r}: photos or demo")
    summary = _summary(calls)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
