"""Exposure of a population: synthetic profiles scored under their own settings and hardened
(:func:`population_analysis`), and the histogram of both (:func:`population_plot`).
"""

from __future__ import annotations

import numpy as np

from ..config import ExposureSettings
from ..profiles import LEVELS, UserProfile
from .curves import IdentificationCurves
from .multi_photo import MultiPhotoGain
from .scoring import score


def harden(profile: UserProfile) -> UserProfile:
    """The same person with every field capped at 'friends' and no public face photos."""
    vis = {f: ("friends" if LEVELS.index(lv) > 1 else lv) for f, lv in profile.visibility.items()}
    return profile.with_change(**vis, public_photos_with_face=0)


def population_scores(
    profiles: list[UserProfile],
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    with_range: bool = False,
    gain: MultiPhotoGain | None = None,
) -> np.ndarray:
    """Scores (n,), or with ``with_range`` (n, 3): score, low end, high end."""
    gain = gain or MultiPhotoGain.shipped()
    scored = [score(p, curves, audience, settings, gain) for p in profiles]
    if with_range:
        return np.array([[s.score, *s.score_range] for s in scored]).reshape(len(scored), 3)
    return np.array([s.score for s in scored])


def population_analysis(
    profiles: list[UserProfile],
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    gain: MultiPhotoGain | None = None,
) -> dict:
    """Exposure of a population under its own (default) settings and hardened, with summaries."""
    gain = gain or MultiPhotoGain.shipped()
    d3 = population_scores(profiles, curves, audience, settings, with_range=True, gain=gain)
    h3 = population_scores([harden(p) for p in profiles], curves, audience, settings, with_range=True, gain=gain)
    default, hardened = d3[:, 0], h3[:, 0]

    def summary(x3):
        x = x3[:, 0]
        return {
            "mean": float(x.mean()),
            "median": float(np.median(x)),
            "p90": float(np.quantile(x, 0.9)),
            "max": float(x.max()),
            "mean_range": [float(x3[:, 1].mean()), float(x3[:, 2].mean())],
        }

    return {
        "audience": audience,
        "n": len(profiles),
        "curve": settings.curve,
        "top_k": settings.top_k,
        "curves_source": curves.source,
        "multi_photo_gain": gain.source,
        "default": summary(d3),
        "hardened": summary(h3),
        "note": "mean_range: the mean of each profile's low and high score (curve and multi-photo ranges)",
        "scores_default": default.tolist(),
        "scores_hardened": hardened.tolist(),
    }


def population_plot(analysis: dict) -> bytes:
    """A PNG histogram of :func:`population_analysis`'s scores, default settings against hardened."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 100, 41).tolist()
    ax.hist(
        analysis["scores_default"],
        bins=bins,
        alpha=0.6,
        label=f"default settings (mean {analysis['default']['mean']:.0f})",
    )
    ax.hist(
        analysis["scores_hardened"], bins=bins, alpha=0.6, label=f"hardened (mean {analysis['hardened']['mean']:.0f})"
    )
    ax.set(
        xlabel=f"exposure score ({analysis['audience']})",
        ylabel="people",
        title=f"Exposure of {analysis['n']} synthetic profiles",
    )
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
