"""The report's plots come from the artifact cache when a run's results are the same as an earlier
run's (timings, cache flags, versions and paths aside), whether its stages computed them or read
them back from their own cache; any other change draws them again."""

import json

import numpy as np

from privrisk.embeddings import EmbeddingCache
from privrisk.report import page


def _results(rank1=0.5, seconds=1.0):
    return {
        "seconds_total": seconds,
        "versions": {"numpy": "1"},
        "experiments": {"online_to_online": {"rank1": np.float32(rank1), "cmc": (0.5, 1.0), "timing": {"s": seconds}}},
        "scaling_detail": {"curves": {100: {"rank1": np.float64(rank1)}}},
    }


def test_same_results_reuse_the_plots_and_others_draw_again(tmp_path, monkeypatch):
    drawn = []

    def fake_plots(results):
        drawn.append(results)
        return {"cmc.png": b"\x89PNG one " + str(len(drawn)).encode(), "det.png": b"\x89PNG two"}

    monkeypatch.setattr(page, "make_plots", fake_plots)
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = page._plots(_results(), cache)
    # the same numbers read back from JSON (a stage's cache), other timings: no drawing, same bytes
    again = page._plots(json.loads(json.dumps(_results(seconds=7.0), default=float)), cache)
    assert len(drawn) == 1 and again == first and list(again) == ["cmc.png", "det.png"]
    page._plots(_results(rank1=0.6), cache)  # a number changed: drawn again
    assert len(drawn) == 2
    assert page._plots(_results(), None) and len(drawn) == 3  # no cache: always drawn
