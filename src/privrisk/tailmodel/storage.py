"""The tail models as plain JSON (never pickle): writing, reading and the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .model import SHIFT_QUANTILE, TAIL_SHARE, Standardizer, TailModel, TailParams


def _significant(values: np.ndarray, digits: int = 7) -> list[float]:
    """``values`` rounded to ``digits`` significant digits for JSON. (Rounding to a fixed number of
    decimals made a value's last stored digit flip between processors: 1e-5 on a body of 0.03 is a
    3e-4 relative step, beyond the tolerance that float32 arithmetic allows between machines.)"""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, np.float64).ravel()]


def _params_json(p: TailParams) -> dict:
    return {
        "kind": p.kind,
        "u": p.u,
        "a": p.a,
        "b": p.b,
        "body": _significant(p.body),
        "alpha": p.alpha,
        "beta": p.beta,
        "tau": p.tau,
        "group_shift": dict(p.group_shift),
        "group_tail": dict(p.group_tail),
    }


def _params_from(d: dict) -> TailParams:
    return TailParams(
        kind=str(d["kind"]),
        u=float(d["u"]),
        a=float(d["a"]),
        b=float(d["b"]),
        body=np.asarray(d["body"], np.float64),
        alpha=float(d["alpha"]),
        beta=float(d["beta"]),
        tau=float(d["tau"]),
        group_shift={str(k): float(v) for k, v in d.get("group_shift", {}).items()},
        group_tail={str(k): float(v) for k, v in d.get("group_tail", {}).items()},
    )


def to_json(model: TailModel) -> dict:
    """A plain-JSON dict of the model (parameters only; no code, no pickle)."""
    s = model.std
    return {
        "format": "privrisk-tail-model/1",
        "kind": model.kind,
        "name": model.name,
        "n_subjects": model.n_subjects,
        "n_pairs": model.n_pairs,
        "seed": model.seed,
        "tail_share": TAIL_SHARE,
        "shift_quantile": SHIFT_QUANTILE,
        "standardizer": {"mu": _significant(s.mu), "T": s.T, "V0": s.V0, "c_mean": s.c_mean, "c_sd": s.c_sd},
        "params": _params_json(model.params),
        "bootstrap": [_params_json(p) for p in model.boot],
    }


def from_json(data: dict) -> TailModel:
    """Inverse of :func:`to_json`. Raises ValueError naming what is wrong."""
    try:
        if data.get("format") != "privrisk-tail-model/1":
            raise ValueError(f"not a privrisk tail model (format {data.get('format')!r})")
        s = data["standardizer"]
        std = Standardizer(
            mu=np.asarray(s["mu"], np.float64),
            T=float(s["T"]),
            V0=float(s["V0"]),
            c_mean=float(s["c_mean"]),
            c_sd=float(s["c_sd"]),
        )
        if std.mu.ndim != 1:
            raise ValueError("standardizer mean must be a vector")
        return TailModel(
            kind=str(data["kind"]),
            std=std,
            params=_params_from(data["params"]),
            boot=tuple(_params_from(b) for b in data.get("bootstrap", [])),
            n_subjects=int(data["n_subjects"]),
            n_pairs=int(data["n_pairs"]),
            seed=int(data.get("seed", 0)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"tail model JSON is missing or has a bad field: {exc}") from None


def load(path: str | Path) -> list[TailModel]:
    """Tail models stored in ``path``: a tail-model JSON, a bundle ``{"models": [...]}``, or a run's
    results.json (``scaling_detail.tail_models``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and "scaling_detail" in data:
        data = data["scaling_detail"].get("tail_models")
        if not data:
            raise ValueError(f"{path}: this results.json has no saved tail models (run made before they existed)")
    if isinstance(data, dict) and "models" in data:
        return [from_json(m) for m in data["models"]]
    return [from_json(data)]


def default_model_path() -> Path:
    """``sample_data/tail_model.json``: the tail models fitted on the sample set by the demo."""
    from ..samples import sample_data_dir

    return sample_data_dir() / "tail_model.json"


def load_models(path: str | Path | None = None) -> list[TailModel]:
    """Tail models from ``path`` (a results.json or a tail-model JSON), default the shipped ones.
    Raises :class:`~privrisk.errors.ConfigError` naming the file and the reason."""
    from ..errors import ConfigError

    path = Path(path) if path is not None else default_model_path()
    try:
        return load(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: tail-model file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
