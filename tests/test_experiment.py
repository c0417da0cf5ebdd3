"""The researchers' batch job on the sample set: the README's main command, end to end."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT
from privrisk.config import ExperimentConfig
from privrisk.errors import ConfigError
from privrisk.experiment import load_config
from reproducibility import json_differences

pytestmark = pytest.mark.model


def _strip_timings(x):
    if isinstance(x, dict):
        return {
            k: _strip_timings(v)
            for k, v in x.items()
            if not k.startswith("seconds") and k not in ("search_seconds_per_probe_at_max", "from_cache")
        }
    if isinstance(x, list):
        return [_strip_timings(v) for v in x]
    return x


@pytest.fixture(scope="module")
def demo(tmp_path_factory, london, shared_cache_dir):
    base = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PRIVRISK_CACHE_DIR": shared_cache_dir}
    out = subprocess.run(
        [sys.executable, "-m", "privrisk.cli", "demo", "--out", str(base / "run1"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return base, env, out


def test_demo_prints_summary_and_report_path(demo):
    base, _, out = demo
    assert "E1 online to online" in out.stdout and "report:" in out.stdout
    assert str(base / "run1" / "report.html") in out.stdout


def test_results_json_schema(demo):
    base, _, _ = demo
    r = json.loads((base / "run1" / "results.json").read_text())
    for name in ("online_to_online", "offline_to_online"):
        e = r["experiments"][name]
        for key in ("n_gallery", "n_probes", "rank1", "rank5", "rank1_ci95", "tpir_at_fpir", "seconds_per_probe"):
            assert key in e, (name, key)
        assert len(e["rank1_ci95"]) == 2 and set(e["tpir_at_fpir"]) >= {"0.01", "0.001"}
    acc = r["experiments"]["accretion"]
    for key in ("ssn_predictable_fraction", "rrn_predictable_fraction", "mean_fields_learned"):
        assert 0 <= acc[key] <= 20
    assert all({"gallery_size", "rank1"} <= set(p) for p in r["scaling"])
    assert r["seed"] == 2011 and r["config"]["seed"] == 2011
    assert "dlib" in r["versions"] and "faiss-cpu" in r["versions"] and r["versions"]["model_id"]


def test_e1_identifies_gallery_subjects(demo):
    base, _, _ = demo
    e1 = json.loads((base / "run1" / "results.json").read_text())["experiments"]["online_to_online"]
    assert e1["rank1"] >= 0.95
    assert e1["n_nonmated"] == round(0.2 * 102) and e1["n_mated"] + e1["n_nonmated"] == e1["n_probes"]
    assert e1["rank1_ci95"][0] <= e1["rank1"] <= e1["rank1_ci95"][1]


def test_e2_rank1_falls_as_degradation_grows(demo):
    base, _, _ = demo
    levels = json.loads((base / "run1" / "results.json").read_text())["experiments"]["offline_to_online"]["levels"]
    webcam, street, far = (levels[n]["rank1"] for n in ("webcam", "street", "far"))
    assert webcam > street > far
    assert levels["far"]["detection_rate"] < levels["webcam"]["detection_rate"]


def test_scaling_does_not_rise_and_distractors_look_real(demo):
    base, _, _ = demo
    r = json.loads((base / "run1" / "results.json").read_text())
    for curve in r["scaling_detail"]["curves"].values():
        rates = [p["rank1"] for p in curve["measured"]]
        assert all(a >= b for a, b in zip(rates, rates[1:])), rates
    assert [p["gallery_size"] for p in r["scaling_detail"]["curves"]["online_to_online"]["measured"]][-1] == 1_000_000
    # the distractor model's impostor distances against the real ones (two-sample KS)
    assert r["scaling_detail"]["distractor_model"]["ks_statistic"] < 0.12
    pred = r["scaling_detail"]["curves"]["online_to_online"]["predicted"]
    assert pred["gallery_size"][-1] == 1_000_000_000 and pred["ci95_low"][-1] <= pred["rank1"][-1]


def test_scaling_points_are_labelled_with_ranges(demo):
    """CURVES.md: every curve has sorted points over every size, each with a kind and ranges holding
    the value; measured only up to the real gallery; the tail model's held-out validation is saved."""
    base, _, _ = demo
    r = json.loads((base / "run1" / "results.json").read_text())
    cfg = r["config"]["scaling"]
    n_real = r["experiments"]["online_to_online"]["n_gallery"]
    for name, curve in r["scaling_detail"]["curves"].items():
        pts = curve["points"]
        sizes = [p["gallery_size"] for p in pts]
        assert sizes == sorted(sizes) and set(cfg["sizes"]) | set(cfg["extrapolate"]) <= set(sizes), name
        for p in pts:
            assert p["kind"] == ("measured" if p["gallery_size"] <= n_real else p["kind"])
            assert p["kind"] in ("measured", "modelled", "extrapolated")
            assert p["range_spans"]  # issue 23: each range says what it spans
            gs = p.get("gaussian_search")
            if gs is not None:  # a comparison only: never the value
                assert "fails" in gs["note"]
            for key, rng in (
                ("rank1", "rank1_range"),
                ("rank10", "rank10_range"),
                ("fpir_at_threshold", "fpir_range"),
                ("wrong_top_under_threshold", "wrong_top_range"),
            ):
                if p[key] is not None:
                    assert rng in p and p[rng][0] <= p[key] <= p[rng][1], (name, p)
        assert pts[-1]["kind"] == "extrapolated"
    assert r["scaling"] == r["scaling_detail"]["curves"]["online_to_online"]["points"]
    v = r["scaling_detail"]["distractor_model"]["validation"]
    assert v["thresholds"] == [0.45, 0.5, 0.55, 0.6] and len(v["model_rate_ci95"]) == 4
    assert isinstance(v["tail_model"], str) and 0 <= v["pit_ks_p"] <= 1 and v["n_real_pairs"] > 1000
    models = r["scaling_detail"]["tail_models"]["models"]
    assert [m["kind"] for m in models] == ["gpd", "normal"]
    page = (base / "run1" / "report.html").read_text()
    assert "Tail model validated on held-out people" in page
    # issue 23: the backtest in the report, the first screen and the paper's own gallery sizes
    bt = r["scaling_detail"]["distractor_model"]["backtest"]
    assert [b["kind"] for b in bt] == ["gpd", "normal"] and "Backtest of the tail model" in page
    assert (
        '<p class="first">' in page
        and "At the paper&#x27;s own gallery sizes" in page
        or "At the paper's own gallery sizes" in page
    )


def test_outputs_and_report(demo):
    base, _, _ = demo
    run = base / "run1"
    for name in (
        "results.json",
        "probes.csv",
        "accretion.csv",
        "report.html",
        "cmc.png",
        "det.png",
        "roc.png",
        "scaling.png",
        "exposure.png",
        "offline_levels.png",
    ):
        assert (run / name).stat().st_size > 0, name
    html = (run / "report.html").read_text()
    assert "DeBruine" in html and "10.6084/m9.figshare.5047666" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 6 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "Acquisti" in html and "seed 2011" in html
    assert not list(run.glob("*.tmp"))
    lines = (run / "probes.csv").read_text().splitlines()
    n_levels = len(json.loads((run / "results.json").read_text())["experiments"]["offline_to_online"]["levels"])
    assert lines[0].startswith("experiment,probe,truth") and len(lines) == 1 + 102 * (1 + n_levels)


def test_same_seed_same_numbers_without_network(demo, tmp_path):
    """The demo again, warm, with every network connection refused: the same numbers."""
    from helpers import no_network_env

    base, env, _ = demo
    out = subprocess.run(
        [sys.executable, "-m", "privrisk.cli", "demo", "--out", str(base / "run2"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=1200,
        env=no_network_env(tmp_path, PRIVRISK_CACHE_DIR=env["PRIVRISK_CACHE_DIR"]),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    first = json.loads((base / "run1" / "results.json").read_text())
    second = json.loads((base / "run2" / "results.json").read_text())
    assert _strip_timings(first["experiments"]) == _strip_timings(second["experiments"])
    assert first["scaling"] == second["scaling"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("seed = 'abc'\n", "seed: expected a whole number"),
        ("[offline]\nshots = 0\n", "offline.shots: 0 is below the minimum 1"),
        ("[faces]\ndetecter = 'hog'\n", "faces.detecter: unknown setting"),
        ("[offline]\nheadline = 'nope'\n", "headline"),
        ("[[offline.levels]]\nname = 'tiny'\nface_width_px = 30\n[offline]\n", "headline.*not one of the levels"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_shipped_fairness_summary_is_what_the_demo_measures(demo):
    """sample_data/fairness_summary.json (the trainer's plain-words differential) is this demo's
    results.json -> fairness in plain words (privrisk.fairness.plain_words)."""
    from privrisk.fairness import plain_words

    base, _, _ = demo
    fairness = json.loads((base / "run1" / "results.json").read_text())["fairness"]
    shipped = json.loads((ROOT / "sample_data" / "fairness_summary.json").read_text())
    diffs = json_differences(json.loads(json.dumps(plain_words(fairness))), shipped)
    assert not diffs, diffs[:8]


def test_example_config_loads():
    cfg = load_config(ROOT / "examples" / "experiment.toml")
    assert isinstance(cfg, ExperimentConfig) and cfg.offline.levels[0].name


@pytest.mark.browser
def test_report_opens_in_chromium_with_every_plot(demo):
    from playwright.sync_api import sync_playwright

    from browser import launch

    base, _, _ = demo
    report = base / "run1" / "report.html"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(report.as_uri())
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(sizes) >= 7 and all(done and width > 300 for done, width in sizes), sizes
            assert "DeBruine" in page.inner_text(".attr")
            assert page.locator("table").count() >= 2
            page.screenshot(path=str(base / "report.png"), full_page=True)
        finally:
            browser.close()
    artifacts = os.environ.get("PRIVRISK_TEST_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(base / "report.png", os.path.join(artifacts, "report.png"))


def test_shipped_identification_curves_are_what_the_demo_measures(demo):
    """sample_data/identification_curves.json (the exposure score's default) is this demo's output."""
    from privrisk.exposure import export_curves

    base, _, _ = demo
    fresh = export_curves(json.loads((base / "run1" / "results.json").read_text()))
    shipped = json.loads((ROOT / "sample_data" / "identification_curves.json").read_text())
    assert fresh["seed"] == shipped["seed"]
    diffs = json_differences(
        fresh["curves"], shipped["curves"], "curves"
    )  # another machine: within float32's tolerance
    assert not diffs, diffs[:8]


def test_demo_rates_are_exact_and_e1_explains_its_genuine_pairs(demo):
    """Issue 11: 82 of 82 reads 100% (95% CI 95.6-100%); the unresolvable FPIR targets show their
    bound; E1 says its genuine pairs are same-session photos; E3 counts people."""
    from privrisk.metrics import clopper_pearson

    base, _, out = demo
    r = json.loads((base / "run1" / "results.json").read_text())
    e1, e3 = r["experiments"]["online_to_online"], r["experiments"]["accretion"]
    k = round(e1["rank1"] * e1["n_mated"])
    assert e1["rank1_ci95"] == pytest.approx(list(clopper_pearson(k, e1["n_mated"])))
    entry = e1["tpir_at_fpir"]["0.01"]
    assert entry["resolvable"] is False and entry["fpir_upper95"] == pytest.approx(0.139, abs=5e-4)
    assert "FPIR<=13.9%*" in out.stdout and "not resolvable" in out.stdout
    gp = e1["genuine_pairs"]
    assert gp["same_session_studio"] and gp["quantiles"]["max"] < gp["closest_impostor"]
    from html import escape

    assert gp["statement"].startswith("Every genuine pair")
    assert escape(gp["statement"]) in (base / "run1" / "report.html").read_text()
    assert e3["n_people_identified"] <= e3["n_mated_people"] == e1["n_mated"]
    assert e3["wrong_person"]["nonmated"]["k"] == e1["fpir_at_threshold_k"]
