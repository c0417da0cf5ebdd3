"""Trainer demo: volunteers enrol on the spot, a snapshot is identified, a card shows what a stranger knows."""

import streamlit as st

from app_pages.common import IMAGE_TYPES, attribution, face_vector, sample_world
from privrisk.errors import PrivriskError
from privrisk.trainer import LiveGallery, differential_lesson, stranger_card

st.title("Live demonstration: who is this?")
st.write(
    "Volunteers join an in-memory gallery beside the consenting sample faces. A snapshot of one of them is "
    "then identified, and the card shows what a stranger who did this would learn. Nothing is saved; "
    "'Reset' forgets every volunteer."
)

if "live_gallery" not in st.session_state:
    world = sample_world()
    st.session_state["live_gallery"] = LiveGallery(world.vectors, world.subjects)
gallery: LiveGallery = st.session_state["live_gallery"]
enrol_round = st.session_state.get("enrol_round", 0)  # a new form after each enrolment
snap_round = st.session_state.get("snap_round", 0)  # a new snapshot widget after each reset

left, right = st.columns(2)
with left:
    st.subheader("1. Enrol a volunteer")
    # the camera toggle stays outside the form (it changes which widget the form shows); the rest is one
    # form, so typing a name or ticking consent does not re-run the page until "Enrol" is pressed
    use_camera = st.toggle("Use the camera", key=f"vol_cam_toggle_{enrol_round}")
    with st.form(f"enrol_{enrol_round}", clear_on_submit=False):
        name = st.text_input("First name or nickname", key=f"vol_name_{enrol_round}")
        said_yes = st.checkbox(
            "The volunteer agrees to their photo joining this demonstration's memory-only gallery",
            key=f"vol_consent_{enrol_round}",
        )
        photo = (
            st.camera_input("Volunteer photo", key=f"vol_cam_{enrol_round}")
            if use_camera
            else st.file_uploader("Volunteer photo", type=IMAGE_TYPES, key=f"vol_file_{enrol_round}")
        )
        submitted = st.form_submit_button("Enrol")
    if submitted:
        if not said_yes:
            st.error("The volunteer joins only after saying yes: tick the consent box first.")
        elif photo is None:
            st.error("Add the volunteer's photo first.")
        elif (vec := face_vector(photo, "Volunteer photo")) is not None:
            try:
                v = gallery.enrol(name, vec, consent=said_yes)
                st.session_state["enrol_round"] = enrol_round + 1
                st.session_state["last_enrolled"] = f"{v.name} joined as {v.volunteer_id}."
                st.rerun()
            except PrivriskError as exc:
                st.error(str(exc))
    if "last_enrolled" in st.session_state:
        st.success(st.session_state["last_enrolled"])
    st.write(f"Volunteers enrolled: {len(gallery.volunteers)}; sample faces: {len(gallery.sample_subjects)}.")

with right:
    st.subheader("2. Identify a snapshot")
    snap_camera = st.toggle("Use the camera", key=f"snap_cam_toggle_{snap_round}")
    snapshot = (
        st.camera_input("Snapshot", key=f"snap_cam_{snap_round}")
        if snap_camera
        else st.file_uploader("Snapshot", type=IMAGE_TYPES, key=f"snap_file_{snap_round}")
    )
    vec = face_vector(snapshot, "Snapshot")
    if vec is not None:
        match = gallery.identify(vec)
        best = match.best
        volunteer = gallery.volunteer(best.subject_id) if best else None
        if not match.is_match:
            st.warning(f"No match: the closest face is at distance {best.distance:.3f}, above the 0.6 threshold.")
        elif volunteer is None:
            st.info(f"Matched sample person {best.subject_id} (distance {best.distance:.3f}), not a volunteer.")
            attribution()
        else:
            card = stranger_card(volunteer)
            st.success(f"Identified: {card['name']} (distance {best.distance:.3f})")
            with st.container(border=True):
                st.markdown("**What a stranger now knows**")
                for label, value in card["known"].items():
                    st.write(f"- {label}: {value}")
                if card["national_id_predictable"]:
                    nid = card["national_id"]
                    st.error(f"{nid['scheme']}: {nid['digits']} of {nid['of']} digits predictable ({nid['reason']})")
                st.write(card["how"])
                st.caption(card["note"])

if st.button("Reset: forget every volunteer"):
    gallery.reset()
    for key in [k for k in st.session_state if k.startswith("embedding:")]:
        del st.session_state[key]
    st.session_state["enrol_round"] = enrol_round + 1
    st.session_state["snap_round"] = snap_round + 1
    st.session_state.pop("last_enrolled", None)
    st.rerun()

st.subheader("Who gets mistaken for someone else?")
try:
    lesson = differential_lesson()
except PrivriskError as exc:
    st.info(f"No demographic summary to show: {exc}")
else:
    for line in [lesson.get("same_vs_cross"), *lesson.get("by_group", [])]:
        if line:
            st.write(line)
    if lesson.get("note"):
        st.write(lesson["note"])
    st.write(f"**Why it matters:** {lesson['why']}")
    st.caption(f"Measured, not simulated: {lesson['source']}. Groups are self-reported.")
