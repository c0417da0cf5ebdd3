"""Shared pieces of the app's pages: cached resources and the handling of uploaded photos.

Uploaded photos are read into memory, embedded and dropped; only the 128 numbers of the face
embedding are kept in the session (keyed by the upload's id) until "forget me".
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from privrisk import selfcheck
from privrisk.config import FaceSettings
from privrisk.embeddings import EmbeddingCache, default_cache_path
from privrisk.errors import PrivriskError
from privrisk.exposure import IdentificationCurves
from privrisk.models import load_face_model
from privrisk.samples import ATTRIBUTION
from privrisk.selfcheck import DistractorDraw, build_sample_world, embed_one_face

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
SETTINGS = FaceSettings(max_bytes=15 * 1024 * 1024)


def consent_gate(key: str) -> None:
    """The promise that photos stay in memory, and the consent box (``key``): the page stops here
    until it is ticked."""
    st.caption(
        "Your photos stay in this computer's memory: they are never saved, logged, cached or sent anywhere. "
        "'Forget me' clears them."
    )
    if not st.checkbox(
        "These are photos of me, and I agree to them being analysed in memory on this computer.", key=key
    ):
        st.info("Tick the box above to start.")
        st.stop()


@st.cache_resource(show_spinner="Loading the face model (once per server)...")
def face_model():
    return load_face_model()


@st.cache_resource(show_spinner="Preparing the sample gallery and distractors (once per server)...")
def sample_world():
    n = int(os.environ.get("PRIVRISK_APP_DISTRACTORS", "1000000"))
    return build_sample_world(face_model(), cache=EmbeddingCache(default_cache_path()), distractors=DistractorDraw(n=n))


@st.cache_resource(show_spinner=False)
def curves():
    return IdentificationCurves.shipped()


def attribution() -> None:
    st.caption(ATTRIBUTION)


def face_vector(uploaded, label: str) -> np.ndarray | None:
    """The embedding of the one face in an uploaded photo, or None after showing a friendly error."""
    if uploaded is None:
        return None
    key = f"embedding:{uploaded.file_id}"
    if key not in st.session_state:
        data = uploaded.getvalue()
        if len(data) > SETTINGS.max_bytes:
            st.error(f"{label}: the file is {len(data) / 1e6:.1f} MB; the limit is {SETTINGS.max_bytes / 1e6:.0f} MB.")
            return None
        try:
            face = embed_one_face(data, uploaded.name, face_model(), SETTINGS)
        except PrivriskError as exc:
            st.error(f"{label}: {getattr(exc, 'reason', exc)}")
            return None
        finally:
            del data
        st.session_state[key] = face.embedding.tolist()
    return np.asarray(st.session_state[key], np.float32)


def session_findability(profile_vec: np.ndarray, snapshot_vec: np.ndarray):
    """:func:`privrisk.selfcheck.findability` of these two embeddings, computed once per session and
    pair: a later widget change (profile settings, who looks) re-runs the page but not the search over
    the distractors. The key is the embeddings themselves, held in this session's memory only."""
    key = (np.asarray(profile_vec, np.float32).tobytes(), np.asarray(snapshot_vec, np.float32).tobytes())
    held = st.session_state.get("findability")
    if held is None or held[0] != key:
        threshold = selfcheck.decision_threshold(face_model())  # the attacker's: this face model's
        held = (key, selfcheck.findability(profile_vec, snapshot_vec, sample_world(), threshold=threshold))
        st.session_state["findability"] = held
    return held[1]


def forget_everything() -> None:
    """Clear the session: embeddings, settings and upload widgets (new widget keys)."""
    generation = st.session_state.get("upload_generation", 0) + 1
    st.session_state.clear()
    st.session_state["upload_generation"] = generation


class ExperimentJob:
    """An experiment running in a background thread of the server, so that touching a widget
    (which re-runs the page script) neither blocks on it nor interrupts it. The page polls
    :attr:`done`, :attr:`total`, :attr:`messages` and :attr:`error`."""

    def __init__(self, config, out_dir: str, *, overwrite: bool = False):
        import threading

        from privrisk.experiment import run_experiment

        self.out_dir, self.done, self.total, self.messages = out_dir, 0, 0, []
        self.error: str | None = None
        self.finished = False

        def work():
            try:
                run_experiment(
                    config,
                    out_dir,
                    cache=EmbeddingCache(default_cache_path()),
                    progress=self._progress,
                    log=self.messages.append,
                    overwrite=overwrite,
                )
            except PrivriskError as exc:
                self.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a user sees one line; the server log gets the cause
                import traceback

                traceback.print_exc()
                self.error = f"internal error ({type(exc).__name__}); the server log has the details"
            finally:
                self.finished = True

        self._thread = threading.Thread(target=work, name=f"privrisk-experiment-{out_dir}", daemon=True)
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.finished


@st.cache_resource(show_spinner=False)
def experiment_jobs() -> dict:
    """Running and finished experiment jobs of this server, by output folder (the session keeps the key)."""
    return {}
