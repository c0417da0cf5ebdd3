"""The self-check's answers on one page agree: the score uses the search that was just made (issue 22),
the attacker's threshold comes from the face model, and two photos of different people raise a doubt."""

from __future__ import annotations

import numpy as np
import pytest

from privrisk.exposure import IdentificationCurves, score
from privrisk.profiles import PRESETS, profile_from_dict
from privrisk.selfcheck import (
    Findability,
    SizeResult,
    decision_threshold,
    identity_doubt,
    score_from_search,
    searched_link,
)


def result(rank_at_1e6: float, distance: float = 0.3) -> Findability:
    rows = (
        SizeResult(40_000, 1.0, 1.0, True, "simulated", (1.0, 1.0)),
        SizeResult(1_000_000, rank_at_1e6, float(rank_at_1e6 == 1), True, "simulated", (0.0, 1.0)),
        SizeResult(1_000_000_000, 3.5, 0.2, False, "extrapolated", (0.05, 0.9)),
    )
    return Findability(distance, 0.6, "017", 0.5, "x", rows)


@pytest.fixture(scope="module")
def curves():
    return IdentificationCurves.shipped()


def profile():
    return profile_from_dict(PRESETS["platform_defaults"])


def test_a_search_that_found_you_first_never_scores_zero(curves):
    """The defect in the browser: rank 1 among 1,000,000 on the page, then "0 / 100" from the curves."""
    found, sentence = score_from_search(result(1), profile(), curves, "stranger")
    assert found.link.p == 1.0 and found.link.kind == "simulated" and found.link.gallery_size == 1_000_000
    assert found.score == pytest.approx(found.score_if_linked) and found.score > 0
    assert "rank 1 among 1,000,000 people" in sentence and "within the top 10" in sentence
    assert "extrapolated: 5%-90%" in sentence  # the stranger's platform is larger than what was counted
    assert f"Exposure {found.score:.0f} out of 100" in sentence
    # found at rank 40: outside the top 10 a stranger checks, so nothing is linked
    missed, sentence = score_from_search(result(40), profile(), curves, "stranger")
    assert missed.score == 0.0 and "rank 40" in sentence and "outside the top 10" in sentence
    # the population estimate is another number: the search changed the answer
    assert score(profile(), curves, "stranger").score != pytest.approx(found.score)


def test_the_search_link_uses_the_audiences_size_when_it_was_counted():
    row, link = searched_link(result(1), 40_000)
    assert row.gallery_size == 40_000 and link.p == 1.0 and len(link.notes) == 1
    # nothing counted up to the size: the extrapolated chance and its range
    row, link = searched_link(result(1), 10_000)
    assert row.gallery_size == 40_000 and link.kind == "extrapolated" and (link.lo, link.hi) == (1.0, 1.0)


def test_friends_and_hidden_photos_keep_the_population_answer(curves):
    for audience in ("friend",):
        got, sentence = score_from_search(result(1), profile(), curves, audience)
        assert got.score == pytest.approx(score(profile(), curves, audience).score) and sentence
    hidden = PRESETS["platform_defaults"] | {
        "visibility": {
            **PRESETS["platform_defaults"]["visibility"],
            "profile_photo": "only_me",
            "tagged_photos": "only_me",
        },
        "public_photos_with_face": 0,
        "tagged_photos_with_face": 0,
    }
    got, _ = score_from_search(result(1), profile_from_dict(hidden), curves, "stranger")
    assert got.link.photos == 0 and got.score == 0.0


def test_threshold_is_the_face_models_and_doubts_follow_it():
    class Model:
        decision_threshold = 0.45

    assert decision_threshold(Model()) == 0.45
    assert decision_threshold(object()) == 0.6 == decision_threshold(None)  # the gallery default
    from privrisk.models import DlibFaceModel

    assert DlibFaceModel.decision_threshold == 0.6
    assert identity_doubt(result(1, distance=0.3)) is None
    doubt = identity_doubt(result(1, distance=0.81))
    assert doubt and "0.810" in doubt and "0.6" in doubt and "two different people" in doubt
    assert np.isfinite(result(1).distance)


def test_the_headline_leads_with_what_was_counted():
    from privrisk.selfcheck import search_headline

    found = search_headline(result(1), 1_000_000)
    assert found == "Your snapshot found your profile photo first among 1,000,000 people (counted)."
    behind = search_headline(result(1234), 1_000_000)
    assert "rank 1,234 among 1,000,000 people: 1,233 people came before you (counted)" in behind
    # past what was counted: the counted answer first, then the extrapolated range
    far = search_headline(result(1), 1_000_000_000)
    assert far.startswith("Your snapshot found your profile photo first among 1,000,000 people (counted).")
    assert "Among 1,000,000,000 people the chance that it comes first is extrapolated: 5%-90%." in far
