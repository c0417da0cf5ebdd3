"""dlib's MMOD CNN face detector, read from its own weights file and run by ONNX Runtime.

face_recognition's ``face_locations(model="cnn")`` runs dlib's ``cnn_face_detection_model_v1`` on
``mmod_human_face_detector.dat``: a small fully convolutional network (three 5x5 stride-2
convolutions, three 5x5 convolutions of 45 filters, one 9x9 convolution to a single score map)
over an image pyramid tiled into one big picture. This module reads that file
(:func:`read_mmod_net`), does what dlib does around the network in numpy, and runs the network as
an ONNX graph (:class:`FastMmodDetector`):

- upsampling (``upsample`` times): dlib's ``pyramid_up`` with ``pyramid_down<2>``, a bilinear
  resize of the 8-bit RGB image to twice the size plus one or two pixels;
- the input layer: the image less dlib's channel means, / 256, at the top-left of a zeroed
  tiled canvas, then each pyramid level (5/6 of the one before, bilinear, in float32) beside or
  below it (dlib's ``input_rgb_image_pyramid<pyramid_down<6>>``, padding 10, outer padding 11);
- the network (ONNX Runtime);
- the loss layer: every output point scoring above 0 becomes an 80 x 80 window, mapped back
  through the network's strides and the pyramid to the image, rounded to whole pixels; windows
  sorted by score, non-maximum suppression with the thresholds stored in the file; boxes mapped
  back through the upsampling.

Every rounding step follows dlib's arithmetic (float32 where dlib uses float, the same order of
operations, its float-to-int conversions), so the boxes are dlib's boxes: docs/engine.md has the
comparison. The hash of the file the comparison was made on is :data:`VERIFIED_SHA256`;
:func:`load_fast_detector` declines any other file.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dlibnet import DlibFormatError, Layer, Reader, check_verified_file, import_onnxruntime, read_details
from .errors import ModelUnavailable

# sha256 of face_recognition_models' mmod_human_face_detector.dat, the file whose boxes were
# compared with dlib's on the sample photos and the demo's captures.
VERIFIED_SHA256 = "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"

PYRAMID_PADDING = 10  # dlib's input_rgb_image_pyramid defaults (files of the first version store none)
PYRAMID_OUTER_PADDING = 11
PYRAMID_MIN_HEIGHT = 5  # compute_tiled_image_pyramid_details stops below this many rows

F32 = np.float32

#: Scores closer than this (to each other or to dlib's threshold, 0) are a near tie that float
#: rounding could decide either way; the fast detector then leaves the image to dlib (see
#: :func:`near_tie`). Exact if every window's score is within TIE_MARGIN / 2 of dlib's; the largest
#: difference observed (on the 880 reported boxes' confidences, the only scores dlib exposes) was 3.2e-6.
TIE_MARGIN = 3e-5


@dataclass
class MmodNet:
    """A parsed MMOD detector: its layers bottom-up and the loss layer's options."""

    layers: list[Layer]  # 'con', 'affine', 'relu', bottom-up (the input layer is not in here)
    means: tuple[float, float, float]  # the input layer's channel means (float32 values)
    window: tuple[int, int]  # detector window (width, height)
    nms: tuple[float, float]  # non-max suppression: (iou threshold, fraction-covered threshold)
    padding: int = PYRAMID_PADDING
    outer_padding: int = PYRAMID_OUTER_PADDING
    sha256: str = ""
    pyramid_n: int = 6  # pyramid_down<6>: each level 5/6 of the one above
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Reading the file.


def _read_bn_con(r: Reader) -> Layer:
    """A ``bn_con2`` layer (batch normalisation, as trained) as the affine layer dlib turns it into
    when it loads the detector: gamma / sqrt(running variance + eps) and beta - that * running mean,
    in float32 as dlib computes them."""
    params = r.read_tensor().ravel()
    gamma, beta = r.read_alias(), r.read_alias()
    for _ in range(2):  # means, invstds of the last training batch
        r.read_tensor()
    running_means = r.read_tensor().ravel()
    running_vars = r.read_tensor().ravel()
    r.read_int(), r.read_int()  # num_updates, running_stats_window_size
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.read_float()
    eps = r.read_float()
    n = int(np.prod(gamma))
    if gamma != beta or params.size != 2 * n or running_means.size != n or running_vars.size != n:
        raise DlibFormatError(f"bn_con layer with inconsistent shapes {gamma} / {params.size} values")
    g = params[:n] / np.sqrt(running_vars + F32(eps))
    b = params[n:] - g * running_means
    return Layer("affine", {"channels": n}, {"gamma": g.astype(F32), "beta": b.astype(F32)})


def _read_layer(r: Reader) -> Layer:
    start = r.pos
    name = r.read_string()
    if name == "bn_con2":
        return _read_bn_con(r)
    r.pos = start
    return read_details(r)


def _read_subnet(r: Reader) -> tuple[list[Layer], tuple[float, float, float], tuple[int, int]]:
    version = r.read_int()
    if version == 2:  # add_layer over another layer
        below, means, padding = _read_subnet(r)
        layer = _read_layer(r)
        r.read_bool(), r.read_bool(), r.read_bool()
        r.read_tensor(), r.read_tensor(), r.read_tensor()
        return [*below, layer], means, padding
    if version == 3:  # add_layer over the input layer
        name = r.read_string()
        if name not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
            raise DlibFormatError(f"unknown input layer {name!r}")
        means = (r.read_float(), r.read_float(), r.read_float())
        padding = (PYRAMID_PADDING, PYRAMID_OUTER_PADDING)
        if name == "input_rgb_image_pyramid2":
            padding = (r.read_int(), r.read_int())
        layer = _read_layer(r)
        r.read_bool(), r.read_bool(), r.read_bool()
        r.read_tensor(), r.read_tensor(), r.read_tensor()
        r.read_int()  # sample expansion factor
        return [layer], means, padding
    raise DlibFormatError(f"unexpected layer version {version} at offset {r.pos}")


def read_mmod_net(path: str | Path) -> MmodNet:
    """Parse dlib's MMOD detector file, checking that every byte is consumed. Raises
    :class:`~privrisk.dlibnet.DlibFormatError` naming the offset when the bytes do not fit."""
    data = Path(path).read_bytes()
    r = Reader(data)
    if r.read_int() != 1 or r.read_string() != "loss_mmod_":
        raise DlibFormatError(f"{path}: not a dlib MMOD network")
    options_version = r.read_int()
    if options_version != 1:  # later versions: several windows, labels, bounding-box regression
        raise DlibFormatError(f"{path}: mmod options version {options_version}, expected 1")
    window = (r.read_int(), r.read_int())
    r.read_float(), r.read_float(), r.read_float()  # training losses, truth-match threshold
    nms = (r.read_float(), r.read_float())
    r.read_float(), r.read_float()  # overlaps_ignore (training only)
    layers, means, (padding, outer) = _read_subnet(r)
    if r.pos != len(data):
        raise DlibFormatError(f"{path}: {len(data) - r.pos} bytes left after the network")
    means32 = tuple(float(F32(m)) for m in means)
    return MmodNet(layers, means32, window, nms, padding, outer, hashlib.sha256(data).hexdigest())  # type: ignore[arg-type]


def check_mmod_net(net: MmodNet) -> None:
    """Raise :class:`DlibFormatError` unless ``net`` is the layout of dlib's face detector: groups of
    convolution, affine, relu, then one convolution to a single score map."""
    kinds = [layer.kind for layer in net.layers]
    body = kinds[:-1]
    if not kinds or kinds[-1] != "con" or len(body) % 3 or body != ["con", "affine", "relu"] * (len(body) // 3):
        raise DlibFormatError(f"not an MMOD face detector: layers {kinds}")
    if net.layers[-1].params["filters"] != 1:
        raise DlibFormatError("not an MMOD face detector: more than one score map")


# ---------------------------------------------------------------------------------------------
# dlib's image arithmetic.


def _column_positions(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Source columns of dlib's vectorised bilinear resize along one row: the first ``simd`` output
    columns (blocks of four) get float32 positions accumulated four at a time, as dlib's SSE loop
    does; the rest (``simd`` onwards) come from its scalar tail loop. Returns left index, right
    index and float32 fraction for the SIMD part, and the count ``simd``."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    blocks = n_out // 4 + 1
    start = -4 * scale
    lanes = np.array([start, start + scale, start + 2 * scale, start + 3 * scale]).astype(F32)
    steps = np.empty((blocks + 1, 4), F32)
    steps[0] = lanes
    steps[1:] = F32(4 * scale)
    x = np.add.accumulate(steps, axis=0, dtype=F32)[1:]  # float32, one addition at a time
    left = _to_int(x)  # float -> int as dlib's simd4i conversion
    frac = (x - left.astype(F32)).astype(F32)
    fits = left[:, 3] + 1 < n_in  # dlib leaves the vector loop at the first block reading past the row
    n_blocks = int(np.argmin(fits)) if not fits.all() else blocks
    simd = min(4 * n_blocks, n_out)
    return left.ravel()[:simd], left.ravel()[:simd] + 1, frac.ravel()[:simd], simd


def _to_int(x: np.ndarray) -> np.ndarray:
    return np.trunc(x).astype(np.int64)


def _tail_columns(n_in: int, n_out: int, simd: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source columns of the scalar tail of dlib's resize loop: left, right and the float64 fraction."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    x = -scale + simd * scale
    xs = []
    for _ in range(simd, n_out):
        x += scale
        xs.append(x)
    xd = np.array(xs, dtype=np.float64)
    left = np.floor(xd).astype(np.int64)
    right = np.minimum(left + 1, n_in - 1)
    return left, right, xd - left


def _row_positions(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = (n_in - 1) / max(n_out - 1, 1)
    y = -scale
    ys = []
    for _ in range(n_out):
        y += scale
        ys.append(y)
    yd = np.array(ys, dtype=np.float64)
    top = np.floor(yd).astype(np.int64)
    bottom = np.minimum(top + 1, n_in - 1)
    return top, bottom, yd - top


def _simd_columns(rows_t, rows_b, tb, lr, left, right) -> np.ndarray:
    """The columns dlib's vectorised bilinear loop computes: four float32 weights per pixel from the
    row and column fractions, summed in dlib's order (float32 throughout)."""
    tb32 = tb.astype(F32)[:, None]
    inv_tb32 = (1 - tb).astype(F32)[:, None]
    inv_lr = (F32(1) - lr).astype(F32)
    tlf, trf = inv_tb32 * inv_lr, inv_tb32 * lr
    blf, brf = tb32 * inv_lr, tb32 * lr
    acc = tlf * rows_t[..., left] + trf * rows_t[..., right]
    acc = acc + blf * rows_b[..., left]
    return acc + brf * rows_b[..., right]


def resize_float(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's ``resize_image`` (bilinear) of float32 planes ``src`` (..., r, c) to (..., rows, cols),
    bit for bit: what its CPU ``resize_bilinear`` does to each pyramid level."""
    n_in_r, n_in_c = src.shape[-2:]
    top, bottom, tb = _row_positions(n_in_r, rows)
    left, right, lr, simd = _column_positions(n_in_c, cols)
    out = np.empty((*src.shape[:-2], rows, cols), F32)
    rows_t = src[..., top, :]
    rows_b = src[..., bottom, :]
    if simd:
        out[..., :simd] = _simd_columns(rows_t, rows_b, tb, lr, left, right)
    if simd < cols:
        tl_, tr_, tf64 = _tail_columns(n_in_c, cols, simd)
        tf = tf64.astype(F32)  # the grayscale tail keeps its fraction in a float
        inv_tf = (F32(1) - tf).astype(F32)
        upper = inv_tf * rows_t[..., tl_] + tf * rows_t[..., tr_]  # float32
        lower = inv_tf * rows_b[..., tl_] + tf * rows_b[..., tr_]
        mixed = (1 - tb)[:, None] * upper.astype(np.float64) + tb[:, None] * lower.astype(np.float64)
        out[..., simd:] = mixed.astype(F32)
    return out


def resize_rgb(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's ``resize_image`` (bilinear) of an 8-bit RGB image, bit for bit (what ``pyramid_up``
    does): float32 weights and sums, truncated to 8 bits."""
    planes = np.moveaxis(img, -1, 0).astype(F32)
    n_in_r, n_in_c = planes.shape[-2:]
    top, bottom, tb = _row_positions(n_in_r, rows)
    left, right, lr, simd = _column_positions(n_in_c, cols)
    out = np.empty((3, rows, cols), np.uint8)
    rows_t = planes[:, top, :]
    rows_b = planes[:, bottom, :]
    if simd:
        out[..., :simd] = np.trunc(_simd_columns(rows_t, rows_b, tb, lr, left, right)).astype(np.int64).astype(np.uint8)
    if simd < cols:
        tl_, tr_, tf = _tail_columns(n_in_c, cols, simd)
        tfd = tf
        pt, pb = rows_t.astype(np.float64), rows_b.astype(np.float64)
        upper = (1 - tfd) * pt[..., tl_] + tfd * pt[..., tr_]
        lower = (1 - tfd) * pb[..., tl_] + tfd * pb[..., tr_]
        mixed = (1 - tb)[:, None] * upper + tb[:, None] * lower
        out[..., simd:] = np.trunc(mixed).astype(np.int64).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1))


def upsampled_size(rows: int, cols: int) -> tuple[int, int]:
    """The size dlib's ``pyramid_up`` with ``pyramid_down<2>`` makes of a rows x cols image: the
    image rectangle's corners mapped up ((p + (1.25, 0.75)) * 2) and rounded."""
    right = _round((cols - 1 + 1.25) * 2)
    bottom = _round((rows - 1 + 0.75) * 2)
    return bottom + 1, right + 1


def _round(v: float) -> int:
    return math.floor(v + 0.5)


Rect = tuple[int, int, int, int]  # left, top, right, bottom (inclusive), dlib's rectangle


def tiled_pyramid_rects(rows: int, cols: int, padding: int, outer: int, n: int = 6) -> tuple[list[Rect], int, int]:
    """Where dlib's tiled pyramid puts each level of a rows x cols image, and the canvas size
    (``compute_tiled_image_pyramid_details``): the image at the top left, the levels below it in a
    first column until the rest fit beside them, then up the right side."""
    if rows * cols == 0:
        return [], 0, 0
    sizes = [(cols, rows)]
    rate = (n - 1.0) / n
    nr, nc = rows, cols
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < PYRAMID_MIN_HEIGHT:
            break
        sizes.append((nc, nr))
    total_height = sum(h + padding for _w, h in sizes) - 2 * padding
    height = prev_width = 0
    w0, h0 = sizes[0]
    for w, h in sizes:
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= total_height - h0:
            break
        height += h + padding
        prev_width = w
    height -= padding
    canvas_rows, canvas_cols = height + 2 * outer, w0 + 2 * outer
    rects: list[Rect] = []
    y = outer
    i = 0
    while y < height + outer and i < len(sizes):
        w, h = sizes[i]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        w, h = sizes[i]
        x1, y1 = outer + w0 - 1, y - 1
        rect = (x1 - (w - 1), y1 - (h - 1), x1, y1)
        if max(first[0], rect[0]) <= min(first[2], rect[2]) and max(first[1], rect[1]) <= min(first[3], rect[3]):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, canvas_rows, canvas_cols


def tiled_input(rgb: np.ndarray, net: MmodNet) -> tuple[np.ndarray, list[Rect]]:
    """The (1, 3, rows, cols) float32 tensor dlib's input layer builds from ``rgb``, and where each
    pyramid level sits in it."""
    h, w = rgb.shape[:2]
    rects, nr, nc = tiled_pyramid_rects(h, w, net.padding, net.outer_padding, net.pyramid_n)
    data = np.zeros((3, nr, nc), F32)
    if not rects:
        return data[None], rects
    means = np.array(net.means, F32).reshape(3, 1, 1)
    planes = np.moveaxis(rgb, -1, 0).astype(F32)
    l0, t0, r0, b0 = rects[0]
    data[:, t0 : b0 + 1, l0 : r0 + 1] = (planes - means) / F32(256)
    for prev, cur in zip(rects, rects[1:], strict=False):
        src = data[:, prev[1] : prev[3] + 1, prev[0] : prev[2] + 1]
        data[:, cur[1] : cur[3] + 1, cur[0] : cur[2] + 1] = resize_float(src, cur[3] - cur[1] + 1, cur[2] - cur[0] + 1)
    return data[None], rects


# ---------------------------------------------------------------------------------------------
# From the score map to boxes (dlib's loss_mmod_::to_label).


def _output_to_input(net: MmodNet, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = cols.astype(np.float64), rows.astype(np.float64)
    for layer in reversed(net.layers):
        if layer.kind != "con":
            continue
        (kr, kc), (sr, sc), (pr, pc) = layer.params["kernel"], layer.params["stride"], layer.params["pad"]
        x = x * sc - pc + kc // 2
        y = y * sr - pr + kr // 2
    return x, y


def _nearest_rect(rects: list[Rect], px: float, py: float) -> int:
    qx, qy = _round(px), _round(py)
    best, best_d = 0, math.inf
    for i, (left, top, right, bottom) in enumerate(rects):
        if left <= qx <= right and top <= qy <= bottom:
            return i
        nx, ny = min(max(px, left), right), min(max(py, top), bottom)
        d = math.hypot(nx - px, ny - py)
        if d < best_d:
            best, best_d = i, d
    return best


def _area(r: Rect) -> int:
    w, h = r[2] - r[0] + 1, r[3] - r[1] + 1
    return w * h if w > 0 and h > 0 else 0


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return inner / outer > iou or inner / _area(a) > covered or inner / _area(b) > covered


def _candidates(scores: np.ndarray, rects: list[Rect], net: MmodNet, floor: float) -> list[tuple[float, Rect]]:
    """Every window scoring above ``floor``, best first: (score, rectangle in the tiled image's source
    image), the rectangle mapped as dlib maps it and rounded to whole pixels."""
    rr, cc = np.nonzero(scores > floor)
    vals = scores[rr, cc].astype(np.float64)
    xs, ys = _output_to_input(net, rr, cc)
    ww, hh = (net.window[0] - 1) / 2, (net.window[1] - 1) / 2
    ratio = net.pyramid_n / (net.pyramid_n - 1.0)
    dets: list[tuple[float, Rect]] = []
    for v, x, y in zip(vals, xs, ys, strict=True):
        level = _nearest_rect(rects, x, y)
        ox, oy = rects[level][0], rects[level][1]
        corners = [x - ww - ox, y - hh - oy, x + ww - ox, y + hh - oy]
        for _ in range(level):
            corners = [c * ratio + 0.3 for c in corners]
        left, top, right, bottom = (_round(c) for c in corners)
        dets.append((float(v), (left, top, right, bottom)))
    dets.sort(key=lambda d: d[0], reverse=True)
    return dets


def _suppress(dets: list[tuple[float, Rect]], net: MmodNet) -> list[int]:
    """Indices of ``dets`` (best first) that dlib's non-maximum suppression keeps."""
    iou, covered = net.nms
    kept: list[int] = []
    for i, (_v, rect) in enumerate(dets):
        if not any(_overlaps(dets[k][1], rect, iou, covered) for k in kept):
            kept.append(i)
    return kept


def scores_to_boxes(scores: np.ndarray, rects: list[Rect], net: MmodNet) -> list[tuple[Rect, float]]:
    """dlib's detections (rectangle in the image the tensor was built from, confidence) from the
    (rows, cols) score map: points above 0, best first, non-maximum suppressed."""
    dets = _candidates(scores, rects, net, 0.0)
    return [(dets[i][1], dets[i][0]) for i in _suppress(dets, net)]


def near_tie(scores: np.ndarray, rects: list[Rect], net: MmodNet, margin: float = TIE_MARGIN) -> bool:
    """Whether float rounding of ``margin`` in the scores could change dlib's answer: a window within
    ``margin`` of the threshold that no kept box suppresses, or two windows within ``margin`` of
    each other, one of them kept, that overlap or are both kept (their order decides which one
    survives, or the order of the answer). ONNX Runtime and dlib add the same products in a
    different order, so their scores differ by a few 1e-6 (the largest difference measured on the
    sample photos and captures is in docs/engine.md); where this returns True, only dlib can say
    which box it finds."""
    dets = _candidates(scores, rects, net, -margin)
    positive = [d for d in dets if d[0] > 0]
    kept = _suppress(positive, net)
    iou, covered = net.nms
    sure = [positive[k][1] for k in kept if positive[k][0] > margin]  # kept whichever way rounding goes
    for v, rect in dets:
        if v <= margin and not any(_overlaps(k, rect, iou, covered) for k in sure):
            return True
    values = np.array([d[0] for d in positive])
    kept_set = set(kept)
    for k in kept:
        v, rect = positive[k]
        lo, hi = np.searchsorted(-values, [-(v + margin), -(v - margin)], side="left")
        for j in range(int(lo), min(int(hi) + 1, len(positive))):
            if j == k or abs(positive[j][0] - v) >= margin:
                continue
            if j in kept_set or _overlaps(rect, positive[j][1], iou, covered):
                return True
    return False


def rect_down(rect: Rect, levels: int) -> Rect:
    """A rectangle found in an image upsampled ``levels`` times, in the original image
    (``pyramid_down<2>::rect_down``, rounded)."""
    left, top, right, bottom = (float(v) for v in rect)
    for _ in range(levels):
        left, top = left / 2.0 - 1.25, top / 2.0 - 0.75
        right, bottom = right / 2.0 - 1.25, bottom / 2.0 - 0.75
    return (_round(left), _round(top), _round(right), _round(bottom))


# ---------------------------------------------------------------------------------------------
# The network as ONNX, and running it.


def build_onnx(net: MmodNet, opset: int = 17) -> bytes:
    """The detector's convolutions as a serialized ONNX model: input ``tiles`` (1, 3, rows, cols)
    float32 (the tiled pyramid), output ``scores`` (1, 1, rows', cols') float32. Each ``con_`` is a
    Conv with dlib's padding, each affine a per-channel multiply and add, each relu a Relu."""
    import onnx  # noqa: PLC0415 - optional until the fast engine is used
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    check_mmod_net(net)
    nodes, inits = [], []
    x = "tiles"
    for i, layer in enumerate(net.layers):
        out = f"t{i}"
        if layer.kind == "con":
            p = layer.params
            (kr, kc), (sr, sc), (pr, pc) = p["kernel"], p["stride"], p["pad"]
            inits += [
                numpy_helper.from_array(np.ascontiguousarray(layer.arrays["weight"], F32), f"w{i}"),
                numpy_helper.from_array(np.ascontiguousarray(layer.arrays["bias"], F32), f"b{i}"),
            ]
            nodes.append(
                helper.make_node(
                    "Conv", [x, f"w{i}", f"b{i}"], [out], kernel_shape=[kr, kc], strides=[sr, sc], pads=[pr, pc, pr, pc]
                )
            )
        elif layer.kind == "affine":
            c = layer.params["channels"]
            inits += [
                numpy_helper.from_array(layer.arrays["gamma"].reshape(1, c, 1, 1).astype(F32), f"g{i}"),
                numpy_helper.from_array(layer.arrays["beta"].reshape(1, c, 1, 1).astype(F32), f"be{i}"),
            ]
            nodes.append(helper.make_node("Mul", [x, f"g{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Add", [f"m{i}", f"be{i}"], [out]))
        elif layer.kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [out]))
        else:
            raise DlibFormatError(f"cannot translate layer {layer.kind!r}")
        x = out
    nodes[-1].output[0] = "scores"
    graph = helper.make_graph(
        nodes,
        "mmod_human_face_detector",
        [helper.make_tensor_value_info("tiles", TensorProto.FLOAT, [1, 3, "rows", "cols"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, "out_rows", "out_cols"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="privrisk")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


Box = tuple[int, int, int, int]  # (top, right, bottom, left), as face_recognition returns them


class FastMmodDetector:
    """dlib's CNN face detector on ONNX Runtime: ``detector(rgb, upsample)`` returns what
    ``face_recognition.face_locations(rgb, upsample, model="cnn")`` returns, (top, right, bottom,
    left) boxes clipped to the image, or None for a near tie only dlib can settle (then ask dlib);
    :meth:`detections` gives dlib's rectangles and confidences.

    Like :class:`~privrisk.dlibnet.FastDescriptor`, each process makes its own one-thread ONNX
    Runtime session on first use (sessions do not survive ``fork``)."""

    def __init__(self, net: MmodNet, onnx_model: bytes, threads: int = 1) -> None:
        self.net = net
        self.onnx_model = onnx_model
        self.sha256 = net.sha256
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._pid = -1
        self.near_ties = 0  # images left to dlib because of a near tie, in this process

    def _get_session(self):
        import ctypes  # noqa: PLC0415
        import os  # noqa: PLC0415

        ort = import_onnxruntime()
        pid = os.getpid()
        if self._session is None or self._pid != pid:
            with self._lock:
                if self._session is None or self._pid != pid:
                    if self._session is not None:  # the parent's: keep it alive, unused, in this process
                        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._session))
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = self.threads
                    options.inter_op_num_threads = 1
                    self._session = ort.InferenceSession(self.onnx_model, options, providers=["CPUExecutionProvider"])
                    self._pid = pid
        return self._session

    def score_map(self, rgb: np.ndarray) -> tuple[np.ndarray, list[Rect]]:
        """The network's (rows, cols) score map over the tiled pyramid of ``rgb``, and the levels' places."""
        tiles, rects = tiled_input(rgb, self.net)
        if not rects:
            return np.zeros((0, 0), F32), rects
        scores = self._get_session().run(None, {"tiles": tiles})[0]
        return scores[0, 0], rects

    def detections(self, rgb: np.ndarray, upsample: int = 0) -> list[tuple[Rect, float]] | None:
        """dlib's ``cnn_face_detection_model_v1(rgb, upsample)``: (left, top, right, bottom)
        rectangles in ``rgb`` pixels (not clipped) with their confidences, best first. None when two
        windows' scores are a near tie (:func:`near_tie`) that only dlib's own arithmetic can settle:
        ask dlib then."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"images must be 8-bit RGB (h, w, 3), not {rgb.dtype} {rgb.shape}")
        image = rgb
        for _ in range(upsample):
            rows, cols = upsampled_size(*image.shape[:2])
            image = resize_rgb(image, rows, cols)
        scores, rects = self.score_map(image)
        if not rects:
            return []
        if near_tie(scores, rects, self.net):
            self.near_ties += 1
            return None
        found = scores_to_boxes(scores, rects, self.net)
        return [(rect_down(rect, upsample), conf) for rect, conf in found]

    def __call__(self, rgb: np.ndarray, upsample: int = 0) -> list[Box] | None:
        found = self.detections(rgb, upsample)
        if found is None:
            return None
        h, w = rgb.shape[:2]
        return [(max(top, 0), min(right, w), min(bottom, h), max(left, 0)) for (left, top, right, bottom), _c in found]


def resize_differs_from_dlib(dlib_module: Any = None) -> str | None:
    """Why this dlib build's resizing is not the arithmetic :func:`resize_float` and
    :func:`resize_rgb` copy (checked bit for bit on small seeded images, well under a millisecond),
    or None when it is. The pyramid the network sees is made with them, so another build (another
    rounding, fused multiply-adds) could move a box: the fast detector is then declined."""
    if dlib_module is None:
        try:
            dlib_module = importlib.import_module("dlib")
        except ImportError as exc:
            return f"the fast cnn detector is checked against dlib, which cannot be imported ({exc})"
    rng = np.random.default_rng(2011)
    plane = (rng.standard_normal((23, 31)) * 0.4).astype(F32)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    rows, cols = upsampled_size(13, 17)
    try:
        same = np.array_equal(resize_float(plane, 19, 25), dlib_module.resize_image(plane, 19, 25)) and (
            np.array_equal(resize_rgb(img, rows, cols), dlib_module.resize_image(img, rows, cols))
        )
    except Exception as exc:  # noqa: BLE001 - any failure of the comparison declines the fast path
        return f"cannot compare the fast cnn detector's resizing with dlib's ({type(exc).__name__}: {exc})"
    if not same:
        version = getattr(dlib_module, "__version__", "?")
        return f"dlib {version} resizes images differently from the build the fast cnn detector copies"
    return None


def default_path() -> str:
    """Where face_recognition's models package keeps the MMOD detector (no dlib import)."""
    try:
        import face_recognition_models  # noqa: PLC0415
    except ImportError as exc:
        raise ModelUnavailable(f"cannot find dlib's cnn face detector ({exc})") from None
    return str(face_recognition_models.cnn_face_detector_model_location())


def load_fast_detector(path: str | Path, expected_sha256: str | None = VERIFIED_SHA256) -> FastMmodDetector:
    """The fast CNN face detector for the MMOD file at ``path``.

    Raises :class:`~privrisk.errors.ModelUnavailable` with a one-line reason when ONNX Runtime is
    missing, when the file's sha256 is not ``expected_sha256`` (None skips the check, for
    experiments), or when the file is not the network this module reads."""
    check_verified_file(path, expected_sha256, "the fast cnn detector", "the cnn face detector")
    obstacle = resize_differs_from_dlib()
    if obstacle:
        raise ModelUnavailable(obstacle)
    try:
        net = read_mmod_net(path)
        detector = FastMmodDetector(net, build_onnx(net))
    except DlibFormatError as exc:
        raise ModelUnavailable(f"cannot read the cnn face detector {path}: {exc}") from None
    try:
        detector._get_session()
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception only
        raise ModelUnavailable(f"ONNX Runtime cannot run the cnn face detector ({type(exc).__name__}: {exc})") from None
    return detector
