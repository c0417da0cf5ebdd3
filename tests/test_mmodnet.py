"""The fast CNN face detector: dlib's MMOD file read to its last byte, dlib's resizes reproduced bit
for bit, the tiled pyramid's layout, the hash check, and (model-marked) boxes equal to dlib's on real
sample photos."""

import platform

import numpy as np
import pytest

from helpers import ROOT
from privrisk import mmodnet
from privrisk.dlibnet import DlibFormatError
from privrisk.errors import ModelUnavailable

# The resizes copy dlib-bin's x86-64 build, which was checked bit for bit; on another architecture
# dlib compiles other vector code, the loader's check (resize_differs_from_dlib) declines the fast
# detector and dlib detects, which the decline test covers there.
x86_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the copied resize arithmetic was verified on x86-64 builds of dlib only",
)


@pytest.fixture(scope="module")
def path():
    return mmodnet.default_path()


@pytest.fixture(scope="module")
def net(path):
    return mmodnet.read_mmod_net(path)


def test_detector_file_is_dlibs_mmod_network_read_to_the_last_byte(net):
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["con", "affine", "relu"] * 6 + ["con"]
    filters = [layer.params["filters"] for layer in net.layers if layer.kind == "con"]
    strides = [layer.params["stride"] for layer in net.layers if layer.kind == "con"]
    assert filters == [16, 32, 32, 45, 45, 45, 1]
    assert strides == [(2, 2)] * 3 + [(1, 1)] * 4
    assert net.window == (80, 80) and net.padding == 10 and net.outer_padding == 11
    assert 0.3 < net.nms[0] < 0.4 and net.nms[1] == 1.0
    assert net.sha256 == mmodnet.VERIFIED_SHA256
    mmodnet.check_mmod_net(net)


@pytest.mark.parametrize("cut", [10, 5000, -3])
def test_damaged_files_are_format_errors(tmp_path, path, cut):
    data = open(path, "rb").read()
    bad = tmp_path / "bad.dat"
    bad.write_bytes(data[:cut] if cut > 0 else data + b"\x01\x02\x03")
    with pytest.raises(DlibFormatError):
        mmodnet.read_mmod_net(bad)


def test_a_detector_file_with_one_changed_byte_is_declined(tmp_path, path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    changed = tmp_path / "mmod.dat"
    changed.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="sha256"):
        mmodnet.load_fast_detector(changed)


@x86_only
def test_float_resize_is_dlibs_bit_for_bit():
    dlib = pytest.importorskip("dlib")
    assert mmodnet.resize_differs_from_dlib(dlib) is None  # the loader's own check agrees on this build
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(5, 200, 2))
        plane = (rng.standard_normal((h, w)) * 0.4).astype(np.float32)
        for rows, cols in ((h * 5 // 6 or 1, w * 5 // 6 or 1), tuple(int(v) for v in rng.integers(2, 300, 2))):
            assert np.array_equal(mmodnet.resize_float(plane, rows, cols), dlib.resize_image(plane, rows, cols))


@x86_only
def test_rgb_upsampling_is_dlibs_bit_for_bit():
    dlib = pytest.importorskip("dlib")
    rng = np.random.default_rng(8)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(5, 150, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rows, cols = mmodnet.upsampled_size(h, w)
        assert (rows, cols) == (2 * h + 1, 2 * w + 2)
        assert np.array_equal(mmodnet.resize_rgb(img, rows, cols), dlib.resize_image(img, rows, cols))


@pytest.mark.parametrize("shape", [(640, 640), (480, 640), (240, 180), (30, 400), (8, 8), (4, 100)])
def test_tiled_pyramid_levels_shrink_by_five_sixths_and_do_not_overlap(shape):
    rows, cols = shape
    rects, nr, nc = mmodnet.tiled_pyramid_rects(rows, cols, 10, 11)
    assert rects[0] == (11, 11, 11 + cols - 1, 11 + rows - 1)
    for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(rects, rects[1:], strict=False):
        assert (b1 - t1 + 1, r1 - l1 + 1) == ((b0 - t0 + 1) * 5 // 6, (r0 - l0 + 1) * 5 // 6)
    for i, a in enumerate(rects):
        assert 0 <= a[0] <= a[2] < nc and 0 <= a[1] <= a[3] < nr
        for b in rects[i + 1 :]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]
    assert (rects[-1][3] - rects[-1][1] + 1) * 5 // 6 < 5 or len(rects) == 1 or rects[-1][0] > 11


@x86_only
def test_detections_are_rectangles_with_confidences_and_boxes_clip_to_the_image(path):
    from PIL import Image

    detector = mmodnet.load_fast_detector(path)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    face = np.asarray(Image.open(ROOT / "sample_data" / "neutral" / "001.jpg").convert("RGB").resize((200, 200)))
    found = detector.detections(face, 0)
    assert found is not None and len(found) == 1  # one face, one box
    (left, top, right, bottom), conf = found[0]
    assert 0 <= left < right <= 200 and 0 <= top < bottom <= 200 and isinstance(conf, float) and conf > 0
    for found in (detector.detections(noise, 0), detector.detections(noise, 1)):
        assert found is not None
        assert all(len(rect) == 4 and isinstance(conf, float) and conf > 0 for rect, conf in found)
    gray = noise[:, :, 0]
    assert detector(gray, 0) == detector(np.repeat(gray[:, :, None], 3, axis=2), 0)
    with pytest.raises(ValueError, match="8-bit RGB"):
        detector.detections(noise.astype(np.float32), 0)


def _score_map(points: dict) -> tuple[np.ndarray, list]:
    """A score map over a 200 x 200 image's tiled pyramid: -1 everywhere but at ``points``."""
    rects, _nr, _nc = mmodnet.tiled_pyramid_rects(200, 200, 10, 11)
    scores = np.full((60, 28), -1.0, np.float32)
    for (r, c), v in points.items():
        scores[r, c] = v
    return scores, rects


def test_windows_map_to_dlibs_80_px_boxes_and_overlapping_ones_are_suppressed(net):
    scores, rects = _score_map({(10, 10): 1.2, (10, 11): 1.0, (3, 20): 0.5})
    found = mmodnet.scores_to_boxes(scores, rects, net)
    # output (10, 10) sits at 8 * 10 + 14 = 94 px of the tiled image, 83 px into the first level
    assert [rect for rect, _ in found] == [(44, 44, 123, 123), (124, -12, 203, 67)]
    assert [round(v, 3) for _, v in found] == [1.2, 0.5]
    assert not mmodnet.near_tie(scores, rects, net)


@pytest.mark.parametrize(
    "points",
    [
        {(10, 10): 1.0, (10, 11): 1.0 + 1e-6},  # two overlapping windows: which one dlib keeps is rounding
        {(10, 10): 1.0, (40, 2): 1.0 + 1e-6},  # two faces: the order of dlib's answer is rounding
        {(10, 10): 1.0, (3, 20): 1e-6},  # a window at dlib's threshold: whether it is found is rounding
        {(3, 20): -1e-6},
    ],
)
def test_near_ties_are_left_to_dlib(net, points):
    scores, rects = _score_map(points)
    assert mmodnet.near_tie(scores, rects, net)


@pytest.mark.parametrize("gap, tie", [(0.9, True), (1.1, False)])
def test_the_near_tie_margin_is_where_a_tie_ends(net, gap, tie):
    """Just inside the margin is a tie, just outside is not: for two overlapping windows, for two
    faces, and for a window near dlib's threshold (values exact in float32 at this scale)."""
    d = gap * mmodnet.TIE_MARGIN
    for points in (
        {(10, 10): 1.0, (10, 11): 1.0 + d},
        {(10, 10): 1.0, (40, 2): 1.0 + d},
        {(10, 10): 1.0, (3, 20): d},
    ):
        scores, rects = _score_map(points)
        assert mmodnet.near_tie(scores, rects, net) == tie, points


def test_a_near_tie_under_a_better_box_is_no_tie(net):
    scores, rects = _score_map({(10, 10): 2.0, (10, 11): 1.0, (10, 12): 1.0 + 1e-6})
    assert not mmodnet.near_tie(scores, rects, net)


class _Api:
    def __init__(self):
        self.calls = 0

    def face_locations(self, rgb, upsample, model):
        self.calls += 1
        return [(1, 9, 9, 1)]


class _Fast:
    def __init__(self, answer):
        self.answer = answer

    def __call__(self, rgb, upsample):
        return self.answer


@pytest.mark.parametrize("answer, dlib_calls", [([(2, 8, 8, 2)], 0), (None, 1)])
def test_the_fast_engine_asks_dlib_only_for_near_ties(answer, dlib_calls, capsys):
    from privrisk.models import FastFaceModel

    api = _Api()
    model = FastFaceModel(api, descriptor=None)
    model._cnn = _Fast(answer)
    rgb = np.zeros((10, 10, 3), np.uint8)
    assert model.detect(rgb, "cnn", 0) == (answer or [(1, 9, 9, 1)])
    assert api.calls == dlib_calls
    assert model.detect(rgb, "hog", 0) == [(1, 9, 9, 1)] and api.calls == dlib_calls + 1
    model.detect(rgb, "cnn", 0)  # a second near tie is not announced again
    assert capsys.readouterr().err.count("nearly tie") == dlib_calls  # said once, only when dlib answered


def test_a_changed_detector_file_leaves_the_cnn_detector_to_dlib_saying_so(tmp_path, path, monkeypatch, capsys):
    from privrisk.models import FastFaceModel

    data = bytearray(open(path, "rb").read())
    data[100] ^= 0x01
    changed = tmp_path / "mmod.dat"
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(mmodnet, "default_path", lambda: str(changed))
    api = _Api()
    model = FastFaceModel(api, descriptor=None)
    assert model.detect(np.zeros((10, 10, 3), np.uint8), "cnn", 0) == [(1, 9, 9, 1)]
    assert model.detect(np.zeros((10, 10, 3), np.uint8), "cnn", 0) == [(1, 9, 9, 1)]
    err = capsys.readouterr().err
    assert err.count("the fast cnn detector is not used") == 1 and "sha256" in err and api.calls == 2


SAMPLES = ["neutral/001.jpg", "neutral/017.jpg", "smiling/033.jpg", "smiling/101.jpg"]


@x86_only
@pytest.mark.model
def test_fast_cnn_boxes_equal_dlibs_on_sample_photos(path):
    import dlib
    from PIL import Image

    from privrisk.images import load_image

    fast = mmodnet.load_fast_detector(path)
    slow = dlib.cnn_face_detection_model_v1(path)
    compared = 0
    for name in SAMPLES:
        rgb = load_image(ROOT / "sample_data" / name).rgb
        for side, upsample in ((320, 0), (160, 1)):
            scale = side / max(rgb.shape[:2])
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
            ref = [
                (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
                for d in slow(small, upsample)
            ]
            found = fast.detections(small, upsample)
            if found is None:  # a near tie: the engine asks dlib
                continue
            got = [(*rect, conf) for rect, conf in found]
            assert [r[:4] for r in got] == [r[:4] for r in ref], (name, side)
            # within half the near-tie margin: the rule assumes each score is within it of dlib's
            assert np.allclose([r[4] for r in got], [r[4] for r in ref], rtol=0, atol=mmodnet.TIE_MARGIN / 2)
            compared += len(ref)
    assert compared >= len(SAMPLES)


def test_a_dlib_build_that_resizes_differently_declines_the_fast_detector(path, monkeypatch):
    dlib = pytest.importorskip("dlib")

    class OtherBuild:  # rounds one pixel differently
        __version__ = "99.0"

        @staticmethod
        def resize_image(img, rows, cols):
            out = np.array(dlib.resize_image(img, rows, cols))
            out.flat[0] += 1
            return out

    reason = mmodnet.resize_differs_from_dlib(OtherBuild)
    assert reason is not None and "dlib 99.0 resizes images differently" in reason
    monkeypatch.setattr(mmodnet, "resize_differs_from_dlib", lambda: reason)
    with pytest.raises(ModelUnavailable, match="resizes images differently"):
        mmodnet.load_fast_detector(path)
