"""Metric functions against hand-computed cases."""

import math
from pathlib import Path

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


# --- intervals: hand-computed and textbook values -------------------------------------------------


def test_clopper_pearson_all_hits_is_exact():
    # k = n: the lower end solves p^n = 0.025, so 82 of 82 gives 0.025 ** (1/82) = 0.9560
    lo, hi = metrics.clopper_pearson(82, 82)
    assert lo == pytest.approx(0.025 ** (1 / 82), abs=1e-9) and lo == pytest.approx(0.956, abs=5e-4) and hi == 1.0
    # k = 0 mirrors it; k = 1: the lower end solves 1 - (1 - p)^n = 0.025
    assert metrics.clopper_pearson(0, 20) == (0.0, pytest.approx(1 - 0.025 ** (1 / 20), abs=1e-9))
    assert metrics.clopper_pearson(1, 29)[0] == pytest.approx(1 - 0.975 ** (1 / 29), abs=1e-9)


@pytest.mark.parametrize(
    "k, n, exact",
    [
        # Newcombe (1998), Statistics in Medicine 17:857, Table I: method 5 (exact)
        (81, 263, (0.2527, 0.3676)),
        (15, 148, (0.0578, 0.1617)),
        (0, 20, (0.0, 0.1684)),
        (1, 29, (0.0009, 0.1776)),
    ],
)
def test_exact_against_newcombe(k, n, exact):
    assert metrics.clopper_pearson(k, n) == pytest.approx(exact, abs=6e-5)
    assert metrics.proportion_interval(k, n) == metrics.clopper_pearson(k, n)


def test_one_interval_for_the_same_counts():
    # the issue's two disagreements: 82 of 82 and 5 of 20 read the same everywhere (exact)
    assert [round(x, 3) for x in metrics.proportion_interval(82, 82)] == [0.956, 1.0]
    assert [round(x, 3) for x in metrics.proportion_interval(5, 20)] == [0.087, 0.491]
    # no second method for shares of counted things is left in the library
    import privrisk

    root = Path(privrisk.__file__).parent
    offenders = [str(f.relative_to(root)) for f in root.rglob("*.py") if "wilson" in f.read_text().lower()]
    assert offenders == []


def test_one_sided_upper_bound():
    assert metrics.clopper_pearson_upper(0, 20) == pytest.approx(1 - 0.05 ** (1 / 20), abs=1e-9)
    assert round(metrics.clopper_pearson_upper(0, 20), 3) == 0.139
    assert metrics.clopper_pearson_upper(20, 20) == 1.0 and math.isnan(metrics.clopper_pearson_upper(0, 0))


def test_interval_input_checks_and_empty():
    assert all(math.isnan(x) for x in metrics.clopper_pearson(0, 0) + metrics.proportion_interval(0, 0))
    with pytest.raises(ValueError):
        metrics.clopper_pearson(5, 4)
    r = metrics.rate(82, 82)
    assert r["k"] == 82 and r["n"] == 82 and r["rate"] == 1.0 and r["ci95"][0] == pytest.approx(0.956, abs=5e-4)
    assert metrics.format_rate(r) == "100.0% (95% CI 95.6-100.0%, 82 of 82)"


def test_tpir_at_fpir_says_when_the_sample_cannot_resolve_the_target():
    nonmated = np.linspace(0.7, 0.9, 20)  # 0 false alarms of 20 at the chosen threshold
    r = metrics.tpir_at_fpir([1, 1, 1], [0.3, 0.4, 0.8], nonmated, 0.01)
    assert r["resolvable"] is False and r["n_nonmated_needed"] == 300
    assert r["n_false_alarms"] == 0 and r["fpir_upper95"] == pytest.approx(0.1391, abs=1e-4)
    assert r["display"].startswith("FPIR <= 13.9% (one-sided 95% upper bound, 0 of 20")
    assert r["tpir"] == pytest.approx(2 / 3) and r["n_tpir_hits"] == 2
    assert r["tpir_ci95"] == pytest.approx(list(metrics.clopper_pearson(2, 3)))
    # 60 non-mated probes are enough for FPIR 5% (3 / 0.05); 3 of them are allowed to alarm
    ok = metrics.tpir_at_fpir([1], [0.3], np.linspace(0.5, 1.0, 60), 0.05)
    assert ok["resolvable"] is True and ok["n_false_alarms"] == 3 and ok["display"].startswith("TPIR 100.0%")
    assert metrics.min_nonmated_for_fpir(0.001) == 3000


# --- weighted curves and the subject bootstrap ------------------------------------------------------


def test_weights_count_pairs_that_many_times():
    g, i = [0.1, 0.3, 0.45], [0.35, 0.5, 0.6, 0.7]
    assert metrics.eer(g, i, [1, 1, 1], [1, 1, 1, 1]) == metrics.eer(g, i)
    # weight 2 on the second genuine pair and 3 on the first impostor pair = duplicating them
    assert metrics.eer(g, i, [1, 2, 1], [3, 1, 1, 1]) == pytest.approx(
        metrics.eer([0.1, 0.3, 0.3, 0.45], [0.35, 0.35, 0.35, 0.5, 0.6, 0.7])
    )
    assert metrics.tar_at_far(g, i, 0.5, [1, 2, 1], [3, 1, 1, 1]) == pytest.approx(
        metrics.tar_at_far([0.1, 0.3, 0.3, 0.45], [0.35, 0.35, 0.35, 0.5, 0.6, 0.7], 0.5)
    )
    # weight 0 removes a pair: without the impostor at 0.35 the genuine 0.3 is below every impostor
    assert metrics.tar_at_far(g, i, 0.0, None, [0, 1, 1, 1]) == 1.0 and metrics.tar_at_far(g, i, 0.0) == pytest.approx(
        2 / 3
    )


def _pairs(genuine_by_subject, impostor_by_pair):
    g = [d for s, ds in genuine_by_subject.items() for d in ds]
    gs = [s for s, ds in genuine_by_subject.items() for _ in ds]
    i = [d for _, d in impostor_by_pair]
    return g, gs, i, [a for (a, _), _ in impostor_by_pair], [b for (_, b), _ in impostor_by_pair]


def test_bootstrap_verification_resamples_subjects():
    subjects = list(range(10))
    # subject 0's two genuine pairs are far apart (0.7); everyone else is close (0.2); impostors at 0.5-0.9
    genuine = {s: ([0.7, 0.7] if s == 0 else [0.2]) for s in subjects}
    impostor = [((a, b), 0.5 + 0.04 * ((a + b) % 10)) for a in subjects for b in subjects if a != b]
    g, gs, i, ia, ib = _pairs(genuine, impostor)
    point = metrics.eer(g, i)
    bs = metrics.bootstrap_verification(metrics.VerificationPairs(g, gs, i, ia, ib), (0.01,), n_boot=400, seed=5)
    lo, hi = bs["eer_ci95"]
    assert bs["n_subjects"] == 10 and lo <= point <= hi
    # subject 0 is absent from about (9/10)^10 = 35% of resamples, and then the sets separate: EER 0
    assert lo == 0.0 and hi > point
    assert bs == metrics.bootstrap_verification(
        metrics.VerificationPairs(g, gs, i, ia, ib), (0.01,), n_boot=400, seed=5
    )
    tlo, thi = bs["tar_at_far_ci95"]["0.01"]
    assert thi == 1.0 and tlo < 1.0


def test_bootstrap_tpir_keeps_a_subjects_probes_together():
    # subject A has 5 probes, all missed; five subjects have one probe each, all hits: TPIR 5 / 10
    mated_subject = ["A"] * 5 + ["B", "C", "D", "E", "F"]
    rank = [2] * 5 + [1] * 5
    dist = [np.inf] * 5 + [0.3] * 5
    nonmated = np.linspace(0.7, 0.9, 10)
    probes = metrics.OpenSetProbes(rank, dist, mated_subject, nonmated, list(range(10)))
    ci = metrics.bootstrap_tpir(probes, [0.01], n_boot=500, seed=1)
    # A is left out of (5/6)^6 = 33% of subject resamples (TPIR 1); resampling the 10 probes would
    # drop all five of A's probes in only 0.5^10 of resamples
    assert ci["0.01"][1] == 1.0 and ci["0.01"][0] < 0.5


def test_bootstrap_tpir_rechooses_the_threshold():
    # one non-mated subject is very close (0.3): at FPIR 1% the threshold is 0.3 and no mated probe
    # (all at 0.5) passes. Resamples without that subject move the threshold to 0.9: TPIR 1.
    nonmated = [0.3] + [0.9] * 9
    probes = metrics.OpenSetProbes([1] * 6, [0.5] * 6, list("abcdef"), nonmated, list(range(10)))
    ci = metrics.bootstrap_tpir(probes, [0.01], n_boot=500, seed=2)
    assert metrics.tpir_at_fpir([1] * 6, [0.5] * 6, nonmated, 0.01)["tpir"] == 0.0
    assert ci["0.01"] == [0.0, 1.0]
