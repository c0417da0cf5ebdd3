"""The one shape of ``results.json``: the stages' typed results a run carries
(:class:`ExperimentResults`), the one place they become a string-keyed dict
(:meth:`ExperimentResults.to_json`, called at the JSON edge by :func:`privrisk.experiment.run_experiment`),
and that dict's shape as nested declarations that :func:`problems` checks it against (keys present,
values of the declared type).

A declaration is a type or a tuple of types (``float`` also accepts an int; ``None`` is written
``NONE``), a dict of key -> declaration (the keys required; others may follow), :class:`MapOf`
(any keys, each value declared) or :class:`ListOf` (each item declared). Readers (the report, the
exposure score, the app) can rely on what is declared here; a stage that changes its output
changes this file too, and ``tests/test_stages.py`` checks a run against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import ExperimentConfig, to_dict
from .accretion import AccretionResult
from .differentials import FairnessResult
from .offline import OfflineResult
from .online import OnlineResult
from .scaling import ScalingResult
from .timing import Timing

if TYPE_CHECKING:  # E4 is opt-in and loaded only when it runs
    from .countermeasures import CountermeasuresResult

__all__ = ["RESULTS_SCHEMA", "Dataset", "ExperimentResults", "ListOf", "MapOf", "Provenance", "problems"]

NONE = type(None)
NUM = (int, float)
RATE = (int, float, NONE)  # a share, None where its denominator is 0
PAIR = (list, NONE)  # a [low, high] interval, None where it cannot be given


@dataclass(frozen=True)
class MapOf:
    """A dict with any keys (FPIR targets, level names, curve names), each value declared."""

    value: Any


@dataclass(frozen=True)
class ListOf:
    """A list whose every item is declared."""

    item: Any


IDENTIFICATION = {
    "n_probes": int,
    "n_mated": int,
    "n_nonmated": int,
    "rank1": RATE,
    "rank5": RATE,
    "rank10": RATE,
    "rank1_ci95": list,
    "rank5_ci95": list,
    "rank10_ci95": list,
    "rank_ci_method": str,
    "cmc": ListOf(NUM),
    "tpir_at_fpir": MapOf({"resolvable": bool, "tpir_ci95_subject_bootstrap": object, "ci_note": str}),
    "tpir_at_threshold": NUM,
    "tpir_at_threshold_ci95": list,
    "fpir_at_threshold": RATE,
    "fpir_at_threshold_ci95": PAIR,
    "fpir_at_threshold_k": int,
    "fpir_at_threshold_n": int,
    "threshold": NUM,
    "det": {"fpir": list, "fnir": list},
    "n_gallery": int,
}
TIMED = {"seconds_per_probe": NUM, "seconds_split": {"total": NUM, "n_timed": int}}
FUSION = {
    "threshold": NUM,
    "shots": int,
    "n_mated": int,
    "n_nonmated": int,
    **{f"{k}_{w}": RATE for k in ("rank1", "tpir", "fpir") for w in ("single", "fused")},
    **{f"n_{k}_{w}": int for k in ("rank1", "tpir", "fpir") for w in ("single", "fused")},
    **{f"{k}_{w}_ci95": PAIR for k in ("rank1", "tpir", "fpir") for w in ("single", "fused")},
    **{f"{k}_single_per_shot": list for k in ("rank1", "tpir", "fpir")},
    "note": str,
}
LEVEL = IDENTIFICATION | {
    "level": {"name": str, "face_width_px": int},
    "shots": int,
    "detection_rate": NUM,
    "persons_with_a_detected_shot": RATE,
    "n_applicable": int,
    "n_not_applicable": int,
    "not_applicable": ListOf(str),
    "fusion": FUSION,
}
ONLINE = (
    IDENTIFICATION
    | TIMED
    | {
        "skipped": ListOf({"image": str, "reason": str}),
        "by_gender": dict,
        "by_ethnicity": dict,
        "verification": {
            "eer": NUM,
            "curve": {"far": ListOf(NUM), "tar": ListOf(NUM)},
            "n_genuine": int,
            "n_impostor": int,
            "tar_at_far": MapOf(NUM),
        },
        "genuine_pairs": {"what": str, "same_session_studio": bool, "n_genuine": int, "statement": str},
    }
)
OFFLINE = LEVEL | TIMED | {"level_name": str, "levels": MapOf(LEVEL)}
RATE_COUNT = {"rate": NUM, "k": int, "n": int, "ci95": list}  # metrics.rate: rate is NaN when n = 0
ACCRETION = {
    "n_identified": int,
    "n_people_identified": int,
    "n_probes_identified": int,
    "n_mated_people": int,
    "n_mated_probes": int,
    "people_identified": RATE_COUNT,
    "probe_share_per_identified_person": {"mean": RATE, "min": RATE, "median": RATE},
    "n_profiles": int,
    "mean_fields_learned": NUM,
    "ssn_predictable_fraction": NUM,
    "ssn_predictable_fraction_of_us_born": NUM,
    "rrn_predictable_fraction": NUM,
    "rrn_predictable_fraction_of_kr_born": NUM,
    "ssn_predictable": RATE_COUNT,
    "rrn_predictable": RATE_COUNT,
    "field_visible_share": MapOf(NUM),
    "wrong_person": {
        "n_probes_wrong": int,
        "nonmated": RATE_COUNT,
        "mated": RATE_COUNT,
        "all_probes": RATE_COUNT,
        "people_with_a_wrong_identification": RATE_COUNT,
        "nonmated_people_with_a_wrong_identification": RATE_COUNT,
        "n_profiles_wrongly_attributed": int,
        "mean_fields_wrongly_attributed": NUM,
        "field_attributed_share": MapOf(NUM),
        "national_id_wrongly_inferred": int,
        "note": str,
    },
    "counting": str,
    "note": str,
}
POINT = {
    "gallery_size": int,
    "kind": str,
    "n_persons": int,
    "n_nonmated": int,
    "rank1": RATE,
    "rank1_range": PAIR,
    "rank10": RATE,
    "rank10_range": PAIR,
    "fpir_at_threshold": RATE,
    "fpir_range": PAIR,
    "wrong_top_under_threshold": RATE,
    "wrong_top_range": PAIR,
    "threshold_for_fpir_1pct": (int, float, NONE),
    "threshold_for_fpir_1pct_range": PAIR,
    "range_spans": str,
}
CURVE = {
    "measured": ListOf({"gallery_size": int, "rank1": NUM}),
    "predicted": dict,
    "points": ListOf(POINT),
    "seed_spread": {"gallery_size": (int, NONE), "seeds": ListOf(int), "rank1": ListOf(NUM), "rank10": ListOf(NUM)},
}
SCALING = {
    "measured": ListOf(POINT),
    "curves": MapOf(CURVE),
    "distractor_model": {"validation": dict},
    "tail_models": {"models": list},
    "kind_rule": str,
    "n_real_pairs": int,
    "threshold": NUM,
    "model_max_abs_error_measured_sizes": (int, float, NONE),
    "search_seconds_per_probe_at_max": NUM,
    "model": str,
}
RESULTS_SCHEMA = {
    "privrisk_version": str,
    "seed": int,
    "config": dict,
    "versions": {
        "model_id": str,
        "python": str,
        "machine": {"processor": str, "architecture": str, "logical_cpus": (int, NONE), "threads": dict},
    },
    "attacker": {
        "detector": str,
        "embedder": str,
        "model_id": str,
        "embedding_dim": int,
        "threshold": {"value": NUM, "rule": str, "statement": str},
    },
    "dataset": {"root": str, "gallery_manifest": str, "probe_manifest": str, "refused_rows": ListOf(str)},
    "experiments": {"online_to_online": ONLINE, "offline_to_online": OFFLINE, "accretion": ACCRETION},
    "scaling": ListOf(POINT),
    "scaling_detail": SCALING,
    "seconds_total": NUM,
    "fairness": {"attributes": dict, "pairs": str, "skipped_gallery_photos": ListOf({"image": str, "reason": str})},
    "outputs": ListOf(str),
}


@dataclass(frozen=True)
class Dataset:
    """The photos a run read: the folder their paths are relative to, the two manifests, and the rows
    refused (each with its reason)."""

    root: str
    gallery_manifest: str
    probe_manifest: str
    refused_rows: list[str]


@dataclass(frozen=True)
class Provenance:
    """What produced a run's numbers: the config as run (with the threshold its rule chose), the
    library versions and machine, the attacker (detector, embedder, decision rule) and the data."""

    privrisk_version: str
    config: ExperimentConfig
    versions: dict[str, Any]
    attacker: dict[str, Any]
    dataset: Dataset


@dataclass(frozen=True)
class ExperimentResults:
    """A run's results as its stages returned them, with what produced them. ``seconds_total`` is the
    run's time up to the scaling study (the demographic differentials and E4 come after it);
    ``countermeasures`` is E4's result when it ran (opt-in)."""

    provenance: Provenance
    online: OnlineResult
    offline: OfflineResult
    timing: Timing
    accretion: AccretionResult
    scaling: ScalingResult
    seconds_total: float
    fairness: FairnessResult
    countermeasures: CountermeasuresResult | None = None

    def to_json(self) -> dict[str, Any]:
        """``results.json`` (:data:`RESULTS_SCHEMA`, before the run's ``outputs`` are listed): the one
        place the typed results become a string-keyed dict. The dict shares the stages' values."""
        cfg = self.provenance.config
        headline = cfg.offline.headline
        offline = self.offline.levels[headline] | {"level_name": headline} | self.timing.offline_fields()
        dataset = self.provenance.dataset
        experiments: dict[str, Any] = {
            "online_to_online": self.online.metrics | self.timing.online_fields(),
            "offline_to_online": offline | {"levels": self.offline.levels},
            "accretion": self.accretion.metrics,
        }
        if self.countermeasures is not None:
            experiments["countermeasures"] = self.countermeasures.to_dict()
        return {
            "privrisk_version": self.provenance.privrisk_version,
            "seed": cfg.seed,
            "config": to_dict(cfg),
            "versions": self.provenance.versions,
            "attacker": self.provenance.attacker,
            "dataset": {
                "root": dataset.root,
                "gallery_manifest": dataset.gallery_manifest,
                "probe_manifest": dataset.probe_manifest,
                "refused_rows": dataset.refused_rows,
            },
            "experiments": experiments,
            "scaling": self.scaling.measured,
            "scaling_detail": self.scaling.detail,
            "seconds_total": self.seconds_total,
            "fairness": self.fairness.summary,
        }


def problems(value: Any, schema: Any = RESULTS_SCHEMA, where: str = "results") -> list[str]:
    """Where ``value`` departs from ``schema``: one line per missing key or wrongly typed value."""
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a dict"]
        return [p for k, v in value.items() for p in problems(v, schema.value, f"{where}.{k}")]
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not a list"]
        return [p for i, v in enumerate(value) for p in problems(v, schema.item, f"{where}[{i}]")]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a dict"]
        out = [f"{where}.{k}: missing" for k in schema if k not in value]
        return out + [p for k, s in schema.items() if k in value for p in problems(value[k], s, f"{where}.{k}")]
    types = schema if isinstance(schema, tuple) else (schema,)
    if float in types and int not in types:
        types = (*types, int)
    if isinstance(value, bool) and bool not in types and object not in types:
        return [f"{where}: bool, not {'/'.join(t.__name__ for t in types)}"]
    if not isinstance(value, types):
        return [f"{where}: {type(value).__name__}, not {'/'.join(t.__name__ for t in types)}"]
    return []
