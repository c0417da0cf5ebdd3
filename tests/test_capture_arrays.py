"""A capture embedded from its rendered array gives what the PNG round trip gave (same faces, same
embedding bits), and falls back to the PNG when the loader would have changed or refused it."""

import dataclasses

import numpy as np
from PIL import Image

from helpers import FakeFaceModel, noise_image
from privrisk.captures import CaptureSource, make_captures
from privrisk.config import ExperimentConfig, FaceSettings
from privrisk.embeddings import _embed_items, _loads_unchanged, embed_image, file_sha256


def _captures(tmp_path, max_side=1600):
    photo = tmp_path / "p.png"
    Image.fromarray(noise_image(3, size=(300, 240))).save(photo)
    levels = {lv.name: lv for lv in ExperimentConfig().offline.levels}
    source = CaptureSource(str(photo), file_sha256(photo), (30, 200, 210, 40), max_side)
    settings = FaceSettings(max_side=max_side)
    return [
        c
        for i, name in enumerate(("webcam", "street", "mask"))
        for c in make_captures(source, levels[name], (7, i, 0), 2, settings, "fake-model/1")
    ], settings


def _same(a, b):
    assert a.name == b.name and a.error == b.error and a.sha256 is None and b.sha256 is None
    assert [f.box for f in a.faces] == [f.box for f in b.faces]
    assert [f.width_px for f in a.faces] == [f.width_px for f in b.faces]
    for fa, fb in zip(a.faces, b.faces):
        assert np.array_equal(fa.embedding, fb.embedding)


def test_capture_array_embeds_as_its_png(tmp_path):
    model = FakeFaceModel()
    captures, settings = _captures(tmp_path)
    for c in captures:
        (got,) = _embed_items([c], model, settings)
        want = dataclasses.replace(embed_image(c.render(model), model, settings, name=c.name), sha256=None)
        assert got.faces  # a face to compare
        _same(got, want)


def test_captures_batched_with_photos_embed_as_their_pngs(tmp_path):
    model = FakeFaceModel()
    captures, settings = _captures(tmp_path)
    photo = tmp_path / "p.png"
    got = _embed_items([captures[0], str(photo), *captures[1:]], model, settings)
    assert got[1].sha256 == file_sha256(photo)
    for c, g in zip(captures, [got[0], *got[2:]], strict=True):
        _same(g, dataclasses.replace(embed_image(c.render(model), model, settings, name=c.name), sha256=None))


def test_capture_too_large_for_the_loader_goes_through_the_png(tmp_path):
    model = FakeFaceModel()
    captures, _ = _captures(tmp_path, max_side=1600)
    small = FaceSettings(max_side=100)  # the loader would shrink these captures: the PNG path does
    for c in captures[:2]:
        (got,) = _embed_items([c], model, small)
        want = dataclasses.replace(embed_image(c.render(model), model, small, name=c.name), sha256=None)
        _same(got, want)
        assert not _loads_unchanged(c.render_rgb(model), small)
