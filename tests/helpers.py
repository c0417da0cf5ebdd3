"""Helpers the tests share (import them from here, not from conftest): the project root, a fake
face model for fast exact tests, image makers, and an environment with the network blocked."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


class FakeFaceModel:
    """Deterministic stand-in for dlib: a uniform image has no face; otherwise the whole image
    (or each marked region) is a face whose embedding is a fixed projection of its pixels."""

    model_id = "fake-model/1"
    embedding_dim = 128

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        rng = np.random.default_rng(1234)
        self._proj = rng.standard_normal((16 * 16, 128)).astype(np.float32)

    def detect(self, rgb, detector="hog", upsample=1):
        if self.delay:
            time.sleep(self.delay)
        if float(rgb.std()) < 1.0:
            return []
        h, w = rgb.shape[:2]
        return [(0, w, h, 0)]

    def encode(self, rgb, boxes, jitters=1):
        out = []
        for top, right, bottom, left in boxes:
            crop = Image.fromarray(rgb[top:bottom, left:right]).convert("L").resize((16, 16))
            v = (np.asarray(crop, np.float32).ravel() / 255.0 - 0.5) @ self._proj
            out.append(v / (np.linalg.norm(v) + 1e-9))
        return np.asarray(out, np.float32).reshape(len(boxes), 128)

    # landmarks at fixed fractions of the box (x, y as shares of width, height), 68-point layout
    LANDMARK_FRACTIONS = {
        "left_eye": [(0.22, 0.35), (0.27, 0.32), (0.33, 0.32), (0.38, 0.35), (0.33, 0.38), (0.27, 0.38)],
        "right_eye": [(0.62, 0.35), (0.67, 0.32), (0.73, 0.32), (0.78, 0.35), (0.73, 0.38), (0.67, 0.38)],
        "left_eyebrow": [(0.15 + 0.06 * i, 0.20) for i in range(5)],
        "right_eyebrow": [(0.61 + 0.06 * i, 0.20) for i in range(5)],
        "nose_bridge": [(0.5, 0.35 + 0.07 * i) for i in range(4)],
        "nose_tip": [(0.42 + 0.04 * i, 0.62) for i in range(5)],
        "top_lip": [(0.35 + 0.05 * i, 0.76) for i in range(7)] + [(0.6 - 0.05 * i, 0.78) for i in range(5)],
        "bottom_lip": [(0.65 - 0.05 * i, 0.84) for i in range(7)] + [(0.4 + 0.05 * i, 0.80) for i in range(5)],
        "chin": [(0.5 - 0.46 * np.cos(np.pi * i / 16), 0.35 + 0.6 * np.sin(np.pi * i / 16)) for i in range(17)],
    }

    def landmarks(self, rgb, boxes):
        self.landmark_calls = getattr(self, "landmark_calls", 0) + 1
        out = []
        for top, right, bottom, left in boxes:
            w, h = right - left, bottom - top
            out.append(
                {
                    name: [(int(round(left + fx * w)), int(round(top + fy * h))) for fx, fy in pts]
                    for name, pts in self.LANDMARK_FRACTIONS.items()
                }
            )
        return out


def use_face_model(mp, model) -> None:
    """The seam: within monkeypatch ``mp``, load_face_model() hands out ``model`` for every engine
    (embedding in this process, workers = 1), and the fast engine counts as usable."""
    import privrisk.models

    mp.setattr(privrisk.models, "_models", {"dlib": model, "fast": model})
    mp.setattr(privrisk.models, "_engines", {"fast": "fast"})


def noise_image(seed: int, size=(64, 64), noise: float = 0.0, noise_seed: int = 99) -> np.ndarray:
    """A subject's 'face': seeded smooth noise; ``noise`` adds a small perturbation (another photo)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(base).resize(size, Image.Resampling.BICUBIC), np.float32)
    if noise:
        img += np.random.default_rng(noise_seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def encode_image(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


NO_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise OSError("network access blocked by privrisk's test")
_connect = socket.socket.connect
def _guarded(self, address, *a, **k):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse()
    return _connect(self, address, *a, **k)
socket.socket.connect = _guarded
socket.socket.connect_ex = _guarded
socket.getaddrinfo = _refuse
socket.create_connection = _refuse
"""


def no_network_env(tmp_path, **extra):
    site = tmp_path / "blocked-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def fake_sample_world(model: FakeFaceModel, n: int = 40, size: int = 128, seed: int = 1):
    """A :class:`privrisk.selfcheck.SampleWorld` of ``n`` synthetic subjects embedded with the fake
    model (photo s = ``noise_image(s)`` at ``size``), with a tail model fitted on them (a noisier
    second photo per subject as probes) and no distractors. Returns (world, photos, second photos)."""
    from privrisk import tailmodel
    from privrisk.selfcheck import SampleWorld

    photos = [noise_image(s, size=(size, size)) for s in range(n)]
    second = [noise_image(s, size=(size, size), noise=10.0, noise_seed=s) for s in range(n)]
    full = (0, size, size, 0)
    g = np.array([model.encode(p, [full])[0] for p in photos], np.float32)
    q = np.array([model.encode(p, [full])[0] for p in second], np.float32)
    subjects = [f"s{i:03d}" for i in range(n)]
    tm = tailmodel.fit(tailmodel.Pairs(q, subjects, g, subjects), n_boot=20, seed=seed)
    world = SampleWorld(
        vectors=g,
        subjects=subjects,
        images=[f"synthetic/{s}.png" for s in subjects],
        model=None,
        distractors=np.zeros((0, 128), np.float32),
        index=None,
        tail_models=(tm,),
    )
    return world, photos, second


def clustered(seed=0, people=90, photos=2, d=128, clusters=6):
    """Seeded synthetic faces: people around cluster centres, photos around each person."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.06, (clusters, d))
    who = rng.integers(0, clusters, people)
    person = centres[who] + rng.normal(0, 0.045, (people, d))
    faces = np.repeat(person, photos, axis=0) + rng.normal(0, 0.012, (people * photos, d))
    subjects = np.repeat(np.array([f"s{i:03d}" for i in range(people)]), photos)
    groups = np.repeat(np.array([f"g{w}" for w in who]), photos)
    return faces.astype(np.float32), subjects, groups


def small_e2_set(tmp_path):
    """10 subjects; gallery photos 120 px; probe photos of subjects 0-2 only 60 px wide (the fake
    model's face is the whole photo), the rest 120 px."""
    root = tmp_path / "images"
    g, p = ["subject_id,image,consent"], ["subject_id,image,consent"]
    for s in range(10):
        write_png(root / "g" / f"{s}.png", noise_image(s, size=(120, 120)))
        size = (60, 60) if s < 3 else (120, 120)
        write_png(root / "p" / f"{s}.png", noise_image(s, size=size, noise=6.0, noise_seed=s))
        g.append(f"s{s},g/{s}.png,yes")
        p.append(f"s{s},p/{s}.png,yes")
    (root / "g.csv").write_text("\n".join(g) + "\n")
    (root / "p.csv").write_text("\n".join(p) + "\n")
    return root


def fake_shapes(model: FakeFaceModel, rgb, boxes) -> list[np.ndarray]:
    """The fake model's landmarks as dlib-style (68, 2) arrays, in dlib's point order."""
    order = ("chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip", "left_eye", "right_eye")
    out = []
    for face in model.landmarks(rgb, boxes):
        pts = [p for name in order for p in face[name]]
        pts += face["top_lip"][:7] + face["bottom_lip"][1:6] + face["top_lip"][7:] + face["bottom_lip"][7:10]
        out.append(np.array(pts[:68], np.float64))
    return out


class FakeDetector(FakeFaceModel):
    """The fake model with what an ONNX embedder needs from dlib: 68-point shapes and face chips."""

    def shapes(self, rgb, boxes):
        return fake_shapes(self, rgb, boxes)

    def chips(self, rgb, boxes, size=150):
        return [np.asarray(Image.fromarray(rgb[t:b, left:r]).resize((size, size)), np.uint8) for t, r, b, left in boxes]


def make_onnx_model(
    path,
    *,
    size: int | None = 32,
    dim: int = 16,
    layout: str = "NCHW",
    batch: int | str = "N",
    seed: int = 0,
    nan: bool = False,
    channels: int = 3,
) -> Path:
    """A tiny face-embedding network written as ONNX in the test itself (no weights shipped or
    downloaded): flatten the image, one seeded random linear layer, a tanh; ``nan`` multiplies the
    output by NaN. ``size=None`` leaves height and width free (the layer then needs ``size`` 32 crops)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    side = size or 32
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((channels * side * side, dim)) / np.sqrt(channels * side * side)).astype(np.float32)
    hw = [size or "H", size or "W"]
    shape = [batch, channels, *hw] if layout == "NCHW" else [batch, *hw, channels]
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["lin"]),
        helper.make_node("Tanh", ["lin"], ["t"]),
        helper.make_node("Mul", ["t", "scale"], ["y"]),
    ]
    scale = np.array([np.nan if nan else 1.0], np.float32)
    graph = helper.make_graph(
        nodes,
        "tiny-face-embedder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, dim])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
