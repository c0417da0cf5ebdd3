"""The exposure score: properties, wiring to measured curves, counterfactuals, IRT recovery."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from privrisk.errors import ConfigError, ProfileError
from privrisk.exposure import (ExposureSettings, IdentificationCurves, estimate_irt, estimate_sensitivity, harden,
                               population_analysis, score, single_changes, top_changes)
from privrisk.profiles import AUDIENCES, FIELDS, LEVELS, PRESETS, generate_profiles, load_profile, profile_from_dict


def curves_with(rate_at_large: float, rate_at_small: float = 1.0) -> IdentificationCurves:
    pts = [{"gallery_size": 100, "rank1": rate_at_small}, {"gallery_size": 1_000_000, "rank1": rate_at_large}]
    pred = {"gallery_size": [1_000_000, 1_000_000_000], "rank1": [rate_at_large, rate_at_large / 2]}
    return IdentificationCurves({"online_to_online": {"measured": pts, "predicted": pred}}, source="test")


HALF = curves_with(0.5, 0.9)

levels = st.sampled_from(LEVELS)
profiles = st.builds(
    lambda vis, pub, tag, name, travel, country, year: profile_from_dict({
        "visibility": vis, "public_photos_with_face": pub, "tagged_photos_with_face": tag, "real_name_used": name,
        "travel_plans_specific": travel, "birth_country": country, "birth_year": year}),
    st.fixed_dictionaries({f: levels for f in FIELDS}), st.integers(0, 30), st.integers(0, 30), st.booleans(),
    st.booleans(), st.sampled_from(["US", "KR", "GB"]), st.integers(1940, 2010))


@settings(max_examples=150, deadline=None)
@given(profiles, st.sampled_from(list(FIELDS)), st.sampled_from(AUDIENCES))
def test_more_visibility_never_lowers_the_score(profile, field, audience):
    current = LEVELS.index(profile.visibility[field])
    base = score(profile, HALF, audience).score
    for higher in LEVELS[current + 1:]:
        assert score(profile.with_change(**{field: higher}), HALF, audience).score >= base - 1e-9


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_audiences_are_ordered(profile):
    s = [score(profile, HALF, a).score for a in ("stranger", "friend_of_friend", "friend")]
    assert s[0] <= s[1] + 1e-9 <= s[2] + 2e-9


@settings(max_examples=50, deadline=None)
@given(profiles, st.sampled_from(AUDIENCES))
def test_everything_only_me_is_the_minimum(profile, audience):
    hidden = profile.with_change(**{f: "only_me" for f in FIELDS}, public_photos_with_face=0)
    assert score(hidden, HALF, audience).score == 0.0 <= score(profile, HALF, audience).score


def test_score_follows_the_measured_curve():
    profile = profile_from_dict({"visibility": {"profile_photo": "public", "phone": "public", "birth_date": "public"}})
    low, high = score(profile, curves_with(0.1), "stranger"), score(profile, curves_with(0.9), "stranger")
    assert low.p_one_photo == pytest.approx(0.05) and high.p_one_photo == pytest.approx(0.45)
    assert low.score < high.score
    assert high.score / low.score == pytest.approx(0.45 / 0.05)
    # a friend of a friend searches a smaller gallery: interpolated in log10(size) between 100 and 10^6
    fof = score(profile, curves_with(0.1, 0.9), "friend_of_friend", ExposureSettings(fof_gallery_size=10_000))
    assert fof.p_one_photo == pytest.approx(0.9 + (0.1 - 0.9) * 0.5)


def test_shipped_curves_drive_the_default_score():
    curves = IdentificationCurves.shipped()
    assert "online_to_online" in curves.names and any(n.startswith("offline_to_online/") for n in curves.names)
    sizes = [100, 1e4, 1e6, 1e9]
    for name in curves.names:
        rates = [curves.rank1(name, s) for s in sizes]
        assert all(a >= b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ConfigError, match="not in"):
        curves.rank1("nope", 10)


def test_counterfactual_profile_photo_is_the_key():
    # Only the profile photo shows the face: hiding it from strangers removes every link.
    profile = profile_from_dict({"visibility": {"profile_photo": "public", "phone": "public", "birth_date": "public",
                                                "hometown": "public"}, "birth_country": "US", "birth_year": 1990})
    before = score(profile, HALF).score
    best = top_changes(profile, HALF)
    assert best[0].change == {"profile_photo": "friends_of_friends"}
    assert best[0].after == 0.0 and best[0].before == pytest.approx(before)
    assert "profile photo" in str(best[0]) and f"{before:.0f} -> 0" in str(best[0])
    assert len(best) == 3 and best[0].removed >= best[1].removed >= best[2].removed


def test_counterfactual_public_photos_and_phone():
    # Many public photos keep the link whatever the profile photo does; the phone is the most sensitive
    # visible field, so after "remove the photos" it should come first among field changes.
    profile = profile_from_dict({"visibility": {"profile_photo": "friends", "phone": "public", "interests": "public"},
                                 "public_photos_with_face": 20})
    changes = single_changes(profile, HALF)
    assert changes[0].change == {"public_photos_with_face": 0} and changes[0].after == 0.0
    assert changes[1].change == {"phone": "friends_of_friends"}
    assert changes[1].removed > changes[2].removed
    # the friends audience: hiding from strangers does nothing, only 'only me' helps
    friend_changes = top_changes(profile, HALF, "friend")
    assert friend_changes[0].change == {"phone": "only_me"}


def test_national_id_and_travel_inferences():
    base = {"visibility": {"profile_photo": "public", "birth_date": "public", "hometown": "public"}}
    us = score(profile_from_dict(base | {"birth_country": "US", "birth_year": 1990}), HALF)
    assert "5 of 9" in us.national_id
    kr = score(profile_from_dict(base | {"birth_country": "KR", "birth_year": 1990}), HALF)
    assert "11 of 13" in kr.national_id
    late = score(profile_from_dict(base | {"birth_country": "US", "birth_year": 2012}), HALF)
    assert "0 of 9" in late.national_id and late.score < us.score
    vague = profile_from_dict({"visibility": {"profile_photo": "public", "travel_plans": "public"}})
    dated = vague.with_change(travel_plans_specific=True)
    assert score(dated, HALF).score > score(vague, HALF).score


def test_profile_validation_names_field_and_allowed_values(tmp_path):
    with pytest.raises(ProfileError, match=r"visibility.phone: 'everyone' is not one of only_me, friends"):
        profile_from_dict({"visibility": {"phone": "everyone"}})
    with pytest.raises(ProfileError, match=r"visibility.shoe_size: unknown field"):
        profile_from_dict({"visibility": {"shoe_size": "public"}})
    with pytest.raises(ProfileError, match=r"public_photos_with_face: expected int"):
        profile_from_dict({"public_photos_with_face": "many"})
    with pytest.raises(ProfileError, match=r"unknown key 'colour'"):
        profile_from_dict({"colour": "blue"})
    p = tmp_path / "p.json"
    p.write_text("{not json")
    with pytest.raises(ProfileError, match="p.json: not valid JSON"):
        load_profile(p)


def test_example_profile_loads():
    from helpers import ROOT

    profile = load_profile(ROOT / "examples" / "profile.json")
    assert profile.visibility["profile_photo"] == "public"


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


def test_sensitivity_estimated_from_population_orders_fields():
    people = [p.to_user_profile() for p in generate_profiles([str(i) for i in range(1500)], seed=4)]
    sens = estimate_sensitivity(people)
    assert set(sens) == set(FIELDS) and all(0 < v < 1 for v in sens.values())
    # phone is shown beyond friends far less often than the profile photo in the defaults
    assert sens["phone"] > sens["school"] > sens["profile_photo"]


def test_population_hardened_lowers_exposure():
    people = [p.to_user_profile() for p in generate_profiles([str(i) for i in range(200)], seed=5)]
    result = population_analysis(people, HALF)
    assert result["hardened"]["mean"] < result["default"]["mean"]
    assert all(h <= d + 1e-9 for h, d in zip(result["scores_hardened"], result["scores_default"]))
    assert harden(people[0]).public_photos_with_face == 0


def test_presets_are_valid_and_ordered():
    s = {k: score(profile_from_dict(v), HALF).score for k, v in PRESETS.items()}
    assert s["hardened"] <= s["platform_defaults"] <= s["everything_public"]


def test_cli_score_and_population(tmp_path, capsys):
    from privrisk.cli import main

    assert main(["score", "--preset", "platform_defaults", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert 0 <= data["scores"]["stranger"]["score"] <= 100 and data["top_changes"]["stranger"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"visibility": {"phone": "everyone"}}')
    assert main(["score", str(bad)]) == 2
    assert "visibility.phone" in capsys.readouterr().err
    assert main(["population", "--n", "50", "--out", str(tmp_path / "pop"), "--quiet"]) == 0
    assert (tmp_path / "pop" / "population.png").stat().st_size > 0
    assert json.loads((tmp_path / "pop" / "population.json").read_text())["n"] == 50
