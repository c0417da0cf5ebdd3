"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from privrisk import metrics
from privrisk.matching import rank_subjects


def test_cmc_and_rank_k():
    ranks = [1, 2, 1, math.inf, 3]
    assert metrics.cmc(ranks, 4).tolist() == [0.4, 0.6, 0.8, 0.8]
    assert metrics.rank_k(ranks, 1) == 0.4 and metrics.rank_k(ranks, 3) == 0.8


def test_true_rank():
    cand = np.array([[3, 1, 2], [2, 3, -1], [-1, -1, -1]])
    assert metrics.true_rank(cand, np.array([1, 1, 1])).tolist() == [2, math.inf, math.inf]


def test_tpir_at_fpir_hand_case():
    # 10 non-mated probes; at FPIR 10% one false alarm is allowed, so the threshold is the second
    # smallest non-mated distance (0.5): accept only distances below 0.5.
    nonmated = [0.45, 0.5, 0.6, 0.7, 0.7, 0.8, 0.8, 0.9, 0.9, 1.0]
    mated_rank = [1, 1, 1, 2, 1]
    mated_dist = [0.3, 0.49, 0.55, 0.2, math.inf]
    r = metrics.tpir_at_fpir(mated_rank, mated_dist, nonmated, 0.1)
    assert r["threshold"] == 0.5 and r["fpir"] == 0.1
    assert r["tpir"] == pytest.approx(2 / 5)
    strict = metrics.tpir_at_fpir(mated_rank, mated_dist, nonmated, 0.01)
    assert strict["threshold"] == 0.45 and strict["fpir"] == 0.0 and strict["tpir"] == pytest.approx(1 / 5)


def test_det_curve_endpoints():
    det = metrics.det_curve([1, 1], [0.2, 0.4], [0.3, 0.5])
    fpir, fnir, t = det["fpir"], det["fnir"], det["threshold"]
    assert fpir[0] == 0 and fnir[0] == 1 and fpir[-1] == 1 and fnir[-1] == 0
    assert all(a <= b for a, b in zip(fpir, fpir[1:])) and all(a >= b for a, b in zip(fnir, fnir[1:]))
    assert t == sorted(t)


def test_eer_hand_cases():
    # genuine all below impostor: perfect separation
    assert metrics.eer([0.1, 0.2], [0.5, 0.6]) == 0.0
    # at t in [0.35, 0.4): one of four genuine rejected, one of four impostors accepted
    assert metrics.eer([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7]) == pytest.approx(0.25)
    # identical distributions: EER one half
    assert metrics.eer([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.5, abs=0.13)


def test_tar_at_far():
    genuine = [0.1, 0.2, 0.3, 0.6]
    impostor = [0.25, 0.5, 0.7, 0.8]  # FAR 25% allows one impostor: threshold 0.5 (exclusive)
    assert metrics.tar_at_far(genuine, impostor, 0.25) == 0.75
    assert metrics.tar_at_far(genuine, impostor, 0.0) == 0.5


def test_roc_monotone():
    r = metrics.roc([0.1, 0.3], [0.2, 0.4])
    assert r["far"][0] == 0 and r["tar"][-1] == 1 and r["eer"] == pytest.approx(0.5)


def test_bootstrap_ci_brackets_and_is_seeded():
    v = np.r_[np.ones(80), np.zeros(20)]
    lo, hi = metrics.bootstrap_ci(v, seed=3)
    assert lo < 0.8 < hi and 0.65 < lo and hi < 0.92
    assert metrics.bootstrap_ci(v, seed=3) == (lo, hi)
    assert metrics.bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def test_breakdown_counts():
    b = metrics.breakdown([True, False, True, True], ["f", "f", "m", "m"])
    assert b == {"f": {"n": 2, "rate": 0.5}, "m": {"n": 2, "rate": 1.0}}


def test_rank_subjects_collapses_faces_to_subjects():
    d = np.array([[0.1, 0.2, 0.3, 0.4, np.inf]], np.float32)
    i = np.array([[0, 1, 2, 3, -1]])
    labels = np.array([5, 5, 7, 5])
    s, dd, f = rank_subjects(d, i, labels, 3)
    assert s.tolist() == [[5, 7, -1]] and f.tolist() == [[0, 2, -1]]
    assert dd[0, :2].tolist() == pytest.approx([0.1, 0.3]) and np.isinf(dd[0, 2])
