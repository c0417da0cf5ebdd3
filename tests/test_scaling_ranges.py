"""What each scaling range spans (issue 23): the tail models' point fits and subject bootstrap,
never the exact search over Gaussian model distractors (which fails held-out validation)."""

import numpy as np
import pytest

from privrisk.stages import scaling


def _reps(point, boot_lo, boot_hi, n_boot=40, n_sizes=3):
    """(reps, 4, sizes): replicate 0 the point fit, then bootstrap refits spread evenly."""
    out = np.empty((n_boot + 1, 4, n_sizes))
    out[0] = point
    out[1:] = np.linspace(boot_lo, boot_hi, n_boot)[:, None, None]
    return out


def test_model_range_spans_tail_models_only_and_keeps_spreads_apart():
    reps = {"gpd": _reps(0.30, 0.20, 0.40), "normal": _reps(0.50, 0.45, 0.55)}
    (v, rng, sampling, spread), *_ = scaling._model_values(reps, 1)
    assert v == pytest.approx(0.30)  # the main tail model's fit
    assert spread == pytest.approx([0.30, 0.50])  # the tail models' point fits: choice-of-model spread
    b = np.linspace(0.20, 0.40, 40)
    assert sampling == pytest.approx([np.quantile(b, 0.025), np.quantile(b, 0.975)])  # the bootstrap alone
    hi_normal = np.quantile(np.linspace(0.45, 0.55, 40), 0.975)
    assert rng == pytest.approx([sampling[0], hi_normal])  # the envelope of both, nothing else


def _grid():
    return scaling._Grid(
        n_real=10,
        sizes=[10, 100, 1000],
        all_sizes=[10, 100, 1000, 10**6],
        n_other=np.array([0.0, 90, 990, 10**6 - 10]),
        n_pairs=500,
    )


def _spec(n=10):
    rng = np.random.default_rng(0)
    return {
        "vecs": rng.normal(size=(n, 128)).astype(np.float32),
        "owner": np.arange(n),
        "fold": np.zeros(n, np.int64),
        "rank": np.ones(n),
        "g": np.full(n, 0.3),
        "imp_best": np.full(n, 0.6),
        "best": np.full(n, 0.3),
        "mated": np.ones(n, bool),
        "top_k": 10,
    }


def test_no_range_end_comes_from_the_gaussian_search():
    """The Gaussian search finds everyone (no distractor within any radius: rank-1 = 100%); the tail
    models say 20-55%. The point's value and both ends stay with the tail models; the search is
    kept beside it, labelled as failing validation."""
    grid = _grid()
    spec = _spec()
    ids = np.full((10, 10), 10**9, np.int64)  # no Gaussian distractor within anyone's radius
    reps = {"gpd": _reps(0.30, 0.20, 0.40, n_sizes=4), "normal": _reps(0.50, 0.45, 0.55, n_sizes=4)}
    preds = scaling._Predictions(reps, np.full(4, 0.4), np.full(4, 0.35), np.full(4, 0.45))
    cfg = type("C", (), {"gallery": type("G", (), {"threshold": 0.6})()})()
    pt = scaling._point(cfg, scaling._CurveData(spec, ids, reps, (0.0, 0.0)), preds, grid, 2)
    assert pt["gaussian_search"]["rank1"] == 1.0 and "fails" in pt["gaussian_search"]["note"]
    assert pt["kind"] == "extrapolated"  # 990 others > 500 real impostor pairs
    assert pt["rank1"] == pytest.approx(0.30) and pt["rank1_range"][1] < 0.6
    assert pt["rank1_model_spread"] == pytest.approx([0.30, 0.50])
    assert pt["range_spans"] == scaling.RANGE_SPANS["model"] and "Gaussian" in pt["range_spans"]
    pt100 = scaling._point(cfg, scaling._CurveData(spec, ids, reps, (0.0, 0.0)), preds, grid, 1)
    assert pt100["kind"] == "modelled" and pt100["rank1"] == pytest.approx(0.30)  # not the search's 100%
    measured = scaling._point(cfg, scaling._CurveData(spec, ids, reps, (0.0, 0.0)), preds, grid, 0)
    assert measured["kind"] == "measured" and measured["range_spans"] == scaling.RANGE_SPANS["measured"]
    assert "gaussian_search" not in measured


def test_shipped_curves_take_no_end_from_the_gaussian_search():
    """Every point of the shipped curves says what its range spans, and where the Gaussian search
    ran, the range is the tail models' envelope whatever the search found."""
    import json

    from helpers import ROOT

    curves = json.loads((ROOT / "sample_data" / "identification_curves.json").read_text())["curves"]
    seen = 0
    for name, c in curves.items():
        for p in c["points"]:
            assert p["range_spans"] == scaling.RANGE_SPANS["measured" if p["kind"] == "measured" else "model"], name
            assert p["kind"] in ("measured", "modelled", "extrapolated")
            if p["kind"] == "measured" or p["rank1"] is None:
                continue
            lo, hi = p["rank1_range"]
            # the range is exactly the envelope of the sampling range and the model spread's bootstrap
            assert lo <= min(p["rank1_sampling_range"][0], p["rank1_model_spread"][0]) + 1e-12
            assert hi >= max(p["rank1_sampling_range"][1], p["rank1_model_spread"][1]) - 1e-12
            gs = p.get("gaussian_search")
            if gs is not None:
                seen += 1
                assert "fails" in gs["note"]
    assert seen > 0  # the comparison is still there
