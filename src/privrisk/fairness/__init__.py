"""Demographic differentials, measured the way NIST FRVT Part 3 (NISTIR 8280) measures them, split by
role: counting cells and their intervals (:mod:`.cells`), estimating per-group rates (:mod:`.estimate`,
:func:`analyse`) and the headline ratios (:mod:`.ratios`), validating the tail model group by group
(:mod:`.validate`), and saying it in plain words (:mod:`.words`).

Pure functions: embeddings, subject ids and per-subject group attributes in; plain dicts out.
Nothing here reads files, embeds photos or imports a later stage.
"""

from ..config import DEFAULT_THRESHOLDS
from .cells import (
    ALPHA,
    MIN_DEFF_EVENTS,
    SMALL_FLAG,
    ImpostorPairs,
    Resamples,
    clopper_pearson_one_sided,
    clustered_zero_bound,
    design_effect,
    intracluster_correlation,
    make_cell,
    pair_weight_sum,
)
from .estimate import AnalysisOptions, E2Inputs, FaceSet, PairScan, analyse, group_labels, scan_pairs
from .ratios import fmr_ratio
from .validate import (
    ScaleSettings,
    TailCheckOptions,
    group_rates_from_replicates,
    scale_by_group,
    tail_check,
    tail_check_cross_validated,
)
from .words import plain_words, same_cross_table

__all__ = [
    "ALPHA",
    "DEFAULT_THRESHOLDS",
    "MIN_DEFF_EVENTS",
    "SMALL_FLAG",
    "AnalysisOptions",
    "E2Inputs",
    "FaceSet",
    "ImpostorPairs",
    "PairScan",
    "Resamples",
    "ScaleSettings",
    "TailCheckOptions",
    "analyse",
    "clopper_pearson_one_sided",
    "clustered_zero_bound",
    "design_effect",
    "fmr_ratio",
    "group_labels",
    "group_rates_from_replicates",
    "intracluster_correlation",
    "make_cell",
    "pair_weight_sum",
    "plain_words",
    "same_cross_table",
    "scale_by_group",
    "scan_pairs",
    "tail_check",
    "tail_check_cross_validated",
]
