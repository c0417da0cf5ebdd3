"""Check my exposure shows the same answer as ``privrisk score`` (issue 23): its first screen is the
library's first-screen sentences (at most five, every number in the JSON), led by the measured facts
of the person's photos and never contradicting their own search; below it, one table row per scenario
with the same chances as :func:`privrisk.scenarios.scenarios`. AppTest with the fake face model."""

from __future__ import annotations

import re

import pytest
from test_app_fast import fake_app, page, png  # noqa: F401  (fake_app: a fixture)
from test_scenarios import _allowed_numbers, _sentences, score_json  # noqa: F401  (score_json: a fixture)

from privrisk.config import ExposureSettings
from privrisk.exposure import Scorer, top_changes
from privrisk.profiles import PRESETS, profile_from_dict
from privrisk.scenarios import first_screen, numbers_in, percent_words, scenarios
from privrisk.selfcheck import facts_for_distance, score_from_search, search_link_source, searched_first_screen

BRIEF = "Your answer in brief"
CHANCE = "chance they find you"


def page_profile(preset: str = "platform_defaults"):
    """The profile the page builds from a preset with its other widgets left as they are."""
    p = PRESETS[preset]
    return profile_from_dict(
        {
            "visibility": p["visibility"],
            "public_photos_with_face": p.get("public_photos_with_face", 0),
            "tagged_photos_with_face": p.get("tagged_photos_with_face", 0),
            "real_name_used": p.get("real_name_used", True),
            "travel_plans_specific": p.get("travel_plans_specific", False),
            "birth_country": "US",
            "birth_year": 1995,
            "hometown": None,
        }
    )


def shown_brief(at) -> str:
    """The markdown right under the 'Your answer in brief' heading."""
    nodes = list(at.main)
    head = next(i for i, n in enumerate(nodes) if getattr(n, "type", "") == "subheader" and n.value == BRIEF)
    return next(n.value for n in nodes[head + 1 :] if getattr(n, "type", "") == "markdown")


def shown_scenarios(at):
    tables = [d.value for d in at.dataframe if CHANCE in d.value.columns]
    assert len(tables) == 1, "the page shows one scenarios table"
    return tables[0]


def found_scenarios():
    from privrisk.exposure import IdentificationCurves

    s = ExposureSettings()
    return scenarios(IdentificationCurves.shipped(), extra_size=s.scenario_gallery_size or None, stranger_curve=s.curve)


def assert_table_matches(table, found) -> None:
    assert len(table) == len(found)
    for (_, row), sc in zip(table.iterrows(), found, strict=True):
        assert row["among how many people"] == f"{sc.gallery_size:,}"
        assert row["how we know"] == sc.kind
        if sc.p_found is None:
            assert row[CHANCE] == "not covered"
            continue
        lo, hi = (float(x) / 100 for x in re.findall(r"([\d.]+)%", row[CHANCE]))
        assert lo == pytest.approx(sc.p_found[0], abs=5e-4) and hi == pytest.approx(sc.p_found[1], abs=5e-4)


def searched_page(fake_app):  # noqa: F811
    at = page("self_check.py")
    at.run()
    at.checkbox(key="consent").check().run()
    at.file_uploader(key="profile_photo_0").set_value(("me.png", png(1), "image/png"))
    at.file_uploader(key="snapshot_0").set_value(("snap.png", png(1, noise=6.0), "image/png"))
    at.button(key="find_me_0").click().run()
    assert not at.exception, at.exception
    return at


def test_first_screen_after_a_search_is_the_library_answer_led_by_measured_facts(fake_app):  # noqa: F811
    from app_pages import common

    at = searched_page(fake_app)
    text = shown_brief(at)
    assert 1 <= len(_sentences(text)) <= 5
    for abbr in set(re.findall(r"\b[A-Z]{2,}\b", text)):  # no unexplained abbreviation
        assert f"({abbr})" in text, abbr
    # the same sentences the library gives for the same photos and profile
    result = at.session_state["findability"][1]
    world = common.sample_world()
    profile = page_profile()
    curves = common.curves()
    scored, _ = score_from_search(result, profile, curves, "stranger")
    changes = top_changes(profile, Scorer(curves, link_from=search_link_source(result)), "stranger")
    found = found_scenarios()
    expected = searched_first_screen(
        result, found, world, change=changes[0].description if changes else None, score=scored.to_dict()
    )
    assert _sentences(text) == _sentences(" ".join(expected))
    assert text.startswith("Measured first: your two photos are")  # measured facts lead
    # every number is in the JSON: scenarios, score and changes as `privrisk score --json` gives them,
    # plus the measured facts and the search as the page's summary gives them
    facts = facts_for_distance(result.distance, world).to_dict()
    allowed = _allowed_numbers(
        {
            "scenarios": [sc.to_dict() for sc in found],
            "scores": {"stranger": scored.to_dict()},
            "top_changes": {"stranger": [c.to_dict() for c in changes]},
        }
    )
    allowed |= {f"{facts['distance']:.2f}", f"{facts['n_impostor_closer']:,}", f"{facts['n_impostor_pairs']:,}"}
    allowed |= {f"{p:.1%}" for p in (facts["impostor_share"], *facts["impostor_share_ci95"])} | {"95%"}
    sizes = result.to_dict()["sizes"]
    counted = [s for s in sizes if s["measured"]]
    allowed |= {f"{s['gallery_size']:,}" for s in counted} | {f"{s['rank']:,.0f}" for s in counted}
    for s in sizes:
        allowed |= {percent_words(p) for p in s["p_rank1_range"] or ()} | {f"{s['gallery_size']:,}"}
    for token in numbers_in(text):
        assert token in allowed, (token, text)
    # it agrees with the search shown above it: the search's own answer stands in the sentence
    city = result.at(1_000_000)
    lo, hi = (percent_words(p) for p in city.p_rank1_range)
    assert f"{lo} to {hi} of coming first among 1,000,000 ({city.kind} from your search)" in text
    assert "the open 2017 model measured here" not in text  # no modelled answer beside the search
    assert_table_matches(shown_scenarios(at), found)


def test_first_screen_without_photos_is_what_privrisk_score_shows(fake_app, score_json):  # noqa: F811
    from app_pages import common

    at = page("self_check.py")
    at.run()
    at.checkbox(key="consent").check().run()
    assert not at.exception, at.exception
    text = shown_brief(at)
    profile = page_profile()
    curves = common.curves()
    found = found_scenarios()
    from privrisk.exposure import score

    changes = top_changes(profile, curves, "stranger")
    expected = first_screen(
        found, change=changes[0].description if changes else None, score=score(profile, curves, "stranger").to_dict()
    )
    assert 1 <= len(_sentences(text)) <= 5
    assert _sentences(text) == _sentences(" ".join(expected))
    assert not text.startswith("Measured first")  # nothing measured about this person yet
    assert_table_matches(shown_scenarios(at), found)
    # the page's defaults are the platform_defaults preset: word for word what `privrisk score --json` says
    assert text == " ".join(score_json["first_screen"])
    table = shown_scenarios(at)
    assert len(table) == len(score_json["scenarios"])
    for (_, row), sc in zip(table.iterrows(), score_json["scenarios"], strict=True):
        p = sc["p_found"]
        assert row[CHANCE] == ("not covered" if p is None else f"{p[0]:.1%}–{p[1]:.1%}")


def test_a_search_that_counted_rank_one_is_never_told_it_would_not_be_found():
    """Where the modelled answer for a second photo says "would likely not", a search that found the
    person first among the people counted replaces it."""
    import dataclasses

    from privrisk.scenarios import OPEN_MODEL
    from privrisk.selfcheck import Findability, SizeResult, search_clause

    found = [
        dataclasses.replace(sc, p_found=(0.0, 0.01))
        if (sc.attacker, sc.who, sc.gallery_size, sc.decision)
        == (OPEN_MODEL, "friend_of_friend", 1_000_000, "automatic")
        else sc
        for sc in found_scenarios()
    ]
    assert "would likely not do so" in " ".join(first_screen(found))  # the modelled answer alone
    searched = Findability(
        0.3, 0.6, "s01", 0.5, "x",
        (SizeResult(100, 1.0, 1.0, True, "measured", (1.0, 1.0)),
         SizeResult(1_000_000, 1.2, 0.8, False, "extrapolated", (0.6, 0.9))),
    )  # fmt: skip
    text = " ".join(first_screen(found, own_search=search_clause(searched)))
    assert "would likely not" not in text and "put you first among 100 people (counted)" in text
    assert "60% to 90% of coming first among 1,000,000 (extrapolated from your search)" in text
    assert 1 <= len(_sentences(text)) <= 5
