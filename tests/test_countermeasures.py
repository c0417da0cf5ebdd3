"""E4, the countermeasures experiment (privrisk.stages.countermeasures and its statistics), with the
fake face model and a synthetic sample world (fast and exact); its report section and how it is
turned on."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import FakeFaceModel, fake_sample_world, noise_image
from privrisk import transforms as tf
from privrisk.config import CountermeasureSettings, FaceSettings
from privrisk.errors import ConfigError
from privrisk.stages import countermeasure_stats as cs
from privrisk.stages import countermeasures as cm

SETTINGS = FaceSettings(min_face_px=1)
BOX = (0, 128, 128, 0)


@pytest.fixture(scope="module")
def fake():
    return FakeFaceModel()


@pytest.fixture(scope="module")
def world(fake):
    return fake_sample_world(fake)


# --- E4, the experiment stage ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def e4(fake, world, tmp_path_factory):
    """E4 on 12 synthetic people (gallery = their photo on disk; snapshot = two shots of their noisy
    second photo), two strengths per transform, the fake model, no cache."""
    from helpers import write_png

    w, photos, second = world
    root = tmp_path_factory.mktemp("e4")
    n = 12
    paths = [write_png(root / f"{i:03d}.png", photos[i]) for i in range(n)]
    gal = np.array([fake.encode(photos[i], [BOX])[0] for i in range(n)], np.float32)
    shots, owner = [], []
    for i in range(n - 1):  # the last person's snapshot had no detectable face: a miss
        for k in range(2):
            img = noise_image(i, size=(128, 128), noise=12.0, noise_seed=100 * i + k)
            shots.append(fake.encode(img, [BOX])[0])
            owner.append(i)
    settings = CountermeasureSettings(
        enabled=True,
        downscale=[24, 8],
        blur=[0.01, 0.1],
        jpeg=[50, 5],
        crop=[0.9, 0.3],
        occlude=["sunglasses", "mask"],
        platform_sizes=[1000, 1_000_000],
        cloak_subjects=5,
    )
    res = cm.run_countermeasures(
        settings,
        # two snapshot persons have no gallery photo: not mated
        cm.Snapshots(np.array(shots), np.array(owner), np.arange(n + 2)),
        cm.GalleryPhotos(gal, np.arange(n), [(str(p), BOX) for p in paths]),
        cm.TailModels(list(w.tail_models)),
        cm.E4Run(face_settings=SETTINGS, model=fake, workers=1),
    )
    return res, settings, gal, np.array(shots), np.array(owner), paths


def test_e4_rows_cover_every_setting_with_intervals(e4):
    res, settings, *_ = e4
    d = res.to_dict()
    json.dumps(d)
    assert d["n_persons"] == 12 and d["n_gallery"] == 12
    assert [(r["transform"], r["strength"]) for r in d["settings"]] == [
        (t, s) for t in settings.transforms for s in settings.ladder(t)
    ]
    for r in d["settings"]:
        for key in ("rank1", "rank10", "tpir_at_threshold"):
            lo, hi = r[key]["ci95"]
            assert r[key]["n"] == 12 and lo <= r[key]["rate"] <= hi
        assert r["rank10"]["rate"] >= r["rank1"]["rate"] >= r["tpir_at_threshold"]["rate"]
        assert 0 < r["ssim"] <= 1 and r["detection"]["n"] == 12
        for p in r["platform"].values():
            assert 0 <= p["range"][0] <= p["rank1"] <= p["range"][1] <= 1
        # platform scale never helps the searcher: the model value is at most the measured rank-1
        assert r["platform"]["1000000"]["rank1"] <= r["platform"]["1000"]["rank1"] <= r["rank1"]["rate"] + 1e-12
        # closed form, nothing searched: "model" within the real pairs' reach, never "simulated"
        assert r["platform"]["1000"]["kind"] == "model" and r["platform"]["1000000"]["kind"] == "extrapolated"
        # the paired test and the hub count sit in every row, consistent with the ranks
        base = np.array(d["baseline"]["ranks"]) == 1
        hit = np.array(r["ranks"]) == 1
        x = r["paired_vs_baseline"]
        assert (x["found_only_without"], x["found_only_with"], x["n"]) == (
            int((base & ~hit).sum()),
            int((~base & hit).sum()),
            12,
        )
        assert 0 < x["p_value"] <= 1
        assert r["hub"]["pairs"]["n"] == 11 * 11 and r["hub"]["photos"]["n"] == 12  # 11 searchable people
    # untransformed: everyone's snapshot finds their photo, except the one without a usable snapshot
    assert d["baseline"]["rank1"]["k"] == 11 and d["baseline"]["ranks"][11] > 12


def test_e4_measures_what_it_says(e4, fake):
    """Rank-1 recomputed by hand for one setting: the person's transformed photo against everyone
    else's unchanged photo, best distance over their two shots."""
    res, settings, gal, shots, owner, paths = e4
    row = next(r for r in res.rows if r["transform"] == "blur" and r["strength"] == 0.1)
    hits = 0
    for i in range(11):
        img = tf.apply_transform(
            np.asarray(__import__("PIL.Image").Image.open(paths[i]).convert("RGB")), BOX, "blur", 0.1
        )
        own = np.linalg.norm(shots[owner == i] - fake.encode(img, [BOX])[0], axis=1).min()
        d = np.linalg.norm(shots[owner == i][:, None] - gal[None], axis=2).min(axis=0)
        d[i] = np.inf
        hits += bool((d >= own).all())
    assert row["rank1"]["k"] == hits


class PickyDetector(FakeFaceModel):
    """The fake model, with a detector that misses about a third of the photos it is shown (chosen by
    the pixels' hash, so the same photo is always missed)."""

    def detect(self, rgb, detector="hog", upsample=1):
        import hashlib

        if int(hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(), 16) % 3 == 0:
            return []
        return super().detect(rgb, detector, upsample)


def test_e4_with_this_detector_drops_the_photos_it_misses(world, tmp_path):
    """'Rank-1 with this detector' recomputed by hand: a transformed photo whose face the detector
    misses is not in the gallery, so only detected photos can come first; the conservative rank-1
    still searches every photo at its known box."""
    from PIL import Image

    from helpers import write_png

    w, photos, _ = world
    picky = PickyDetector()
    n = 12
    paths = [write_png(tmp_path / f"{i:03d}.png", photos[i]) for i in range(n)]
    gal = np.array([picky.encode(photos[i], [BOX])[0] for i in range(n)], np.float32)
    shots = np.array(
        [picky.encode(noise_image(i, size=(128, 128), noise=12.0, noise_seed=7 * i), [BOX])[0] for i in range(n)]
    )
    settings = CountermeasureSettings(
        enabled=True, transforms=["downscale", "blur", "jpeg", "crop"], downscale=[32, 8], blur=[0.05],
        jpeg=[20], crop=[0.6], platform_sizes=[1000], cloak_subjects=0,
    )  # fmt: skip
    res = cm.run_countermeasures(
        settings,
        cm.Snapshots(shots, np.arange(n), np.arange(n)),
        cm.GalleryPhotos(gal, np.arange(n), [(str(p), BOX) for p in paths]),
        cm.TailModels(list(w.tail_models)),
        cm.E4Run(face_settings=SETTINGS, model=picky, workers=1),
    )
    missed_somewhere = False
    for row in res.rows:
        hits = seen_hits = detected = 0
        for i in range(n):
            img = tf.apply_transform(
                np.asarray(Image.open(paths[i]).convert("RGB")), BOX, row["transform"], row["strength"]
            )
            found = bool(picky.detect(img))
            own = np.linalg.norm(shots[i] - picky.encode(img, [BOX])[0])
            d = np.linalg.norm(shots[i][None] - gal, axis=1)
            d[i] = np.inf
            hit = bool((d >= own).all())
            hits += hit
            seen_hits += hit and found
            detected += found
        assert row["detection"]["k"] == detected
        assert row["rank1"]["k"] == hits
        assert row["rank1_this_detector"]["k"] == seen_hits and row["rank1_this_detector"]["n"] == n
        x = row["paired_this_detector_vs_baseline"]
        assert x["n"] == n and x["found_only_with"] == 0  # the original photos were all detected
        missed_somewhere |= detected < n and seen_hits < hits
    assert missed_somewhere  # the test exercised a setting where the two views differ
    d = res.to_dict()
    assert d["baseline"]["rank1_this_detector"] == d["baseline"]["rank1"]
    for t in settings.transforms:
        assert "statement" in d["transforms"][t]["trend_this_detector"]


def test_e4_summary_crossing_cheapest_and_ranking(e4):
    res, settings, *_ = e4
    d = res.to_dict()
    for t in settings.transforms:
        s = d["transforms"][t]
        below = s["rank1_below_50"]
        rows = [r for r in d["settings"] if r["transform"] == t]
        if t == "occlude":
            assert below["categorical"]
            assert set(below["below_50"]) == {r["strength"] for r in rows if r["rank1"]["rate"] < 0.5}
        elif below["status"] != "not reached within the ladder":
            lo_end, hi_end = below["interval"]
            if lo_end is not None and hi_end is not None:
                # the interval runs from where the lower CI end crosses to where the upper end does
                assert min(lo_end, hi_end) <= below["strength"] <= max(lo_end, hi_end)
        for size, per_target in s["cheapest"].items():
            for target, best in per_target.items():
                ok = [r for r in rows if r["platform"][size]["range"][1] < float(target)]
                if best is None:
                    assert not ok
                else:
                    assert best["ssim"] == max(r["ssim"] for r in ok)
    for ref, entries in d["ranking_at_equal_ssim"].items():
        assert sorted(e["transform"] for e in entries) == sorted(settings.transforms)
        assert [e["rank1"] for e in entries] == sorted(e["rank1"] for e in entries)
        for e in entries:
            if e["strength"] is not None:
                r = next(r for r in d["settings"] if (r["transform"], r["strength"]) == (e["transform"], e["strength"]))
                assert r["ssim"] >= float(ref)


def test_e4_crossing_interpolates_and_reports_its_interval():
    rows = [
        {"strength": 64, "rank1": {"rate": 0.9, "ci95": [0.8, 0.97]}},
        {"strength": 32, "rank1": {"rate": 0.6, "ci95": [0.45, 0.74]}},
        {"strength": 16, "rank1": {"rate": 0.2, "ci95": [0.1, 0.35]}},
    ]
    out = cs.below_half("downscale", rows)
    # rank-1 crosses 50% a quarter of the way from 32 to 16 px on a log scale
    assert out["strength"] == pytest.approx(32 * (16 / 32) ** 0.25) and out["status"] == "reached"
    lo_end, hi_end = out["interval"]
    assert hi_end < out["strength"] < lo_end and 32 < lo_end < 64  # the lower CI end crosses first (milder)
    assert cs.below_half("jpeg", [{"strength": 50, "rank1": {"rate": 0.9, "ci95": [0.8, 1.0]}}])["strength"] is None


# --- report and CLI ---------------------------------------------------------------------------------


def _ranking_from_results(e4: dict) -> dict:
    """The ranking at equal SSIM computed independently from results.json's per-setting rows."""
    base = e4["baseline"]["rank1"]["rate"]
    out = {}
    for ref in e4["config"]["reference_ssim"]:
        best = {}
        for r in e4["settings"]:
            if r["ssim"] >= ref:
                best[r["transform"]] = min(best.get(r["transform"], base), r["rank1"]["rate"])
        for t in e4["config"]["transforms"]:
            best.setdefault(t, base)
        out[f"{ref:g}"] = sorted(best, key=lambda t: (best[t], t))
    return out


def test_report_ranking_at_equal_ssim_matches_results_json(e4):
    import re

    from privrisk.report import countermeasures_plot, countermeasures_section

    res = e4[0]
    results = {"experiments": {"countermeasures": json.loads(json.dumps(res.to_dict()))}}
    page = countermeasures_section(results)
    shown = {
        ref: re.findall(r'data-transform="([^"]+)"', block)
        for ref, block in re.findall(r'<ol class="e4-ranking" data-ssim="([^"]+)">(.*?)</ol>', page, re.S)
    }
    assert shown == _ranking_from_results(results["experiments"]["countermeasures"])
    assert len(shown) == 3
    for t in ("downscale", "blur", "jpeg", "crop", "occlude"):
        assert f"<td>{t}</td>" in page
    assert countermeasures_plot(results)[:4] == b"\x89PNG"
    assert countermeasures_section({"experiments": {}}) == "" and countermeasures_plot({"experiments": {}}) is None


def test_report_shows_whether_a_cloak_survives():
    from privrisk.report import cloak_section

    cloak = {
        "method": "test cloak",
        "conditions": {
            "clean": {"rank1": {"rate": 0.1, "k": 1, "n": 10, "ci95": [0.0, 0.45]}, "survives": True},
            "after JPEG 75": {"rank1": {"rate": 0.9, "k": 9, "n": 10, "ci95": [0.55, 1.0]}, "survives": False},
        },
    }
    page = cloak_section(cloak)
    assert "after JPEG 75" in page and "<td>NO</td>" in page and "<td>yes</td>" in page


def test_e4_records_whether_the_cloak_survives_and_the_report_shows_it(e4):
    from privrisk.report import countermeasures_section

    d = json.loads(json.dumps(e4[0].to_dict()))
    c = d["cloak"]
    assert 4 <= c["n"] <= 5 and 0 < c["ssim"] <= 1
    assert set(c["conditions"]) == {"clean", "after JPEG 75", "after resize 0.5"}
    for name in ("after JPEG 75", "after resize 0.5"):
        v = c["conditions"][name]
        assert v["survives"] == (v["shift_kept"] >= 0.5)
    assert c["survives_jpeg75"] == c["conditions"]["after JPEG 75"]["survives"]
    assert c["survives_resize_0.5"] == c["conditions"]["after resize 0.5"]["survives"]
    page = countermeasures_section({"experiments": {"countermeasures": d}})
    assert "Adversarial cloak" in page
    for name in ("after JPEG 75", "after resize 0.5"):
        verdict = "yes" if c["conditions"][name]["survives"] else "NO"
        assert re.search(rf"<td>{name}</td>.*?<td>{verdict}</td></tr>", page), name
        x = c["conditions"][name]["effect"]
        assert x["lowers_rank1"] == (x["p_value"] < 0.05)
    assert c["verdict"] in __import__("html").unescape(page)


def test_frontier_trend_says_which_way_rank1_goes():
    def pt(ssim, r1):
        return {"ssim": ssim, "rank1": {"rate": r1}}

    falls = cs.frontier_trend(pt(1.0, 0.9), [pt(0.9, 0.7), pt(0.8, 0.4)])
    assert falls["spearman_rho"] == pytest.approx(1.0) and falls["statement"].startswith("rank-1 falls as SSIM falls")
    rises = cs.frontier_trend(pt(1.0, 0.8), [pt(0.9, 0.85), pt(0.8, 0.9)])
    assert rises["spearman_rho"] == pytest.approx(-1.0) and rises["statement"].startswith("rank-1 rises")
    assert cs.frontier_trend(pt(1.0, 0.8), [pt(0.9, 0.8)])["spearman_rho"] is None
    # E4's blur with this detector: up, up, flat, then down to 10% at the end; a weak rho is no direction
    ssim, r1 = [0.916, 0.856, 0.801, 0.772, 0.739, 0.714], [0.817, 0.841, 0.902, 0.902, 0.866, 0.098]
    weak = cs.frontier_trend(pt(1.0, 0.793), [pt(a, b) for a, b in zip(ssim, r1)])
    assert weak["spearman_p"] >= 0.05 and weak["statement"].startswith("no monotone trend")


def test_frontier_trend_says_how_far_rank1_moves_and_whether_it_is_significant():
    """A positive rho resting on one person of 82 (the webcam downscale case) is said as such."""

    def pt(ssim, k, lost=None):
        r = {"ssim": ssim, "rank1": {"rate": k / 82, "k": k, "n": 82}}
        if lost is not None:
            r["paired_vs_baseline"] = cs.paired_test(np.ones(82, bool), np.arange(82) >= lost)
        return r

    t = cs.frontier_trend(pt(1.0, 82), [pt(0.9, 82, 0), pt(0.8, 81, 1)])
    assert t["spearman_rho"] > 0 and t["significant_settings"] == 0
    assert "spans 98.8%-100.0% (81-82 of 82)" in t["statement"]
    assert "no setting differs from the original" in t["statement"]
    t = cs.frontier_trend(pt(1.0, 82), [pt(0.9, 81, 1), pt(0.8, 70, 12)])
    assert t["significant_settings"] == 1 and "1 of 2 settings differ" in t["statement"]


def test_experiment_flag_and_config_turn_e4_on(tmp_path, monkeypatch):
    from helpers import ROOT
    from privrisk import cli
    from privrisk.cli import experiments as cli_experiments
    from privrisk.config import ExperimentConfig
    from privrisk.experiment import load_config

    assert ExperimentConfig().countermeasures.enabled is False  # opt-in
    seen = {}
    monkeypatch.setattr(cli_experiments, "_run", lambda args, config: seen.setdefault("cfg", config) and 0)
    cli.main(["experiment", str(ROOT / "examples" / "experiment.toml"), "--out", str(tmp_path), "--countermeasures"])
    assert seen["cfg"].countermeasures.enabled
    cfg = load_config(ROOT / "examples" / "countermeasures.toml")
    assert cfg.countermeasures.enabled and cfg.countermeasures.snapshot_level == "street"
    bad = tmp_path / "bad.toml"
    bad.write_text('[countermeasures]\nenabled = true\nsnapshot_level = "moon"\n')
    with pytest.raises(ConfigError, match="countermeasures.snapshot_level"):
        load_config(bad)
    bad.write_text('[countermeasures]\ntransforms = ["swirl"]\n')
    with pytest.raises(ConfigError, match="swirl"):
        load_config(bad)


def _line(*xs):
    """128-d vectors on the first axis at the given positions."""
    v = np.zeros((len(xs), 128), np.float32)
    v[:, 0] = xs
    return v


def _best(shots, owner, gal, n_persons):
    d = np.abs(shots[:, 0][:, None] - gal[:, 0][None, :])
    best = np.full((n_persons, len(gal)), np.inf)
    for r, o in enumerate(owner):
        best[o] = np.minimum(best[o], d[r])
    return best


def test_hubness_counts_a_transformed_photo_that_attracts_another_persons_search():
    # gallery: persons 0, 1, 2 at 0, 10, 20, and a gallery-only face at 40; person 3 has a photo but no snapshot
    gal = _line(0, 10, 20, 60, 40)
    shots, owner = _line(0.5, -0.5, 10.5, 20.5), np.array([0, 0, 1, 2])
    best = _best(shots, owner, gal, 4)
    col = np.array([0, 1, 2, 3])
    # person 0's photo, transformed, lands 0.2 from person 1's snapshot (person 1's own photo is 0.5 away)
    m = cs.hub_matrix(shots, owner, _line(10.3, 10, 20, 60), [0, 1, 2, 3], 4)
    assert m[1, 0] == pytest.approx(0.2, abs=1e-5) and m[3].tolist() == [np.inf] * 4
    h = cs.hubness(m, best, col)
    # searchable: 0, 1, 2 (3 has no shot); each searches the 3 others' photos: 9 pairs, one hub
    assert (h["pairs"]["k"], h["pairs"]["n"]) == (1, 9)
    assert (h["photos"]["k"], h["photos"]["n"]) == (1, 4)
    lo, hi = h["photos"]["ci95"]
    assert lo < 0.25 < hi
    # the same photo transformed less (3.0 from the original spot): it attracts nobody
    h = cs.hubness(cs.hub_matrix(shots, owner, _line(3.0, 10, 20, 60), [0, 1, 2, 3], 4), best, col)
    assert h["pairs"]["k"] == 0 and h["photos"]["k"] == 0 and h["photos"]["ci95"][0] == 0.0
    # untransformed (the baseline form): nobody's photo is another person's top-1
    assert cs.hubness(best[:, col], best, col)["pairs"]["k"] == 0


def test_hubness_sets_the_protected_persons_own_label_aside():
    # person 2's snapshot is closer to person 1's ORIGINAL photo (0.2) than to their own (9.8): with person 1's
    # photo transformed far away that wrong match is gone, and j's rival is its own photo, not person 1's original
    gal = _line(0, 10, 20)
    shots, owner = _line(0.0, 10.0, 10.2), np.array([0, 1, 2])
    best = _best(shots, owner, gal, 3)
    col = np.array([0, 1, 2])
    assert cs.hubness(best[:, col], best, col)["pairs"]["k"] == 1  # the baseline's wrong top-1 (2 -> 1)
    far = cs.hub_matrix(shots, owner, _line(0, 30, 20), [0, 1, 2], 3)
    assert cs.hubness(far, best, col)["pairs"]["k"] == 0
    # several photos per person: the nearest one counts
    near = cs.hub_matrix(shots, owner, _line(0, 30, 10.15, 20), [0, 1, 1, 2], 3)
    h = cs.hubness(near, best, col)
    assert (h["pairs"]["k"], h["photos"]["k"]) == (1, 1)  # person 1's near copy is top-1 for person 2 only


def test_paired_test_is_exact_mcnemar_on_the_discordant_people():
    base = np.array([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], bool)
    with_it = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 1], bool)
    x = cs.paired_test(base, with_it)
    assert (x["found_only_without"], x["found_only_with"], x["n"]) == (3, 1, 10)
    assert x["p_value"] == pytest.approx(0.625)  # 2 * P(X >= 3), X ~ Bin(4, 1/2) = 2 * 5/16
    x = cs.paired_test(np.ones(8, bool), np.r_[np.zeros(6, bool), np.ones(2, bool)])
    assert (x["found_only_without"], x["found_only_with"]) == (6, 0)
    assert x["p_value"] == pytest.approx(2 * 0.5**6)
    assert cs.paired_test(base, base)["p_value"] == 1.0


def test_closed_form_scores_each_person_with_the_fold_model_that_never_saw_them(world, fake):
    """Held-out scoring: persons in fold 0 are scored by fold 0's model, persons in fold 1 by fold
    1's; with the same model in every fold it is the plain closed form."""
    from privrisk import tailmodel

    w, _, second = world
    m_a = w.tail_models[0]
    q = np.array([fake.encode(p, [(0, p.shape[1], p.shape[0], 0)])[0] for p in second], np.float32)
    m_b = tailmodel.fit(
        tailmodel.Pairs(q, w.subjects, w.vectors, w.subjects), kind=tailmodel.KINDS[-1], n_boot=20, seed=3
    )
    rng = np.random.default_rng(5)
    n = 8
    owner = np.repeat(np.arange(n), 2)
    shots = rng.standard_normal((2 * n, 128)).astype(np.float32) * 0.05
    own_d = np.linspace(0.35, 0.6, n)
    first = (np.arange(n) % 3 != 0).astype(float)
    fold = (owner >= 4).astype(np.int64)
    sizes = [10_000, 1_000_000]
    plain = cm._closed_form_rank1(cm.TailModels([m_a]), cm.Snapshots(shots, owner), own_d, first, sizes, 1)
    same = cm._closed_form_rank1(
        cm.TailModels([m_a], [{0: m_a, 1: m_a}]), cm.Snapshots(shots, owner, fold=fold), own_d, first, sizes, 1
    )
    np.testing.assert_allclose(same[0], plain[0])
    point, lo, hi = cm._closed_form_rank1(
        cm.TailModels([m_a], [{0: m_a, 1: m_b}]), cm.Snapshots(shots, owner, fold=fold), own_d, first, sizes, 1
    )
    radius = own_d[owner]
    s_a = tailmodel.rank_probabilities(m_a, tailmodel.Captures(shots, owner, n), radius, sizes)
    s_b = tailmodel.rank_probabilities(m_b, tailmodel.Captures(shots, owner, n), radius, sizes)
    by_fold = np.where((np.arange(n) >= 4)[:, None], s_b, s_a)
    np.testing.assert_allclose(point, (first[:, None] * by_fold).mean(axis=0))
    assert not np.allclose(point, plain[0])  # the routing made a difference here
    assert np.all(lo <= point) and np.all(point <= hi)
