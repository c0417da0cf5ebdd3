"""The tail model of impostor distances: closed forms against hand computation, persistence, and the
held-out-people validation on the sample set (where today's Gaussian model must fail)."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from helpers import clustered
from privrisk import tailmodel as tm
from privrisk.tailmodel import fitting


@pytest.fixture(scope="module")
def data():
    faces, subjects, groups = clustered()
    probes, gallery = faces[0::2], faces[1::2]
    return probes, subjects[0::2], gallery, subjects[1::2], groups[0::2]


@pytest.fixture(scope="module")
def model(data):
    p, ps, g, gs, _ = data
    return tm.fit(tm.Pairs(p, ps, g, gs), n_boot=30, seed=1)


def test_pair_cdf_is_a_cdf(model, data):
    p = data[0][:10]
    r = np.linspace(0.0, 2.0, 60)
    f = tm.pair_cdf(model, p, r[None, :])
    assert f.shape == (10, 60)
    assert np.all((f >= 0) & (f <= 1)) and np.all(np.diff(f, axis=1) >= -1e-12)
    assert np.all(f[:, -1] > 0.99) and np.all(f[:, 0] < 1e-6)


def test_residual_cdf_joins_tail_and_body_at_u(model):
    for kind in tm.KINDS:
        p = replace(model.params, kind=kind) if kind == model.kind else model.params
        u = p.u
        below, above = tm.residual_cdf(p, [u - 1e-9])[0], tm.residual_cdf(p, [u + 1e-9])[0]
        assert below == pytest.approx(tm.TAIL_SHARE, rel=1e-4) and above == pytest.approx(tm.TAIL_SHARE, rel=1e-3)


def test_rank_closed_forms_match_hand_computation(model, data):
    """Without a shift spread, rank-1 survival is (1 - F)^N and rank-10 is P(Binomial(N, F) <= allowed)."""
    flat = replace(model, params=replace(model.params, tau=0.0))
    p = data[0][:5]
    radius = np.full(5, 0.75)
    f = tm.pair_cdf(flat, p, radius)[:, 0]
    assert np.all(f > 1e-4)
    sizes = [10, 1000, 100_000]
    s1 = tm.rank_probabilities(flat, tm.Captures(p), radius, sizes)
    assert s1 == pytest.approx((1 - f[:, None]) ** np.array(sizes)[None, :], rel=1e-9)
    allowed = np.array([9, 5, 0, 3, -1])
    s10 = tm.rank_probabilities(flat, tm.Captures(p), radius, sizes, allowed=allowed)
    want = stats.binom.cdf(np.clip(allowed, 0, None)[:, None], np.array(sizes)[None, :], f[:, None])
    want[allowed < 0] = 0.0
    assert s10 == pytest.approx(want, rel=1e-9, abs=1e-15)
    # two captures of one person: a distractor beats them if it beats either capture
    both = tm.rank_probabilities(flat, tm.Captures(p[:2], np.array([0, 0]), 1), radius[:2], sizes)
    assert both[0] == pytest.approx(((1 - f[0]) * (1 - f[1])) ** np.array(sizes), rel=1e-9)


def test_shift_spread_lowers_rank1_survival(model, data):
    """Jensen: with an unknown shift, E[(1-F)^N] differs from (1 - E F)^N; more spread, heavier tail."""
    p = data[0][:5]
    radius = np.full(5, 0.75)
    wide = replace(model, params=replace(model.params, tau=0.5))
    f = tm.pair_cdf(wide, p, radius)[:, 0]
    s = tm.rank_probabilities(wide, tm.Captures(p), radius, [10_000])[:, 0]
    assert np.all(s >= (1 - f) ** 10_000 - 1e-12)


def test_json_round_trip_is_exact_and_plain(model, data, tmp_path):
    text = json.dumps(tm.to_json(model))
    assert "pickle" not in text
    (tmp_path / "m.json").write_text(text)
    back = tm.load(tmp_path / "m.json")[0]
    p = data[0][:8]
    r = np.array([[0.5, 0.6, 0.8]])
    assert tm.pair_cdf(back, p, r) == pytest.approx(tm.pair_cdf(model, p, r), rel=1e-5, abs=1e-12)
    assert len(back.boot) == len(model.boot)
    with pytest.raises(ValueError, match="not a privrisk tail model"):
        tm.from_json({"format": "other"})
    with pytest.raises(ValueError, match="missing or has a bad field"):
        tm.from_json({"format": "privrisk-tail-model/1"})


def test_group_labels_give_per_group_rates(data):
    p, ps, g, gs, groups = data
    m = tm.fit(tm.Pairs(p, ps, g, gs, groups), n_boot=20, seed=2)
    out = tm.predict_pair_rate(m, [0.6, 0.8], p, groups=groups)
    assert set(out["by_group"]) == set(groups)
    for v in [out, *out["by_group"].values()]:
        for rate, (lo, hi) in zip(v["rate"], v["rate_ci95"]):
            assert 0 <= lo <= rate <= hi <= 1
    assert sum(v["n"] for v in out["by_group"].values()) == len(p)
    assert set(m.params.group_tail) == set(groups) | {tm.POOLED_GROUP}
    assert any(abs(v - 1) > 0.05 for v in m.params.group_tail.values())
    # a group the fit never saw gets the pooled multiplier
    assert tm.group_multipliers(m.params, ["never-seen"], 1)[0] == m.params.group_tail[tm.POOLED_GROUP]


def test_poisson_and_judge_hand_cases():
    assert tm.poisson_ci(0) == pytest.approx((0.0, 3.6889), abs=1e-4)
    assert tm.poisson_ci(5) == pytest.approx((1.6235, 11.6683), abs=1e-4)
    assert tm.judge(0, (0.1, 0.5), 0.45)[0] is None
    assert tm.judge(5, (4.0, 9.0), 0.5)[0] is True
    assert tm.judge(21, (0.3, 0.9), 0.55)[0] is False  # the Gaussian's miss: real far above the model
    assert tm.judge(21, (10.0, 40.0), 0.55)[0] is False  # meets, but 4x wide at 0.55
    assert tm.judge(21, (10.0, 40.0), 0.50)[0] is True  # 4x is allowed at 0.50


def test_cross_validation_keeps_probes_out_of_their_fit(data):
    p, ps, g, gs, _ = data
    cv = tm.cross_validate(tm.Pairs(p, ps, g, gs), thresholds=[0.6, 0.7], k_folds=3, n_boot=10, seed=3)
    assert set(cv["fold_models"]) == {0, 1, 2}
    for k, m in cv["fold_models"].items():
        held = set(np.asarray(ps)[cv["fold_of"] == k])
        assert m.n_subjects == len(set(ps) | set(gs)) - len(held)
    v = tm.validation_json(cv)
    json.dumps(v)
    assert v["n_real_pairs"] == int((np.asarray(ps)[:, None] != np.asarray(gs)[None, :]).sum())
    assert len(v["model_rate_ci95"]) == 2 and all(
        lo <= r <= hi for r, (lo, hi) in zip(v["model_rate"], v["model_rate_ci95"])
    )
    assert 0 <= v["pit_ks_p"] <= 1


@pytest.fixture(scope="module")
def sample_embeddings(london):
    from privrisk.config import FaceSettings
    from privrisk.embeddings import EmbeddingCache, default_cache_path, embed_batch
    from privrisk.manifest import read_manifest
    from privrisk.samples import sample_manifest

    out = {}
    for kind in ("neutral", "smiling"):
        m = read_manifest(sample_manifest(kind), london)
        res = embed_batch([r.image for r in m.rows], FaceSettings(), cache=EmbeddingCache(default_cache_path()))
        ok = [(r.subject_id, e.faces[0].embedding) for r, e in zip(m.rows, res) if e.ok]
        out[kind] = (np.array([s for s, _ in ok]), np.array([v for _, v in ok], np.float32))
    return out


@pytest.mark.model
def test_sample_set_validation_tail_model_passes_gaussian_fails(sample_embeddings):
    """The acceptance check of issue 11 on the sample set: smiling photos are probes, neutral photos
    the gallery, five folds over people. The tail model passes at 0.50 / 0.55 / 0.60; today's Gaussian
    DistractorModel, put through the same check, fails at 0.50 and 0.55."""
    gs, g = sample_embeddings["neutral"]
    ps, p = sample_embeddings["smiling"]
    ours = tm.cross_validate(tm.Pairs(p, ps, g, gs), kind="gpd", n_boot=100, seed=2011)
    verdict = dict(zip(ours["thresholds"], ours["pass"]))
    assert verdict[0.5] is True and verdict[0.55] is True and verdict[0.6] is True, tm.validation_json(ours)
    # informative, stated on its own: upper end at most 10x the lower at 0.50, 3x at 0.55 and 0.60
    ci = dict(zip(ours["thresholds"], ours["model_rate_ci95"]))
    assert ci[0.5][1] <= 10 * ci[0.5][0] and ci[0.55][1] <= 3 * ci[0.55][0] and ci[0.6][1] <= 3 * ci[0.6][0], ci
    gauss = tm.cross_validate(tm.Pairs(p, ps, g, gs), kind="gaussian", n_boot=10, seed=2011)
    verdict = dict(zip(gauss["thresholds"], gauss["pass"]))
    assert verdict[0.5] is False and verdict[0.55] is False, tm.validation_json(gauss)


def test_selfcheck_labels_and_ranges(model, data):
    """The self-check's chance of rank 1: exact where searched, the tail model's with a range beyond."""
    from privrisk import index
    from privrisk.selfcheck import SampleWorld, findability

    p, ps, g, gs, _ = data
    rng = np.random.default_rng(4)
    distractors = (g[rng.integers(0, len(g), 3000)] + rng.normal(0, 0.04, (3000, g.shape[1]))).astype(np.float32)
    world = SampleWorld(
        vectors=g[1:],
        subjects=list(gs[1:]),
        images=["x"] * (len(g) - 1),
        model=None,
        distractors=distractors,
        index=index.build_index(distractors),
        tail_models=(model,),
    )
    f = findability(g[0], p[0], world, sizes=(50, 1000, 10**6, 10**9))
    kinds = [s.kind for s in f.sizes]
    assert kinds[0] == "measured" and kinds[-1] == "extrapolated" and kinds[1] in ("modelled", "extrapolated")
    # the count among the drawn Gaussian distractors is a comparison beside, never the value
    assert f.sizes[1].gaussian_rank is not None and not f.sizes[1].measured
    for s in f.sizes:
        lo, hi = s.p_rank1_range
        assert 0 <= lo <= s.p_rank1 <= hi <= 1
    assert f.sizes[-1].p_rank1 <= f.sizes[-2].p_rank1 and not f.sizes[-1].measured
    json.dumps(f.to_dict())


def test_no_probability_on_negative_distances(model, data):
    """The tail is truncated at distance 0: no face is 'closer than identical', for the point fit
    and every bootstrap replicate, and F still rises from there."""
    p = data[0][:5]
    for params in model.replicates()[:5]:
        f = tm.pair_cdf(model, p, np.array([[0.0, 1e-3, 0.3, 0.6]]), params=params)
        assert np.all(f[:, 0] == 0.0)
        assert np.all(np.diff(f, axis=1) >= 0)


def test_gpd_mle_matches_scipy_maximum():
    """The profile-likelihood GPD fit reaches scipy's maximum (to 1e-6 in log-likelihood) across shapes
    and sample sizes; a hand case: exponential data give a shape near 0 and the mean as scale."""
    rng = np.random.default_rng(5)
    for xi in (-0.4, -0.15, 0.0, 0.1, 0.3):
        for n in (25, 150, 500):
            x = stats.genpareto.rvs(xi, scale=0.7, size=n, random_state=rng)
            c, _, s = stats.genpareto.fit(x, floc=0)
            c2, s2 = tm.gpd_mle(x)
            ll_scipy = stats.genpareto.logpdf(x, c, scale=s).sum()
            ll_ours = stats.genpareto.logpdf(x, c2, scale=s2).sum()
            assert ll_ours >= ll_scipy - 1e-6, (xi, n, c, c2)
            assert c2 == pytest.approx(c, abs=2e-3) and s2 == pytest.approx(s, rel=2e-3)
    x = rng.exponential(2.0, 20000)
    c, s = tm.gpd_mle(x)
    assert abs(c) < 0.03 and s == pytest.approx(x.mean(), rel=0.03)
    with pytest.raises(ValueError):
        tm.gpd_mle([1.0])


def test_row_quantile_equals_nanquantile():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(30, 40))
    mask = rng.random((30, 40)) > 0.3
    mask[0] = False
    mask[1, :] = False
    mask[1, 3] = True
    got = fitting._row_quantile(z, mask, 0.1)
    want = np.array([np.quantile(r[m], 0.1) if m.any() else np.nan for r, m in zip(z, mask)])
    assert np.isnan(got[0]) and got[1] == z[1, 3]
    np.testing.assert_allclose(got[1:], want[1:], rtol=0, atol=1e-12)
    xs = np.sort(rng.normal(size=101))
    np.testing.assert_allclose(
        fitting._sorted_quantile(xs, [0.0, 0.05, 0.5, 1.0]), np.quantile(xs, [0.0, 0.05, 0.5, 1.0])
    )


def test_residual_cdf_tail_multiplier_by_hand(model):
    """A group multiplier m scales the tail below u by m and rescales the body so it still ends at 1."""
    p = model.params
    e = np.array([p.u - 0.5, p.u - 0.1, p.u + 1e-9, p.body[95], p.body[-1] + 1])
    base = tm.residual_cdf(p, e)
    got = tm.residual_cdf(p, e, 2.0)
    ts = tm.TAIL_SHARE
    want = np.where(e < p.u, 2 * base, 2 * ts + (1 - 2 * ts) * (base - ts) / (1 - ts))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[-1] == pytest.approx(1.0) and got[2] == pytest.approx(2 * ts, rel=1e-6)


def test_group_tail_multipliers_by_hand():
    """DerSimonian-Laird by hand: two groups of probes with flat residual tails (tau = 0, no covariate),
    observed counts under z* against the counts the model expects."""
    body = np.linspace(-2.4, 3.0, len(tm.BODY_P))
    p = tm.TailParams(kind="normal", u=-2.4, a=-2.4, b=0.6, body=body, alpha=0.0, beta=0.0, tau=0.0)
    rng = np.random.default_rng(0)
    z = rng.uniform(-3, 3, (40, 200))
    mask = np.ones_like(z, bool)
    groups = np.array(["a"] * 30 + ["b"] * 10)
    z[30:, :6] = -2.995  # group b: many very close pairs
    pooled = np.sort(z[mask])
    zstar = fitting._sorted_quantile(pooled, [tm.GROUP_TAIL_SHARE])[0]
    f = tm.residual_cdf(p, np.array([zstar]))[0]
    obs = (z <= zstar).sum(axis=1).astype(float)
    exp_ = np.full(40, 200 * f)
    y, v = [], []
    for sel in (groups == "a", groups == "b"):
        o, e = obs[sel].sum(), exp_[sel].sum()
        r = (o + 0.5) / (e + 0.5)
        y.append(np.log(r))
        v.append(max(((obs[sel] - r * exp_[sel]) ** 2).sum() / (o + 0.5) ** 2, 1 / (o + 0.5)))
    y, v = np.array(y), np.array(v)
    w = 1 / v
    ybar = (w * y).sum() / w.sum()
    q = (w * (y - ybar) ** 2).sum()
    tau2 = max(0.0, (q - 1) / (w.sum() - (w**2).sum() / w.sum()))
    want = np.exp(ybar + tau2 / (tau2 + v) * (y - ybar))
    got = fitting._group_tail(p, z, mask, np.zeros(40), groups, pooled)
    assert got["a"] == pytest.approx(want[0], rel=1e-9) and got["b"] == pytest.approx(want[1], rel=1e-9)
    assert got[tm.POOLED_GROUP] == pytest.approx(np.exp(ybar), rel=1e-9)
    assert tau2 > 0 and got["b"] > 3 * got["a"] and max(want) < tm.MAX_GROUP_TAIL
    # one group only: no multipliers
    assert fitting._group_tail(p, z, mask, np.zeros(40), np.array(["a"] * 40), pooled) == {}


@pytest.mark.model
def test_sample_set_per_group_rates_checked(sample_embeddings):
    """Issue 12 on the sample set: the group-blind model predicts too few close pairs for Black men at
    0.6 (the data show their faces sit closer together); the group-conditional model, fitted on held-out
    folds with gender+ethnicity labels, gives that cell a higher predicted rate, and every cell of every
    attribute gets a verdict. (The verdicts themselves are reported, not asserted: a test that
    required them to pass would tune the model to this sample.)"""
    import csv

    from privrisk.fairness import AnalysisOptions, FaceSet, TailCheckOptions, analyse, tail_check_cross_validated
    from privrisk.samples import sample_file

    gs, g = sample_embeddings["neutral"]
    ps, p = sample_embeddings["smiling"]
    attrs = {r["subject_id"]: r for r in csv.DictReader(sample_file("subjects.csv").open())}
    res = analyse(FaceSet(p, ps), FaceSet(g, gs), attrs, AnalysisOptions(n_boot=300, seed=1))
    check = tail_check_cross_validated(res, FaceSet(p, ps), FaceSet(g, gs), attrs, TailCheckOptions(n_boot=60, seed=2))
    assert check["group_conditional"] and check["fit_groups"] == "gender+ethnicity"
    assert "male / black at 0.6 (model too low)" in check["without_groups"]["by_attribute"]["gender+ethnicity"]
    rows = {(r["group"], r["threshold"]): r for r in check["by_attribute"]["gender+ethnicity"]["rows"]}
    assert rows[("male / black", 0.6)]["model_rate"] > 3 * rows[("male / white", 0.6)]["model_rate"]
    for attr, c in check["by_attribute"].items():
        groups = {r["group"] for r in c["rows"]}
        assert groups == set(res["attributes"][attr]["groups"]), attr
    assert {r["gallery_size"] for r in check["scale"]["rows"]["gender"]} == {10**6, 10**9}


def test_gpd_sf_and_normal_tail_match_scipy():
    x = np.concatenate([np.linspace(0, 5, 200), [0.0, 1e-9, 50.0]])
    for xi in (-0.6, -0.2, -1e-14, 0.0, 1e-14, 0.15, 0.7):
        np.testing.assert_allclose(tm.gpd_sf(x, xi, 0.8), stats.genpareto.sf(x, xi, scale=0.8), rtol=1e-10, atol=1e-300)
    # xi < 0: no mass past the end point sigma / |xi| (hand case: xi = -0.5, sigma = 1 ends at 2)
    assert tm.gpd_sf(np.array([1.0, 2.5]), -0.5, 1.0) == pytest.approx([0.25, 0.0])


def test_backtest_fits_above_the_cut_and_predicts_below(data):
    """Issue 23: the model refitted without the closest pairs predicts their count; the real count
    below the cut is the share asked for, and the censored fit never saw those pairs."""
    p, ps, g, gs, _ = data
    bt = tm.backtest(tm.Pairs(p, ps, g, gs), n_boot=20, seed=3)
    n = bt["n_pairs"]
    assert bt["real_count"][0] == round(tm.BACKTEST_SHARE * n)  # the cut leaves that many under it
    assert bt["n_pairs_fitted"] == n - bt["real_count"][0]
    assert bt["thresholds"][0] == bt["cut"] and all(t < bt["cut"] for t in bt["thresholds"][1:])
    assert bt["closest_pair"] <= bt["cut"]
    for (lo, hi), v, ok in zip(bt["predicted_count_ci95"], bt["predicted_count"], bt["pass"]):
        assert lo <= v <= hi and ok in (True, False, None)
    assert bt["predicted_count"][0] > 0
    # the censored fit really left the closest pairs out
    full = tm.fit(tm.Pairs(p, ps, g, gs), n_boot=0, seed=3)
    cens = tm.fit(tm.Pairs(p, ps, g, gs), n_boot=0, seed=3, min_distance=bt["cut"])
    assert cens.n_pairs == full.n_pairs - bt["real_count"][0]
    # one set of faces (a calibration set): each unordered pair once
    subj = np.concatenate([ps, gs])
    one = tm.backtest(tm.Pairs(np.vstack([p, g]), subj), n_boot=5, seed=3)
    assert one["n_pairs"] == int((subj[:, None] != subj[None, :]).sum() // 2)
