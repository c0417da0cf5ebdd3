"""ONNX embedders: a tiny network built here with onnx.helper (seeded random weights; nothing shipped
or downloaded) runs through the real loading, alignment and inference code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import FakeDetector, make_onnx_model, noise_image, write_png
from privrisk.config import FaceSettings, GallerySettings, from_dict
from privrisk.embedders import (
    ARCFACE_TEMPLATE_112,
    OnnxFaceModel,
    five_points,
    onnx_model_id,
    parse_embedder,
    preprocessing_for,
    similarity_transform,
)
from privrisk.embeddings import EmbeddingCache, EmbedRun, embed_batch
from privrisk.errors import ConfigError, EmbedderError, GalleryError
from privrisk.gallery import Gallery, build_gallery
from privrisk.manifest import read_manifest
from privrisk.matching import match_images
from privrisk.metrics import threshold_at_fmr

BOXES = [(0, 64, 64, 0)]


@pytest.fixture
def tiny(tmp_path):
    return make_onnx_model(tmp_path / "tiny.onnx", size=32, dim=16, seed=1)


def test_shapes_dims_and_determinism(tiny):
    model = OnnxFaceModel(tiny, FakeDetector())
    assert model.embedding_dim == 16 and model.preprocessing.input_size == 32
    img = noise_image(4)
    a = model.encode(img, BOXES * 3)
    assert a.shape == (3, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)  # cosine model: L2-normalised
    again = OnnxFaceModel(tiny, FakeDetector()).encode(img, BOXES * 3)
    np.testing.assert_array_equal(a, again)  # same machine, same bits
    assert model.encode(img, []).shape == (0, 16)
    other = model.encode(noise_image(5), BOXES)
    assert not np.allclose(a[0], other[0])  # another face, another embedding


@pytest.mark.parametrize("layout,batch", [("NHWC", "N"), ("NCHW", 1)])
def test_layouts_and_a_fixed_batch_of_one(tmp_path, layout, batch):
    path = make_onnx_model(tmp_path / "m.onnx", layout=layout, batch=batch, dim=24)
    model = OnnxFaceModel(path, FakeDetector())
    out = model.encode(noise_image(1), BOXES * 2)  # two faces through a batch-1 model: one run each
    assert out.shape == (2, 24) and np.isfinite(out).all()
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5)


def test_euclidean_metric_keeps_the_raw_output(tiny):
    raw = OnnxFaceModel(tiny, FakeDetector(), "metric=euclidean").encode(noise_image(2), BOXES)
    cos = OnnxFaceModel(tiny, FakeDetector()).encode(noise_image(2), BOXES)
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw), cos, rtol=1e-5)


def test_free_input_size_comes_from_the_options(tmp_path):
    path = make_onnx_model(tmp_path / "free.onnx", size=None)
    model = OnnxFaceModel(path, FakeDetector(), "input_size=32")
    assert model.preprocessing.input_size == 32 and model.encode(noise_image(1), BOXES).shape == (1, 16)


def test_sidecar_options_and_overrides(tiny):
    sidecar = tiny.parent / (tiny.name + ".json")
    sidecar.write_text(json.dumps({"_comment": "SFace-style", "channels": "BGR", "mean": 0, "std": [1, 1, 1]}))
    pre = preprocessing_for(tiny)
    assert pre.channels == "BGR" and pre.mean == (0.0, 0.0, 0.0) and pre.std == (1.0, 1.0, 1.0)
    assert preprocessing_for(tiny, "channels=RGB,mean=1/2/3").channels == "RGB"
    assert preprocessing_for(tiny, "mean=1/2/3").mean == (1.0, 2.0, 3.0)
    with_sidecar = onnx_model_id(tiny)
    sidecar.unlink()
    assert onnx_model_id(tiny) != with_sidecar  # preprocessing is part of the identity
    bgr = OnnxFaceModel(tiny, FakeDetector(), "channels=BGR").encode(noise_image(3), BOXES)
    rgb = OnnxFaceModel(tiny, FakeDetector()).encode(noise_image(3), BOXES)
    assert not np.allclose(bgr, rgb)
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        preprocessing_for(tiny, "colour=BGR")
    with pytest.raises(ConfigError, match="channels"):
        preprocessing_for(tiny, "channels=CMYK")
    sidecar.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON sidecar"):
        preprocessing_for(tiny)


def test_dlib_chip_alignment(tmp_path):
    path = make_onnx_model(tmp_path / "m150.onnx", size=150, dim=8)
    model = OnnxFaceModel(path, FakeDetector(), "alignment=dlib")
    assert model.crops(noise_image(1), BOXES).shape == (1, 150, 150, 3)
    assert model.encode(noise_image(1), BOXES).shape == (1, 8)


def test_arcface_alignment_maps_the_five_points_onto_the_template():
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.uniform(0, 100, (5, 2))
    dst = scale * src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    shape = np.zeros((68, 2))
    shape[36:42], shape[42:48], shape[30], shape[48], shape[54] = (10, 20), (30, 20), (20, 30), (12, 40), (28, 40)
    np.testing.assert_allclose(five_points(shape), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])
    assert ARCFACE_TEMPLATE_112.shape == (5, 2)


def test_clear_errors(tmp_path, tiny):
    with pytest.raises(EmbedderError, match="no such model file"):
        OnnxFaceModel(tmp_path / "missing.onnx", FakeDetector())
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is a JPEG, honest\x00\x01")
    with pytest.raises(EmbedderError, match="not a usable ONNX model") as exc:
        OnnxFaceModel(junk, FakeDetector())
    assert str(junk) in str(exc.value)
    gray = make_onnx_model(tmp_path / "gray.onnx", channels=1)
    with pytest.raises(EmbedderError, match="wrong input shape"):
        OnnxFaceModel(gray, FakeDetector())
    with pytest.raises(EmbedderError, match="wrong input shape: the model takes 32x32 images, the options say 112"):
        OnnxFaceModel(tiny, FakeDetector(), "input_size=112")
    nan = make_onnx_model(tmp_path / "nan.onnx", nan=True)
    with pytest.raises(EmbedderError, match="non-finite"):
        OnnxFaceModel(nan, FakeDetector()).encode(noise_image(1), BOXES)


def test_embedder_setting_is_checked():
    assert parse_embedder("dlib") == ("dlib", "")
    assert parse_embedder("onnx:/m/face.onnx") == ("onnx", "/m/face.onnx")
    with pytest.raises(ConfigError, match="neither 'dlib' nor 'onnx:PATH'"):
        from_dict(FaceSettings, {"embedder": "arcface"})
    assert GallerySettings().resolved_rule("dlib") == "given"
    assert GallerySettings().resolved_rule("onnx:x.onnx") == "fmr"
    assert GallerySettings(threshold_rule="given").resolved_rule("onnx:x.onnx") == "given"


def test_separate_caches_per_model_hash(tmp_path, synthetic_set):
    root, _manifest = synthetic_set
    images = sorted((root / "gallery").glob("*.png"))[:4]
    a = OnnxFaceModel(make_onnx_model(tmp_path / "a.onnx", seed=1), FakeDetector())
    b = OnnxFaceModel(make_onnx_model(tmp_path / "b.onnx", seed=2), FakeDetector())
    assert a.model_id != b.model_id
    settings = FaceSettings()
    assert settings.cache_key(a.model_id) != settings.cache_key(b.model_id)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    first_a = embed_batch(images, settings, model=a, cache=cache, workers=1)
    first_b = embed_batch(images, settings, model=b, cache=cache, workers=1)
    assert len(cache) == 2 * len(images)  # one entry per image per model, never shared
    again_a = embed_batch(images, settings, model=a, cache=cache, workers=1)
    assert all(r.cached for r in again_a) and not any(r.cached for r in first_b)
    for x, y, z in zip(first_a, again_a, first_b):
        np.testing.assert_array_equal(x.faces[0].embedding, y.faces[0].embedding)
        assert not np.allclose(x.faces[0].embedding, z.faces[0].embedding)


def test_gallery_records_the_embedder_and_refuses_another(tmp_path, synthetic_set):
    root, manifest = synthetic_set
    a = OnnxFaceModel(make_onnx_model(tmp_path / "a.onnx", seed=1), FakeDetector())
    b = OnnxFaceModel(make_onnx_model(tmp_path / "b.onnx", seed=2, dim=32), FakeDetector())
    face = FaceSettings(embedder=f"onnx:{tmp_path / 'a.onnx'}")
    gdir = tmp_path / "g"
    report = build_gallery(read_manifest(manifest, root), gdir, face_settings=face, run=EmbedRun(model=a, workers=1))
    assert report.added == 10 and report.threshold is not None
    with Gallery.open(gdir) as g:
        assert g.model_id == a.model_id and g.embedding_dim == 16 and g.info()["embedding_dim"] == 16
        assert "impostor pairs of 10 people enrolled in this gallery" in g.threshold_rule
        assert g.settings.threshold == pytest.approx(report.threshold["value"])
        probe = [root / "probe" / "003.png"]
        (hit,) = match_images(g, probe, run=EmbedRun(model=a, workers=1))
        assert hit.best is not None and hit.best.subject_id == "003"
        with pytest.raises(GalleryError) as exc:
            match_images(g, probe, run=EmbedRun(model=b, workers=1))
        assert a.model_id in str(exc.value) and b.model_id in str(exc.value)
        with pytest.raises(GalleryError, match="32 values"):
            g.search(np.zeros((1, 32), np.float32))
    with pytest.raises(GalleryError, match=b.model_id):
        build_gallery(read_manifest(manifest, root), gdir, face_settings=face, run=EmbedRun(model=b, workers=1))


def test_threshold_at_fmr_counts_impostor_pairs():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((60, 8))
    labels = np.repeat(np.arange(30), 2)
    out = threshold_at_fmr(vectors, labels, 0.01)
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    iu = np.triu_indices(60, 1)
    impostor = d[iu][labels[iu[0]] != labels[iu[1]]]
    assert out["n_impostor_pairs"] == len(impostor) == 60 * 59 // 2 - 30
    k = int(np.floor(0.01 * len(impostor)))
    assert (impostor <= out["value"]).sum() == k == out["impostor_pairs_at_or_below"]
    assert (impostor <= np.sort(impostor)[k] + 1e-9).sum() == k + 1  # the next impostor pair lies just above
    assert out["resolvable"] and "cannot resolve" not in out["statement"]  # 1,740 pairs >= 3 / 0.01
    rare = threshold_at_fmr(vectors, labels, 0.001)
    assert not rare["resolvable"] and "cannot resolve" in rare["statement"]
    assert (impostor <= rare["value"]).sum() == 1
    with pytest.raises(ValueError):
        threshold_at_fmr(vectors[:2], [1, 1], 0.01)


def test_several_images_through_the_tiny_model_from_files(tmp_path):
    path = make_onnx_model(tmp_path / "m.onnx")
    model = OnnxFaceModel(path, FakeDetector())
    files = [write_png(tmp_path / f"{i}.png", noise_image(i)) for i in range(3)]
    res = embed_batch(files, FaceSettings(), model=model, workers=1)
    assert [r.faces[0].embedding.shape for r in res] == [(16,)] * 3


# --- end to end, with dlib finding the faces: the CLI and an experiment with a model never seen ---------

QUICK_ONNX = """
seed = 2011
bootstrap = 50
[faces]
embedder = "onnx:{model}"
[offline]
shots = 1
headline = "webcam"
timing_probes = 2
detector_people = 10  # the cnn detector beside hog on a seeded subset, as the demo runs it (default: everyone)
[[offline.levels]]
name = "webcam"
face_width_px = 80
[scaling]
sizes = [100]
extrapolate = [1000]
validation_distractors = 200
tail_bootstrap = 5
"""


@pytest.mark.model
def test_cli_build_match_and_experiment_with_an_onnx_model(tmp_path, london, shared_cache_dir):
    import os

    from test_cli import run_cli

    model = make_onnx_model(tmp_path / "never-seen.onnx", size=112, dim=64, seed=7)
    env = {**os.environ, "PRIVRISK_CACHE_DIR": shared_cache_dir}
    gallery = tmp_path / "g"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    out = run_cli(
        "gallery", "build", london / "london_neutral.csv", "--images", london, "--out", gallery,
        "--embedder", f"onnx:{junk}", env=env,
    )  # fmt: skip
    assert out.returncode == 2 and "not a usable ONNX model" in out.stderr and str(junk) in out.stderr
    assert "Traceback" not in out.stderr and not gallery.exists()  # refused before anything is written
    out = run_cli(
        "gallery", "build", london / "london_neutral.csv", "--images", london, "--out", gallery,
        "--embedder", f"onnx:{model}", "--json", "--workers", "2", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)
    assert built["added"] > 90 and "impostor pairs" in built["threshold"]["statement"]
    info = json.loads(run_cli("gallery", "info", gallery, "--json", env=env).stdout)
    assert info["model_id"] == onnx_model_id(model) and info["embedding_dim"] == 64
    assert info["embedder"] == f"onnx:{model}" and info["threshold"] == built["threshold"]["value"]

    probe = london / "smiling" / "004.jpg"
    out = run_cli("match", gallery, probe, "--json", env=env)
    assert out.returncode == 0, out.stderr
    (m,) = json.loads(out.stdout)
    assert m["attacker"]["embedder"] == onnx_model_id(model) and len(m["candidates"]) == 5
    refused = run_cli("match", gallery, probe, "--embedder", "dlib", env=env)
    assert refused.returncode == 2 and onnx_model_id(model) in refused.stderr and "dlib-resnet" in refused.stderr

    config = tmp_path / "onnx.toml"
    config.write_text(QUICK_ONNX.format(model=model))
    out = run_cli("experiment", config, "--out", tmp_path / "run", "--quiet", env=env)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    att = results["attacker"]
    assert att["model_id"] == onnx_model_id(model) and att["embedding_dim"] == 64
    assert "held out of this experiment" in att["threshold"]["statement"]
    assert results["config"]["gallery"]["threshold"] == att["threshold"]["value"] != 0.6
    held = 31  # 30% of the 102 people in both sample manifests, never scored
    assert att["threshold"]["n_people"] == held
    e1 = results["experiments"]["online_to_online"]
    assert e1["n_probes"] <= 102 - held
