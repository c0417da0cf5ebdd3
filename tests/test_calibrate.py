"""`privrisk calibrate`: real impostor rates on a new face set beside the tail model's predictions."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import clustered, small_e2_set
from privrisk import tailmodel as tm
from privrisk.cli import main
from privrisk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fitted():
    faces, subjects, _ = clustered(seed=5, people=120)
    return tm.fit(tm.Pairs(faces[0::2], subjects[0::2], faces[1::2], subjects[1::2]), n_boot=40, seed=5)


def test_calibrate_counts_pairs_by_hand_and_judges(fitted):
    faces, subjects, _ = clustered(seed=6, people=60, photos=1)
    thr = [0.55, 0.6, 0.65]
    out = tm.calibrate([fitted], faces, subjects, thresholds=thr)
    d = np.linalg.norm(faces[:, None].astype(np.float64) - faces[None], axis=2)[np.triu_indices(60, 1)]
    assert out["n_pairs"] == 60 * 59 // 2
    assert out["real_count"] == [int((d <= t).sum()) for t in thr]
    m = out["models"][0]
    for (lo, hi), r in zip(m["model_rate_ci95"], m["model_rate"]):
        assert 0 <= lo <= r <= hi <= 1
    for v, (lo, hi), t in zip(m["verdict"], m["model_rate_ci95"], thr):
        assert v in ("within", "not within", "not judged (no pair on either side)") or v.startswith(
            "within, but uninformative"
        )
        if v.startswith("within"):  # informative = upper end at most 10x (3x at 0.55 and 0.60) the lower end
            limit = tm.INFORMATIVE_RATIO.get(t, 10.0)
            assert (v == "within") == (lo > 0 and hi / lo <= limit), (v, lo, hi)


def test_calibrate_says_not_within_when_faces_are_more_alike(fitted):
    """A face set whose people are much closer together than the fit's: the model must say so."""
    faces, subjects, _ = clustered(seed=7, people=60, photos=1)
    centre = faces.mean(axis=0)
    squeezed = centre + 0.6 * (faces - centre)
    thr = [0.5, 0.6]
    out = tm.calibrate([fitted], squeezed, subjects, thresholds=thr)
    assert out["real_count"][0] > 0
    assert "not within" in out["models"][0]["verdict"]


def test_shipped_models_load_and_name_two_tails():
    models = tm.load_models()
    assert [m.kind for m in models] == ["gpd", "normal"]
    assert all(len(m.boot) >= 50 and len(m.std.mu) == 128 for m in models)


def test_bad_model_file_is_a_config_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON file"):
        tm.load_models(tmp_path / "x.json")
    (tmp_path / "r.json").write_text(json.dumps({"scaling_detail": {}}))
    with pytest.raises(ConfigError, match="no saved tail models"):
        tm.load_models(tmp_path / "r.json")


def test_cli_bad_results_file_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "privrisk.cli",
            "calibrate",
            str(ROOT / "sample_data" / "london_neutral.csv"),
            "--results",
            str(tmp_path / "missing.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "tail-model file not found" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.model
def test_cli_calibrate_on_sample_faces(tmp_path, london, capsys):
    """One photo per person is enough; the JSON carries rates, intervals and verdicts per threshold."""
    manifest = tmp_path / "one.csv"
    lines = (ROOT / "sample_data" / "london_neutral.csv").read_text().splitlines()
    manifest.write_text("\n".join(lines[:41]) + "\n")
    assert main(["calibrate", str(manifest), "--images", str(london), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_people"] == 40 and out["n_pairs"] == 40 * 39 // 2
    assert len(out["models"]) == 2 and all(len(m["verdict"]) == 4 for m in out["models"])
    bt = out["backtest"]  # issue 23: fitted above a distance, counts predicted below it
    assert [b["kind"] for b in bt] == ["gpd", "normal"] and all(b["n_pairs"] == out["n_pairs"] for b in bt)


# --- widening ranges by a calibration on never-seen faces --------------------------------------------


def _cal(real, model_ci, n_pairs=1000, thresholds=(0.45, 0.5, 0.55, 0.6)):
    """A calibrate() result by hand: real counts, one model's count intervals (pairs)."""
    verdicts = []
    for r, (lo, hi) in zip(real, model_ci):
        plo, phi = tm.poisson_ci(r)
        verdicts.append("within" if plo <= hi and lo <= phi else "not within")
    return {
        "thresholds": list(thresholds),
        "n_pairs": n_pairs,
        "n_people": 50,
        "real_count": list(real),
        "real_count_ci95": [list(tm.poisson_ci(r)) for r in real],
        "models": [
            {
                "kind": "gpd",
                "model_rate": [(a + b) / 2 / n_pairs for a, b in model_ci],
                "model_rate_ci95": [[a / n_pairs, b / n_pairs] for a, b in model_ci],
                "verdict": verdicts,
            }
        ],
    }


def test_widening_factors_by_hand():
    # 0.50: real 10 (Poisson 4.795-18.39) against model 1-3 pairs: too low, k_up = 18.39 / 1
    # 0.60: real 2 (0.242-7.225) against model 20-30: too high, k_down = 30 / 0.242
    # 0.45 is outside the judged thresholds; 0.55 is within
    cal = _cal([50, 10, 20, 2], [(1, 2), (1, 3), (15, 25), (20, 30)])
    w = tm.calibration_widening(cal)
    assert w["k_up"] == pytest.approx(tm.poisson_ci(10)[1] / 1.0)
    assert w["k_down"] == pytest.approx(30 / tm.poisson_ci(2)[0])
    assert [x["threshold"] for x in w["not_within"]] == [0.5, 0.6]
    assert w["verdict"].startswith("NOT within its 95% interval at 0.5 (gpd, model too low), 0.6 (gpd, model too high)")
    ok = tm.calibration_widening(_cal([0, 10, 20, 40], [(0, 0.5), (6, 14), (15, 25), (30, 50)]))
    assert ok["k_up"] == ok["k_down"] == 1.0 and ok["not_within"] == [] and "unchanged" in ok["verdict"]
    vague = _cal([0, 10, 20, 40], [(0, 0.5), (6, 14), (15, 25), (30, 50)])
    vague["models"][0]["verdict"][2] = "within, but uninformative (interval 5x wide, limit 3x)"
    v = tm.calibration_widening(vague)
    assert v["uninformative"] == [0.55] and v["k_up"] == 1.0 and "uninformative" in v["verdict"]
    # real 0 and the model too high: the factor is unbounded, stored as null (JSON has no infinity)
    inf = tm.calibration_widening(_cal([0, 0, 0, 0], [(0, 1), (5, 9), (5, 9), (5, 9)]))
    assert inf["k_down"] is None and inf["k_up"] == 1.0
    assert "k_down is unbounded" in inf["verdict"] and "[0, 1]" not in inf["verdict"]
    assert "k_down is unbounded" not in w["verdict"] and "holds down to the genuine distances" in w["verdict"]
    # real 0 where the model was too high, and a too-low miss whose model lower end is 0: both unbounded
    both = tm.calibration_widening(_cal([0, 5, 0, 0], [(0, 1), (0, 0.5), (5, 9), (5, 9)]))
    assert both["k_up"] is None and both["k_down"] is None and "every widened range is [0, 1]" in both["verdict"]
    json.dumps(inf, allow_nan=False)


def test_widen_points_by_hand():
    pts = [
        {"gallery_size": 82, "kind": "measured", "rank1": 1.0, "rank1_range": [0.95, 1.0]},
        {
            "gallery_size": 10**9,
            "kind": "extrapolated",
            "rank1": 0.7,
            "rank1_range": [0.5, 0.9],
            "rank10": 0.8,
            "rank10_range": [0.6, 0.95],
            "fpir_at_threshold": 0.15,
            "fpir_range": [0.1, 0.2],
            "wrong_top_under_threshold": 0.05,
            "wrong_top_range": [0.02, 0.1],
        },
    ]
    out = tm.widen_points(pts, {"k_up": 2.0, "k_down": 4.0})
    assert out[0] == pts[0]  # measured: never changed
    p = out[1]
    assert p["rank1_range"] == pytest.approx([0.25, 0.9**0.25])  # lo^k_up, hi^(1/k_down)
    assert p["rank10_range"] == pytest.approx([0.36, 0.95**0.25])
    assert p["fpir_range"] == pytest.approx([1 - 0.9**0.25, 1 - 0.8**2])  # 1-(1-lo)^(1/k_down), 1-(1-hi)^k_up
    assert p["wrong_top_range"] == pytest.approx([1 - 0.98**0.25, 1 - 0.9**2])
    assert p["rank1_range_unwidened"] == [0.5, 0.9] and p["widened_by_calibration"] and p["rank1"] == 0.7
    assert tm.widen_points(pts, {"k_up": 1.0, "k_down": 1.0}) == pts
    unb = tm.widen_points(pts, {"k_up": None, "k_down": None})[1]
    assert unb["rank1_range"] == [0.0, 1.0] and unb["fpir_range"] == [0.0, 1.0]


@pytest.fixture(scope="module")
def population():
    """One population of synthetic faces (distances on the sample set's scale: about 0.5% of impostor
    pairs under 0.6): the model is fitted on 200 people and never sees the other 100."""
    faces, subjects, _ = clustered(seed=21, people=300, photos=2, clusters=3)
    faces = faces * 0.85
    first = np.isin(subjects, np.unique(subjects)[:200])
    model = tm.fit(
        tm.Pairs(faces[first][0::2], subjects[first][0::2], faces[first][1::2], subjects[first][1::2]), n_boot=60
    )
    unseen = faces[~first][0::2]  # one photo per never-seen person
    return model, unseen, subjects[~first][0::2]


def _heavier_tail(faces, seed=3, twins=40, sd=0.037):
    """The same kind of people with a heavier lower tail: ``twins`` of them get a look-alike (another
    person about 0.42 away), the rest unchanged."""
    rng = np.random.default_rng(seed)
    out = faces.copy()
    for i in range(twins):
        out[twins + i] = faces[i] + rng.normal(0, sd, faces.shape[1])
    return out


def _run_cli(monkeypatch, model, faces, subjects, tmp_path, capsys, name):
    from privrisk import tailmodel

    def fake_manifest(manifest, images=None, **kw):  # the embedding step replaced by given vectors
        out = tailmodel.calibrate([model], faces, subjects)
        return out | {"manifest": str(manifest), "skipped": [], "refused": [], "models_from": "test"}

    monkeypatch.setattr(tailmodel, "calibrate_manifest", fake_manifest)
    save = tmp_path / f"{name}.json"
    assert main(["calibrate", f"{name}.csv", "--save", str(save), "--quiet"]) == 0
    return capsys.readouterr().out, tm.load_calibration(save)


def test_never_seen_heavier_tail_says_not_within_and_widens(population, tmp_path, monkeypatch, capsys):
    """A never-seen set whose impostor tail is heavier than the fitted one: the command says "NOT within",
    the saved calibration widens the exposure score's and the report's ranges."""
    from privrisk.exposure import IdentificationCurves
    from privrisk.report import calibration_html

    model, faces, subjects = population
    text, cal = _run_cli(monkeypatch, model, _heavier_tail(faces), subjects, tmp_path, capsys, "heavy")
    assert "Verdict: the model's predicted impostor rates are NOT within its 95% interval at" in text
    assert cal["widening"]["k_up"] > 1.0 and any(x["side"] == "model too low" for x in cal["widening"]["not_within"])
    plain, wide = IdentificationCurves.shipped(), IdentificationCurves.shipped(calibration=cal)
    assert "widened by the calibration" in wide.source
    raw = json.loads((ROOT / "sample_data" / "identification_curves.json").read_text())
    curves = raw.get("curves") or raw["scaling_detail"]["curves"]
    pts = tm.widen_curves(curves, cal["widening"])["online_to_online"]["points"]
    old = {p["gallery_size"]: p for p in curves["online_to_online"]["points"]}
    ext = [p for p in pts if p["kind"] == "extrapolated"]
    assert ext and all(p["rank10_range"][0] <= old[p["gallery_size"]]["rank10_range"][0] for p in ext)
    assert any(p["rank10_range"][0] < old[p["gallery_size"]]["rank10_range"][0] - 1e-6 for p in ext)
    assert plain.source != wide.source
    assert main(["score", "--preset", "platform_defaults", "--calibration", cal["path"]]) == 0
    assert "ranges widened by the calibration" in capsys.readouterr().out
    scaling = tm.apply_calibration({"curves": curves, "measured": []}, cal)
    page = calibration_html(scaling["calibration"])
    assert "NOT within" in page and "k_up" in page
    from privrisk.report import scaling_table_html

    table = scaling_table_html({"scaling_detail": scaling})
    assert "Calibration on faces the model never saw" in table and "(ranges widened by the calibration)" in table
    assert "No calibration on faces" in scaling_table_html({"scaling_detail": {"curves": curves}})
    # with a calibration or without, the page says which figures a too-low model gets wrong, which way
    for text in (page, scaling_table_html({"scaling_detail": {"curves": curves}})):
        assert "<b>overstates</b> rank-1" in text and "<b>understates</b> FPIR" in text and "2.3-2.7x" in text


def test_never_seen_same_distribution_passes_and_leaves_ranges(population, tmp_path, monkeypatch, capsys):
    model, faces, subjects = population
    text, cal = _run_cli(monkeypatch, model, faces, subjects, tmp_path, capsys, "same")
    assert "within its 95% interval at every judged threshold: ranges unchanged" in text, text
    assert cal["widening"]["k_up"] == cal["widening"]["k_down"] == 1.0
    raw = json.loads((ROOT / "sample_data" / "identification_curves.json").read_text())
    curves = raw.get("curves") or raw["scaling_detail"]["curves"]
    assert tm.widen_curves(curves, cal["widening"]) == curves
    from privrisk.exposure import IdentificationCurves

    assert "ranges unchanged by the calibration" in IdentificationCurves.shipped(calibration=cal).source


def test_bad_calibration_file_is_a_config_error(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not a privrisk calibration"):
        tm.load_calibration(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="not found"):
        tm.load_calibration(tmp_path / "none.json")
    (tmp_path / "d.json").write_text(json.dumps({"format": tm.CALIBRATION_FORMAT, "models": [{}]}))
    with pytest.raises(ConfigError, match="bad field"):
        tm.load_calibration(tmp_path / "d.json")


def test_experiment_reads_a_saved_calibration(tmp_path, monkeypatch):
    """scaling.calibration: the run's curves carry the widening, the report shows the calibration."""

    import privrisk.embeddings
    import privrisk.models
    from helpers import FakeFaceModel
    from privrisk.experiment import load_config, run_experiment

    model = FakeFaceModel()
    for mod in (privrisk.embeddings, privrisk.models):
        monkeypatch.setattr(mod, "load_face_model", lambda settings=None: model)
    cal = tm.calibration_record(_cal([50, 10, 20, 40], [(1, 2), (1, 3), (15, 25), (30, 50)]))
    cal_path = tmp_path / "cal.json"
    cal_path.write_text(json.dumps(cal))
    root = small_e2_set(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
dataset_dir = "{root}"
gallery_manifest = "{root / "g.csv"}"
probe_manifest = "{root / "p.csv"}"
bootstrap = 50
workers = 1
[offline]
shots = 1
headline = "webcam"
timing_probes = 1
[[offline.levels]]
name = "webcam"
face_width_px = 80
[scaling]
sizes = [20, 50]
extrapolate = [100]
validation_distractors = 100
tail_bootstrap = 5
calibration = "{cal_path}"
""")
    r = run_experiment(load_config(cfg), tmp_path / "out", progress=False, log=None)
    sc = r["scaling_detail"]
    assert sc["calibration"]["widening"]["k_up"] == pytest.approx(tm.poisson_ci(10)[1])
    for c in sc["curves"].values():
        for p in c["points"]:
            widened = p.get("widened_by_calibration", False)
            ranges = [p.get(k) for k in ("rank1_range", "rank10_range", "fpir_range", "wrong_top_range")]
            assert widened == (p["kind"] != "measured" and any(ranges))
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Calibration on faces the model never saw" in page and "NOT within" in page


def test_calibrate_json_and_text_carry_the_backtest(population, tmp_path, monkeypatch, capsys):
    """Issue 23: `privrisk calibrate --json` has the tail models' backtest on the calibration faces,
    and the text names the cut, the real and the predicted counts."""
    from privrisk import tailmodel

    model, faces, subjects = population

    def fake_manifest(manifest, images=None, **kw):
        out = tailmodel.calibrate([model], faces, subjects)
        out["backtest"] = [
            tailmodel.backtest(tailmodel.Pairs(faces, subjects), kind=k, n_boot=10) for k in tailmodel.KINDS
        ]
        return out | {"manifest": str(manifest), "skipped": [], "refused": [], "models_from": "test"}

    monkeypatch.setattr(tailmodel, "calibrate_manifest", fake_manifest)
    assert main(["calibrate", "x.csv", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    bt = out["backtest"]
    assert [b["kind"] for b in bt] == list(tailmodel.KINDS)
    assert bt[0]["real_count"][0] == round(tailmodel.BACKTEST_SHARE * bt[0]["n_pairs"])
    assert main(["calibrate", "x.csv", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"farther apart than {bt[0]['cut']:.3f}" in text and "predicted" in text
