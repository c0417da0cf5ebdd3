import numpy as np
import pytest

from privrisk.distractors import DistractorModel, Searchers, predicted_rank1


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 0.08, (300, 128))
    return DistractorModel.fit(centres), centres


def test_sample_is_seeded_and_shaped(model):
    m, _ = model
    a, b = m.sample(1000, seed=1), m.sample(1000, seed=1)
    assert a.shape == (1000, 128) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, m.sample(1000, seed=2))


def test_tail_cdf_matches_monte_carlo(model):
    m, centres = model
    x = m.sample(400_000, seed=5)
    for p in centres[:3]:
        d = np.linalg.norm(x - p, axis=1)
        for q in (0.001, 0.01, 0.1, 0.5):
            r = np.quantile(d, q)
            assert m.tail_cdf(p[None], np.array([r]))[0] == pytest.approx(q, rel=0.12, abs=2e-4)


def test_predicted_rank1_falls_with_size_and_matches_measurement(model):
    m, centres = model
    probes = centres[:50]
    genuine = np.full(50, 0.8 * np.median(np.linalg.norm(m.sample(2000, seed=9) - probes[0], axis=1)))
    pred = predicted_rank1(m, Searchers(probes, genuine, np.ones(50)), [10, 100, 1000, 10_000], n_real=0)
    rates = pred["rank1"]
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[0] > rates[-1]
    # measured: share of probes with no distractor closer than genuine among the first N
    x = m.sample(1000, seed=11)
    d = np.linalg.norm(x[None] - probes[:, None], axis=2)
    measured = (d.min(axis=1) > genuine).mean()
    assert pred["rank1"][2] == pytest.approx(measured, abs=0.15)
