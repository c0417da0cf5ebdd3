"""The exposure score: how a person's visibility settings raise what a face reveals, with its
uncertainty, and which changes lower it most.

For an audience (stranger, friend of a friend, friend) the score is

    100 * P(linked) * (what they learn) / (the most anyone could learn)

**P(linked)** is the chance that a photo of your face leads this audience to your profile. It is
modelled as the paper's search was: a recogniser returns the top k candidates (k = 10, as in
Acquisti, Gross & Stutzman) and a person checks them, so P(linked) = P(your profile is among the
top k) at the size of the gallery the audience searches (a platform, 10^9, for a stranger; a
friends-of-friends network, 40,000, otherwise), read from the experiment's identification curves
(``points[*].rank10`` with ``rank10_range``; old curve files without ``points`` fall back to
rank-1, with a note). Friends know you: P(linked) = 1.

- **The audience's photo of you.** The default is ``offline_to_online/street``: a snapshot taken
  by a stranger, face about 40 pixels wide, blurred and compressed (E2's "street" level). A
  stranger photographs you unposed, at a distance, with a phone: "webcam" (80 px, the paper's
  cooperative campus captures, people looking into a camera) is too favourable to them, "far"
  (24 px) is usually not detected at all, and "sunglasses" is a special case. Choose another
  with ``curve``.
- **Several photos of your face.** Every photo of your face the audience can see (profile photo,
  public photos, tagged photos) is one more chance for the search to land on you, but they are
  not independent chances: ``1 - (1 - p)^n`` turned 11 photos at p = 0.3 into 98%. The rule here
  is measured: n photos of one face act like n fused captures in E2 (the best distance over the
  photos counts), and what n captures add over one is read from
  ``sample_data/multi_photo_gain.json`` (``scripts/measure_multi_photo.py``: E2's captures,
  1 to 6 per person, every subset averaged). It is applied as a shift in log-odds, delta(n) = logit P(n) - logit P(1), measured up to 6 photos
  (with its bootstrap range) and growing as c * ln(n) beyond (diminishing gain; range: that growth
  to no further gain). Curves whose offline points already fuse S captures are shifted by
  delta(n) - delta(S).
- **Wrong person.** The score also reports the chance the audience's search puts someone else at
  rank 1 under the operating threshold (``wrong_top_under_threshold``, the FPIR side): a risk to
  that other person, and to you if you check yourself with it.

**What they learn** is each visible field's sensitivity plus what the fields reveal together
(inferences), with **no double counting**: every inference belongs to a group of source fields
and a group counts ``max(sum of its visible fields, value of the inference)``: an inference only
tops its fields up to its own value, never adds on top (dated travel plans are worth 1.0 in all,
not 0.7 + 0.8). The national-ID inference prices only the ID number's secret part (digits that
are not simply the birth date or sex), so it adds to its fields: its value is the expected share
of that secret part a viewer can fix (:func:`privrisk.profiles.national_id_inference`). So a
profile's score is never higher than the sum of its fields' and inferences' separate
contributions (tested).

**Uncertainty.** Every score comes with a range: P(linked)'s range (the curve's ``rank10_range``,
which for modelled and extrapolated points spans two tail models and their subject bootstrap, combined with
the multi-photo range) times the content's range (the national-ID chance: one against two
attempts for the SSN).

Sensitivities are documented defaults (:data:`DEFAULT_SENSITIVITY`, each with its source or
marked as an assumption in :data:`SENSITIVITY_SOURCES`), estimated from a population with item
response theory (:func:`estimate_sensitivity`, after Liu and Terzi, ACM TKDD 2010), or your own
(``--sensitivity FILE``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np

from .config import setting
from .errors import ConfigError, EstimationError
from .fileio import read_json
from .profiles import AUDIENCES, FIELDS, LEVELS, IdInference, UserProfile, level_hidden_from, national_id_inference

#: Sensitivity of each field (0 = harmless, 1 = most harmful in a stranger's hands). The numbers
#: are assumptions (see :data:`SENSITIVITY_SOURCES`); override them with ``--sensitivity FILE`` or
#: estimate them from a population with :func:`estimate_sensitivity`.
DEFAULT_SENSITIVITY = {
    "real_name": 0.5,
    "profile_photo": 0.2,
    "birth_date": 0.6,
    "hometown": 0.4,
    "current_city": 0.4,
    "workplace": 0.6,
    "school": 0.4,
    "interests": 0.2,
    "relationship_status": 0.3,
    "email": 0.6,
    "phone": 0.9,
    "tagged_photos": 0.3,
    "checkins": 0.6,
    "current_location": 0.9,
    "travel_plans": 0.7,
}

_ASSUMED = "assumption (our number)"
_TARASZOW = (
    "ordering consistent with Taraszow et al., Int. J. Media & Cultural Politics 6(1) 2010: most young "
    "Facebook users disclose full name, face pictures, hometown and e-mail; fewer disclose mobile phone "
    "and home address (less disclosed = more sensitive, as in Liu & Terzi, ACM TKDD 2010)"
)
#: Where each default sensitivity comes from. Only orderings are supported by studies; every number is ours.
SENSITIVITY_SOURCES = {
    "real_name": f"{_ASSUMED}; {_TARASZOW}",
    "profile_photo": f"{_ASSUMED}; {_TARASZOW}. Low because its risk is carried by P(linked), not by this weight",
    "birth_date": f"{_ASSUMED}; raised because birth date is a key to the national-ID inference (Acquisti & Gross, "
    "PNAS 2009)",
    "hometown": f"{_ASSUMED}; {_TARASZOW}",
    "current_city": _ASSUMED,
    "workplace": _ASSUMED,
    "school": _ASSUMED,
    "interests": f"{_ASSUMED}: the least sensitive item",
    "relationship_status": _ASSUMED,
    "email": f"{_ASSUMED}; {_TARASZOW}",
    "phone": f"{_ASSUMED}; {_TARASZOW}",
    "tagged_photos": f"{_ASSUMED}. Its main risk (more photos of your face) is carried by P(linked)",
    "checkins": _ASSUMED,
    "current_location": f"{_ASSUMED}: where you are now, ranked with the phone number as most sensitive",
    "travel_plans": _ASSUMED,
}


@dataclass(frozen=True)
class InferenceRule:
    """What a group of fields reveals together. ``weight`` is the value of the whole combination for
    the top-up rule (fields and inference together), or, for ``national_id``, the value of knowing
    the ID number's whole secret part (an addition: those digits are not the fields themselves)."""

    label: str
    sources: tuple[str, ...]
    weight: float
    adds: bool  # True: adds weight * value on top of its fields; False: tops its fields up to weight * value
    source: str


#: The inferences. All weights are assumptions; the national-ID rules themselves are sourced.
INFERENCES = {
    "national_id": InferenceRule(
        "national ID digits derivable (US SSN by birth cohort; Korean RRN digits and candidates)",
        ("birth_date", "hometown"),
        1.0,
        True,
        "weight: assumption (the whole secret part of an ID number = 1.0); value: the expected share of the "
        "number's secret part a viewer can fix (rules: Acquisti & Gross, PNAS 2009; RRN structure)",
    ),
    "home_location": InferenceRule(
        "where to find you in person (city plus workplace or school)",
        ("current_city", "workplace", "school"),
        1.2,
        False,
        "assumption: city plus workplace or school together are worth 1.2, a little more than the city and "
        "workplace alone (1.0)",
    ),
    "absence_from_home": InferenceRule(
        "when your home is empty (dated travel plans)",
        ("travel_plans",),
        1.0,
        False,
        "assumption: dated travel plans are worth 1.0 in all; undated ones only the field's own 0.7",
    ),
}

#: The default photo a stranger has of you (see the module docstring for why).
DEFAULT_CURVE = "offline_to_online/street"

_AUDIENCE_PHRASE = {"stranger": "A stranger", "friend_of_friend": "A friend of a friend", "friend": "A friend"}
_AUDIENCE_OBJ = {"stranger": "strangers", "friend_of_friend": "friends of friends", "friend": "friends"}
_LEVEL_PHRASE = {"only_me": "only you", "friends": "friends only", "friends_of_friends": "friends of friends"}
#: suggestions read as restrictions: "Limit your current city to friends"
_LIMIT_PHRASE = {"only_me": "only you", "friends": "friends", "friends_of_friends": "friends and their friends"}
_PHOTO_SETTINGS = ("profile_photo", "public_photos_with_face", "tagged_photos")


@dataclass(frozen=True)
class ExposureSettings:
    curve: str = setting(
        DEFAULT_CURVE,
        "identification curve of the audience's photo of you: "
        "'offline_to_online/<level>' (a snapshot; default the 'street' level) or "
        "'online_to_online' (another online photo)",
    )
    top_k: int = setting(10, "candidates the audience checks (10 as in the paper; 1 = rank 1 only)", choices=(1, 10))
    stranger_gallery_size: int = setting(1_000_000_000, "gallery a stranger searches (platform scale)", min=1)
    fof_gallery_size: int = setting(
        40_000, "gallery a friend of a friend searches (a friends-of-friends network)", min=1
    )
    max_photos: int = setting(50, "usable face photos counted at most", min=1)
    scenario_gallery_size: int = setting(
        0, "one more gallery size for the scenarios, besides 10^4, 10^6, 10^8 and 10^9 (0: none)", min=0
    )
    sensitivity: dict = setting({}, "override field sensitivities, e.g. {phone = 1.0} (CLI: --sensitivity FILE)")


# --- identification curves -------------------------------------------------------------------------

_KIND_ORDER = ("measured", "modelled", "simulated", "extrapolated")


@dataclass(frozen=True)
class CurvePoint:
    """A curve read at one gallery size: the value, its [lo, hi] range and how it was obtained."""

    metric: str  # "rank10" or "rank1"
    gallery_size: float
    value: float
    lo: float
    hi: float
    kind: str  # measured / modelled / extrapolated (the worse of the two bracketing points)
    wrong_top: float | None = None
    wrong_top_range: tuple[float, float] | None = None
    fpir: float | None = None
    fpir_range: tuple[float, float] | None = None
    note: str = ""


def _as_range(value, rng) -> tuple[float, float]:
    if isinstance(rng, (list, tuple)) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng):
        lo, hi = float(rng[0]), float(rng[1])
        return min(lo, value), max(hi, value)
    return value, value


class IdentificationCurves:
    """Identification rates against gallery size for each probe condition, from an experiment's results.

    Reads the ``points`` format (``rank10``/``rank1`` with ranges, ``kind``, wrong-person rates; see
    README) and, for older files, ``measured`` + ``predicted`` rank-1 (measured points are used
    where they exist, the prediction beyond them). Rates are made non-increasing in gallery size
    and interpolated linearly in log10(size); beyond the last point the last value is kept."""

    def __init__(self, curves: dict, source: str):
        self.source = source
        self._curves = {}
        for name, c in curves.items():
            if not isinstance(c, dict):
                raise ConfigError(f"{source}: curve {name!r}: expected an object")
            try:
                self._curves[name] = self._parse_points(c) if c.get("points") else self._parse_old(c)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: curve {name!r}: malformed ({type(exc).__name__}: {exc})") from None
            self._curves[name]["shots"] = c.get("shots")

    @staticmethod
    def _parse_points(c: dict) -> dict:
        pts = sorted(c["points"], key=lambda p: p["gallery_size"])
        x = np.log10(np.maximum([float(p["gallery_size"]) for p in pts], 1.0))
        out: dict[str, Any] = {
            "x": x,
            "kind": [p.get("kind", "measured") for p in pts],
            "format": "points",
            "metrics": {},
        }
        # each metric over the points that carry it (a point may give null where it is not computable)
        for key, rkey, name, monotone in (
            ("rank1", "rank1_range", "rank1", True),
            ("rank10", "rank10_range", "rank10", True),
            ("wrong_top_under_threshold", "wrong_top_range", "wrong_top", False),
            ("fpir_at_threshold", "fpir_range", "fpir", False),
        ):
            have = [j for j, p in enumerate(pts) if p.get(key) is not None]
            if not have:
                continue
            v = np.array([float(pts[j][key]) for j in have])
            lohi = np.array([_as_range(float(pts[j][key]), pts[j].get(rkey)) for j in have]).reshape(len(have), 2)
            arrays: tuple[np.ndarray, ...] = (v, lohi[:, 0], lohi[:, 1])
            if monotone:
                arrays = tuple(np.minimum.accumulate(a) for a in arrays)
            out["metrics"][name] = (x[have], *arrays)
        if "rank1" not in out["metrics"] and "rank10" not in out["metrics"]:
            raise ValueError("points carry neither rank10 nor rank1")
        return out

    @staticmethod
    def _parse_old(c: dict) -> dict:
        points = {p["gallery_size"]: (p["rank1"], p["rank1"], p["rank1"], "measured") for p in c["measured"]}
        top = max(points) if points else 0
        pred = c.get("predicted") or {}
        lows, highs = pred.get("ci95_low") or [], pred.get("ci95_high") or []
        for j, (size, rate) in enumerate(zip(pred.get("gallery_size", []), pred.get("rank1", []))):
            if size > top:
                lo = lows[j] if j < len(lows) else rate
                hi = highs[j] if j < len(highs) else rate
                points[size] = (rate, min(lo, rate), max(hi, rate), "extrapolated")
        sizes = sorted(points)
        if not sizes:
            raise ValueError("no measured or predicted points")
        arr = np.array([points[s][:3] for s in sizes], dtype=np.float64)
        x = np.log10(np.maximum(np.array(sizes, dtype=np.float64), 1.0))
        return {
            "x": x,
            "format": "old",
            "kind": [points[s][3] for s in sizes],
            "metrics": {"rank1": (x, *(np.minimum.accumulate(arr[:, j]) for j in range(3)))},
        }

    @classmethod
    def from_results(cls, path: str | Path, calibration: dict | None = None) -> IdentificationCurves:
        """Curves from an experiment's ``results.json`` (or the shipped curves file). With
        ``calibration`` (:func:`privrisk.tailmodel.load_calibration`), modelled and extrapolated
        ranges are widened by it (:data:`privrisk.tailmodel.WIDEN_RULE`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: results file not found (run `privrisk demo` or `privrisk experiment`)"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a results JSON file ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not a results JSON object")
        curves = (data.get("scaling_detail") or {}).get("curves") or data.get("curves")
        if not curves or not isinstance(curves, dict):
            raise ConfigError(f"{path}: no identification curves in it (expected scaling_detail.curves)")
        if calibration is not None:
            from .tailmodel import widen_curves

            w = calibration["widening"]
            if w["k_up"] == 1.0 and w["k_down"] == 1.0:
                note = f"ranges unchanged by the calibration {calibration.get('path', '')} (the model was within)"
            else:
                note = (
                    f"ranges widened by the calibration {calibration.get('path', '')} "
                    f"(k_up {'unbounded' if w['k_up'] is None else format(w['k_up'], '.3g')}, "
                    f"k_down {'unbounded' if w['k_down'] is None else format(w['k_down'], '.3g')})"
                )
            return cls(widen_curves(curves, w), source=f"{path}, {note}")
        return cls(curves, source=str(path))

    @classmethod
    def shipped(cls, calibration: dict | None = None) -> IdentificationCurves:
        """The curves measured by the demo on the sample set (``sample_data/identification_curves.json``)."""
        from .samples import sample_data_dir

        return cls.from_results(sample_data_dir() / "identification_curves.json", calibration=calibration)

    @property
    def names(self) -> list[str]:
        return sorted(self._curves)

    def _get(self, name: str) -> dict:
        if name not in self._curves:
            raise ConfigError(f"curve {name!r} not in {self.source} (available: {', '.join(self.names)})")
        return self._curves[name]

    def shots(self, name: str, default_offline: int) -> int:
        """Captures fused behind each point of ``name`` (the curve's ``shots`` key, else E2's
        ``default_offline`` for offline curves and 1 for online ones)."""
        c = self._get(name)
        if c["shots"]:
            return int(c["shots"])
        return default_offline if name.startswith("offline_to_online/") else 1

    def point(self, name: str, gallery_size: float, k: int = 10) -> CurvePoint:
        """The curve ``name`` at ``gallery_size``: P(true person in the top ``k``), k = 10 or 1."""
        c = self._get(name)
        metric = f"rank{k}"
        note = ""
        if metric not in c["metrics"]:
            if k != 10 or "rank1" not in c["metrics"]:
                raise ConfigError(f"curve {name!r} in {self.source} has no {metric}")
            metric = "rank1"
            note = (
                "this curve file has rank-1 only (older format): P(in the top 10) is read as rank-1, "
                "which understates it"
            )
        xq = math.log10(max(float(gallery_size), 1.0))
        xm, *arrays = c["metrics"][metric]
        v, lo, hi = (float(np.interp(xq, xm, a)) for a in arrays)
        x = c["x"]
        j = int(np.searchsorted(x, xq))
        bracket = {c["kind"][min(j, len(x) - 1)], c["kind"][max(j - 1, 0)]}
        kind = max(bracket, key=lambda kd: _KIND_ORDER.index(kd) if kd in _KIND_ORDER else 3)
        if xq > xm[-1] + 1e-12:
            note = (
                note + "; " if note else ""
            ) + f"gallery beyond the curve's last point (10^{xm[-1]:.1f}): last value kept"
            kind = "extrapolated"
        extra: dict[str, Any] = {}  # a value and its range per extra metric
        for key in ("wrong_top", "fpir"):
            if key in c["metrics"]:
                xk, *arrs = c["metrics"][key]
                a, b, d = (float(np.interp(xq, xk, arr)) for arr in arrs)
                extra[key], extra[f"{key}_range"] = a, (b, d)
        return CurvePoint(metric, float(gallery_size), v, min(lo, v), max(hi, v), kind, note=note, **extra)

    def rank1(self, name: str, gallery_size: float) -> float:
        """Rank-1 rate of ``name`` at ``gallery_size`` (kept for older callers)."""
        return (
            self.point(name, gallery_size, k=1).value
            if "rank1" in self._get(name)["metrics"]
            else self.point(name, gallery_size).value
        )


# --- several photos of one face ------------------------------------------------------------------------


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class MultiPhotoGain:
    """What extra photos of one face add, measured by E2's multi-shot fusion.

    n photos of one face are treated like n fused captures (the best distance over them counts).
    ``shift(level, n)`` is the measured gain in log-odds of being found: delta(n) = logit P(n) -
    logit P(1) at the real gallery, at the measured capture counts (1 to 6 in the shipped
    measurement; 1 and E2's shot count in an experiment's ``fusion`` block), interpolated in
    ln(n) between them, with its range (paired bootstrap over people, or from the rates' exact
    intervals) when given. Beyond the largest measured count, delta grows as c * ln(n) (c fitted
    to the measured points: each doubling of photos adds the same log-odds, so the gain in
    probability shrinks), with the range from that growth (most gain) to no further gain. The shift
    is applied unchanged at other gallery sizes (an assumption: the log-odds gain measured on the
    real gallery carries over). Levels with fewer than 5 found or 5 missed persons at one capture
    cannot show a gain; they use the median slope of the levels that can (said in the note)."""

    MIN_EVENTS = 5

    def __init__(self, data: dict, source: str):
        self.source = source
        self.shots_in_e2 = int(data.get("shots_in_e2", 3))
        self.gallery_size = data.get("gallery_size") or "the sample's"
        self.inputs = data.get("inputs")
        self.note = data.get("note", "")
        self._levels = {}
        for name, lv in (data.get("levels") or {}).items():
            entry: dict[str, Any] = {m: np.array(lv[m], dtype=np.float64) for m in ("rank1", "rank10") if m in lv}
            size = max((len(v) for v in entry.values()), default=0)
            entry["shots"] = np.array(lv.get("shots") or range(1, size + 1), dtype=np.float64)
            for m in ("rank1_gain_range", "rank10_gain_range"):
                if m in lv:
                    entry[m] = np.array(lv[m], dtype=np.float64).reshape(-1, 2)
            if any(len(entry[m]) != len(entry["shots"]) for m in entry if m != "shots") or (
                len(entry["shots"]) and entry["shots"][0] != 1
            ):
                raise ConfigError(f"{source}: level {name!r}: rates must be given for shots 1, ...")
            entry["n"] = int(lv.get("n_persons", 0))
            self._levels[name] = entry
        if not self._levels:
            raise ConfigError(f"{source}: no levels in the multi-photo measurement")

    @classmethod
    def from_file(cls, path: str | Path) -> MultiPhotoGain:
        path = Path(path)
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")), str(path))
        except FileNotFoundError:
            raise ConfigError(f"{path}: multi-photo measurement not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a multi-photo measurement ({exc})") from None

    @classmethod
    def shipped(cls) -> MultiPhotoGain:
        from .samples import sample_data_dir

        return cls.from_file(sample_data_dir() / "multi_photo_gain.json")

    @classmethod
    def from_results(cls, results: dict, source: str) -> MultiPhotoGain | None:
        """The gain E2 measured in an experiment (``experiments.offline_to_online.levels.<level>.fusion``:
        rank-1 with one capture and fused over all, with exact intervals), or None if absent."""
        levels = ((results.get("experiments") or {}).get("offline_to_online") or {}).get("levels") or {}
        out: dict[str, dict] = {}
        for name, lv in levels.items():
            fu = lv.get("fusion") if isinstance(lv, dict) else None
            if not isinstance(fu, dict) or fu.get("rank1_single") is None or fu.get("rank1_fused") is None:
                continue
            shots = int(fu.get("shots") or 0)
            if shots < 2:
                continue
            single, fused = float(fu["rank1_single"]), float(fu["rank1_fused"])
            s_ci, f_ci = fu.get("rank1_single_ci95"), fu.get("rank1_fused_ci95")
            entry = {"shots": [1, shots], "rank1": [single, fused], "n_persons": int(fu.get("n_mated") or 0)}
            if s_ci and f_ci:  # unpaired exact intervals: a conservative range for the gain
                gain = _logit(fused) - _logit(single)
                entry["rank1_gain_range"] = [
                    [0.0, 0.0],
                    [min(gain, _logit(f_ci[0]) - _logit(s_ci[1])), max(gain, _logit(f_ci[1]) - _logit(s_ci[0]))],
                ]
            out[name] = entry
        if not out:
            return None
        shots = max(int(v["shots"][-1]) for v in out.values())
        return cls(
            {
                "shots_in_e2": shots,
                "levels": out,
                "note": "E2's own fusion measurement (one capture against all captures fused)",
            },
            f"{source} (E2 fusion)",
        )

    def _metric(self, level: str, metric: str) -> str:
        lv = self._levels.get(level, {})
        return metric if metric in lv else ("rank1" if "rank1" in lv else metric)

    def _measured(self, level: str, metric: str):
        """(shots, delta, lo, hi) at the measured capture counts, or None when the level cannot show a gain."""
        lv = self._levels.get(level)
        metric = self._metric(level, metric)
        if lv is None or metric not in lv:
            return None
        p = lv[metric]
        if min(p[0], 1 - p[0]) * lv["n"] < self.MIN_EVENTS:
            return None
        delta = np.maximum.accumulate(np.maximum([_logit(v) - _logit(p[0]) for v in p], 0.0))
        rng = lv.get(f"{metric}_gain_range")  # (shots, 2): range of delta
        if rng is None or len(rng) != len(delta):
            return lv["shots"], delta, delta, delta
        lo = np.maximum.accumulate(np.clip(np.minimum(rng[:, 0], delta), 0.0, None))
        hi = np.maximum.accumulate(np.maximum(rng[:, 1], delta))
        return lv["shots"], delta, lo, hi

    @staticmethod
    def _slope(shots: np.ndarray, delta: np.ndarray) -> float:
        ln = np.log(shots)
        return float(max(0.0, (delta * ln).sum() / max((ln**2).sum(), 1e-12)))

    def curve(self, level: str, metric: str = "rank10"):
        """(shots, delta, lo, hi, slope c, where it came from) at the measured capture counts."""
        m = self._measured(level, metric)
        used = self._metric(level, metric)
        if m is not None:
            extra = f" (rank-{used[4:]} gain)" if used != metric else ""
            return (*m, self._slope(m[0], m[1]), f"gain measured on the '{level}' level{extra}")
        usable = [(name, self._measured(name, metric)) for name in sorted(self._levels)]
        usable = [(name, mm) for name, mm in usable if mm is not None]
        if not usable:
            z = np.zeros(1)
            return np.ones(1), z, z, z, 0.0, "no level shows a measurable gain: extra photos counted as adding nothing"
        slopes = [self._slope(mm[0], mm[1]) for _, mm in usable]
        c = float(np.median(slopes))
        shots = min((mm[0] for _, mm in usable), key=len)
        ln = np.log(shots)
        why = "too few found or missed persons to measure it" if level in self._levels else "not measured"
        return (
            shots,
            c * ln,
            min(slopes) * ln,
            max(slopes) * ln,
            c,
            f"'{level}': {why}; assumption: the median gain of the measured levels "
            f"({', '.join(n for n, _ in usable)}), {c:.2f} log-odds per e-fold of photos (range: their "
            "smallest to largest)",
        )

    def shift(self, level: str, n: int, metric: str = "rank10") -> tuple[float, float, float, str]:
        """delta(n) with its range (lo = least gain, hi = most gain) and a note; n >= 1."""
        if n < 1:
            raise ValueError("n must be at least 1")
        shots, d, lo, hi, c, how = self.curve(level, metric)
        top = float(shots[-1])
        if n <= top:
            x, xs = math.log(n), np.log(shots)
            return (float(np.interp(x, xs, d)), float(np.interp(x, xs, lo)), float(np.interp(x, xs, hi)), how)
        grow = c * math.log(n / top)
        return (
            float(d[-1]) + grow,
            float(lo[-1]),
            float(hi[-1]) + grow,
            how + f"; {n} photos: extrapolated past {int(top)} (from no further gain to c*ln n)",
        )


def multi_photo_inputs(cfg, shots: int, n_boot: int) -> dict:
    """What the multi-photo measurement (``scripts/measure_multi_photo.py``) depends on, recorded in
    the file it writes: the seed and split, the capture recipe of every E2 level (its degradation
    settings and :data:`privrisk.degrade.DEGRADE_VERSION`), the face settings, the model and the
    library versions. A test compares the shipped file's record with this, so a stale file fails."""
    from dataclasses import asdict as _asdict

    from .degrade import DEGRADE_VERSION
    from .models import dlib_model_id, library_versions

    return {
        "seed": int(cfg.seed),
        "unseen_share": float(cfg.unseen_share),
        "shots": int(shots),
        "shots_in_e2": int(cfg.offline.shots),
        "n_boot": int(n_boot),
        "degrade_version": DEGRADE_VERSION,
        "capture_recipe": {lv.name: _asdict(lv) for lv in cfg.offline.levels},
        "faces": _asdict(cfg.faces),
        "model_id": dlib_model_id(),
        "versions": library_versions(),
    }


@dataclass(frozen=True)
class LinkEstimate:
    """P(linked) for one audience, with its range and where it came from."""

    p: float
    lo: float
    hi: float
    kind: str
    curve: str | None = None
    gallery_size: int | None = None
    k: int | None = None
    photos: int = 0
    p_one_photo: float | None = None
    p_one_photo_range: tuple[float, float] | None = None
    wrong_person: float | None = None
    wrong_person_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()
    fpir: float | None = None  # if you are not on the platform: P(someone else under the threshold)
    fpir_range: tuple[float, float] | None = None


def link_probability(
    n_photos: int,
    audience: str,
    curves: IdentificationCurves,
    settings: ExposureSettings,
    gain: MultiPhotoGain | None = None,
) -> LinkEstimate:
    """P(linked) for ``audience`` when it can see ``n_photos`` photos of your face (see module docstring)."""
    if audience == "friend":
        return LinkEstimate(1.0, 1.0, 1.0, "known", notes=("a friend already knows who you are",))
    size = settings.stranger_gallery_size if audience == "stranger" else settings.fof_gallery_size
    pt = curves.point(settings.curve, size, settings.top_k)
    notes = [n for n in (pt.note,) if n]
    gain = gain or MultiPhotoGain.shipped()
    level = settings.curve.split("/", 1)[1] if "/" in settings.curve else "webcam"
    metric = "rank10" if pt.metric == "rank10" else "rank1"
    shots = curves.shots(settings.curve, gain.shots_in_e2)
    d_s = gain.shift(level, shots, metric)[0] if shots > 1 else 0.0

    def p_at(n: int) -> tuple[float, float, float, str]:
        d, d_lo, d_hi, how = gain.shift(level, n, metric)

        def at(rate: float, delta: float) -> float:
            if rate <= 0.0 or rate >= 1.0:
                return rate
            return _sigmoid(_logit(rate) - d_s + delta)

        val = at(pt.value, d)
        return val, min(at(pt.lo, d_lo), val), max(at(pt.hi, d_hi), val), how

    bounded = pt.kind != "measured"  # the gain was measured on the real gallery only

    def bound(vals: tuple[float, float, float, str]) -> tuple[float, float, float, str]:
        """At a scale where the gain was not measured it is a bounded scenario: the range runs from
        the curve without any rescaling to the measured gain applied."""
        v, a, b, how = vals
        if not bounded:
            return vals
        return v, min(a, pt.lo), max(b, pt.hi), how

    one = bound(p_at(1))
    if n_photos == 0:
        p = lo = hi = 0.0
        notes.append("no photo of your face is visible to this audience")
    else:
        p, lo, hi, how = bound(p_at(n_photos))
        if bounded and n_photos != shots:
            notes.append(
                f"the gain from several photos was measured among {gain.gallery_size} people only, not at "
                f"{int(size):,}: there it is a bounded scenario, the range running from the curve without it to "
                "the measured gain applied"
            )
        if n_photos > 1:
            notes.append(f"{n_photos} photos of one face counted like {n_photos} fused captures ({how})")
        if shots > 1:
            notes.append(
                f"the curve fuses {shots} captures; rescaled to {n_photos} photo(s) with the measured log-odds gain"
            )
    measured_top = float(gain.curve(level, metric)[0][-1])
    kind = pt.kind if n_photos <= measured_top or pt.kind == "extrapolated" else "extrapolated"
    wrong = pt.wrong_top if n_photos else None
    if pt.wrong_top is None:
        notes.append("this curve file has no wrong-person rate (wrong_top_under_threshold)")
    return LinkEstimate(
        p,
        lo,
        hi,
        kind,
        settings.curve,
        int(size),
        settings.top_k if pt.metric == "rank10" else 1,
        n_photos,
        one[0],
        (one[1], one[2]),
        wrong,
        pt.wrong_top_range if wrong is not None else None,
        tuple(notes),
        pt.fpir,
        pt.fpir_range,
    )


#: where a score's chance of being linked can come from instead of the curves (see :func:`score`)
LinkSource = Callable[[UserProfile, str, ExposureSettings], LinkEstimate | None]

# --- the score ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPart:
    field: str
    label: str
    visible: bool
    sensitivity: float
    points: float  # what this item adds to the score
    alone: float = 0.0  # what it would be worth counted alone (its separate contribution)
    source: str = ""


@dataclass(frozen=True)
class ExposureScore:
    audience: str
    score: float
    score_range: tuple[float, float]
    score_if_linked: float
    link: LinkEstimate
    parts: tuple[FieldPart, ...]
    inferences: tuple[FieldPart, ...]
    national_id: IdInference | None

    # older readers
    @property
    def p_linked(self) -> float:
        return self.link.p

    @property
    def usable_photos(self) -> int:
        return self.link.photos

    @property
    def gallery_size(self) -> int | None:
        return self.link.gallery_size

    @property
    def curve(self) -> str | None:
        return self.link.curve

    @property
    def p_one_photo(self) -> float | None:
        return self.link.p_one_photo

    @property
    def national_id_text(self) -> str | None:
        nid = self.national_id
        if nid is None:
            return None
        chance = (
            ""
            if nid.chance is None or nid.chance >= 1.0
            else (
                f", chance {nid.chance:.0%}"
                if nid.chance_range is None or nid.chance_range[0] == nid.chance_range[1]
                else f", chance {nid.chance_range[0]:.0%}-{nid.chance_range[1]:.0%}"
            )
        )
        space = f", about {nid.candidates:,} candidates left" if nid.candidates else ""
        return f"{nid.scheme}: {nid.derived or 'nothing derivable'}{chance}{space}"

    @property
    def label(self) -> str:
        """What the number means, in one line: the scenario that defines it."""
        lo, hi = self.score_range
        lk = self.link
        gain_past = any("extrapolated past" in n or "bounded scenario" in n for n in lk.notes)
        head = (
            f"Exposure {lo:.0f} to {hi:.0f} / 100 (model value {self.score:.0f}"
            + (
                "; the upper end applies the gain from several photos where it was never measured: that many "
                "photos, that many people"
                if gain_past and self.audience != "friend"
                else ""
            )
            + ")"
            if f"{lo:.0f}" != f"{hi:.0f}"
            else f"Exposure {self.score:.0f} / 100"
        )
        if self.audience == "friend":
            return f"{head}: a friend knows you, so it is the share of what your profile reveals that they see"
        return (
            f"{head}: the chance that {_AUDIENCE_PHRASE[self.audience].lower()} using the open 2017 model measured "
            f"here finds your profile among {lk.gallery_size:,} people ({lk.kind}; a lower bound for commercial "
            "engines), times the share of what your profile could reveal that they would then see"
        )

    def explain(self) -> str:
        """The score in plain words."""
        lk = self.link
        lo, hi = self.score_range
        if self.audience == "friend":
            link = "A friend already knows who you are."
        elif lk.photos == 0:
            link = (
                f"{_AUDIENCE_PHRASE[self.audience]} cannot see any photo of your face, so a photo of you "
                "does not lead them to your profile."
            )
        else:
            where = f"among the top {lk.k} candidates" if lk.k and lk.k > 1 else "at rank 1"
            # past what real pairs can check the data cannot pin the chance down: lead with the range
            chance = (
                f"with a probability the data cannot pin down: anywhere from {lk.lo:.0%} to {lk.hi:.0%} "
                f"(extrapolated; the model's own value is {lk.p:.0%})"
                if lk.kind == "extrapolated"
                else f"with probability {lk.p:.0%} (range {lk.lo:.0%}-{lk.hi:.0%}, {lk.kind})"
            )
            link = (
                f"{_AUDIENCE_PHRASE[self.audience]} with a photo of you finds your profile {where} "
                f"{chance}: "
                f"{lk.photos} photo(s) of your face are visible to them, searched among {lk.gallery_size:,} "
                f"people (curve '{lk.curve}'; one photo alone: {lk.p_one_photo:.0%}"
                + (
                    "; what so many photos add is extrapolated past the number measured, and at this gallery size it "
                    "is a bounded scenario"
                    if any("extrapolated past" in n for n in lk.notes)
                    else (
                        "; what several photos add was measured on the real gallery only: here a bounded scenario"
                        if any("bounded scenario" in n for n in lk.notes)
                        else ""
                    )
                )
                + ")."
            )
            if lk.wrong_person is not None:
                wr = lk.wrong_person_range or (lk.wrong_person, lk.wrong_person)
                link += (
                    f" The same search puts someone else first, under the match threshold, "
                    f"{lk.wrong_person:.0%} of the time (range {wr[0]:.0%}-{wr[1]:.0%}): they may be led to the "
                    "wrong person, a risk to that person."
                )
        learned = [p.label for p in (*self.parts, *self.inferences) if p.visible and p.points > 0]
        what = ("They would then learn: " + "; ".join(learned) + ".") if learned else "They would learn nothing more."
        head = (
            f"Exposure up to {hi:.0f} (range {lo:.0f}-{hi:.0f}; model value {self.score:.0f})"
            if lk.kind == "extrapolated" and self.audience != "friend" and lk.photos
            else f"Exposure {self.score:.0f} (range {lo:.0f}-{hi:.0f})"
        )
        return f"{head}. {link} {what}"

    def to_dict(self) -> dict:
        lk = self.link
        return {
            "audience": self.audience,
            "label": self.label,
            "score": self.score,
            "score_range": list(self.score_range),
            "score_if_linked": self.score_if_linked,
            "p_linked": lk.p,
            "p_linked_range": [lk.lo, lk.hi],
            "p_linked_kind": lk.kind,
            "top_k": lk.k,
            "usable_photos": lk.photos,
            "gallery_size": lk.gallery_size,
            "curve": lk.curve,
            "p_one_photo": lk.p_one_photo,
            "p_one_photo_range": list(lk.p_one_photo_range or []) or None,
            "wrong_person": lk.wrong_person,
            "wrong_person_range": list(lk.wrong_person_range) if lk.wrong_person_range else None,
            "fpir": lk.fpir,
            "fpir_range": list(lk.fpir_range) if lk.fpir_range else None,
            "link_notes": list(lk.notes),
            "national_id": self.national_id_text,
            "national_id_detail": asdict(self.national_id) if self.national_id is not None else None,
            "explanation": self.explain(),
            "fields": [asdict(p) for p in self.parts],
            "inferences": [asdict(p) for p in self.inferences],
        }


def export_curves(results: dict) -> dict:
    """The part of an experiment's results the score needs, with where it came from."""
    return {
        "source": "privrisk experiment results",
        "seed": results["seed"],
        "versions": results["versions"],
        "dataset": results["dataset"]["root"].rsplit("/", 1)[-1],
        "curves": results["scaling_detail"]["curves"],
    }


def _sensitivities(settings: ExposureSettings) -> dict:
    unknown = set(settings.sensitivity) - set(FIELDS)
    if unknown:
        raise ConfigError(f"sensitivity: unknown field(s) {', '.join(sorted(unknown))}")
    out = dict(DEFAULT_SENSITIVITY)
    for k, v in settings.sensitivity.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ConfigError(f"sensitivity.{k}: expected a number between 0 and 1, got {v!r}")
        out[k] = float(v)
    return out


def load_sensitivity(path: str | Path) -> dict:
    """Field sensitivities from a JSON file ``{"phone": 1.0, ...}`` (validated when scored)."""
    path = Path(path)
    data = read_json(path, "sensitivity")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping field -> sensitivity")
    try:
        _sensitivities(ExposureSettings(sensitivity=data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data


def usable_photos(profile: UserProfile, audience: str, cap: int = 50) -> int:
    visible = profile.visible_to(audience)
    n = int("profile_photo" in visible) + profile.public_photos_with_face
    if "tagged_photos" in visible:
        n += profile.tagged_photos_with_face
    return min(n, cap)


def _content_max(sens: dict) -> float:
    """The most any profile can reveal: every field, and each inference at its largest value."""
    total = sum(sens.values())
    for rule in INFERENCES.values():
        total += rule.weight if rule.adds else max(0.0, rule.weight - sum(sens[f] for f in rule.sources))
    return total


def _content(profile: UserProfile, visible: set, sens: dict):
    """(value, lo, hi, field parts, inference parts, ID inference) of what ``visible`` reveals."""
    learned = {f for f in visible if f != "real_name" or profile.real_name_used}
    parts = [
        FieldPart(
            f,
            label,
            f in learned,
            sens[f],
            sens[f] if f in learned else 0.0,
            sens[f] if f in learned else 0.0,
            SENSITIVITY_SOURCES[f],
        )
        for f, label in FIELDS.items()
    ]
    idinf = national_id_inference(profile.birth_country, profile.birth_year, visible, hometown=profile.hometown)
    id_val, id_lo, id_hi = (idinf.secret_fraction, *idinf.secret_fraction_range) if idinf else (0.0, 0.0, 0.0)
    values = {
        "national_id": (id_val, id_lo, id_hi),
        "home_location": (float("current_city" in learned and bool({"workplace", "school"} & learned)),) * 3,
        "absence_from_home": ((1.0 if profile.travel_plans_specific else 0.1) * ("travel_plans" in learned),) * 3,
    }
    inferences, adds = [], np.zeros(3)
    for name, rule in INFERENCES.items():
        fields_sum = sum(sens[f] for f in rule.sources if f in learned)
        trio = []
        for v in values[name]:
            trio.append(rule.weight * v if rule.adds else max(0.0, rule.weight * v - fields_sum))
        adds += trio
        inferences.append(
            FieldPart(
                name, rule.label, values[name][0] > 0, rule.weight, trio[0], rule.weight * values[name][0], rule.source
            )
        )
    base = sum(p.points for p in parts)
    return base + adds[0], base + adds[1], base + adds[2], tuple(parts), inferences, idinf


def score(
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    gain: MultiPhotoGain | None = None,
    link_from: LinkSource | None = None,
) -> ExposureScore:
    """The exposure score of ``profile`` for ``audience``, with its range and breakdown. ``link_from``
    (profile, audience, settings) -> :class:`LinkEstimate` or None replaces the population curves'
    chance of being linked where it answers (e.g. with one measured on your own photos)."""
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    sens = _sensitivities(settings)
    visible = profile.visible_to(audience)
    link = link_from(profile, audience, settings) if link_from is not None else None
    if link is None:
        link = link_probability(usable_photos(profile, audience, settings.max_photos), audience, curves, settings, gain)
    value, lo, hi, parts, infs, idinf = _content(profile, visible, sens)
    cmax = _content_max(sens)
    scale = 100.0 / cmax
    parts = tuple(replace(p, points=p.points * scale * link.p, alone=p.alone * scale * link.p) for p in parts)
    infs = tuple(replace(p, points=p.points * scale * link.p, alone=p.alone * scale * link.p) for p in infs)
    s = min(100.0, scale * link.p * value)
    rng = (min(100.0, scale * link.lo * lo), min(100.0, scale * link.hi * hi))
    return ExposureScore(
        audience,
        float(s),
        (float(min(rng[0], s)), float(max(rng[1], s))),
        float(min(100.0, scale * value)),
        link,
        parts,
        infs,
        idinf,
    )


# --- changes towards privacy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting changed: ``key`` names the setting, ``change`` is what ``UserProfile.with_change`` takes."""

    key: str
    change: dict
    description: str


@dataclass(frozen=True)
class Change:
    """A set of settings changed together, with its effect on the chosen audience and on every audience."""

    description: str
    change: dict
    before: float
    after: float
    settings: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    after_range: tuple[float, float] | None = None
    effect: dict = dc_field(default_factory=dict)  # audience -> (before, after)
    before_high: float | None = None  # upper end of the score's range, before and after
    after_high: float | None = None

    @property
    def removed(self) -> float:
        """What the change takes off the score."""
        return self.before - self.after

    @property
    def drop(self) -> float:
        """What suggestions are ranked by: the drop of the score plus the drop of its upper end, so
        a change still counts where the score is near 0 but its range is not."""
        if self.before_high is not None and self.after_high is not None:
            high = self.before_high - self.after_high
        else:
            high = self.removed
        return self.removed + high

    @property
    def per_setting(self) -> float:
        return self.drop / max(len(self.settings), 1)

    def __str__(self) -> str:
        return f"{self.description}: {self.before:.0f} -> {self.after:.0f}"

    def to_dict(self) -> dict:
        return {
            "change": self.description,
            "steps": list(self.steps),
            "settings": self.change,
            "settings_changed": len(self.settings),
            "before": self.before,
            "after": self.after,
            "after_range": list(self.after_range) if self.after_range else None,
            "before_high": self.before_high,
            "after_high": self.after_high,
            "drop": self.drop,
            "drop_per_setting": self.per_setting,
            "effect": {a: {"before": b, "after": c} for a, (b, c) in self.effect.items()},
        }


def change_options(profile: UserProfile, audience: str) -> list[Option]:
    """Every single setting that, changed, could hide something from ``audience``.

    A field visible to the audience is moved to the least restrictive level the audience does not
    see ('friends of friends' hides it from strangers, 'friends' from friends of friends, 'only me'
    from friends): more restriction changes nothing for that audience."""
    target = level_hidden_from(audience)
    out = []
    for f, label in FIELDS.items():
        if LEVELS.index(profile.visibility[f]) > LEVELS.index(target):
            out.append(Option(f, {f: target}, f"Limit your {label} to {_LIMIT_PHRASE[target]}"))
    if profile.public_photos_with_face:
        out.append(
            Option(
                "public_photos_with_face",
                {"public_photos_with_face": 0},
                f"Limit the {profile.public_photos_with_face} public photos that show your face to friends",
            )
        )
    if profile.real_name_used:
        out.append(Option("real_name_used", {"real_name_used": False}, "Use a nickname instead of your real name"))
    if profile.travel_plans_specific:
        out.append(
            Option(
                "travel_plans_specific",
                {"travel_plans_specific": False},
                "Post travel plans without dates, or after you are back",
            )
        )
    return out


def _describe(options: tuple[Option, ...], available: list[Option], audience: str) -> str:
    photo_keys = {o.key for o in available if o.key in _PHOTO_SETTINGS}
    keys = {o.key for o in options}
    if photo_keys and photo_keys <= keys:
        rest = [o.description for o in options if o.key not in photo_keys]
        head = f"Hide every photo of your face from {_AUDIENCE_OBJ[audience]}"
        return "; ".join([head] + rest)
    return "; ".join(o.description for o in options)


def search_changes(
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    max_settings: int = 3,
    gain: MultiPhotoGain | None = None,
    link_from: LinkSource | None = None,
) -> list[Change]:
    """Every set of up to ``max_settings`` changes that lowers ``audience``'s score, best first.

    The drop of a set is what it takes off the score plus what it takes off the score's upper end
    (:attr:`Change.drop`): where the score is near 0 but its range is not, hiding what remains
    still counts. Only sets where each change matters are kept (without any one of them the drop
    is smaller), and never one that leaves the score and its range unchanged. Order: the largest
    drop per setting changed first, then the largest drop, then fewer settings."""
    gain = gain or MultiPhotoGain.shipped()
    options = change_options(profile, audience)
    first = score(profile, curves, audience, settings, gain, link_from)
    before, before_hi = first.score, first.score_range[1]
    after: dict[tuple[int, ...], tuple[float, float]] = {(): (before, before_hi)}
    for size in range(1, max_settings + 1):
        for combo in itertools.combinations(range(len(options)), size):
            merged: dict = {}
            for j in combo:
                merged |= options[j].change
            s = score(profile.with_change(**merged), curves, audience, settings, gain, link_from)
            after[combo] = (s.score, s.score_range[1])

    def drop(combo) -> float:
        a, a_hi = after[combo]
        return (before - a) + (before_hi - a_hi)

    out = []
    eps = 1e-9
    for combo, (a, a_hi) in after.items():
        if not combo or drop(combo) <= eps:
            continue
        if any(drop(tuple(x for x in combo if x != j)) >= drop(combo) - eps for j in combo):
            continue  # a change in this set adds nothing
        opts = tuple(options[j] for j in combo)
        merged = {}
        for o in opts:
            merged |= o.change
        out.append(
            Change(
                _describe(opts, options, audience),
                merged,
                before,
                a,
                tuple(o.key for o in opts),
                tuple(o.description for o in opts),
                before_high=before_hi,
                after_high=a_hi,
            )
        )
    out.sort(key=lambda c: (-round(c.per_setting, 9), -round(c.drop, 9), len(c.settings), c.description))
    return out


def _with_effects(profile, curves, audience, settings, gain, change: Change, link_from=None) -> Change:
    changed = profile.with_change(**change.change)
    effect = {
        a: (
            score(profile, curves, a, settings, gain, link_from).score,
            score(changed, curves, a, settings, gain, link_from).score,
        )
        for a in AUDIENCES
    }
    after_range = score(changed, curves, audience, settings, gain, link_from).score_range
    return replace(change, effect=effect, after_range=after_range)


def top_changes(
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    n: int = 3,
    max_settings: int = 3,
    gain: MultiPhotoGain | None = None,
    link_from: LinkSource | None = None,
) -> list[Change]:
    """The ``n`` best sets of up to ``max_settings`` changes (see :func:`search_changes`), each with its
    effect on every audience. The first is the largest drop per setting changed. Skipped: a set
    that adds changes to an earlier suggestion without going lower than the suggestions so far,
    and a set as large as an earlier one with the same result. "Hide every photo of your face"
    is always shown when it is the largest drop of all (the main lever)."""
    gain = gain or MultiPhotoGain.shipped()
    ranked = search_changes(profile, curves, audience, settings, max_settings, gain, link_from)
    best: list[Change] = []
    for c in ranked:
        if len(best) == n:
            break
        if any(set(b.settings) < set(c.settings) and c.drop <= max(x.drop for x in best) + 1e-9 for b in best):
            continue  # an earlier suggestion plus more, and no larger drop than what is already suggested
        if any(
            len(b.settings) == len(c.settings) and abs(b.drop - c.drop) < 1e-9 and abs(b.after - c.after) < 1e-9
            for b in best
        ):
            continue  # an equivalent alternative (e.g. hide the name field / use a nickname)
        best.append(c)
    photos = [c for c in ranked if c.description.startswith("Hide every photo")]
    if photos and ranked and photos[0].drop >= max(c.drop for c in ranked) - 1e-9 and photos[0] not in best:
        best.append(photos[0])  # the main lever is always shown
    return [_with_effects(profile, curves, audience, settings, gain, c, link_from) for c in best]


def single_changes(
    profile: UserProfile,
    curves: IdentificationCurves,
    audience: str = "stranger",
    settings: ExposureSettings = ExposureSettings(),
    gain: MultiPhotoGain | None = None,
    link_from: LinkSource | None = None,
) -> list[Change]:
    """The score after each single change towards privacy (also those that change nothing), best first."""
    gain = gain or MultiPhotoGain.shipped()
    before = score(profile, curves, audience, settings, gain, link_from).score
    out = [
        Change(
            o.description,
            o.change,
            before,
            score(profile.with_change(**o.change), curves, audience, settings, gain, link_from).score,
            (o.key,),
            (o.description,),
        )
        for o in change_options(profile, audience)
    ]
    out.sort(key=lambda c: (-c.removed, c.description))  # single changes: by the score alone
    return out


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

    res = minimize(
        loss,
        np.zeros(2 * m),
        jac=True,
        method="L-BFGS-B",
        bounds=[IRT_BOUNDS["beta"]] * m + [IRT_BOUNDS["log_alpha"]] * m,
        options={"maxiter": 1000},
    )
    beta, alpha, _, _, post = posterior(res.x)
    return {"alpha": alpha, "beta": beta, "theta": post @ nodes, "converged": bool(res.success)}


#: Bounds of the IRT optimiser: difficulties in [-8, 8], log-discriminations in [-3, 3].
IRT_BOUNDS = {"beta": (-8.0, 8.0), "log_alpha": (-3.0, 3.0)}


def estimate_sensitivity(profiles: list[UserProfile], *, margin: float = 0.05) -> dict[str, float]:
    """Field sensitivities in (0, 1) estimated from a population (Liu-Terzi style): each field's IRT
    difficulty, mapped through the logistic function. Use as ``ExposureSettings(sensitivity=...)``.

    The fit is refused (:class:`~privrisk.errors.EstimationError`) when the optimiser did not
    converge, or when any difficulty or discrimination sits within ``margin`` of its bound: that is
    what a population without a shared openness trait (fields shown independently of each other)
    produces, and difficulties stuck at a bound are not sensitivities."""
    fields = list(FIELDS)
    if len(profiles) < 50:
        raise EstimationError(f"estimate_sensitivity: {len(profiles)} profiles are too few (need at least 50)")
    responses = np.array([[LEVELS.index(p.visibility[f]) >= 2 for f in fields] for p in profiles], dtype=float)
    fit = estimate_irt(responses)
    if not fit["converged"]:
        raise EstimationError("estimate_sensitivity: the IRT fit did not converge; no sensitivities estimated")
    (b_lo, b_hi), (a_lo, a_hi) = IRT_BOUNDS["beta"], IRT_BOUNDS["log_alpha"]
    log_a = np.log(fit["alpha"])
    stuck = [
        f
        for f, b, la in zip(fields, fit["beta"], log_a)
        if b <= b_lo + margin or b >= b_hi - margin or la <= a_lo + margin or la >= a_hi - margin
    ]
    if stuck:
        raise EstimationError(
            f"estimate_sensitivity: parameters at their bounds for {', '.join(stuck)}: the population shows no "
            "common openness trait for these fields (or shows them to everyone or no one), so IRT cannot rank "
            "their sensitivity; use the documented defaults or your own"
        )
    return {f: float(1 / (1 + math.exp(-b))) for f, b in zip(fields, fit["beta"])}


# --- populations -------------------------------------------------------------------------------------


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
