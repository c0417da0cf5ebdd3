"""Run an experiment: the researchers' batch job with a progress bar, plots and downloads."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.common import attribution
from privrisk.config import replace
from privrisk.embeddings import EmbeddingCache, default_cache_path
from privrisk.errors import PrivriskError
from privrisk.experiment import ExperimentConfig, run_experiment
from privrisk.report import paper_comparison, summary_table

st.title("Run a re-identification experiment")
st.write("E1 online to online, E2 offline to online, E3 accretion and the scaling study, as `privrisk experiment` "
         "runs them. The settings below carry the config file's names.")

defaults = ExperimentConfig()
source = st.radio("Data", ["The consenting sample set", "Manifests on disk"], horizontal=True, key="exp_source")
paths = {}
if source == "Manifests on disk":
    c1, c2, c3 = st.columns(3)
    paths["gallery_manifest"] = c1.text_input("gallery_manifest", help="CSV of identified photos (with consent)")
    paths["probe_manifest"] = c2.text_input("probe_manifest", help="CSV of pseudonymous photos (with consent)")
    paths["dataset_dir"] = c3.text_input("dataset_dir", help="folder the manifests' image paths are relative to")

c1, c2, c3, c4 = st.columns(4)
seed = c1.number_input("seed", value=defaults.seed, step=1, key="exp_seed")
unseen = c2.slider("unseen_share", 0.0, 0.9, defaults.unseen_share, 0.05, key="exp_unseen",
                   help="share of probe subjects left out of the gallery (open set)")
shots = c3.number_input("offline.shots", 1, 20, defaults.offline.shots, key="exp_shots")
largest = c4.select_slider("largest scaling.sizes", [10_000, 100_000, 1_000_000], value=1_000_000,
                           key="exp_largest", format_func=lambda n: f"{n:,}")
c1, c2, c3 = st.columns(3)
_index_choices = list(next(f for f in dataclasses.fields(defaults.gallery) if f.name == "index_type").metadata["choices"])
index_type = c1.selectbox("gallery.index_type", _index_choices, index=_index_choices.index(defaults.gallery.index_type),
                          key="exp_index")
threshold = c2.number_input("gallery.threshold", 0.1, 1.5, defaults.gallery.threshold, 0.05, key="exp_threshold")
out_dir = c3.text_input("output folder", "runs/app", key="exp_out")

if st.button("Run the experiment", type="primary"):
    try:
        config = replace(defaults, seed=int(seed), unseen_share=float(unseen),
                         offline={**vars(defaults.offline), "shots": int(shots), "levels": [
                             vars(lv) for lv in defaults.offline.levels]},
                         scaling={**vars(defaults.scaling),
                                  "sizes": [s for s in defaults.scaling.sizes if s <= largest]},
                         gallery={**vars(defaults.gallery), "index_type": index_type, "threshold": float(threshold)},
                         **{k: v for k, v in paths.items() if v})
        bar = st.progress(0.0, text="starting")
        status = st.status("Running", expanded=False)

        def progress(done, total):
            bar.progress(done / max(total, 1), text=f"embedding {done}/{total} photos")

        def log(message):
            status.write(message)

        with st.spinner("Running the experiment..."):
            run_experiment(config, out_dir, cache=EmbeddingCache(default_cache_path()), progress=progress, log=log)
        status.update(label="Done", state="complete")
        bar.progress(1.0, text="done")
        st.session_state["experiment_out"] = out_dir
    except PrivriskError as exc:
        st.error(str(exc))

out = st.session_state.get("experiment_out")
if out and (Path(out) / "results.json").is_file():
    run = Path(out)
    results = json.loads((run / "results.json").read_text())
    st.subheader("Summary")
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
