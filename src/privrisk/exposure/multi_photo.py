"""Several photos of one face: what extra photos add to the chance of being found, measured by E2's
multi-shot fusion (:class:`MultiPhotoGain`, read from ``sample_data/multi_photo_gain.json`` or from an
experiment's own fusion block), and what that measurement depends on (:func:`multi_photo_inputs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError


def logit(p: float) -> float:
    """log(p / (1 - p)), with p kept inside (1e-12, 1 - 1e-12)."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    """The inverse of :func:`logit`, computed without overflow."""
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
        from ..samples import sample_data_dir

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
                gain = logit(fused) - logit(single)
                entry["rank1_gain_range"] = [
                    [0.0, 0.0],
                    [min(gain, logit(f_ci[0]) - logit(s_ci[1])), max(gain, logit(f_ci[1]) - logit(s_ci[0]))],
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
        delta = np.maximum.accumulate(np.maximum([logit(v) - logit(p[0]) for v in p], 0.0))
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
    from ..degrade import DEGRADE_VERSION
    from ..models import dlib_model_id, library_versions

    return {
        "seed": int(cfg.seed),
        "unseen_share": float(cfg.unseen_share),
        "shots": int(shots),
        "shots_in_e2": int(cfg.offline.shots),
        "n_boot": int(n_boot),
        "degrade_version": DEGRADE_VERSION,
        "capture_recipe": {lv.name: asdict(lv) for lv in cfg.offline.levels},
        "faces": asdict(cfg.faces),
        "model_id": dlib_model_id(),
        "versions": library_versions(),
    }
