"""Experiment outputs: results.json, probes.csv, accretion.csv, plots and a self-contained report.html.

The report reads a run's results as the dict results.json holds (the JSON edge), one module a role:
:mod:`~privrisk.report.page` assembles the page and writes the files, :mod:`~privrisk.report.summary`
says the run in plain words (and the terminal's table), :mod:`~privrisk.report.plots` draws,
:mod:`~privrisk.report.sections` (E1-E3), :mod:`~privrisk.report.scaling`,
:mod:`~privrisk.report.differentials` and :mod:`~privrisk.report.countermeasures` (E4) write each
experiment's sections, and :mod:`~privrisk.report.formatting` how a number is written.
"""

from __future__ import annotations

from .countermeasures import cloak_section, countermeasures_section
from .differentials import (
    fairness_cell_text,
    fairness_group_model_section,
    fairness_section,
    fairness_tail_section,
    ratio_scope_text,
    small_cell_ratios_text,
)
from .formatting import tpir_cell, tpir_html_cell, unresolvable_note
from .page import render_html, write_outputs
from .plots import countermeasures_plot, fairness_plot, make_plots, zero_note
from .scaling import (
    backtest_html,
    calibration_html,
    pit_with_groups,
    scaling_summary_lines,
    scaling_table_html,
    tail_validation_html,
)
from .sections import attacker_section, detector_table, first_screen_html, fusion_table, stats_sections
from .summary import PAPER, PAPER_SCALE, paper_comparison, paper_scale_rows, plain_summary, summary_table

__all__ = [
    "PAPER",
    "PAPER_SCALE",
    "attacker_section",
    "backtest_html",
    "calibration_html",
    "cloak_section",
    "countermeasures_plot",
    "countermeasures_section",
    "detector_table",
    "fairness_cell_text",
    "fairness_group_model_section",
    "fairness_plot",
    "fairness_section",
    "fairness_tail_section",
    "first_screen_html",
    "fusion_table",
    "make_plots",
    "paper_comparison",
    "paper_scale_rows",
    "pit_with_groups",
    "plain_summary",
    "ratio_scope_text",
    "render_html",
    "scaling_summary_lines",
    "scaling_table_html",
    "small_cell_ratios_text",
    "stats_sections",
    "summary_table",
    "tail_validation_html",
    "tpir_cell",
    "tpir_html_cell",
    "unresolvable_note",
    "write_outputs",
    "zero_note",
]
