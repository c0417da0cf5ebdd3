"""Batch embedding: the process-pool path gives what the in-process path gives, in order, cached."""

import os

import numpy as np
import pytest

from helpers import FakeFaceModel, noise_image, write_png
from privrisk import embeddings
from privrisk.embeddings import EmbeddingCache, Workers, embed_batch


class PidRecordingModel(FakeFaceModel):
    """The fake model, noting which process ran each detection."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir

    def detect(self, rgb, detector="hog", upsample=1):
        (self.log_dir / f"{os.getpid()}-{np.random.default_rng().integers(1 << 60)}").touch()
        return super().detect(rgb, detector, upsample)


@pytest.mark.parametrize("in_flight", [3, None])  # one image per task; batches of several (embed_batch's own)
def test_process_pool_matches_in_process_results(tmp_path, monkeypatch, in_flight):
    images = [write_png(tmp_path / "img" / f"{i:02d}.png", noise_image(i)) for i in range(12)]
    images.insert(5, write_png(tmp_path / "img" / "blank.png", np.full((32, 32, 3), 100, np.uint8)))
    images.insert(8, tmp_path / "img" / "missing.png")
    reference = embed_batch(images, model=FakeFaceModel(), workers=1)

    log_dir = tmp_path / "pids"
    log_dir.mkdir()
    # forked workers call load_face_model(); they inherit this patch. Fork even when an earlier test in
    # this process ran dlib's CNN detector (then privrisk spawns, and a spawned worker would not see
    # the patch); the fake model never touches dlib's thread pool.
    monkeypatch.setattr(embeddings, "fork_is_safe", lambda: True)
    monkeypatch.setattr(embeddings, "load_face_model", lambda settings=None: PidRecordingModel(log_dir))
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    pooled = embed_batch(images, workers=Workers(2, max_in_flight=in_flight), cache=cache)

    worker_pids = {p.name.split("-")[0] for p in log_dir.iterdir()}
    assert worker_pids and str(os.getpid()) not in worker_pids, "the pool path ran in this process"
    assert [r.name for r in pooled] == [r.name for r in reference]
    for a, b in zip(pooled, reference):
        assert a.ok == b.ok and (a.error is None) == (b.error is None)
        if a.ok:
            assert np.array_equal(a.faces[0].embedding, b.faces[0].embedding) and a.faces[0].box == b.faces[0].box
    assert not pooled[8].ok and "not found" in pooled[8].error
    assert not pooled[5].ok and "no face" in pooled[5].error

    # a second batch is answered from the cache: no worker runs
    for p in log_dir.iterdir():
        p.unlink()
    again = embed_batch(images, workers=2, cache=cache)
    assert all(r.cached for r in again if r.ok) and not list(log_dir.iterdir())


def test_artifacts_round_trip_without_pickle_and_keys_see_every_input(tmp_path):
    from privrisk.config import FaceSettings
    from privrisk.embeddings import artifact_key

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    arrays = {"pos": np.arange(5, dtype=np.int64), "sha": np.array(["ab" * 32, "cd" * 32]), "d": np.ones((2, 3), "f4")}
    key = artifact_key("search", np.arange(3, dtype=np.float32), FaceSettings(), 7)
    assert cache.get_arrays(key) is None
    cache.put_arrays(key, arrays)
    back = cache.get_arrays(key)
    assert set(back) == set(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    assert back["sha"].dtype.kind == "U"
    # a change in any input, array or setting, gives another key
    assert artifact_key("search", np.arange(3, dtype=np.float32), FaceSettings(), 8) != key
    assert artifact_key("search", np.arange(3, dtype=np.float64), FaceSettings(), 7) != key
    assert artifact_key("search", np.arange(3, dtype=np.float32), FaceSettings(upsample=1), 7) != key
    assert artifact_key("search", np.arange(3, dtype=np.float32), FaceSettings(), 7) == key
