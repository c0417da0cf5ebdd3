"""Identification curves: P(your profile is among the top k) against gallery size for each probe
condition, read from an experiment's ``results.json`` (or the shipped curves file) with their ranges and
how each point was obtained, and the part of an experiment's results the score needs
(:func:`export_curves`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

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
            from ..tailmodel import widen_curves

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
        from ..samples import sample_data_dir

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


def export_curves(results: dict) -> dict:
    """The part of an experiment's results the score needs, with where it came from."""
    return {
        "source": "privrisk experiment results",
        "seed": results["seed"],
        "versions": results["versions"],
        "dataset": results["dataset"]["root"].rsplit("/", 1)[-1],
        "curves": results["scaling_detail"]["curves"],
    }
