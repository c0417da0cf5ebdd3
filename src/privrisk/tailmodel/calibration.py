"""Calibration on faces the tail models never saw: real impostor counts beside each model's
prediction, from embeddings or a consent manifest (``privrisk calibrate``), and the widening of
modelled and extrapolated ranges where a calibration finds the model outside its interval."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fitting import Pairs
from .model import INFORMATIVE_RATIO, KINDS, THRESHOLDS, interval, pair_cdf
from .storage import default_model_path, load_models
from .text import WIDEN_RULE, widening_verdict
from .validation import backtest, poisson_ci


def calibrate(models, vectors: np.ndarray, subjects, *, thresholds=THRESHOLDS) -> dict:
    """Real impostor rates among ``vectors`` (one or more faces per person; every pair of faces of
    different people) beside each model's predicted rate and 95% interval, and a verdict per
    threshold: "within" when the real count's exact Poisson interval meets the model's interval.

    The model never saw these faces; each face serves as a probe against all other people's faces."""
    x = np.asarray(vectors, np.float64)
    s = np.asarray(subjects).astype(str)
    if len(set(s)) < 2:
        raise ValueError("need faces of at least 2 different people to count impostor pairs")
    thr = np.asarray(thresholds, np.float64)
    d = np.sqrt(np.maximum((x**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2 * x @ x.T, 0))
    iu = np.triu_indices(len(x), 1)
    imp = (s[:, None] != s[None, :])[iu]
    pair_d = d[iu][imp]
    n_pairs = int(imp.sum())
    n_other = (s[:, None] != s[None, :]).sum(axis=1)
    real = np.array([(pair_d <= t).sum() for t in thr])
    out = {
        "thresholds": thr.tolist(),
        "n_faces": int(len(x)),
        "n_people": int(len(set(s))),
        "n_pairs": n_pairs,
        "real_count": real.astype(int).tolist(),
        "real_rate": (real / max(n_pairs, 1)).tolist(),
        "real_count_ci95": [list(poisson_ci(int(r))) for r in real],
        "models": [],
    }
    for model in models:
        # each unordered pair counted once: half the sum over ordered (face, other face) pairs
        reps = np.array(
            [(pair_cdf(model, x, thr[None, :], None, p) * n_other[:, None]).sum(axis=0) / 2 for p in model.replicates()]
        )
        point = reps[0]
        lo, hi = interval(reps[1:], point) if len(reps) > 1 else (point, point)
        verdicts = []
        for r, a, b, t in zip(real, lo, hi, thr):
            plo, phi = poisson_ci(int(r))
            if r == 0 and b < 1.0:
                verdicts.append("not judged (no pair on either side)")
            elif not (plo <= b and a <= phi):
                verdicts.append("not within")
            else:
                limit = INFORMATIVE_RATIO.get(round(float(t), 2), 10.0)
                width = b / a if a > 0 else float("inf")
                verdicts.append(
                    "within"
                    if width <= limit
                    else f"within, but uninformative (interval {width:.2g}x wide, limit {limit:g}x)"
                )
        out["models"].append(
            {
                "tail_model": model.name,
                "kind": model.kind,
                "model_rate": (point / max(n_pairs, 1)).tolist(),
                "model_rate_ci95": [[float(a / max(n_pairs, 1)), float(b / max(n_pairs, 1))] for a, b in zip(lo, hi)],
                "verdict": verdicts,
            }
        )
    return out


def calibrate_manifest(
    manifest: str | Path,
    images: str | Path | None = None,
    *,
    models_path=None,
    face_settings=None,
    run=None,
    thresholds=THRESHOLDS,
) -> dict:
    """Embed the consenting faces of ``manifest`` and :func:`calibrate` the tail models on them.
    ``run`` (:class:`~privrisk.embeddings.EmbedRun`: model, cache, workers, progress) says how the
    faces are embedded.

    One photo per person is enough (every pair of different people is an impostor pair). Faces that
    cannot be embedded are skipped and listed."""
    from ..config import FaceSettings
    from ..embeddings import EmbedRun
    from ..errors import ManifestError
    from ..manifest import read_manifest

    models = load_models(models_path)
    m = read_manifest(manifest, images)
    if not m.rows:
        raise ManifestError(f"{manifest}: no consenting rows to calibrate on")
    res = (run or EmbedRun()).embed([r.image for r in m.rows], face_settings or FaceSettings())
    vecs, subs, skipped = [], [], []
    for row, r in zip(m.rows, res):
        if r.ok and r.faces:
            vecs.append(r.faces[0].embedding)
            subs.append(row.subject_id)
        else:
            skipped.append({"image": str(row.image), "reason": r.error or "no face"})
    if len(set(subs)) < 2:
        raise ManifestError(f"{manifest}: faces of at least 2 different people are needed, found {len(set(subs))}")
    out = calibrate(models, np.asarray(vecs, np.float32), subs, thresholds=thresholds)
    try:
        out["backtest"] = [
            backtest(Pairs(np.asarray(vecs, np.float32), subs), kind=k, thresholds=thresholds) for k in KINDS
        ]
    except ValueError as exc:  # too few people or pairs
        out["backtest"] = {"error": str(exc)}
    out.update(
        manifest=str(manifest),
        skipped=skipped,
        refused=[str(r) for r in m.refused],
        models_from=str(models_path or default_model_path()),
    )
    return out


CALIBRATION_FORMAT = "privrisk-calibration/1"


#: thresholds whose calibration verdict widens the ranges (issue 11's acceptance thresholds)
WIDEN_THRESHOLDS = (0.50, 0.55, 0.60)


def calibration_widening(cal: dict) -> dict:
    """From a :func:`calibrate` result: the factors ``k_up`` / ``k_down`` (>= 1; inf when the real
    count is 0 and the model too high) by :data:`WIDEN_RULE`, the thresholds that were not within,
    and a plain verdict."""
    k_up, k_down, misses = 1.0, 1.0, []
    for m in cal.get("models", []):
        for i, t in enumerate(cal["thresholds"]):
            if round(float(t), 2) not in WIDEN_THRESHOLDS or m["verdict"][i] != "not within":
                continue
            n = max(int(cal["n_pairs"]), 1)
            lo, hi = m["model_rate_ci95"][i][0] * n, m["model_rate_ci95"][i][1] * n
            plo, phi = cal["real_count_ci95"][i]
            if plo > hi:  # the model predicts too few close pairs
                k = phi / lo if lo > 0 else float("inf")
                k_up = max(k_up, k)
                misses.append({"model": m["kind"], "threshold": float(t), "side": "model too low", "k": k})
            else:
                k = hi / plo if plo > 0 else float("inf")
                k_down = max(k_down, k)
                misses.append({"model": m["kind"], "threshold": float(t), "side": "model too high", "k": k})
    vague = sorted(
        {
            float(t)
            for m in cal.get("models", [])
            for t, v in zip(cal["thresholds"], m["verdict"])
            if round(float(t), 2) in WIDEN_THRESHOLDS and v.startswith("within, but uninformative")
        }
    )
    verdict = widening_verdict(misses, vague, k_up, k_down)

    def finite(k):  # JSON has no infinity: an unbounded factor is stored as null
        return None if not np.isfinite(k) else float(k)

    for x in misses:
        x["k"] = finite(x["k"])
    return {
        "k_up": finite(k_up),
        "k_down": finite(k_down),
        "not_within": misses,
        "uninformative": vague,
        "verdict": verdict,
        "rule": WIDEN_RULE,
    }


def _widen_survival(rng, k_up, k_down):
    lo, hi = rng
    return [float(lo**k_up), float(hi ** (1.0 / k_down)) if np.isfinite(k_down) else (1.0 if hi > 0 else 0.0)]


def _widen_event(rng, k_up, k_down):
    lo, hi = rng
    low = 1.0 - (1.0 - lo) ** (1.0 / k_down) if np.isfinite(k_down) else 0.0
    high = 1.0 - (1.0 - hi) ** k_up if np.isfinite(k_up) else (1.0 if hi > 0 else 0.0)
    return [float(low), float(high)]


def widen_points(points: list, widening: dict) -> list:
    """Identification points (``scaling_detail.curves.*.points``) with every modelled and
    extrapolated range widened by ``widening`` (:func:`calibration_widening`); new dicts, the
    unwidened range kept as ``<range>_unwidened``. Measured points are returned unchanged."""
    k_up, k_down = (float("inf") if widening[k] is None else float(widening[k]) for k in ("k_up", "k_down"))
    out = []
    for p in points:
        q = dict(p)
        if p.get("kind") in ("modelled", "simulated", "extrapolated") and (k_up > 1 or k_down > 1):
            for key, fn in (
                ("rank1_range", _widen_survival),
                ("rank10_range", _widen_survival),
                ("fpir_range", _widen_event),
                ("wrong_top_range", _widen_event),
            ):
                if p.get(key):
                    q[key + "_unwidened"] = list(p[key])
                    q[key] = fn(p[key], k_up, k_down)
                    q["widened_by_calibration"] = True
        out.append(q)
    return out


def widen_curves(curves: dict, widening: dict) -> dict:
    """Every curve of ``curves`` (name -> {"points": [...], ...}) with :func:`widen_points` applied."""
    return {
        name: (dict(c, points=widen_points(c["points"], widening)) if isinstance(c, dict) and c.get("points") else c)
        for name, c in curves.items()
    }


def calibration_record(cal: dict) -> dict:
    """The stored form of a calibration: the result, its widening and the format tag (plain JSON)."""
    return {"format": CALIBRATION_FORMAT, **cal, "widening": calibration_widening(cal)}


def load_calibration(path: str | Path) -> dict:
    """A calibration stored by ``privrisk calibrate --save``. Raises ConfigError naming the file."""
    from ..errors import ConfigError
    from ..fileio import read_json

    path = Path(path)
    data = read_json(path, "calibration")
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ConfigError(f"{path}: not a privrisk calibration (run `privrisk calibrate ... --save FILE`)")
    try:
        data["widening"] = calibration_widening(data)  # recomputed: never trust a stored factor
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ConfigError(f"{path}: calibration is missing or has a bad field ({exc})") from None
    data["path"] = str(path)
    return data


def apply_calibration(scaling: dict, calibration: dict) -> dict:
    """A run's ``scaling_detail`` with every curve widened by ``calibration`` (:func:`load_calibration`)
    and the calibration's summary under ``calibration``; ``measured`` (the E1 points) follows."""
    w = calibration["widening"]
    out = dict(scaling)
    out["curves"] = widen_curves(scaling.get("curves") or {}, w)
    if "online_to_online" in out["curves"]:
        out["measured"] = out["curves"]["online_to_online"].get("points", scaling.get("measured"))
    out["calibration"] = {
        "path": calibration.get("path"),
        "manifest": calibration.get("manifest"),
        "n_people": calibration.get("n_people"),
        "n_pairs": calibration.get("n_pairs"),
        "thresholds": calibration.get("thresholds"),
        "real_count": calibration.get("real_count"),
        "models": [
            {k: m.get(k) for k in ("kind", "model_rate", "model_rate_ci95", "verdict")}
            for m in calibration.get("models", [])
        ],
        "widening": w,
    }
    return out
