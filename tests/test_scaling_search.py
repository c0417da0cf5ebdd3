"""The scaling study's exact search among model distractors: drawn chunk by chunk and searched as
drawn, it finds what a FAISS range search over the whole draw finds (same ids, same order)."""

import numpy as np

from privrisk import index as faiss_index
from privrisk.distractors import DistractorModel
from privrisk.stages.scaling import _smallest_ids


def _model():
    rng = np.random.default_rng(1)
    return DistractorModel.fit(rng.normal(size=(300, 128)) * 0.04 + rng.normal(size=128) * 0.05)


def test_chunks_are_the_sample_in_pieces():
    m = _model()
    whole = m.sample(5000, seed=3, chunk=1024)
    parts = list(m.chunks(5000, seed=3, chunk=1024))
    assert [s for s, _ in parts] == [0, 1024, 2048, 3072, 4096]
    assert np.array_equal(np.vstack([p for _, p in parts]), whole)


def _faiss_smallest_ids(distractors, vecs, radii, k=10):
    """What the search was before it streamed: one FAISS range search per query over the whole draw."""
    n = len(distractors)
    index = faiss_index.build_index(distractors)
    out = np.full((len(vecs), k), n, np.int64)
    for q in np.where(np.isfinite(radii))[0]:
        r2 = np.float32(radii[q]) ** 2
        lims, d2, ids = index.range_search(np.ascontiguousarray(vecs[q : q + 1]), float(r2) * 1.0001)
        inside = np.sort(ids[d2 <= r2])[:k]
        out[q, : len(inside)] = inside
    return out


def test_streamed_search_finds_what_faiss_finds():
    m = _model()
    n = 20_000
    draw = m.sample(n, seed=5, chunk=4096)
    rng = np.random.default_rng(2)
    vecs = (m.sample(120, seed=6) * 0.7 + m.mean.astype(np.float32) * 0.3).astype(np.float32)
    dist = np.sqrt(((vecs[:, None, :].astype(np.float64) - draw[None, :2000]) ** 2).sum(-1))
    radii = np.quantile(dist, rng.uniform(0, 0.01, len(vecs)))  # from none to more than k inside
    radii[::11] = np.nan  # people without a genuine radius get no ids
    want = _faiss_smallest_ids(draw, vecs, radii)
    got = _smallest_ids(m.chunks(n, seed=5, chunk=4096), n, vecs, radii)
    counts = (want < n).sum(axis=1)
    assert counts.max() == 10 and (counts[np.isfinite(radii)] < 10).any() and (counts == 0).any()
    assert np.array_equal(got.ids, want)
    assert (got.ids[~np.isfinite(radii)] == n).all()
