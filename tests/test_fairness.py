"""Demographic differentials (privrisk.fairness): a tiny gallery with known groups whose every cell is
counted by hand, the statistics' edge cases, and (model) the sample set's same- vs cross-group FMR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from privrisk.errors import PrivriskError
from privrisk.fairness import (
    SMALL_FLAG,
    AnalysisOptions,
    E2Inputs,
    FaceSet,
    TailCheckOptions,
    analyse,
    clopper_pearson_one_sided,
    group_labels,
    group_rates_from_replicates,
    plain_words,
    same_cross_table,
    scan_pairs,
    tail_check,
    tail_check_cross_validated,
)

ROOT = Path(__file__).resolve().parents[1]


def _line(xs) -> np.ndarray:
    """Points on the first axis of R^128: the distance between two of them is |x - y|."""
    v = np.zeros((len(xs), 128), np.float32)
    v[:, 0] = xs
    return v


# Five people on a line. s4 has two gallery photos (one far from its probe). Distances are chosen away
# from every threshold (0.45, 0.5, 0.55, 0.6).
GALLERY = [("s1", 0.0), ("s2", 0.5), ("s3", 1.0), ("s4", 3.0), ("s4", 0.2), ("s5", 10.0)]
PROBES = [("s1", 0.1), ("s2", 0.57), ("s3", 1.07), ("s4", 3.2), ("s5", 10.7)]
ATTRS = {
    "s1": {"gender": "f", "ethnicity": "white"},
    "s2": {"gender": "f", "ethnicity": "white"},
    "s3": {"gender": "m", "ethnicity": "white"},
    "s4": {"gender": "m", "ethnicity": "black"},
    "s5": {"gender": "f", "ethnicity": "black"},
}


@pytest.fixture(scope="module")
def tiny():
    return analyse(
        FaceSet(_line([x for _, x in PROBES]), [s for s, _ in PROBES]),
        FaceSet(_line([x for _, x in GALLERY]), [s for s, _ in GALLERY]),
        ATTRS,
        AnalysisOptions(n_boot=300, seed=3, small_subjects=3),
        E2Inputs(
            shots={"blur": (_line([0.3, 0.9, 1.8]), ["s1", "s1", "s3"])},
            rank1={"blur": (["s1", "s2", "s3", "s4"], [True, False, True, True])},
        ),
    )


def _counts(cell):
    return (cell["events"], cell["trials"])


def test_tiny_gallery_fmr_matches_hand_counts(tiny):
    # impostor pairs at <= 0.6: (s1,s2) (s1,s4b) (s2,s1) (s2,s3) (s2,s4b) (s3,s2); at <= 0.5 the 0.57 ones drop
    assert tiny["n_impostor_pairs"] == 24 and tiny["n_genuine_pairs"] == 6
    g = tiny["attributes"]["gender"]
    assert g["groups"] == {"f": 3, "m": 2}
    f, m = g["fmr"]["f"], g["fmr"]["m"]
    assert _counts(f["same"]["0.6"]) == (2, 6) and _counts(f["cross"]["0.6"]) == (3, 9)
    assert _counts(f["all"]["0.6"]) == (5, 15)
    assert _counts(m["same"]["0.6"]) == (0, 3) and _counts(m["cross"]["0.6"]) == (1, 6)
    assert _counts(f["same"]["0.5"]) == (1, 6) and _counts(f["cross"]["0.5"]) == (3, 9)
    assert _counts(m["cross"]["0.5"]) == (0, 6) and _counts(f["all"]["0.45"]) == (4, 15)
    assert _counts(g["fmr_overall"]["same"]["0.6"]) == (2, 9)
    assert _counts(g["fmr_overall"]["cross"]["0.6"]) == (4, 15)
    assert f["all"]["0.6"]["subjects"] == 3 and m["same"]["0.6"]["subjects"] == 2
    assert f["all"]["0.6"]["rate"] == pytest.approx(5 / 15)
    e = tiny["attributes"]["ethnicity"]["fmr"]
    assert _counts(e["white"]["same"]["0.6"]) == (4, 6) and _counts(e["white"]["cross"]["0.6"]) == (2, 9)
    assert _counts(e["black"]["all"]["0.6"]) == (0, 9)


def test_tiny_gallery_combined_attribute(tiny):
    c = tiny["attributes"]["gender+ethnicity"]
    assert set(c["groups"]) == {"f / white", "m / white", "m / black", "f / black"}
    fw = c["fmr"]["f / white"]
    assert _counts(fw["same"]["0.6"]) == (2, 2) and _counts(fw["cross"]["0.6"]) == (3, 8)
    # all events in the cell: the two-sided exact (Clopper-Pearson) interval on 2 subjects, as everywhere
    assert fw["same"]["0.6"]["ci95"] == pytest.approx([0.025**0.5, 1.0])
    assert "Clopper-Pearson" in fw["same"]["0.6"]["ci_method"]
    mw = c["fmr"]["m / white"]
    assert _counts(mw["same"]["0.6"]) == (0, 0) and mw["same"]["0.6"]["rate"] is None
    assert _counts(mw["cross"]["0.6"]) == (1, 5)
    # one person: no bootstrap over people; the exact interval over the 5 pairs, said to be optimistic
    assert "too few people" in mw["cross"]["0.6"]["ci_method"]
    assert mw["cross"]["0.6"]["ci95"] == pytest.approx(list(clopper_pearson_one_sided(1, 5)))
    mb = c["fmr"]["m / black"]["cross"]["0.6"]
    # no events and one person: no correlation within people to borrow, the bound on 1 subject stays
    assert _counts(mb) == (0, 4) and mb["ci95"] == pytest.approx([0.0, 0.95]) and "design_effect" not in mb
    assert mb["flag"] == SMALL_FLAG
    # no events among 2 people's 3 pairs: the clustered (design-effect) bound, between the bound on the
    # 3 pairs as independent and the bound on the 2 subjects alone (kept beside it)
    ms = tiny["attributes"]["gender"]["fmr"]["m"]["same"]["0.6"]
    assert _counts(ms) == (0, 3) and ms["ci95_subject_bound"] == pytest.approx([0.0, 1 - 0.05**0.5])
    assert 2 <= ms["n_effective"] <= 3 and ms["ci95"][1] == pytest.approx(1 - 0.05 ** (1 / ms["n_effective"]))
    assert "effective pairs" in ms["ci_method"] and "approximate (design-effect adjusted)" in ms["ci_method"]
    assert "exact" not in ms["ci_method"].split(";")[0]  # the clustered bound is never called exact
    from privrisk.report import fairness_cell_text

    # the report shows the approximate bound marked ~ and the exact bound on the 2 people beside it
    text = fairness_cell_text(ms)
    assert "~ approximate; exact on 2 people: 0%-78%*)" in text
    assert "~" not in fairness_cell_text(fw["same"]["0.6"]) and "*" in fairness_cell_text(fw["same"]["0.6"])


def test_clustered_zero_event_bound_by_hand():
    from privrisk.fairness import clustered_zero_bound, design_effect, intracluster_correlation

    # pooled: 10 events in 100 pairs; bootstrap rates 0.05, 0.10, 0.15 repeated (var with ddof=1)
    num_b = np.tile([5.0, 10.0, 15.0], 10)
    den_b = np.full(30, 100.0)
    var = np.var(num_b / den_b, ddof=1)
    assert design_effect(10, 100, num_b, den_b) == pytest.approx(var / (0.1 * 0.9 / 100))
    assert design_effect(4, 100, num_b, den_b) is None  # too few events to estimate a variance
    assert design_effect(10, 100, np.full(30, 10.0), den_b) == 1.0  # floored: no inflation
    assert intracluster_correlation(3.0, 11) == pytest.approx(0.2)
    assert intracluster_correlation(50.0, 11) == 1.0 and intracluster_correlation(None, 11) is None
    cell = {"unit": "impostor pairs", "events": 0, "trials": 200, "subjects": 10, "ci95": [0.0, 0.2589]}
    clustered_zero_bound(cell, {"0.5": None, "0.6": 0.2}, "0.5")  # 0.5 has no usable pooled cell: nearest
    # m = 20 pairs per person, deff = 1 + 19 * 0.2 = 4.8, n_eff = 200 / 4.8
    assert cell["design_effect"] == pytest.approx(4.8) and cell["n_effective"] == pytest.approx(200 / 4.8)
    assert cell["ci95"] == pytest.approx([0.0, 1 - 0.05 ** (4.8 / 200)])
    assert cell["ci95"][1] == pytest.approx(0.0694, abs=1e-4) and cell["ci95_subject_bound"][1] == 0.2589
    untouched = {"unit": "non-mated searches", "events": 0, "trials": 5, "subjects": 5, "ci95": [0, 0.45]}
    clustered_zero_bound(untouched, {"0.6": 0.2}, "0.6")
    assert untouched["ci95"] == [0, 0.45]


def test_tiny_gallery_fnmr_fpir_and_e2(tiny):
    g = tiny["attributes"]["gender"]
    # genuine distances: s1 0.1, s2 0.07, s3 0.07, s4 0.2 and 2.8, s5 0.7
    assert _counts(g["fnmr"]["f"]["0.6"]) == (1, 3) and _counts(g["fnmr"]["m"]["0.6"]) == (1, 3)
    # nearest other person: s1 0.1, s2 0.37, s3 0.57, s4 2.2, s5 far
    assert _counts(g["fpir"]["f"]["0.6"]) == (2, 3) and _counts(g["fpir"]["m"]["0.6"]) == (1, 2)
    assert _counts(g["fpir"]["m"]["0.45"]) == (0, 2)
    assert g["fpir"]["m"]["0.45"]["ci95"] == pytest.approx([0.0, 1 - 0.05**0.5])
    # E2 shots: s1 at 0.3 and 0.9 from its photo, s3 at 0.8
    assert _counts(g["fnmr_e2"]["blur"]["f"]["0.6"]) == (1, 2) and _counts(g["fnmr_e2"]["blur"]["m"]["0.6"]) == (1, 1)
    assert _counts(g["e2_rank1"]["blur"]["f"]) == (1, 2) and _counts(g["e2_rank1"]["blur"]["m"]) == (2, 2)
    assert g["e2_rank1"]["blur"]["m"]["ci95"] == pytest.approx([0.025**0.5, 1.0])  # two-sided exact, 2 of 2


def test_intervals_contain_the_rate_and_small_cells_are_flagged(tiny):
    for attr in tiny["attributes"].values():
        for row in attr["fmr"].values():
            for split in row.values():
                for cell in split.values():
                    if cell["rate"] is None:
                        continue
                    lo, hi = cell["ci95"]
                    assert lo <= cell["rate"] <= hi
                    assert (cell["flag"] == SMALL_FLAG) == (cell["subjects"] < 3)


def test_fmr_ratio_highest_over_lowest(tiny):
    r = tiny["attributes"]["gender"]["fmr_ratio"]
    assert (r["highest"], r["lowest"]) == ("f", "m")
    assert r["ratio"] == pytest.approx((5 / 15) / (1 / 9))
    assert r["ci95"][0] <= r["ratio"]
    # ethnicity: 'black' has no false match, so the ratio is unbounded with a lower bound only
    e = tiny["attributes"]["ethnicity"]["fmr_ratio"]
    assert e["lowest"] == "black" and e["unbounded"] and e["ratio"] is None and e["lower_bound"] is not None


def test_same_cross_table_and_seeded(tiny):
    rows = same_cross_table(tiny)
    assert {r["attribute"] for r in rows} == {"gender+ethnicity"}
    again = analyse(
        FaceSet(_line([x for _, x in PROBES]), [s for s, _ in PROBES]),
        FaceSet(_line([x for _, x in GALLERY]), [s for s, _ in GALLERY]),
        ATTRS,
        AnalysisOptions(n_boot=300, seed=3, small_subjects=3),
        E2Inputs(
            shots={"blur": (_line([0.3, 0.9, 1.8]), ["s1", "s1", "s3"])},
            rank1={"blur": (["s1", "s2", "s3", "s4"], [True, False, True, True])},
        ),
    )
    assert again == tiny


def test_without_group_columns_the_result_says_so():
    res = analyse(
        FaceSet(_line([0.0, 1.0]), ["a", "b"]),
        FaceSet(_line([0.1, 1.1]), ["a", "b"]),
        {"a": {}, "b": {"age": "30"}},
        AnalysisOptions(n_boot=50),
    )
    assert res["attributes"] == {} and "cannot be measured" in res["note"]


def test_other_group_columns_from_config():
    attrs = {"a": {"site": "x"}, "b": {"site": "x"}, "c": {"site": "y"}}
    res = analyse(
        FaceSet(_line([0.0, 0.3, 5.0]), ["a", "b", "c"]),
        FaceSet(_line([0.05, 0.35, 5.05]), ["a", "b", "c"]),
        attrs,
        AnalysisOptions(columns=["site", "gender"], n_boot=50),
    )
    assert list(res["attributes"]) == ["site"]  # gender is absent; no combination of one column
    assert _counts(res["attributes"]["site"]["fmr"]["x"]["same"]["0.6"]) == (2, 2)


def test_group_labels_unknown_and_combined():
    labels = group_labels(
        ["a", "b", "c"],
        {"a": {"gender": "f", "ethnicity": ""}, "b": {"gender": "m"}, "c": {"ethnicity": "black"}},
        ["gender", "ethnicity"],
    )
    assert list(labels["gender"]) == ["f", "m", "unknown"]
    assert list(labels["gender+ethnicity"]) == ["f / unknown", "m / unknown", "unknown / black"]
    # a column nobody filled in is left out, and one column has no combination
    only = group_labels(
        ["a", "b"], {"a": {"gender": "f", "ethnicity": ""}, "b": {"gender": "m"}}, ["gender", "ethnicity"]
    )
    assert list(only) == ["gender"]


def test_blockwise_scan_matches_brute_force():
    rng = np.random.default_rng(7)
    p, g = rng.normal(0, 0.05, (37, 128)), rng.normal(0, 0.05, (53, 128))
    pc, gc = rng.integers(0, 9, 37), rng.integers(0, 9, 53)
    scan = scan_pairs(p, pc, g, gc, 0.75, max_block_elements=200)  # 3 probe rows per block
    d = np.sqrt(((p[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    same = pc[:, None] == gc[None, :]
    want = {(i, j) for i, j in zip(*np.nonzero((d <= 0.75) & ~same))}
    got = set(zip(scan.imp_probe.tolist(), scan.imp_gallery.tolist()))
    assert got == want and len(want) > 0
    assert np.allclose(scan.imp_dist, d[scan.imp_probe, scan.imp_gallery])
    assert len(scan.gen_dist) == same.sum()
    assert np.allclose(scan.nonmated_best, np.where(same, np.inf, d).min(1))


def test_clopper_pearson_one_sided_bounds():
    assert clopper_pearson_one_sided(0, 20)[1] == pytest.approx(0.1391, abs=1e-4)
    assert clopper_pearson_one_sided(82, 82)[0] == pytest.approx(0.05 ** (1 / 82))
    lo, hi = clopper_pearson_one_sided(3, 10)
    assert 0.06 < lo < 0.07 and 0.65 < hi < 0.66


@pytest.mark.model
def test_sample_set_same_group_vs_cross_group_fmr(london, session_cache):
    """All impostor pairs of the sample set (smiling against neutral): the table's counts equal a
    direct count, and same-sex-and-ethnicity pairs false-match more often than the rest."""
    from privrisk.embeddings import embed_batch
    from privrisk.manifest import read_manifest
    from privrisk.samples import sample_manifest

    sets = {}
    for kind in ("neutral", "smiling"):
        m = read_manifest(sample_manifest(kind), london)
        res = embed_batch([r.image for r in m.rows], cache=session_cache, workers=1)
        ok = [(r, x) for r, x in zip(m.rows, res) if x.ok]
        sets[kind] = (
            np.array([x.faces[0].embedding for _, x in ok]),
            [r.subject_id for r, _ in ok],
            {r.subject_id: r.meta for r, _ in ok},
        )
    (gv, gs, gmeta), (pv, ps, _) = sets["neutral"], sets["smiling"]
    result = analyse(FaceSet(pv, ps), FaceSet(gv, gs), gmeta, AnalysisOptions(n_boot=1000, seed=2011))
    cells = {r["split"]: r for r in same_cross_table(result) if r["threshold"] == 0.6}

    # independent count: full distance matrix, groups from the manifest
    d = np.sqrt(((pv[:, None, :].astype(float) - gv[None, :, :]) ** 2).sum(-1))
    key = lambda s: (gmeta[s]["gender"], gmeta[s]["ethnicity"])  # noqa: E731
    impostor = np.array(ps)[:, None] != np.array(gs)[None, :]
    same = np.array([[key(a) == key(b) for b in gs] for a in ps]) & impostor
    cross = impostor & ~same
    assert _counts(cells["same"]) == (int((d[same] <= 0.6).sum()), int(same.sum()))
    assert _counts(cells["cross"]) == (int((d[cross] <= 0.6).sum()), int(cross.sum()))
    assert cells["same"]["trials"] + cells["cross"]["trials"] == result["n_impostor_pairs"] == impostor.sum()
    for c in cells.values():
        assert c["ci95"][0] <= c["rate"] <= c["ci95"][1]
    assert cells["same"]["ci95"][0] > cells["cross"]["ci95"][1]


def test_tail_check_against_synthetic_predictions(tiny):
    # gender at 0.6: f 5/15, m 1/9 (real intervals from the bootstrap / exact bound)
    real_f = tiny["attributes"]["gender"]["fmr"]["f"]["all"]["0.6"]
    pred = {
        "thresholds": [0.6, 0.45],
        "by_group": {
            "f": {
                "rate": [real_f["rate"], 0.2],
                "rate_ci95": [[real_f["rate"] * 0.9, real_f["rate"] * 1.1], [0.1, 0.3]],
            },
            "m": {"rate": [0.9, 1e-6], "rate_ci95": [[0.85, 0.95], [0.0, 1e-6]]},
        },
    }
    check = tail_check(tiny, "gender", pred, tail_model="synthetic")
    verdict = {(r["group"], r["threshold"]): r["verdict"] for r in check["rows"]}
    assert verdict[("f", 0.6)] == "within"
    assert verdict[("m", 0.6)] == "model too high"
    assert verdict[("m", 0.45)] == "not judged (no pair on either side)"  # 0 of 9 real, model << 1 pair
    f45 = tiny["attributes"]["gender"]["fmr"]["f"]["all"]["0.45"]
    assert verdict[("f", 0.45)] == ("within" if f45["ci95"][0] <= 0.3 and 0.1 <= f45["ci95"][1] else "model too low")
    assert not check["all_within"] and "m at 0.6 (model too high)" in check["summary"]
    # a point prediction far below the real interval
    cell = {"events": 30, "trials": 1000, "subjects": 20, "rate": 0.03, "ci95": [0.02, 0.04], "flag": None}
    hand = {"attributes": {"g": {"fmr": {"a": {"all": {"0.6": cell}}}}}}
    low = tail_check(hand, "g", {"thresholds": [0.6], "by_group": {"a": {"rate": [1e-5]}}})
    assert low["rows"][0]["verdict"] == "model too low" and not low["all_within"]
    ok = tail_check(
        hand, "g", {"thresholds": [0.6], "by_group": {"a": {"rate": [0.01], "rate_ci95": [[0.005, 0.021]]}}}
    )
    assert ok["rows"][0]["verdict"] == "within" and ok["all_within"]
    with pytest.raises(PrivriskError, match="no real cells"):
        tail_check(tiny, "gender", {"thresholds": [0.6], "by_group": {"x": {"rate": [0.1]}}})


def test_group_rates_from_replicates_by_hand():
    # 3 probes, 2 replicates + point, 1 threshold; probe weights 1, 1, 2
    reps = np.array([[[0.1], [0.3], [0.5]], [[0.2], [0.2], [0.2]], [[0.0], [0.4], [0.6]]])
    out = group_rates_from_replicates(reps, [1, 1, 2], ["a", "a", "b"])
    assert out["a"]["rate"] == pytest.approx([0.2]) and out["b"]["rate"] == pytest.approx([0.5])
    lo, hi = out["a"]["rate_ci95"][0]
    assert lo <= 0.2 <= hi and out["b"]["n"] == 1
    with pytest.raises(PrivriskError):
        group_rates_from_replicates(reps, [1, 1], ["a", "a", "b"])


def test_tail_model_checked_group_by_group():
    """Wired to the validated tail model of issue 11 (skipped in a build without it): a synthetic set
    where one group's faces sit closer together; every group gets a verdict at every threshold."""
    pytest.importorskip("privrisk.tailmodel")
    from privrisk.fairness import tail_check_cross_validated

    rng = np.random.default_rng(11)
    centre = {"tight": rng.normal(0, 0.03, 128), "loose": rng.normal(0, 0.03, 128)}
    spread = {"tight": 0.032, "loose": 0.045}
    subjects, groups, base = [], [], []
    for i in range(60):
        g = "tight" if i < 20 else "loose"
        subjects.append(f"p{i:02d}")
        groups.append(g)
        base.append(centre[g] + rng.normal(0, spread[g], 128))
    base = np.array(base)
    gallery = base + rng.normal(0, 0.01, base.shape)
    probes = base + rng.normal(0, 0.01, base.shape)
    attrs = {s: {"group": g} for s, g in zip(subjects, groups)}
    res = analyse(
        FaceSet(probes, subjects),
        FaceSet(gallery, subjects),
        attrs,
        AnalysisOptions(columns=["group"], n_boot=200, seed=1),
    )
    check = tail_check_cross_validated(
        res, FaceSet(probes, subjects), FaceSet(gallery, subjects), attrs, TailCheckOptions(n_boot=20, seed=2)
    )
    c = check["by_attribute"]["group"]
    assert {(r["group"], r["threshold"]) for r in c["rows"]} == {
        (g, t) for g in ("tight", "loose") for t in res["thresholds"]
    }
    assert all(
        r["verdict"] in ("within", "model too low", "model too high", "not judged (no pair on either side)")
        for r in c["rows"]
    )
    assert all(0 <= r["model_ci95"][0] <= r["model_rate"] <= r["model_ci95"][1] <= 1 for r in c["rows"])
    assert c["all_within"] == all(
        r["verdict"] != "model too low" and r["verdict"] != "model too high" for r in c["rows"]
    )


def test_plain_words_says_who_and_how_often(tiny):
    words = plain_words(tiny)
    assert "(2 of 2;" in words["same_vs_cross"] and "(4 of 22;" in words["same_vs_cross"]
    by_gender = next(line for line in words["by_group"] if line.startswith("By gender"))
    # FPIR at 0.6: f 2 of 3 people, m 1 of 2
    assert "67% of the time for people recorded as f (2 of 3 people" in by_gender
    assert "50% of the time for people recorded as m (1 of 2 people" in by_gender
    assert "stranger" in words["why"] and "measured" in words["source"]
    empty = plain_words(
        analyse(
            FaceSet(_line([0.0, 1.0]), ["a", "b"]),
            FaceSet(_line([0.1, 1.1]), ["a", "b"]),
            {},
            AnalysisOptions(n_boot=50),
        )
    )
    assert empty["same_vs_cross"] is None and "cannot be measured" in empty["note"]


def test_trainer_reads_the_shipped_summary(tmp_path):
    from privrisk.trainer import differential_lesson

    lesson = differential_lesson()
    assert lesson["why"] and "measured" in lesson["source"] and lesson["same_vs_cross"]
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    with pytest.raises(PrivriskError, match="not a demographic summary"):
        differential_lesson(bad)
    with pytest.raises(PrivriskError, match="no demographic summary"):
        differential_lesson(tmp_path / "missing.json")


def test_pair_weight_sum_in_chunks_equals_direct():
    from privrisk.fairness.cells import pair_weight_sum

    rng = np.random.default_rng(5)
    w = rng.integers(0, 3, (40, 30)).astype(float)
    a, b = rng.integers(0, 30, 1000), rng.integers(0, 30, 1000)
    assert np.allclose(pair_weight_sum(w, a, b, max_elements=100), (w[:, a] * w[:, b]).sum(1))


def _tight_minority(seed=0, n_tight=15, n_loose=70):
    """A minority group far from the population centre whose faces sit close together (the pattern of
    the sample set's smaller groups), and a loose majority around the centre."""
    rng = np.random.default_rng(seed)
    centre = {"tight": rng.normal(0, 0.035, 128), "loose": np.zeros(128)}
    spread = {"tight": 0.028, "loose": 0.045}
    subjects, groups, base = [], [], []
    for i in range(n_tight + n_loose):
        g = "tight" if i < n_tight else "loose"
        subjects.append(f"p{i:03d}")
        groups.append(g)
        base.append(centre[g] + rng.normal(0, spread[g], 128))
    base = np.array(base)
    gallery = base + rng.normal(0, 0.012, base.shape)
    probes = base + rng.normal(0, 0.012, base.shape)
    return probes, subjects, gallery, {s: {"group": g} for s, g in zip(subjects, groups)}


def test_group_conditional_tail_model_predicts_per_group_rates():
    """Held-out people, known groups: the group-blind model predicts too few close pairs for the tight
    minority (it could not know), the group-conditional one gets every judged cell within; both
    verdicts come from the same check, which fails when the model is wrong."""
    probes, subjects, gallery, attrs = _tight_minority()
    d = np.sqrt(((probes[:, None] - gallery[None]) ** 2).sum(-1))
    imp = np.array(subjects)[:, None] != np.array(subjects)[None]
    thr = [float(t) for t in np.quantile(d[imp], [0.003, 0.01, 0.02]).round(3)]
    res = analyse(
        FaceSet(probes, subjects),
        FaceSet(gallery, subjects),
        attrs,
        AnalysisOptions(columns=["group"], thresholds=thr, operating_threshold=thr[-1], n_boot=300, seed=1),
    )
    check = tail_check_cross_validated(
        res, FaceSet(probes, subjects), FaceSet(gallery, subjects), attrs, TailCheckOptions(n_boot=30, seed=2)
    )
    assert check["group_conditional"] and check["fit_groups"] == "group"
    assert "tight at" in check["without_groups"]["by_attribute"]["group"]
    assert "model too low" in check["without_groups"]["by_attribute"]["group"]
    c = check["by_attribute"]["group"]
    assert c["all_within"] and c["n_judged"] >= 5, c["summary"]
    tight = [r for r in c["rows"] if r["group"] == "tight"]
    loose = [r for r in c["rows"] if r["group"] == "loose"]
    assert all(a["model_rate"] > 3 * b["model_rate"] for a, b in zip(tight, loose))
    # per-group scale predictions: ranges, labelled extrapolated, small groups flagged
    rows = check["scale"]["rows"]["group"]
    assert {(r["group"], r["quantity"], r["gallery_size"]) for r in rows} == {
        (g, q, n) for g in ("tight", "loose") for q in ("rank1", "fpir_at_threshold") for n in (10**6, 10**9)
    }
    for r in rows:
        assert r["kind"] == "extrapolated" and 0 <= r["range"][0] <= r["value"] <= r["range"][1] <= 1
    assert all((r["flag"] is not None) == (r["subjects"] < 10) == (r["note"] is not None) for r in rows)
    # the model's known limit, pinned: one tail multiplier per group cannot also describe this
    # two-cluster set's shift in location, so the PIT of each probe's nearest impostor fails here
    assert check["pit_ks_p"] < 0.01 < check["without_groups"]["pit_ks_p"]
    from privrisk.report import fairness_tail_section

    page = fairness_tail_section(check)
    assert "with groups KS p = " in page and "FAIL (the per-probe calibration is off)" in page
    assert "adding groups made the PIT worse here" in page and "selected on, not evidence" in page
    assert page.count("extrapolated)") == len(rows) and "not independent" in page
    r1 = {(r["group"], r["gallery_size"]): r["value"] for r in rows if r["quantity"] == "rank1"}
    assert r1[("tight", 10**9)] <= r1[("tight", 10**6)] and r1[("tight", 10**6)] < r1[("loose", 10**6)]


def test_fmr_ratio_shows_small_cells_with_their_n(tiny):
    """Small cells are not dropped from the ratio: each gets its ratio to the lowest large group, its
    counts and an interval, flagged small (tiny: small = fewer than 3 subjects)."""
    r = tiny["attributes"]["gender"]["fmr_ratio"]
    fmr = tiny["attributes"]["gender"]["fmr"]
    # gender: f has 3 subjects (large), m has 2 (small); f is the only large group, so the reference
    assert r["reference"] == "f" and [c["group"] for c in r["small_cells"]] == ["m"]
    m = r["small_cells"][0]
    assert (m["events"], m["pairs"], m["subjects"]) == (1, 9, 2) and m["flag"] == SMALL_FLAG
    assert m["ratio_to_reference"] == pytest.approx((1 / 9) / (5 / 15))
    assert m["rate"] == fmr["m"]["all"]["0.6"]["rate"]
    lo, hi = m["ratio_ci95"]
    assert lo <= m["ratio_to_reference"] and (hi is None or hi >= m["ratio_to_reference"])
    from privrisk.report import small_cell_ratios_text

    text = small_cell_ratios_text(r)
    assert "m: 0.333x (95% " in text and "1/9 pairs, 2 people) [small: indicative only]" in text
    combo = tiny["attributes"]["gender+ethnicity"]["fmr_ratio"]
    assert all(c["flag"] == SMALL_FLAG and c["subjects"] < 3 for c in combo["small_cells"])


def test_group_model_section_says_when_groups_made_the_pit_worse():
    """The 'worse' note follows the two PIT p-values, and the selection caveat is always there."""
    from privrisk.report import fairness_group_model_section

    def page(without, with_groups):
        check = {
            "group_conditional": True,
            "fit_groups": "gender+ethnicity",
            "pit_ks_p": with_groups,
            "without_groups": {"pit_ks_p": without, "by_attribute": {}},
        }
        return fairness_group_model_section(check)

    assert "made the PIT worse here" in page(0.3, 0.001)
    better = page(7e-5, 0.61)
    assert "made the PIT worse here" not in better and "selected on, not evidence for it" in better
    assert "made the PIT worse here" not in page(None, 0.2)
    from privrisk.report import pit_with_groups

    def validation(without, with_groups):
        check = {"group_conditional": True, "fit_groups": "g", "pit_ks_p": with_groups}
        return pit_with_groups({"fairness": {"tail_check": check | {"without_groups": {"pit_ks_p": without}}}})

    assert "the PIT passes" in validation(7e-5, 0.61) and "worse" not in validation(7e-5, 0.61)
    assert "still fails and is worse than without groups" in validation(0.3, 0.001)
    assert "not evidence for it" in validation(7e-5, 0.61)


def test_ratio_headline_says_which_groups_it_compares():
    """The headline compares only the large groups; when a small cell's ratio is larger, it says so."""
    from privrisk.report import ratio_scope_text

    r = {
        "flag": None,
        "ratio": 1.36,
        "groups_compared": ["female / white", "male / white"],
        "small_cells": [
            {"group": "male / black", "ratio_to_reference": 34.0},
            {"group": "x", "ratio_to_reference": 0.5},
        ],
    }
    text = ratio_scope_text(r, 10)
    assert "only groups of at least 10 people (female / white, male / white)" in text
    assert "larger differentials are in the small cells" in text and "male / black" in text and "x" not in text
    assert "larger" not in ratio_scope_text(dict(r, small_cells=r["small_cells"][1:]), 10)
    assert "every group" in ratio_scope_text(dict(r, flag="small: indicative only"), 10)
