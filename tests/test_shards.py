"""Sharded, compressed galleries on disk agree with exact search."""

import json

import numpy as np
import pytest

from privrisk import index as faiss_index
from privrisk.distractors import DistractorModel
from privrisk.shards import ShardedIndex, ShardLayout, build_shards


@pytest.mark.slow
def test_sharded_ivfpq_matches_exact_search(tmp_path):
    rng = np.random.default_rng(0)
    # anisotropic like real face embeddings: a few directions carry most of the variance
    model = DistractorModel.fit(rng.normal(0, 1, (1000, 128)) * np.geomspace(0.1, 0.005, 128))
    data = model.sample(30_000, seed=1)
    chunks = (data[i : i + 3_500] for i in range(0, len(data), 3_500))
    meta = build_shards(chunks, tmp_path / "g", data[:10_000], ShardLayout(nlist=64, m=32, shard_size=12_500))
    assert meta["n"] == 30_000 and [s["end"] - s["start"] for s in meta["shards"]] == [12_500, 12_500, 5_000]
    assert json.loads((tmp_path / "g" / "shards.json").read_text())["n"] == 30_000
    assert not list((tmp_path / "g").glob("*.tmp"))

    picks = rng.choice(len(data), 200, replace=False)
    queries = data[picks] + rng.normal(0, 0.02, (200, 128)).astype(np.float32)
    exact_d, exact_i = faiss_index.search(faiss_index.build_index(data), queries, 10)
    sharded = ShardedIndex(tmp_path / "g", nprobe=32, rerank=100)
    d, i = sharded.search(queries, 10)
    assert (i[:, 0] == picks).mean() == 1.0
    recall10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i, exact_i)])
    assert recall10 >= 0.9
    # re-ranked distances are exact: where ids agree, distances agree
    same = i == exact_i
    assert np.allclose(d[same], exact_d[same], atol=1e-5)
