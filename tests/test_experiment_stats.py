"""The experiment runner end to end on synthetic faces with the fake face model (fast, no dlib):
configured FPIR targets reach the report, rates carry exact intervals, E3 counts people."""

import json

import numpy as np
import pytest

from helpers import FakeFaceModel, noise_image, use_face_model, write_png
from privrisk.config import ExperimentConfig, replace
from privrisk.experiment import run_experiment
from privrisk.report import summary_table

N_SUBJECTS, PROBES_EACH = 15, 3


@pytest.fixture(scope="module")
def fake_face_model():
    """The seam: the process-wide model that load_face_model() hands out (embedding in this
    process, workers = 1) is the fake one, for this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        use_face_model(mp, FakeFaceModel())
        yield


def _manifests(root):
    """Gallery: one photo per subject. Probes: PROBES_EACH noisy photos per subject, and subjects
    0 and 1 look alike (1's probes are near-copies of 0's face), so wrong-person matches happen."""
    head = "subject_id,image,consent,consent_ref,source,age,gender"
    g_lines, p_lines = [head], [head]
    for s in range(N_SUBJECTS):
        write_png(root / "g" / f"{s:02d}.png", noise_image(s))
        g_lines.append(f"s{s:02d},g/{s:02d}.png,yes,form,synthetic/gallery,30,{'female' if s % 2 else 'male'}")
        for j in range(PROBES_EACH):
            base = 0 if s == 1 else s
            write_png(root / "p" / f"{s:02d}-{j}.png", noise_image(base, noise=6.0, noise_seed=100 * s + j))
            p_lines.append(f"s{s:02d},p/{s:02d}-{j}.png,yes,form,synthetic/probe,30,{'female' if s % 2 else 'male'}")
    (root / "gallery.csv").write_text("\n".join(g_lines) + "\n")
    (root / "probes.csv").write_text("\n".join(p_lines) + "\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory, fake_face_model):
    tmp_path = tmp_path_factory.mktemp("stats")
    root = tmp_path / "data"
    _manifests(root)
    cfg = ExperimentConfig()
    cfg = replace(
        cfg,
        dataset_dir=str(root),
        gallery_manifest=str(root / "gallery.csv"),
        probe_manifest=str(root / "probes.csv"),
        fpir=[0.05],
        workers=1,
        bootstrap=200,
        unseen_share=0.2,
        offline={
            **vars(cfg.offline),
            "shots": 1,
            "timing_probes": 1,
            "levels": [vars(lv) for lv in cfg.offline.levels[:1]],
            "headline": cfg.offline.levels[0].name,
        },
        scaling={
            **vars(cfg.scaling),
            "sizes": [100, 300],
            "extrapolate": [1000],
            "validation_distractors": 100,
            "tail_bootstrap": 5,
        },
        gallery={**vars(cfg.gallery), "threshold": 0.6},
    )
    out = tmp_path / "run"
    results = run_experiment(cfg, out, cache=None, progress=False, log=None)
    return out, results, cfg


def test_fpir_005_runs_to_a_complete_report(run):
    out, results, _ = run
    for name in ("results.json", "report.html", "det.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    e1 = json.loads((out / "results.json").read_text())["experiments"]["online_to_online"]
    assert set(e1["tpir_at_fpir"]) == {"0.05"}
    entry = e1["tpir_at_fpir"]["0.05"]
    # 3 non-mated subjects x 3 probes = 9 < 3 / 0.05 = 60: not resolvable; the bound is shown instead
    assert e1["n_nonmated"] == 9 and entry["resolvable"] is False and entry["n_nonmated_needed"] == 60
    html = (out / "report.html").read_text()
    assert "FPIR 5%" in html and "one-sided 95% upper bound" in html
    # issue 22: the report opens with a plain summary, and the unresolvable cell is said once per table
    # (a short starred cell and one note), not in every row
    assert html.index("<h2>In short</h2>") < html.index("<h2>Side by side with the paper</h2>")
    assert f"{round(e1['rank1'] * e1['n_mated'])} of {e1['n_mated']} searches" in html
    assert html.count("not resolvable: FPIR") <= 1  # the paper comparison's one sentence
    assert html.count("FPIR&lt;=") >= 2 and html.count("* Not resolvable") == 2
    table = summary_table(results)
    assert "FPIR<=" in table.replace(" ", "") or "one-sided" in table


def test_rates_carry_exact_intervals_and_counts(run):
    from privrisk import metrics

    _, results, _ = run
    e1 = results["experiments"]["online_to_online"]
    k = round(e1["rank1"] * e1["n_mated"])
    assert e1["rank1_ci95"] == pytest.approx(list(metrics.clopper_pearson(k, e1["n_mated"])))
    for key in ("rank5_ci95", "rank10_ci95", "tpir_at_threshold_ci95", "fpir_at_threshold_ci95"):
        lo, hi = e1[key]
        assert 0 <= lo <= hi <= 1, key
    kf, nf = e1["fpir_at_threshold_k"], e1["fpir_at_threshold_n"]
    assert nf == e1["n_nonmated"] and e1["fpir_at_threshold"] == pytest.approx(kf / nf)
    assert e1["fpir_at_threshold_ci95"] == pytest.approx(list(metrics.clopper_pearson(kf, nf)))
    v = e1["verification"]
    assert len(v["eer_ci95"]) == 2 and set(v["tar_at_far_ci95"]) == {"0.01", "0.001"}
    lo, hi = v["eer_ci95"]
    assert lo <= v["eer"] <= hi or v["eer"] == pytest.approx(lo) or v["eer"] == pytest.approx(hi)


def test_e1_says_what_its_genuine_pairs_are(run):
    _, results, _ = run
    e1 = results["experiments"]["online_to_online"]
    gp = e1["genuine_pairs"]
    q = gp["quantiles"]
    assert q["min"] <= q["p05"] <= q["median"] <= q["p95"] <= q["max"]
    assert gp["n_genuine"] == e1["verification"]["n_genuine"] and gp["same_session_studio"] is False
    # subject 1's probes are copies of subject 0's face: some genuine pair is farther than an impostor pair,
    # and the statement must not claim separation
    assert gp["n_genuine_not_closer_than_closest_impostor"] > 0
    assert "Every genuine pair" not in gp["statement"] and "not recorded" in gp["what"]


def test_e3_counts_people_and_wrong_person_identifications(run):
    out, results, cfg = run
    e3 = results["experiments"]["accretion"]
    e1 = results["experiments"]["online_to_online"]
    # people, not probes: at most the number of mated subjects, though each has 3 probes
    assert e3["n_people_identified"] <= e3["n_mated_people"] == e1["n_mated"] // PROBES_EACH
    assert e3["n_probes_identified"] >= e3["n_people_identified"] and e3["n_identified"] == e3["n_people_identified"]
    share = e3["probe_share_per_identified_person"]
    assert 0 < share["min"] <= share["mean"] <= 1
    wp = e3["wrong_person"]
    # subject 1's probes look like subject 0; whichever of them is in the gallery, some probe goes wrong
    # unless both are non-mated... the counts must agree with the per-probe table either way
    rows = [r for r in (out / "probes.csv").read_text().splitlines()[1:] if r.startswith("online_to_online,")]
    wrong = 0
    for r in rows:
        fields = r.split(",")
        truth, decision, cands = fields[2], fields[5], fields[7]
        top = cands.split(";")[0].split(":")[0] if cands else ""
        wrong += decision == "match" and top != truth
    assert wp["n_probes_wrong"] == wrong
    assert wp["all_probes"]["n"] == e1["n_probes"] and wp["nonmated"]["n"] == e1["n_nonmated"]
    acc = (out / "accretion.csv").read_text().splitlines()
    assert sum(1 for line in acc[1:] if line.startswith("wrong person,")) == len(
        {
            (r.split(",")[2], r.split(",")[7].split(";")[0].split(":")[0])
            for r in rows
            if r.split(",")[5] == "match" and r.split(",")[7].split(";")[0].split(":")[0] != r.split(",")[2]
        }
    )


def test_report_shows_the_new_sections(run):
    out, _, _ = run
    html = (out / "report.html").read_text()
    for text in (
        "E1: what its genuine pairs are",
        "Identification rates with their intervals",
        "E3: people re-identified, and profiles attached to the wrong face",
        "Clopper-Pearson",
    ):
        assert text in html, text


def test_genuine_pairs_statement_follows_the_distances():
    from types import SimpleNamespace

    from privrisk.stages.online import genuine_pairs

    rows = [SimpleNamespace(meta={"source": "london-faces/neutral"})]
    cfg = ExperimentConfig()  # default manifests: the sample set's same-session studio photos
    e1 = {"verification": {"eer": 0.0}, "rank1": 1.0}
    sep = genuine_pairs(
        [0.2, 0.3, 0.45], [0.483, 0.6, 0.9], e1, cfg, SimpleNamespace(rows=rows), SimpleNamespace(rows=rows)
    )
    assert sep["quantiles"]["max"] == 0.45 and sep["closest_impostor"] == 0.483
    assert sep["statement"].startswith(
        "Every genuine pair (max 0.450) is closer than the closest impostor pair (0.483)"
    )
    assert "follow from the set-up" in sep["statement"] and "2011 recogniser" in sep["statement"]
    assert "neutral" in sep["what"] and "smiling" in sep["what"]
    mixed = genuine_pairs(
        [0.2, 0.5, 0.7],
        [0.483, 0.6],
        {"verification": {"eer": 0.2}, "rank1": 0.67},
        cfg,
        SimpleNamespace(rows=rows),
        SimpleNamespace(rows=rows),
    )
    assert mixed["n_genuine_not_closer_than_closest_impostor"] == 2
    assert mixed["statement"].startswith("2 of 3 genuine pairs") and "Every" not in mixed["statement"]


def test_zero_note_on_log_axes():
    from privrisk.report import zero_note

    assert zero_note("FPIR", 20) == "FPIR 0 of 20: not shown on log axis; 0-0.168 (exact 95%)"


def test_accretion_hand_case():
    """Subject a has three probes (one found, one above the threshold, one matched to b); b's one probe
    is found; c (not in the gallery) is matched to a; d (not in the gallery) stays unmatched."""
    from privrisk.stages.accretion import accretion
    from privrisk.stages.common import Searches

    names = ["a", "b", "c", "d"]
    truth = np.array([0, 0, 0, 1, 2, 3])
    mated = np.array([True, True, True, True, False, False])
    cand = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [0, 1], [1, 0]])
    dist = np.array([[0.3, 0.8], [0.7, 0.9], [0.4, 0.5], [0.2, 0.9], [0.5, 0.6], [0.9, 1.0]], np.float32)
    result = accretion(ExperimentConfig(), names, Searches(truth, mated, cand, dist), {})
    e3, rows = result.metrics, result.rows
    assert (e3["n_people_identified"], e3["n_mated_people"], e3["n_probes_identified"]) == (2, 2, 2)
    assert e3["n_identified"] == 2 and e3["people_identified"]["k"] == 2
    assert e3["probe_share_per_identified_person"] == {
        "mean": pytest.approx((1 / 3 + 1) / 2),
        "min": pytest.approx(1 / 3),
        "median": pytest.approx(2 / 3),
    }
    wp = e3["wrong_person"]
    assert wp["n_probes_wrong"] == 2
    assert (wp["nonmated"]["k"], wp["nonmated"]["n"], wp["mated"]["k"], wp["mated"]["n"]) == (1, 2, 1, 4)
    assert (wp["people_with_a_wrong_identification"]["k"], wp["people_with_a_wrong_identification"]["n"]) == (2, 4)
    assert wp["n_profiles_wrongly_attributed"] == 2
    wrong = sorted((r["subject_id"], r["attributed_to"]) for r in rows if r["kind"] == "wrong person")
    assert wrong == [("a", "b"), ("c", "a")]
    assert [r["probes_leading_here"] for r in rows if r["kind"] == "re-identified"] == [1, 1]
