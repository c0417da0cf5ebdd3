"""The exposure score: properties, wiring to the identification curves (new points format and the
old one), the multi-photo rule, no double counting, combined changes, national-ID rules, IRT."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrisk.config import ExposureSettings
from privrisk.errors import ConfigError, EstimationError, ProfileError
from privrisk.exposure import (
    INFERENCES,
    IdentificationCurves,
    MultiPhotoGain,
    Scorer,
    change_options,
    estimate_irt,
    estimate_sensitivity,
    harden,
    link_probability,
    population_analysis,
    score,
    search_changes,
    single_changes,
    top_changes,
)
from privrisk.profiles import (
    AUDIENCES,
    FIELDS,
    LEVELS,
    PRESETS,
    generate_profiles,
    load_profile,
    national_id_inference,
    profile_from_dict,
    rrn_check_digit,
)

SIZES = [100, 10_000, 1_000_000, 1_000_000_000]
KINDS = ["measured", "simulated", "extrapolated", "extrapolated"]


def points_curve(rank10, spread=0.05, wrong=0.1, rank1=None, shots=None):
    """A curve in the h-tail points format (notes/CURVES.md), rank10 given per SIZES."""
    pts = []
    for size, kind, r in zip(SIZES, KINDS, rank10):
        r1 = r * 0.8 if rank1 is None else rank1
        pts.append(
            {
                "gallery_size": size,
                "kind": kind,
                "rank1": r1,
                "rank1_range": [max(r1 - spread, 0), min(r1 + spread, 1)],
                "rank10": r,
                "rank10_range": [max(r - spread, 0), min(r + spread, 1)],
                "fpir_at_threshold": wrong,
                "fpir_range": [wrong / 2, wrong * 2],
                "wrong_top_under_threshold": wrong,
                "wrong_top_range": [wrong / 2, wrong * 2],
                "n_persons": 82,
            }
        )
    c = {"measured": [], "predicted": {}, "points": pts}
    if shots:
        c["shots"] = shots
    return c


def curves_file(rank10, **kw) -> IdentificationCurves:
    return IdentificationCurves(
        {
            "offline_to_online/street": points_curve(rank10, **kw),
            "online_to_online": points_curve([1.0, 1.0, 0.99, 0.97]),
        },
        source="test",
    )


#: a measured gain: one capture finds 50% of 100 people, six find 80% (log-odds gain measurable)
GAIN = MultiPhotoGain(
    {
        "shots_in_e2": 3,
        "levels": {
            "street": {
                "shots": [1, 2, 3, 4, 5, 6],
                "n_persons": 100,
                "rank1": [0.4, 0.5, 0.55, 0.6, 0.62, 0.64],
                "rank10": [0.5, 0.6, 0.66, 0.7, 0.75, 0.8],
            },
            "webcam": {"shots": [1, 2, 3], "n_persons": 100, "rank1": [1.0, 1.0, 1.0], "rank10": [1.0, 1.0, 1.0]},
        },
    },
    source="test-gain",
)
CURVES = curves_file([0.9, 0.7, 0.5, 0.3])


def old_curves(rate_at_large: float, rate_at_small: float = 1.0) -> IdentificationCurves:
    pts = [{"gallery_size": 100, "rank1": rate_at_small}, {"gallery_size": 1_000_000, "rank1": rate_at_large}]
    pred = {"gallery_size": [1_000_000, 1_000_000_000], "rank1": [rate_at_large, rate_at_large / 2]}
    return IdentificationCurves(
        {
            "online_to_online": {"measured": pts, "predicted": pred},
            "offline_to_online/street": {"measured": pts, "predicted": pred},
        },
        source="old",
    )


def sc(profile, audience="stranger", curves=CURVES, **kw):
    return score(profile, curves, audience, ExposureSettings(**kw), GAIN)


levels = st.sampled_from(LEVELS)
profiles = st.builds(
    lambda vis, pub, tag, name, travel, country, year, town: profile_from_dict(
        {
            "visibility": vis,
            "public_photos_with_face": pub,
            "tagged_photos_with_face": tag,
            "real_name_used": name,
            "travel_plans_specific": travel,
            "birth_country": country,
            "birth_year": year,
            "hometown": town,
        }
    ),
    st.fixed_dictionaries({f: levels for f in FIELDS}),
    st.integers(0, 30),
    st.integers(0, 30),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["US", "KR", "GB"]),
    st.integers(1940, 2022),
    st.sampled_from([None, "Seoul", "Busan", "Daegu", "Nowhere"]),
)


# --- properties ---------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(profiles, st.sampled_from(list(FIELDS)), st.sampled_from(AUDIENCES))
def test_more_visibility_never_lowers_the_score(profile, field, audience):
    current = LEVELS.index(profile.visibility[field])
    base = sc(profile, audience)
    for higher in LEVELS[current + 1 :]:
        s = sc(profile.with_change(**{field: higher}), audience)
        assert s.score >= base.score - 1e-9
        assert s.score_range[0] >= base.score_range[0] - 1e-9 and s.score_range[1] >= base.score_range[1] - 1e-9
    more = sc(profile.with_change(public_photos_with_face=profile.public_photos_with_face + 5), audience)
    assert more.score >= base.score - 1e-9


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_audiences_are_ordered(profile):
    s = [sc(profile, a).score for a in ("stranger", "friend_of_friend", "friend")]
    assert s[0] <= s[1] + 1e-9 <= s[2] + 2e-9


@settings(max_examples=50, deadline=None)
@given(profiles, st.sampled_from(AUDIENCES))
def test_everything_only_me_is_the_minimum(profile, audience):
    hidden = profile.with_change(**{f: "only_me" for f in FIELDS}, public_photos_with_face=0)
    assert sc(hidden, audience).score == 0.0 <= sc(profile, audience).score
    assert sc(hidden, audience).score_range == (0.0, 0.0)


@settings(max_examples=150, deadline=None)
@given(profiles, st.sampled_from(AUDIENCES))
def test_no_double_counting(profile, audience):
    """The rule: a group of fields and its inference count max(fields, inference), except the
    national-ID inference, which prices only the ID's secret digits and adds. So the score is
    never higher than the sum of the separate contributions (each field and each inference
    counted alone), and strictly lower whenever a top-up inference and one of its fields both count."""
    s = sc(profile, audience)
    separate = sum(p.alone for p in s.parts) + sum(p.alone for p in s.inferences)
    assert s.score <= separate + 1e-9
    for inf in s.inferences:
        rule = INFERENCES[inf.field]
        fields = sum(p.points for p in s.parts if p.field in rule.sources)
        if rule.adds:
            assert inf.points == pytest.approx(inf.alone)
        else:
            assert fields + inf.points == pytest.approx(max(fields, inf.alone))
            if inf.alone > 0 and fields > 0:
                assert s.score < separate - 1e-9


def test_travel_plans_and_home_location_are_not_counted_twice():
    dated = profile_from_dict(
        {"visibility": {"profile_photo": "public", "travel_plans": "public"}, "travel_plans_specific": True}
    )
    s = sc(dated, "friend")
    travel = next(p for p in s.parts if p.field == "travel_plans").points
    absence = next(p for p in s.inferences if p.field == "absence_from_home").points
    photo = next(p for p in s.parts if p.field == "profile_photo").points
    # fields 0.7 + inference topping up to 1.0: together 1.0, not 0.7 + 0.8
    assert (travel + absence) / photo == pytest.approx(1.0 / 0.2)
    home = profile_from_dict({"visibility": {"current_city": "public", "workplace": "public", "school": "public"}})
    s = sc(home, "friend")
    assert next(p for p in s.inferences if p.field == "home_location").points == 0.0  # 1.4 of fields > 1.2


# --- P(linked) from the curves -------------------------------------------------------------------------


def test_p_linked_reads_rank10_and_its_range_from_points():
    pt = CURVES.point("offline_to_online/street", 1_000_000_000)
    assert (pt.metric, pt.value, pt.lo, pt.hi, pt.kind) == ("rank10", 0.3, 0.25, 0.35, "extrapolated")
    mid = CURVES.point("offline_to_online/street", 1_000)
    assert mid.value == pytest.approx(0.8) and mid.kind == "simulated"  # halfway in log10 between 100 and 10^4
    assert mid.wrong_top == pytest.approx(0.1) and mid.wrong_top_range == (pytest.approx(0.05), pytest.approx(0.2))
    # three photos = the curve's own three fused captures: P(linked) is the curve's value and range
    link = link_probability(3, "stranger", CURVES, ExposureSettings(), GAIN)
    assert (link.p, link.lo, link.hi) == (pytest.approx(0.3), pytest.approx(0.25), pytest.approx(0.35))
    assert link.k == 10 and link.wrong_person == pytest.approx(0.1) and link.fpir_range == (0.05, 0.2)
    assert "led to the wrong person" in sc(profile_from_dict({"visibility": {"profile_photo": "public"}})).explain()
    # one photo: the measured log-odds gain of 3 captures over 1 taken off
    d3 = math.log(0.66 / 0.34) - math.log(0.5 / 0.5)
    one = link_probability(1, "stranger", CURVES, ExposureSettings(), GAIN)
    assert one.p == pytest.approx(1 / (1 + math.exp(-(math.log(0.3 / 0.7) - d3))))
    assert link_probability(0, "stranger", CURVES, ExposureSettings(), GAIN).p == 0.0


def test_several_photos_are_not_independent_chances():
    settings_ = ExposureSettings()
    p = [link_probability(n, "stranger", CURVES, settings_, GAIN) for n in range(1, 40)]
    assert all(b.p >= a.p - 1e-12 for a, b in zip(p, p[1:]))  # more photos never lower it
    p1 = p[0].p
    for n in (2, 6, 11, 30):
        assert p[n - 1].p < 1 - (1 - p1) ** n  # far below the independence formula
    assert p[10].p < 0.9  # 11 photos at one-photo P = 0.2 stay far from saturation
    # measured up to 6 photos (no extra range from the rule), extrapolated beyond with a range
    assert p[5].hi - p[5].lo < p[29].hi - p[29].lo
    assert p[29].kind == "extrapolated" and any("extrapolated past 6" in n for n in p[29].notes)


def test_measured_gain_range_is_carried():
    data = {
        "shots_in_e2": 3,
        "levels": {
            "street": {
                "n_persons": 100,
                "rank10": [0.5, 0.6, 0.66],
                "rank10_gain_range": [[0, 0], [-0.1, 0.9], [0.3, 1.2]],
            }
        },
    }
    gain = MultiPhotoGain(data, source="t")
    d, lo, hi, _ = gain.shift("street", 2)
    assert lo == 0.0 <= d <= hi == 0.9  # never below 0: a second photo cannot hurt
    d5, lo5, hi5, how = gain.shift("street", 5)
    assert lo5 == pytest.approx(0.3)  # the measured low end at 3 photos: no further gain past it
    assert hi5 > 1.2 and "extrapolated past 3" in how
    one = link_probability(1, "stranger", CURVES, ExposureSettings(), gain)
    assert one.lo < one.p < one.hi


def test_gain_from_an_experiments_fusion_block():
    results = {
        "experiments": {
            "offline_to_online": {
                "levels": {
                    "street": {
                        "fusion": {
                            "shots": 3,
                            "n_mated": 82,
                            "rank1_single": 0.5,
                            "rank1_fused": 0.7,
                            "rank1_single_ci95": [0.39, 0.61],
                            "rank1_fused_ci95": [0.59, 0.8],
                        }
                    },
                    "far": {"fusion": {"shots": 3, "n_mated": 82, "rank1_single": None, "rank1_fused": None}},
                }
            }
        }
    }
    gain = MultiPhotoGain.from_results(results, "r.json")
    assert gain.shots_in_e2 == 3 and "E2 fusion" in gain.source
    d3, lo3, hi3, how = gain.shift("street", 3)
    assert d3 == pytest.approx(math.log(0.7 / 0.3)) and lo3 < d3 < hi3 and "rank-1 gain" in how
    d2 = gain.shift("street", 2)[0]
    assert d2 == pytest.approx(d3 * math.log(2) / math.log(3))  # interpolated in ln n
    d9, lo9, hi9, _ = gain.shift("street", 9)
    assert d9 > d3 and hi9 > hi3 and lo9 == pytest.approx(lo3)  # beyond 3: from no further gain to c ln n
    assert MultiPhotoGain.from_results({"experiments": {}}, "x") is None


def test_level_without_measurable_gain_uses_the_measured_levels_and_says_so():
    shots, d, lo, hi, c, how = GAIN.curve("webcam")
    assert "assumption" in how and c == pytest.approx(GAIN.curve("street")[4])
    assert GAIN.shift("webcam", 4)[0] == pytest.approx(c * math.log(4))


def test_old_curve_files_fall_back_to_rank1_with_a_note():
    old = old_curves(0.5, 0.9)
    pt = old.point("offline_to_online/street", 1_000_000_000)
    assert pt.metric == "rank1" and pt.value == pytest.approx(0.25) and "rank-1 only" in pt.note
    s = score(
        profile_from_dict({"visibility": {"profile_photo": "public", "phone": "public"}}),
        old,
        "stranger",
        ExposureSettings(),
        GAIN,
    )
    assert s.link.k == 1 and any("rank-1 only" in n for n in s.link.notes)
    assert old.rank1("online_to_online", 10_000) == pytest.approx(0.9 + (0.5 - 0.9) * 0.5)
    with pytest.raises(ConfigError, match="not in"):
        old.rank1("nope", 10)


def test_score_follows_the_curve_and_carries_its_range():
    profile = profile_from_dict({"visibility": {"profile_photo": "public", "phone": "public", "birth_date": "public"}})
    low, high = (
        sc(profile, curves=curves_file([0.9, 0.5, 0.2, 0.1])),
        sc(profile, curves=curves_file([1, 0.9, 0.9, 0.9])),
    )
    assert low.score < high.score
    assert low.score_range[0] < low.score < low.score_range[1]
    assert low.score == pytest.approx(low.score_if_linked * low.link.p)
    # a friend of a friend searches a smaller gallery: higher P(linked)
    assert sc(profile, "friend_of_friend").link.p > sc(profile, "stranger").link.p


def test_shipped_curves_drive_the_default_score():
    curves = IdentificationCurves.shipped()
    assert "online_to_online" in curves.names and any(n.startswith("offline_to_online/") for n in curves.names)
    for name in curves.names:
        rates = [curves.point(name, s).value for s in (100, 1e4, 1e6, 1e9)]
        assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert ExposureSettings().curve == "offline_to_online/street"


def test_points_with_nulls_use_the_points_that_carry_the_value():
    c = points_curve([0.9, 0.7, 0.5, 0.3])
    c["points"][2]["rank10"] = c["points"][2]["rank10_range"] = None
    c["points"][1]["wrong_top_under_threshold"] = None
    curves = IdentificationCurves({"offline_to_online/street": c}, source="t")
    pt = curves.point("offline_to_online/street", 1_000_000)
    assert pt.value == pytest.approx(0.7 + (0.3 - 0.7) * (6 - 4) / (9 - 4)) and pt.wrong_top == pytest.approx(0.1)


def test_malformed_curves_get_a_config_error():
    with pytest.raises(ConfigError, match="curve 'x': malformed"):
        IdentificationCurves({"x": {"points": [{"gallery_size": 10}]}}, source="bad")


# --- changes -------------------------------------------------------------------------------------------


def _brute_force(profile, audience, curves=CURVES):
    """The largest drop per setting over every set of up to 3 changes (drop = score's drop plus its
    upper end's drop, the documented ranking quantity)."""
    options = change_options(profile, audience)
    s0 = sc(profile, audience, curves)
    best = 0.0
    for size in (1, 2, 3):
        for combo in itertools.combinations(options, size):
            merged = {}
            for o in combo:
                merged |= o.change
            s1 = sc(profile.with_change(**merged), audience, curves)
            drop = (s0.score - s1.score) + (s0.score_range[1] - s1.score_range[1])
            if drop > 1e-9:
                best = max(best, drop / size)
    return best


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("audience", AUDIENCES)
def test_first_suggestion_is_the_largest_drop_per_setting(preset, audience):
    profile = profile_from_dict(PRESETS[preset] | {"birth_country": "US", "birth_year": 1995})
    best = top_changes(profile, Scorer(CURVES, gain=GAIN), audience)
    expected = _brute_force(profile, audience)
    if expected == 0:
        assert best == []
        return
    assert best[0].per_setting == pytest.approx(expected)
    for c in best:
        # never a change that leaves this audience's score (and its range) as it is
        assert c.after < c.before - 1e-9 or c.after_high < c.before_high - 1e-9
        assert c.effect[audience] == (pytest.approx(c.before), pytest.approx(c.after))
        assert set(c.effect) == set(AUDIENCES)


def test_every_suggested_change_matters():
    profile = profile_from_dict(PRESETS["everything_public"])
    for c in search_changes(profile, Scorer(CURVES, gain=GAIN), "stranger")[:50]:
        for key in c.settings:
            rest = sc(profile.with_change(**{k: v for k, v in c.change.items() if k != key}))
            assert rest.score + rest.score_range[1] > c.after + c.after_high + 1e-9


def test_hide_every_face_photo_comes_first_where_it_is_the_main_lever():
    profile = profile_from_dict(
        {
            "visibility": {
                "profile_photo": "public",
                "tagged_photos": "public",
                "phone": "public",
                "birth_date": "public",
                "hometown": "public",
                "current_city": "public",
                "workplace": "public",
            },
            "tagged_photos_with_face": 1,
            "birth_country": "US",
            "birth_year": 1995,
        }
    )
    # two photos of the face, from two settings: hiding either one leaves the other to find you
    best = top_changes(profile, Scorer(CURVES, gain=GAIN), "stranger")
    assert best[0].description.startswith("Hide every photo of your face from strangers")
    assert best[0].after == 0.0 and set(best[0].settings) == {"profile_photo", "tagged_photos"}
    # for friends of friends the advice is 'friends', never a level they still see
    fof = top_changes(profile, Scorer(CURVES, gain=GAIN), "friend_of_friend")
    assert all(v in ("friends", 0, False) for c in fof for v in c.change.values())


def test_a_score_near_zero_with_a_wide_range_still_gets_suggestions():
    # the point estimate at platform scale is ~0, the upper end is not: hiding the face still matters
    curves = curves_file([0.9, 0.3, 1e-6, 1e-12], spread=0.2)
    profile = profile_from_dict(PRESETS["platform_defaults"])
    s = sc(profile, curves=curves)
    assert s.score < 0.01 and s.score_range[1] > 1
    best = top_changes(profile, Scorer(curves, gain=GAIN), "stranger")
    assert best and {"profile_photo", "public_photos_with_face"} & set(best[0].settings)
    assert any(c.description.startswith("Hide every photo") and c.after_high == 0.0 for c in best)


def test_curves_alone_stand_for_a_scorer_with_the_defaults():
    """The change searches take a Scorer; curves alone mean the default settings and the shipped gain,
    so ``privrisk.top_changes(me, curves)`` keeps working. A different Scorer gives different advice."""
    profile = profile_from_dict(PRESETS["everything_public"])
    defaults = Scorer(CURVES, ExposureSettings(), MultiPhotoGain.shipped())
    assert top_changes(profile, CURVES) == top_changes(profile, defaults)
    assert single_changes(profile, CURVES, "friend_of_friend") == single_changes(profile, defaults, "friend_of_friend")
    smaller = Scorer(CURVES, ExposureSettings(stranger_gallery_size=100), MultiPhotoGain.shipped())
    assert [c.after for c in top_changes(profile, smaller)] != [c.after for c in top_changes(profile, defaults)]


def test_single_changes_list_every_option():
    profile = profile_from_dict(
        {
            "visibility": {"profile_photo": "friends", "phone": "public", "interests": "public"},
            "public_photos_with_face": 20,
        }
    )
    changes = single_changes(profile, Scorer(CURVES, gain=GAIN))
    assert changes[0].change == {"public_photos_with_face": 0} and changes[0].after == 0.0
    assert {tuple(c.change) for c in changes} >= {("phone",), ("interests",), ("real_name_used",)}


# --- national ID ---------------------------------------------------------------------------------------


def test_ssn_is_a_chance_by_birth_cohort():
    seen = {"birth_date", "hometown"}
    late = national_id_inference("US", 1995, seen)
    assert late.chance == 0.44 and late.chance_range == (0.44, 0.60) and late.digits_predictable == 5
    assert "44%" in late.derived and "60%" in late.derived and late.candidates == 10_000
    older = national_id_inference("US", 1980, seen)
    assert older.chance == 0.07 and older.chance < 0.5 and "7%" in older.derived  # no certainty
    assert national_id_inference("US", 1960, seen).chance is None
    assert national_id_inference("US", 2012, seen).digits_predictable == 0
    assert national_id_inference("US", 1995, {"birth_date"}).digits_predictable == 0
    s95 = sc(
        profile_from_dict(
            {
                "visibility": {"profile_photo": "public", "birth_date": "public", "hometown": "public"},
                "birth_country": "US",
                "birth_year": 1995,
            }
        )
    )
    s80 = sc(
        profile_from_dict(
            {
                "visibility": {"profile_photo": "public", "birth_date": "public", "hometown": "public"},
                "birth_country": "US",
                "birth_year": 1980,
            }
        )
    )
    assert s95.score > s80.score and "44%-60%" in s95.national_id_text and "Acquisti" in s95.national_id.source


def test_rrn_digits_checksum_and_search_space():
    kr = national_id_inference("KR", 1990, {"birth_date", "hometown"}, hometown="Seoul")
    assert kr.digits_predictable == 7 and kr.candidates == 9 * 100 * 10
    assert "00-08" in kr.derived and "check digit" in kr.derived and "9,000" in kr.plain
    busan = national_id_inference("KR", 1990, {"birth_date", "hometown"}, hometown="Busan, Korea")
    assert busan.candidates == 4_000 and busan.secret_fraction > kr.secret_fraction
    early = national_id_inference("KR", 1970, {"birth_date", "hometown"}, hometown="Seoul")
    assert "before 1975" in early.reason and early.candidates == 100_000
    assert national_id_inference("KR", 2021, {"birth_date", "hometown"}, hometown="Seoul").secret_fraction == 0.0
    # hand-computed: 900101-1 00 01 1 -> weights 2..9,2..5: sum = 18+0+0+5+0+7+8+0+0+0+4+5 = 47; 47 % 11 = 3; 11-3 = 8
    assert rrn_check_digit("900101100011") == 8
    with pytest.raises(ProfileError):
        rrn_check_digit("12")


def test_national_id_keeps_the_fields_e3_reads():
    inf = national_id_inference("KR", 1990, {"birth_date": "1990-01-01", "hometown": "Busan, Korea"})
    assert inf.scheme == "KR RRN" and inf.digits_predictable >= 7 and inf.candidates == 4_000
    json.dumps(dataclasses.asdict(inf))
    assert national_id_inference("GB", 1990, {"birth_date"}) is None


# --- profiles ------------------------------------------------------------------------------------------


def test_profile_validation_names_field_and_allowed_values(tmp_path):
    with pytest.raises(ProfileError, match=r"visibility.phone: 'everyone' is not one of only_me, friends"):
        profile_from_dict({"visibility": {"phone": "everyone"}})
    with pytest.raises(ProfileError, match=r"visibility.shoe_size: unknown field"):
        profile_from_dict({"visibility": {"shoe_size": "public"}})
    with pytest.raises(ProfileError, match=r"public_photos_with_face: expected int"):
        profile_from_dict({"public_photos_with_face": "many"})
    with pytest.raises(ProfileError, match=r"unknown key 'colour'"):
        profile_from_dict({"colour": "blue"})
    with pytest.raises(ProfileError, match=r"hometown"):
        profile_from_dict({"hometown": "x" * 300})
    p = tmp_path / "p.json"
    p.write_text("{not json")
    with pytest.raises(ProfileError, match="p.json: not valid JSON"):
        load_profile(p)


def test_example_profile_loads():
    from helpers import ROOT

    profile = load_profile(ROOT / "examples" / "profile.json")
    assert profile.visibility["profile_photo"] == "public"


# --- sensitivities -------------------------------------------------------------------------------------


def test_irt_recovers_known_item_parameters():
    rng = np.random.default_rng(3)
    n_people, n_items = 3000, 12
    alpha = rng.uniform(0.8, 2.0, n_items)
    beta = np.linspace(-1.5, 1.5, n_items)
    theta = rng.standard_normal(n_people)
    p = 1 / (1 + np.exp(-alpha * (theta[:, None] - beta)))
    responses = (rng.random((n_people, n_items)) < p).astype(float)
    fit = estimate_irt(responses)
    assert fit["converged"]
    assert np.abs(fit["beta"] - beta).max() < 0.25  # tolerance stated in the README
    assert np.abs(fit["alpha"] - alpha).max() < 0.4 and np.corrcoef(fit["alpha"], alpha)[0, 1] > 0.8


def _latent_population(n, seed):
    """Profiles whose fields are shown beyond friends by a 2PL on a latent openness trait."""
    rng = np.random.default_rng(seed)
    beta = np.linspace(-1.4, 1.4, len(FIELDS))
    alpha = rng.uniform(1.0, 2.0, len(FIELDS))
    theta = rng.standard_normal(n)
    shown = rng.random((n, len(FIELDS))) < 1 / (1 + np.exp(-alpha * (theta[:, None] - beta)))
    people = [
        profile_from_dict({"visibility": {f: ("public" if s else "friends") for f, s in zip(FIELDS, row)}})
        for row in shown
    ]
    return people, dict(zip(FIELDS, beta))


def test_sensitivity_recovered_on_a_population_with_a_latent_trait():
    people, beta = _latent_population(3000, 8)
    sens = estimate_sensitivity(people)
    for f, b in beta.items():
        assert sens[f] == pytest.approx(1 / (1 + math.exp(-b)), abs=0.06)  # within 0.25 on the difficulty scale


def test_sensitivity_refused_on_the_independent_population():
    people = [p.to_user_profile() for p in generate_profiles([str(i) for i in range(1500)], seed=4)]
    with pytest.raises(EstimationError, match="at their bounds"):
        estimate_sensitivity(people)
    with pytest.raises(EstimationError, match="too few"):
        estimate_sensitivity(people[:10])


def test_sensitivity_override_and_file(tmp_path):
    profile = profile_from_dict({"visibility": {"profile_photo": "public", "phone": "public"}})
    assert sc(profile, sensitivity={"phone": 0.1}).score < sc(profile).score
    with pytest.raises(ConfigError, match="between 0 and 1"):
        sc(profile, sensitivity={"phone": 3})
    with pytest.raises(ConfigError, match="unknown field"):
        sc(profile, sensitivity={"shoe": 0.3})


def test_population_hardened_lowers_exposure():
    people = [p.to_user_profile() for p in generate_profiles([str(i) for i in range(200)], seed=5)]
    result = population_analysis(people, CURVES)
    assert result["hardened"]["mean"] < result["default"]["mean"]
    lo, hi = result["default"]["mean_range"]
    assert lo <= result["default"]["mean"] <= hi
    assert all(h <= d + 1e-9 for h, d in zip(result["scores_hardened"], result["scores_default"]))
    assert harden(people[0]).public_photos_with_face == 0


def test_presets_are_valid_and_ordered():
    s = {k: sc(profile_from_dict(v)).score for k, v in PRESETS.items()}
    assert s["hardened"] <= s["platform_defaults"] <= s["everything_public"]


# --- the command line ----------------------------------------------------------------------------------


def test_cli_acceptance_platform_defaults(capsys):
    from privrisk.cli import main

    assert main(["score", "--preset", "platform_defaults", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    s = data["scores"]["stranger"]
    lo, hi = s["score_range"]
    assert lo <= s["score"] <= hi and lo < hi
    assert s["p_linked"] < 0.99 and s["p_linked_range"][1] < 0.99
    assert abs(s["score_if_linked"] - s["score"]) >= 5
    first = data["top_changes"]["stranger"][0]
    assert {"profile_photo", "public_photos_with_face", "tagged_photos"} & set(first["settings"])
    assert first["effect"]["stranger"]["after"] < first["effect"]["stranger"]["before"]
    hide = [c for c in data["top_changes"]["stranger"] if c["change"].startswith("Hide every photo of your face")]
    assert hide and hide[0]["after"] == 0.0 and set(hide[0]["settings"]) == {"profile_photo", "public_photos_with_face"}


def test_cli_reads_the_points_format_and_sensitivity_file(tmp_path, capsys):
    from privrisk.cli import main

    res = tmp_path / "results.json"
    res.write_text(
        json.dumps(
            {
                "scaling_detail": {
                    "curves": {
                        "offline_to_online/street": points_curve([0.9, 0.7, 0.5, 0.3]),
                        "online_to_online": points_curve([1.0, 1.0, 0.99, 0.97]),
                    }
                }
            }
        )
    )
    sens = tmp_path / "sens.json"
    sens.write_text('{"real_name": 1.0}')
    assert main(["score", "--preset", "platform_defaults", "--json", "--results", str(res)]) == 0
    base = json.loads(capsys.readouterr().out)["scores"]["stranger"]
    assert base["top_k"] == 10 and base["wrong_person"] == pytest.approx(0.1)
    assert (
        main(["score", "--preset", "platform_defaults", "--json", "--results", str(res), "--sensitivity", str(sens)])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["scores"]["stranger"]["score_if_linked"] > base["score_if_linked"]
    res.write_text(
        json.dumps(
            {
                "scaling_detail": {"curves": {"offline_to_online/street": points_curve([0.9, 0.7, 0.5, 0.3])}},
                "experiments": {
                    "offline_to_online": {
                        "levels": {
                            "street": {"fusion": {"shots": 3, "n_mated": 82, "rank1_single": 0.5, "rank1_fused": 0.7}}
                        }
                    }
                },
            }
        )
    )
    assert main(["score", "--preset", "platform_defaults", "--json", "--results", str(res)]) == 0
    assert "E2 fusion" in json.loads(capsys.readouterr().out)["multi_photo_gain"]
    sens.write_text('{"real_name": "high"}')
    assert main(["score", "--preset", "platform_defaults", "--sensitivity", str(sens)]) == 2
    assert "sens.json" in capsys.readouterr().err


def test_cli_explains_national_ids_in_plain_words(tmp_path, capsys):
    from privrisk.cli import main

    kr = tmp_path / "kr.json"
    kr.write_text(
        json.dumps(
            {
                "visibility": {"profile_photo": "public", "birth_date": "public", "hometown": "public"},
                "birth_country": "KR",
                "birth_year": 1990,
                "hometown": "Seoul",
            }
        )
    )
    assert main(["score", str(kr)]) == 0
    out = capsys.readouterr().out
    assert "KR RRN" in out and "check digit" in out and "9,000" in out
    us = tmp_path / "us.json"
    us.write_text(
        json.dumps(
            {
                "visibility": {"profile_photo": "public", "birth_date": "public", "hometown": "public"},
                "birth_country": "US",
                "birth_year": 1980,
            }
        )
    )
    assert main(["score", str(us)]) == 0
    out = capsys.readouterr().out
    assert "7%" in out and "chance" in out


def test_cli_score_and_population(tmp_path, capsys):
    from privrisk.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"visibility": {"phone": "everyone"}}')
    assert main(["score", str(bad)]) == 2
    assert "visibility.phone" in capsys.readouterr().err
    assert main(["population", "--n", "50", "--out", str(tmp_path / "pop"), "--quiet"]) == 0
    assert (tmp_path / "pop" / "population.png").stat().st_size > 0
    data = json.loads((tmp_path / "pop" / "population.json").read_text())
    assert data["n"] == 50 and len(data["default"]["mean_range"]) == 2


def test_shipped_multi_photo_gain_records_the_inputs_the_code_has_now():
    """Issue 23: sample_data/multi_photo_gain.json records what it was measured with (seed, split,
    capture recipe of every level, face settings, model, versions); when any of it no longer matches
    the code's, the file is stale and must be regenerated (scripts/measure_multi_photo.py)."""
    from privrisk.experiment import load_config
    from privrisk.exposure import MultiPhotoGain, multi_photo_inputs

    gain = MultiPhotoGain.shipped()
    rec = gain.inputs
    assert rec is not None, "multi_photo_gain.json records no inputs: regenerate it"
    now = multi_photo_inputs(load_config(None), rec["shots"], rec["n_boot"])
    stale = sorted(k for k in now if now[k] != rec.get(k))
    assert not stale, f"multi_photo_gain.json is stale in {stale}: rerun scripts/measure_multi_photo.py"
    # and a changed recipe is noticed
    changed = dict(
        now, capture_recipe={**now["capture_recipe"], "street": {**now["capture_recipe"]["street"], "jpeg_quality": -1}}
    )
    assert changed != rec


def test_a_score_range_whose_ends_round_alike_reads_as_one_number():
    from privrisk.exposure.words import range_text

    assert range_text(29.6, 30.4) == "30"
    assert range_text(12.2, 39.0) == "12-39"
