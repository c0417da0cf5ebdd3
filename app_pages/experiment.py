"""Run an experiment: the researchers' batch job in the background, with progress, plots and downloads."""

import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.common import ExperimentJob, attribution, experiment_jobs
from privrisk.config import ExperimentConfig, setting_info, with_values
from privrisk.errors import PrivriskError
from privrisk.fileio import is_privrisk_run
from privrisk.report import paper_comparison, plain_summary, summary_table

st.title("Run a re-identification experiment")
st.write(
    "E1 online to online, E2 offline to online, E3 accretion and the scaling study, as `privrisk experiment` "
    "runs them. The settings below carry the config file's names; their ranges and choices are the ones the "
    "config file accepts."
)

preset = os.environ.get("PRIVRISK_APP_EXPERIMENT_CONFIG")  # a config file the page starts from
if preset:
    from privrisk.experiment import load_config

    try:
        defaults = load_config(preset)
    except PrivriskError as exc:
        st.error(f"PRIVRISK_APP_EXPERIMENT_CONFIG: {exc}")
        st.stop()
else:
    defaults = ExperimentConfig()


def info(name: str) -> dict:
    return setting_info(ExperimentConfig, name)


def start_value(name: str):
    """The value a dotted setting starts at: the preset's, else the declared default."""
    node = defaults
    for part in name.split("."):
        node = getattr(node, part)
    return node


def number_setting(col, name: str, cast, key: str, step=None):
    """A number input with the setting's declared range and help, starting at its value in ``defaults``."""
    i = info(name)
    return col.number_input(
        name, cast(i["min"]), cast(i["max"]), cast(start_value(name)), step, key=key, help=i["help"]
    )


source = st.radio("Data", ["The consenting sample set", "Manifests on disk"], horizontal=True, key="exp_source")
paths = {}
if source == "Manifests on disk":
    c1, c2, c3 = st.columns(3)
    for col, name in zip((c1, c2, c3), ("gallery_manifest", "probe_manifest", "dataset_dir")):
        paths[name] = col.text_input(name, help=info(name)["help"])

c1, c2, c3, c4 = st.columns(4)
seed = c1.number_input("seed", value=defaults.seed, step=1, key="exp_seed", help=info("seed")["help"])
unseen = c2.slider(
    "unseen_share",
    float(info("unseen_share")["min"]),
    float(info("unseen_share")["max"]),
    defaults.unseen_share,
    0.05,
    key="exp_unseen",
    help=info("unseen_share")["help"],
)
shots = number_setting(c3, "offline.shots", int, key="exp_shots")
sizes = [s for s in defaults.scaling.sizes if s >= 10_000] or [max(defaults.scaling.sizes)]  # a preset's may be small
largest = c4.select_slider(
    "largest scaling.sizes",
    sizes,
    value=max(defaults.scaling.sizes),
    key="exp_largest",
    format_func=lambda n: f"{n:,}",
    help=info("scaling.sizes")["help"],
)
c1, c2, c3 = st.columns(3)
index_choices = list(info("gallery.index_type")["choices"])
index_type = c1.selectbox(
    "gallery.index_type",
    index_choices,
    index=index_choices.index(defaults.gallery.index_type),
    key="exp_index",
    help=info("gallery.index_type")["help"],
)
threshold = number_setting(c2, "gallery.threshold", float, key="exp_threshold", step=0.05)
out_dir = c3.text_input("output folder", "runs/app", key="exp_out")

jobs = experiment_jobs()
running = next((j for j in jobs.values() if not j.finished), None)
occupied = Path(out_dir).is_dir() and any(Path(out_dir).iterdir())
previous_run = occupied and is_privrisk_run(out_dir)
replace_ok = True
if occupied and running is None:
    if previous_run:
        st.warning(
            f"`{out_dir}` holds a previous privrisk run. Running writes results.json, the plots, report.html "
            "and gallery/ there, replacing that run's files of those names."
        )
        replace_ok = st.checkbox(f"Replace the results in {out_dir}", key="exp_replace")
    else:
        st.error(
            f"`{out_dir}` is not empty and is not a privrisk run. Running would add results.json, the plots, "
            "report.html and gallery/ among its files, replacing any of those names. Choose an empty folder, "
            "or confirm below."
        )
        replace_ok = st.checkbox(f"Write into {out_dir} anyway", key="exp_force")

if st.button("Run the experiment", type="primary", disabled=running is not None or not replace_ok):
    try:
        config = with_values(
            defaults,
            {
                "seed": int(seed),
                "unseen_share": float(unseen),
                "offline.shots": int(shots),
                "scaling.sizes": [s for s in defaults.scaling.sizes if s <= largest],
                "gallery.index_type": index_type,
                "gallery.threshold": float(threshold),
                **{k: v for k, v in paths.items() if v},
            },
        )
    except PrivriskError as exc:
        st.error(str(exc))
    else:
        jobs[out_dir] = running = ExperimentJob(config, out_dir, overwrite=occupied and replace_ok)
        st.session_state["experiment_out"] = out_dir


@st.fragment(run_every=1.0)
def job_status() -> None:
    out = st.session_state.get("experiment_out")
    job = jobs.get(out) if out else None
    if job is None:
        return
    if not job.finished:
        st.progress(
            job.done / job.total if job.total else 0.0,
            text=f"embedding {job.done}/{job.total} photos" if job.total else "starting",
        )
        st.caption(job.messages[-1] if job.messages else "starting")
        return
    if st.session_state.get("experiment_shown") != id(job):
        # the run just ended: this fragment alone refreshes every second, so the whole page runs once
        # more to show the results below (no manual rerun)
        st.session_state["experiment_shown"] = id(job)
        st.rerun(scope="app")
    if job.error:
        st.error(job.error)
    else:
        st.success(f"Done: {out}")
        with st.expander("Run log"):
            st.code("\n".join(job.messages), language=None)


job_status()

out = st.session_state.get("experiment_out")
job = jobs.get(out) if out else None
if out and (job is None or job.finished) and (Path(out) / "results.json").is_file():
    run = Path(out)
    results = json.loads((run / "results.json").read_text())
    st.subheader("Summary")
    for line in plain_summary(results):
        st.write(f"- {line}")
    with st.expander("The summary table, as `privrisk experiment` prints it"):
        st.code(summary_table(results), language=None)
    st.subheader("Side by side with Acquisti, Gross and Stutzman (2014)")
    st.table(pd.DataFrame(paper_comparison(results), columns=["experiment", "the paper", "this run"]))
    cols = st.columns(2)
    for i, name in enumerate(["cmc.png", "det.png", "scaling.png", "offline_levels.png", "roc.png", "exposure.png"]):
        if (run / name).is_file():
            cols[i % 2].image(str(run / name), caption=name)
    attribution()
    c1, c2, c3 = st.columns(3)
    c1.download_button("results.json", (run / "results.json").read_bytes(), "results.json", "application/json")
    c2.download_button("probes.csv", (run / "probes.csv").read_bytes(), "probes.csv", "text/csv")
    c3.download_button("report.html", (run / "report.html").read_bytes(), "report.html", "text/html")
