"""Face detection passes and the size-chosen index: fast by default, never less found."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from helpers import encode_image, noise_image
from privrisk import index as faiss_index
from privrisk.config import FaceSettings
from privrisk.faces import detect_faces
from privrisk.images import load_image


class PassCountingModel:
    """Finds a 'small' face only when upsampled, and a 'large' one in any pass; records each pass."""

    model_id = "pass-counting/1"

    def __init__(self, faces_by_upsample):
        self.faces_by_upsample = faces_by_upsample
        self.passes = []

    def detect(self, rgb, detector="hog", upsample=1):
        self.passes.append(upsample)
        return list(self.faces_by_upsample.get(upsample, []))


@pytest.fixture
def image():
    return load_image(encode_image(Image.fromarray(noise_image(1, size=(200, 200))), "PNG"), name="x.png")


LARGE, SMALL = (10, 150, 150, 10), (160, 190, 190, 160)


def test_large_face_costs_one_cheap_pass(image):
    model = PassCountingModel({0: [LARGE], 1: [LARGE, SMALL]})
    assert detect_faces(model, image, FaceSettings()) == [LARGE]
    assert model.passes == [0]


def test_small_face_gets_the_upsampled_retry(image):
    model = PassCountingModel({0: [], 1: [SMALL]})
    assert detect_faces(model, image, FaceSettings()) == [SMALL]
    assert model.passes == [0, 1]


@pytest.mark.parametrize("policy", ["all", "error"])
def test_policies_that_count_faces_run_the_upsampled_pass(image, policy):
    model = PassCountingModel({0: [LARGE], 1: [LARGE, SMALL]})
    assert detect_faces(model, image, FaceSettings(multiple_faces=policy)) == [LARGE, SMALL]
    assert model.passes == [1]


def test_legacy_detection_is_one_upsampled_pass_with_the_old_cache_key(image):
    legacy = FaceSettings(upsample=1, retry_upsample=0, engine="dlib")
    model = PassCountingModel({1: [SMALL]})
    assert detect_faces(model, image, legacy) == [SMALL] and model.passes == [1]
    # privrisk 0.1 (dlib itself computing descriptors) cached under this key; the same settings must
    # reuse those embeddings. The fast engine's key says so.
    assert legacy.cache_key("m") == "m|det=hog|up=1|dside=640|side=2048|jit=1"
    assert dataclasses.replace(legacy, engine="fast").cache_key("m") == legacy.cache_key("m") + "|engine=fast"
    assert FaceSettings().cache_key("m") != legacy.cache_key("m")


def test_auto_index_is_exact_for_small_galleries_and_hnsw_for_large():
    assert faiss_index.resolve_index_type("auto", 10) == "flat"
    assert faiss_index.resolve_index_type("auto", faiss_index.AUTO_EXACT_MAX) == "flat"
    assert faiss_index.resolve_index_type("auto", faiss_index.AUTO_EXACT_MAX + 1) == "hnsw"
    assert faiss_index.resolve_index_type("flat", 10**7) == "flat"
    with pytest.raises(ValueError, match="index type"):
        faiss_index.resolve_index_type("annoy", 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 128)).astype(np.float32)
    d, i = faiss_index.search(faiss_index.build_index(x, index_type="auto"), x[:3], 1)
    assert i[:, 0].tolist() == [0, 1, 2] and np.allclose(d[:, 0], 0, atol=1e-3)
