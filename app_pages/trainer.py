"""Trainer demo: volunteers enrol on the spot, a snapshot is identified, a card shows what a stranger knows."""

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.common import IMAGE_TYPES, SETTINGS, attribution, face_model, face_vector, sample_world
from privrisk.errors import PrivriskError
from privrisk.images import load_image
from privrisk.protect import Attacker
from privrisk.selfcheck import decision_threshold
from privrisk.trainer import LiveGallery, OriginalNotIdentified, differential_lesson, myth_or_defence, stranger_card

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

threshold = decision_threshold(face_model())  # the attacker's: this face model's


def enrol(name: str, vec, rgb, note: str = "") -> None:
    """Enrol a volunteer who said yes; their photo stays in this session's memory for "myth or defence"."""
    try:
        v = gallery.enrol(name, vec, consent=True)
    except PrivriskError as exc:
        st.error(str(exc))
        return
    st.session_state.setdefault("enrolled_photos", {})[v.volunteer_id] = rgb
    st.session_state.pop("pending_volunteer", None)
    st.session_state["enrol_round"] = enrol_round + 1
    st.session_state["last_enrolled"] = f"{v.name} joined as {v.volunteer_id}.{note}"
    st.rerun()


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
        elif not name.strip():
            st.error("Give the volunteer a name (a first name or a nickname is enough).")
        elif (vec := face_vector(photo, "Volunteer photo")) is not None:
            rgb = load_image(photo.getvalue(), name="volunteer photo", max_side=SETTINGS.max_side).rgb
            lookalike = gallery.sample_lookalike(vec, threshold)
            if lookalike is None:
                enrol(name, vec, rgb)
            else:  # the volunteer is (or looks like) a sample person: ask before the demo
                st.session_state["pending_volunteer"] = (name, vec, rgb, lookalike)
    pending = st.session_state.get("pending_volunteer")
    if pending is not None:
        p_name, p_vec, p_rgb, (subject, distance) = pending
        with st.container(border=True):
            st.error(
                f"**Not enrolled yet: {p_name}'s photo matches sample person {subject}** (distance {distance:.3f}, "
                f"under the {threshold:g} threshold"
                + ("; it is probably the sample set's own photo" if distance < 0.05 else "")
                + "). A snapshot of the volunteer would find that sample person, and every lesson of the demo "
                "would be false. Choose how to go on:"
            )
            attribution()
            # one button per line: their labels are sentences
            if st.button(f"Continue as sample person {subject}", key="pending_as_sample", width="stretch"):
                gallery.drop_sample(subject)  # the volunteer takes that identity: no second copy competes
                enrol(p_name, p_vec, p_rgb, note=f" Sample person {subject} is now the volunteer.")
            if st.button("Remove the sample set from the gallery", key="pending_drop_sample", width="stretch"):
                gallery.drop_sample()
                enrol(p_name, p_vec, p_rgb, note=" The sample set is out of this gallery: volunteers only.")
            if st.button("Cancel: use another photo", key="pending_cancel", width="stretch"):
                st.session_state.pop("pending_volunteer", None)
                st.session_state["enrol_round"] = enrol_round + 1
                st.rerun()
    if "last_enrolled" in st.session_state:
        st.success(st.session_state["last_enrolled"])
    st.write(f"Volunteers enrolled: {len(gallery.volunteers)}; sample faces: {len(gallery.sample_subjects):,}.")

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
        match = gallery.identify(vec, threshold=threshold)
        best = match.best
        volunteer = gallery.volunteer(best.subject_id) if best else None
        if not match.is_match:
            st.warning(
                f"No match: the closest face is at distance {best.distance:.3f}, above the {threshold:g} threshold."
            )
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

st.subheader("3. Myth or defence: what breaks the match?")
st.write(
    "The volunteer's enrolled photo plays their public profile photo. Each change a person could make to it "
    "(a lower resolution, blur, JPEG compression, a crop, sunglasses, a mask, a sticker) is applied, the changed "
    "photo takes the original's place in the gallery, and the snapshot above is identified again."
)
if not gallery.volunteers:
    st.info("Enrol a volunteer first.")
elif vec is None:
    st.info("Add a snapshot of the volunteer above.")
else:
    names = {v.volunteer_id: v.name for v in gallery.volunteers}
    identified_id = volunteer.volunteer_id if volunteer is not None else None
    ids = list(names)
    who = st.selectbox(
        "Whose enrolled photo",
        ids,
        index=ids.index(identified_id) if identified_id in ids else 0,
        format_func=lambda vid: f"{names[vid]} ({vid})",
        key=f"defence_who_{snap_round}",
    )
    defence_key = (who, snapshot.file_id if snapshot is not None else None)
    held = st.session_state.get("defence")
    if st.button("Test every change", type="primary", key=f"defence_run_{snap_round}"):
        with st.spinner("Changing the photo, embedding it and searching again, change by change..."):
            try:
                trials = myth_or_defence(
                    gallery,
                    who,
                    st.session_state["enrolled_photos"][who],
                    vec,
                    Attacker(face_model(), threshold=threshold),
                )  # the library's strongest detector (cnn), not the page's enrolment settings
            except OriginalNotIdentified as exc:  # the untouched photo first: no false lesson
                held = st.session_state["defence"] = (defence_key, str(exc))
            except PrivriskError as exc:
                st.error(str(exc))
            else:
                held = st.session_state["defence"] = (defence_key, trials)
    if held is not None and held[0] == defence_key and isinstance(held[1], str):
        st.error("**No changes scored.** " + held[1])
    elif held is not None and held[0] == defence_key:
        trials = held[1]
        threshold = trials[0].threshold
        frame = pd.DataFrame(
            [
                {
                    "change": t.label,
                    "distance": round(t.distance, 3),
                    "result": "still identified" if t.identified else "match broken",
                    "rank (measured)": t.rank,
                    "face detected": "yes" if t.detected else "no",
                    "SSIM": round(t.ssim, 3),
                }
                for t in trials
            ]
        )
        broken = [t.label for t in trials[1:] if t.breaks_match]
        kept = [t.label for t in trials[1:] if not t.breaks_match]
        st.caption(trials[0].attacker)
        c1, c2 = st.columns(2)
        c1.metric("Changes that break the match (defences)", f"{len(broken)} of {len(trials) - 1}")
        c2.metric("Changes the match survives (myths)", f"{len(kept)} of {len(trials) - 1}")
        bars = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("distance:Q", title=f"distance from the snapshot (threshold {threshold:g})"),
                y=alt.Y("change:N", sort=None, title=None, axis=alt.Axis(labelLimit=400, labelOverlap=False)),
                color=alt.Color(
                    "result:N",
                    scale=alt.Scale(domain=["still identified", "match broken"], range=["#d62728", "#2ca02c"]),
                ),
                tooltip=list(frame.columns),
            )
        )
        rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(strokeDash=[6, 3]).encode(x="threshold:Q")
        st.altair_chart((bars + rule).properties(height=max(300, 26 * len(frame))), width="stretch")
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            height=35 * (len(frame) + 1) + 3,  # every row, no inner scrolling
            column_config={
                "distance": st.column_config.NumberColumn(format="%.3f"),
                "SSIM": st.column_config.NumberColumn(format="%.3f"),
            },
        )
        st.caption(
            "Measured live on this volunteer: one snapshot, one enrolled photo, the sample faces and the other "
            "volunteers (n = 1 person, so no rate). 'Still identified': the volunteer comes first and within the "
            f"threshold ({threshold:g}). A changed photo whose face the detector misses is still encoded at the "
            "original face's place, as a stronger detector would find it. SSIM: how much of the photo is left "
            "(1 = unchanged)."
        )

if st.button("Reset: forget every volunteer"):
    gallery.reset()
    for key in [k for k in st.session_state if k.startswith("embedding:")]:
        del st.session_state[key]
    st.session_state["enrol_round"] = enrol_round + 1
    st.session_state["snap_round"] = snap_round + 1
    st.session_state.pop("last_enrolled", None)
    st.session_state.pop("enrolled_photos", None)
    st.session_state.pop("defence", None)
    st.session_state.pop("pending_volunteer", None)
    world = sample_world()  # the sample set comes back if it was taken out
    st.session_state["live_gallery"] = LiveGallery(world.vectors, world.subjects)
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
