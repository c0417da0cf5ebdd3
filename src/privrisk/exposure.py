"""The exposure score: how a person's visibility settings raise what a face reveals, and which
single change lowers it most.

For an audience (stranger, friend of a friend, friend) the score is

    100 * P(linked) * (sum of visible fields' sensitivity + derived inferences) / maximum

``P(linked)`` is the chance the audience can put this profile to a photo of the face. Friends
know you (1). Others must identify you: their chance comes from the experiment's measured
identification curve (rank-1 against gallery size, :class:`IdentificationCurves`) at the gallery
they search (platform scale for a stranger, a friends-of-friends network otherwise), raised by
every usable photo of your face they can see (assumed independent chances: 1 - (1 - p)^n).
Field sensitivities are documented defaults (:data:`DEFAULT_SENSITIVITY`), or estimated from a
population of profiles with item response theory (:func:`estimate_sensitivity`, after Liu and
Terzi, ACM TKDD 2010), or your own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import setting
from .errors import ConfigError
from .profiles import AUDIENCES, FIELDS, LEVELS, UserProfile, national_id_inference

#: Assumed sensitivity of each field (0 = harmless, 1 = most harmful to a stranger). The order
#: follows the common finding (Liu & Terzi 2010 among others) that contact details and location
#: are the most sensitive and interests the least; the numbers are ours: estimate your own from a
#: population with :func:`estimate_sensitivity`, or override them.
DEFAULT_SENSITIVITY = {
    "real_name": 0.5, "profile_photo": 0.2, "birth_date": 0.6, "hometown": 0.4, "current_city": 0.4,
    "workplace": 0.6, "school": 0.4, "interests": 0.2, "relationship_status": 0.3, "email": 0.6,
    "phone": 0.9, "tagged_photos": 0.3, "checkins": 0.6, "current_location": 0.9, "travel_plans": 0.7,
}

#: Weights of what can be inferred from combinations of fields.
INFERENCES = {
    "national_id": ("national ID digits predictable (US SSN first 5; Korean RRN up to 11 of 13)", 1.0),
    "home_location": ("where to find you in person (city plus workplace or school)", 0.6),
    "absence_from_home": ("when your home is empty (dated travel plans)", 0.8),
}

_AUDIENCE_PHRASE = {"stranger": "A stranger", "friend_of_friend": "A friend of a friend", "friend": "A friend"}
_LEVEL_PHRASE = {"only_me": "only you", "friends": "friends only", "friends_of_friends": "friends of friends"}


@dataclass(frozen=True)
class ExposureSettings:
    curve: str = setting("online_to_online", "identification curve of the audience's photo of you: "
                         "'online_to_online' (another online photo) or 'offline_to_online/<level>' (a snapshot)")
    stranger_gallery_size: int = setting(1_000_000_000, "gallery a stranger searches (platform scale)", min=1)
    fof_gallery_size: int = setting(40_000, "gallery a friend of a friend searches (a friends-of-friends network)",
                                    min=1)
    max_photos: int = setting(50, "usable face photos counted at most", min=1)
    sensitivity: dict = setting({}, "override field sensitivities, e.g. {phone = 1.0}")


class IdentificationCurves:
    """Rank-1 against gallery size for each probe condition, from an experiment's results.

    Measured points are used where they exist, the distractor-model prediction beyond them; the
    curve is made non-increasing and interpolated linearly in log10(size)."""

    def __init__(self, curves: dict, source: str):
        self.source = source
        self._curves = {}
        for name, c in curves.items():
            points = {p["gallery_size"]: p["rank1"] for p in c["measured"]}
            top = max(points) if points else 0
            pred = c.get("predicted") or {}
            for size, rate in zip(pred.get("gallery_size", []), pred.get("rank1", [])):
                if size > top:
                    points[size] = rate
            sizes = np.array(sorted(points), dtype=np.float64)
            rates = np.minimum.accumulate(np.array([points[s] for s in sorted(points)], dtype=np.float64))
            self._curves[name] = (np.log10(sizes), rates)

    @classmethod
    def from_results(cls, path: str | Path) -> "IdentificationCurves":
        """Curves from an experiment's ``results.json`` (or the shipped curves file)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: results file not found (run `privrisk demo` or `privrisk experiment`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a results JSON file ({exc})") from None
        curves = (data.get("scaling_detail") or {}).get("curves") or data.get("curves")
        if not curves:
            raise ConfigError(f"{path}: no identification curves in it (expected scaling_detail.curves)")
        return cls(curves, source=str(path))

    @classmethod
    def shipped(cls) -> "IdentificationCurves":
        """The curves measured by the demo on the sample set (``sample_data/identification_curves.json``)."""
        from .samples import sample_data_dir

        return cls.from_results(sample_data_dir() / "identification_curves.json")

    @property
    def names(self) -> list[str]:
        return sorted(self._curves)

    def rank1(self, name: str, gallery_size: float) -> float:
        if name not in self._curves:
            raise ConfigError(f"curve {name!r} not in {self.source} (available: {', '.join(self.names)})")
        x, y = self._curves[name]
        return float(np.interp(math.log10(max(gallery_size, 1)), x, y))


@dataclass(frozen=True)
class FieldPart:
    field: str
    label: str
    visible: bool
    sensitivity: float
    points: float


@dataclass(frozen=True)
class ExposureScore:
    audience: str
    score: float
    p_linked: float
    usable_photos: int
    gallery_size: int | None
    curve: str | None
    p_one_photo: float | None
    parts: tuple[FieldPart, ...]
    inferences: tuple[FieldPart, ...]
    national_id: str | None

    def explain(self) -> str:
        """The score in plain words."""
        if self.audience == "friend":
            link = "A friend already knows who you are."
        elif self.usable_photos == 0:
            link = (f"{_AUDIENCE_PHRASE[self.audience]} cannot see any photo of your face, so a photo of you "
                    "does not lead them to your profile.")
        else:
            link = (f"{_AUDIENCE_PHRASE[self.audience]} with a photo of you can find your profile with "
                    f"probability {self.p_linked:.0%}: {self.usable_photos} photo(s) of your face are visible to them, "
                    f"and one photo is matched at rank 1 among {self.gallery_size:,} people "
                    f"{self.p_one_photo:.0%} of the time (measured curve '{self.curve}').")
        learned = [p.label for p in (*self.parts, *self.inferences) if p.visible and p.points > 0]
        what = ("They would then learn: " + "; ".join(learned) + ".") if learned else "They would learn nothing more."
        return f"{link} {what}"

    def to_dict(self) -> dict:
        return {"audience": self.audience, "score": self.score, "p_linked": self.p_linked,
                "usable_photos": self.usable_photos, "gallery_size": self.gallery_size, "curve": self.curve,
                "p_one_photo": self.p_one_photo, "national_id": self.national_id, "explanation": self.explain(),
                "fields": [vars(p) for p in self.parts], "inferences": [vars(p) for p in self.inferences]}


def export_curves(results: dict) -> dict:
    """The part of an experiment's results the score needs, with where it came from."""
    return {"source": "privrisk experiment results", "seed": results["seed"], "versions": results["versions"],
            "dataset": results["dataset"]["root"].rsplit("/", 1)[-1],
            "curves": results["scaling_detail"]["curves"]}


def _sensitivities(settings: ExposureSettings) -> dict:
    unknown = set(settings.sensitivity) - set(FIELDS)
    if unknown:
        raise ConfigError(f"sensitivity: unknown field(s) {', '.join(sorted(unknown))}")
    return DEFAULT_SENSITIVITY | {k: float(v) for k, v in settings.sensitivity.items()}


def usable_photos(profile: UserProfile, audience: str, cap: int = 50) -> int:
    visible = profile.visible_to(audience)
    n = int("profile_photo" in visible) + profile.public_photos_with_face
    if "tagged_photos" in visible:
        n += profile.tagged_photos_with_face
    return min(n, cap)


def score(profile: UserProfile, curves: IdentificationCurves, audience: str = "stranger",
          settings: ExposureSettings = ExposureSettings()) -> ExposureScore:
    """The exposure score of ``profile`` for ``audience``, with its breakdown."""
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    sens = _sensitivities(settings)
    visible = profile.visible_to(audience)
    n_photos = usable_photos(profile, audience, settings.max_photos)
    size = p1 = curve = None
    if audience == "friend":
        p_link = 1.0
    else:
        size = settings.stranger_gallery_size if audience == "stranger" else settings.fof_gallery_size
        curve = settings.curve
        p1 = curves.rank1(curve, size)
        p_link = 1.0 - (1.0 - p1) ** n_photos
    total = sum(sens.values()) + sum(w for _, w in INFERENCES.values())
    parts = []
    for f, label in FIELDS.items():
        learned = f in visible and (f != "real_name" or profile.real_name_used)
        parts.append(FieldPart(f, label, learned, sens[f], 100 * p_link * sens[f] / total if learned else 0.0))
    idinf = national_id_inference(profile.birth_country, profile.birth_year, visible)
    id_value = 0.0
    if idinf and idinf.digits_predictable:
        id_value = min(1.0, idinf.digits_predictable / (5 if idinf.scheme == "US SSN" else 11))
    home = "current_city" in visible and ("workplace" in visible or "school" in visible)
    away = ("travel_plans" in visible) * (1.0 if profile.travel_plans_specific else 0.1)
    values = {"national_id": id_value, "home_location": float(home), "absence_from_home": float(away)}
    inferences = tuple(FieldPart(k, label, values[k] > 0, w, 100 * p_link * w * values[k] / total)
                       for k, (label, w) in INFERENCES.items())
    value = sum(p.points for p in parts) + sum(p.points for p in inferences)
    id_text = (f"{idinf.scheme}: {idinf.digits_predictable} of {idinf.digits_total} digits predictable ({idinf.reason})"
               if idinf else None)
    return ExposureScore(audience, float(min(100.0, value)), float(p_link), n_photos, size, curve, p1, tuple(parts),
                         inferences, id_text)


@dataclass(frozen=True)
class Change:
    description: str
    change: dict
    before: float
    after: float

    @property
    def removed(self) -> float:
        return self.before - self.after

    def __str__(self) -> str:
        return f"{self.description}: {self.before:.0f} -> {self.after:.0f}"


def single_changes(profile: UserProfile, curves: IdentificationCurves, audience: str = "stranger",
                   settings: ExposureSettings = ExposureSettings()) -> list[Change]:
    """The score after every single change that makes the profile more private, best first.

    For each field the least restrictive level that removes the most risk is proposed (hiding
    from strangers needs only 'friends of friends'); photo counts, real name and dated travel
    plans are changes too."""
    before = score(profile, curves, audience, settings).score
    out = []
    for f, label in FIELDS.items():
        current = LEVELS.index(profile.visibility[f])
        options = []
        for lvl in reversed(LEVELS[:current]):  # least restrictive first
            after = score(profile.with_change(**{f: lvl}), curves, audience, settings).score
            options.append((after, lvl))
        if options:
            best = min(a for a, _ in options)
            after, lvl = next((a, lv) for a, lv in options if a <= best + 1e-9)
            out.append(Change(f"Make your {label} visible to {_LEVEL_PHRASE[lvl]}", {f: lvl}, before, after))
    if profile.public_photos_with_face:
        after = score(profile.with_change(public_photos_with_face=0), curves, audience, settings).score
        out.append(Change(f"Remove or restrict the {profile.public_photos_with_face} public photos that show your face",
                          {"public_photos_with_face": 0}, before, after))
    if profile.real_name_used:
        after = score(profile.with_change(real_name_used=False), curves, audience, settings).score
        out.append(Change("Use a nickname instead of your real name", {"real_name_used": False}, before, after))
    if profile.travel_plans_specific:
        after = score(profile.with_change(travel_plans_specific=False), curves, audience, settings).score
        out.append(Change("Post travel plans without dates, or after you are back", {"travel_plans_specific": False},
                          before, after))
    out.sort(key=lambda c: (-c.removed, c.description))
    return out


def top_changes(profile: UserProfile, curves: IdentificationCurves, audience: str = "stranger",
                settings: ExposureSettings = ExposureSettings(), n: int = 3) -> list[Change]:
    """The ``n`` single changes that remove the most risk (only those that remove any)."""
    return [c for c in single_changes(profile, curves, audience, settings) if c.removed > 1e-9][:n]


# --- sensitivity from a population (item response theory) ----------------------------------------

def estimate_irt(responses: np.ndarray, *, quadrature: int = 41) -> dict:
    """Two-parameter logistic IRT fitted by marginal maximum likelihood.

    ``responses`` is (people, items) of 0/1: 1 when the person shows the item beyond friends.
    P(shows) = sigmoid(alpha_i * (theta - beta_i)), with each person's openness theta integrated
    over a standard normal (Gauss-Hermite quadrature). ``beta`` is the item's sensitivity (higher =
    fewer people show it), ``alpha`` its discrimination; ``theta`` is returned as each person's
    posterior mean. Returns alpha, beta, theta and whether the optimiser converged."""
    from scipy.optimize import minimize
    from scipy.special import expit, logsumexp

    r = np.asarray(responses, dtype=np.float64)
    m = r.shape[1]
    nodes, weights = np.polynomial.hermite_e.hermegauss(quadrature)
    log_w = np.log(weights / weights.sum())

    def posterior(x):
        beta, a = x[:m], np.exp(x[m:])
        z = a[None, :] * (nodes[:, None] - beta[None, :])  # (Q, m)
        ll = r @ (-np.logaddexp(0, -z)).T + (1 - r) @ (-np.logaddexp(0, z)).T + log_w  # (n, Q)
        lse = logsumexp(ll, axis=1)
        return beta, a, z, lse, np.exp(ll - lse[:, None])

    def loss(x):
        beta, a, z, lse, post = posterior(x)
        resid = post.T @ r - post.sum(0)[:, None] * expit(z)  # (Q, m): expected observed - predicted
        d_beta = (a[None, :] * resid).sum(0)  # d(-loglik)/d beta
        d_loga = -(a[None, :] * (nodes[:, None] - beta[None, :]) * resid).sum(0)
        return -lse.sum(), np.concatenate([d_beta, d_loga])

    res = minimize(loss, np.zeros(2 * m), jac=True, method="L-BFGS-B",
                   bounds=[(-8, 8)] * m + [(-3, 3)] * m, options={"maxiter": 1000})
    beta, alpha, _, _, post = posterior(res.x)
    return {"alpha": alpha, "beta": beta, "theta": post @ nodes, "converged": bool(res.success)}


def estimate_sensitivity(profiles: list[UserProfile]) -> dict[str, float]:
    """Field sensitivities in (0, 1) estimated from a population (Liu-Terzi style): each field's IRT
    difficulty, mapped through the logistic function. Use as ``ExposureSettings(sensitivity=...)``."""
    fields = list(FIELDS)
    responses = np.array([[LEVELS.index(p.visibility[f]) >= 2 for f in fields] for p in profiles], dtype=float)
    fit = estimate_irt(responses)
    return {f: float(1 / (1 + math.exp(-b))) for f, b in zip(fields, fit["beta"])}


# --- populations -------------------------------------------------------------------------------------

def harden(profile: UserProfile) -> UserProfile:
    """The same person with every field capped at 'friends' and no public face photos."""
    vis = {f: ("friends" if LEVELS.index(lv) > 1 else lv) for f, lv in profile.visibility.items()}
    return profile.with_change(**vis, public_photos_with_face=0)


def population_scores(profiles: list[UserProfile], curves: IdentificationCurves, audience: str = "stranger",
                      settings: ExposureSettings = ExposureSettings()) -> np.ndarray:
    return np.array([score(p, curves, audience, settings).score for p in profiles])


def population_analysis(profiles: list[UserProfile], curves: IdentificationCurves, audience: str = "stranger",
                        settings: ExposureSettings = ExposureSettings()) -> dict:
    """Exposure of a population under its own (default) settings and hardened, with summaries."""
    default = population_scores(profiles, curves, audience, settings)
    hardened = population_scores([harden(p) for p in profiles], curves, audience, settings)

    def summary(x):
        return {"mean": float(x.mean()), "median": float(np.median(x)), "p90": float(np.quantile(x, 0.9)),
                "max": float(x.max())}

    return {"audience": audience, "n": len(profiles), "curve": settings.curve, "curves_source": curves.source,
            "default": summary(default), "hardened": summary(hardened),
            "scores_default": default.tolist(), "scores_hardened": hardened.tolist()}


def population_plot(analysis: dict) -> bytes:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 100, 41)
    ax.hist(analysis["scores_default"], bins=bins, alpha=0.6, label=f"default settings (mean {analysis['default']['mean']:.0f})")
    ax.hist(analysis["scores_hardened"], bins=bins, alpha=0.6, label=f"hardened (mean {analysis['hardened']['mean']:.0f})")
    ax.set(xlabel=f"exposure score ({analysis['audience']})", ylabel="people",
           title=f"Exposure of {analysis['n']} synthetic profiles")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
