"""Check my exposure: two photos of you, your visibility settings, your score."""

import json

import pandas as pd
import streamlit as st

from app_pages.common import (
    IMAGE_TYPES,
    attribution,
    consent_gate,
    curves,
    face_vector,
    forget_everything,
    session_findability,
)
from privrisk.exposure import score, single_changes, top_changes
from privrisk.profiles import AUDIENCES, FIELDS, LEVELS, PRESETS, profile_from_dict

st.title("How findable am I from my face?")
st.write(
    "Give two photos of yourself: one plays your **public profile photo**, hidden among the consenting "
    "sample faces and up to a million look-alike distractors; the other plays a **stranger's snapshot**. "
    "privrisk shows where the snapshot finds you, then scores what your profile settings give away."
)
consent_gate("consent")

generation = st.session_state.get("upload_generation", 0)
source = st.radio(
    "The stranger's snapshot",
    ["Upload a photo", "Take one with the camera"],
    horizontal=True,
    key=f"snapshot_source_{generation}",
)
# The two photos are one form: picking a photo does not re-run the page, so a second photo added while
# the first is still being read cannot be lost; "Find me" sends both at once.
with st.form(f"photos_{generation}", border=False):
    left, right = st.columns(2)
    with left:
        profile_file = st.file_uploader(
            "Your public profile photo", type=IMAGE_TYPES, key=f"profile_photo_{generation}"
        )
    with right:
        if source == "Upload a photo":
            snapshot_file = st.file_uploader("Another photo of you", type=IMAGE_TYPES, key=f"snapshot_{generation}")
        else:
            snapshot_file = st.camera_input("Snapshot", key=f"camera_{generation}")
    st.form_submit_button("Find me", type="primary", key=f"find_me_{generation}")

profile_vec = face_vector(profile_file, "Profile photo")
snapshot_vec = face_vector(snapshot_file, "Snapshot")

result = None
if profile_vec is not None and snapshot_vec is not None:
    result = session_findability(profile_vec, snapshot_vec)  # once per pair of photos, not per widget change
    st.subheader("How a stranger's snapshot finds you")
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Distance between your two photos",
        f"{result.distance:.3f}",
        "same person (below 0.6)" if result.is_match else "not matched (above 0.6)",
        delta_color="off",
    )
    million = result.at(1_000_000)
    c2.metric(
        "Rank among 1,000,000 people",
        f"{million.rank:.0f}",
        f"{million.kind}: counted among model (Gaussian) distractors" if million.measured else million.kind,
        delta_color="off",
        help="The sample's real faces plus distractors drawn from a Gaussian model of faces, searched exactly. "
        "That model's lower tail is too thin (the report's validation), so this rank is optimistic for you.",
    )
    billion = result.at(1_000_000_000)
    rng = billion.p_rank1_range
    if billion.kind == "extrapolated" and rng:  # past what real pairs can check: lead with the range
        c3.metric(
            "Chance of rank 1 among 10^9 (extrapolated)",
            f"{rng[0]:.0%}-{rng[1]:.0%}",
            f"model value {billion.p_rank1:.0%}; the data cannot pin it down",
            delta_color="off",
        )
    else:
        c3.metric(
            f"Chance of rank 1 among 10^9 ({billion.kind})",
            f"{billion.p_rank1:.0%}" + (f" (range {rng[0]:.0%}-{rng[1]:.0%})" if rng else ""),
        )
    table = pd.DataFrame(
        [
            {
                "gallery size": f"{s.gallery_size:,}",
                "rank of your profile photo": (f"{s.rank:.0f}" if s.measured else f"about {s.rank:.1f}"),
                "found at rank 1": (("yes" if s.p_rank1 else "no") if s.measured else f"{s.p_rank1:.0%}"),
                "range (chance of rank 1)": (
                    f"{s.p_rank1_range[0]:.0%}-{s.p_rank1_range[1]:.0%}" if s.p_rank1_range else ""
                ),
                "kind": s.kind,
                "how": "counted with FAISS" if s.measured else "tail model (closed form)",
            }
            for s in result.sizes
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        f"Your closest look-alike among the sample faces is person {result.nearest_sample} "
        f"(distance {result.nearest_sample_distance:.3f})."
    )
    attribution()
elif profile_file is None or snapshot_file is None:
    st.info("Add both photos and press **Find me** to see where you are found.")

st.subheader("Your profile settings")
preset_name = st.selectbox("Start from", list(PRESETS), key="preset", format_func=lambda p: p.replace("_", " "))
preset = PRESETS[preset_name]
audience = st.radio("Who looks?", AUDIENCES, horizontal=True, key="audience", format_func=lambda a: a.replace("_", " "))
with st.expander("Every setting (what if?)", expanded=False):
    cols = st.columns(3)
    visibility = {}
    for i, (field, label) in enumerate(FIELDS.items()):
        default = preset["visibility"][field]
        visibility[field] = cols[i % 3].selectbox(
            label,
            LEVELS,
            index=LEVELS.index(default),
            key=f"vis_{preset_name}_{field}",
            format_func=lambda lv: lv.replace("_", " "),
        )
    c1, c2, c3 = st.columns(3)
    public_photos = c1.number_input(
        "public photos showing your face", 0, 10_000, preset.get("public_photos_with_face", 0), key=f"pub_{preset_name}"
    )
    tagged = c2.number_input(
        "photos others tagged you in", 0, 10_000, preset.get("tagged_photos_with_face", 0), key=f"tag_{preset_name}"
    )
    birth_country = c3.selectbox("born in", ["US", "KR", "GB", "other"], key="country")
    real_name = c1.toggle("profile under your real name", preset.get("real_name_used", True), key=f"name_{preset_name}")
    dated = c2.toggle(
        "travel plans posted with dates", preset.get("travel_plans_specific", False), key=f"dated_{preset_name}"
    )
    birth_year = c3.number_input("birth year", 1920, 2025, 1995, key="birth_year")
    hometown = c3.text_input(
        "hometown (city or province)",
        "",
        max_chars=200,
        key="hometown",
        help="Only used for the Korean RRN region digits, e.g. Seoul or Busan",
    )

profile = profile_from_dict(
    {
        "visibility": visibility,
        "public_photos_with_face": int(public_photos),
        "tagged_photos_with_face": int(tagged),
        "real_name_used": real_name,
        "travel_plans_specific": dated,
        "birth_country": birth_country if birth_country != "other" else "ZZ",
        "birth_year": int(birth_year),
        "hometown": hometown.strip() or None,
    }
)
id_curves = curves()
scored = score(profile, id_curves, audience)
lo, hi = scored.score_range
link = scored.link
m1, m2, m3 = st.columns(3)
m1.metric(f"Exposure score ({audience.replace('_', ' ')})", f"{scored.score:.0f} / 100")
m2.metric("Range", f"{lo:.0f}-{hi:.0f}", help="From the identification curve's range and the multi-photo rule's range")
m3.metric(
    "Chance a photo of you leads to this profile",
    f"up to {link.hi:.0%}" if link.kind == "extrapolated" else f"{link.p:.0%}",
    (
        f"range {link.lo:.0%}-{link.hi:.0%}, model value {link.p:.0%} (extrapolated)"
        if link.kind == "extrapolated"
        else f"range {link.lo:.0%}-{link.hi:.0%} ({link.kind})"
    ),
    delta_color="off",
)
st.write(scored.explain())
st.caption(
    f"If they were sure to find you, the score would be {scored.score_if_linked:.0f}. "
    + " ".join(f"Note: {n}." for n in link.notes)
)
if scored.national_id is not None:
    st.markdown(f"**National ID ({scored.national_id.scheme}).** {scored.national_id_text}.")
    st.caption(scored.national_id.plain + " Sources: " + scored.national_id.source + ".")
parts = pd.DataFrame(
    [{"what": p.label, "points": round(p.points, 1)} for p in (*scored.parts, *scored.inferences) if p.points > 0]
)
if not parts.empty:
    st.bar_chart(parts.set_index("what"), horizontal=True)
best = top_changes(profile, id_curves, audience)
st.subheader("The changes that lower it most")
st.caption("Sets of up to three changes; the first lowers the score most per setting changed.")
if best:
    for change in best:
        st.write(
            f"- {change} (upper end {change.before_high:.0f} -> {change.after_high:.0f}; "
            f"{len(change.settings)} setting(s))"
        )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "change": c.description,
                    **{a.replace("_", " "): f"{b:.0f} -> {x:.0f}" for a, (b, x) in c.effect.items()},
                }
                for c in best
            ]
        ),
        hide_index=True,
    )
else:
    st.write("Nothing left to hide from this audience.")
with st.expander("Every single change"):
    st.dataframe(
        pd.DataFrame(
            [
                {"change": c.description, "score after": round(c.after, 1)}
                for c in single_changes(profile, id_curves, audience)
            ]
        ),
        hide_index=True,
    )

summary = {
    "findability": result.to_dict() if result else None,
    "profile": profile.to_dict(),
    "scores": {a: score(profile, id_curves, a).to_dict() for a in AUDIENCES},
    "top_changes": [c.to_dict() for c in best],
    "curves": "sample_data/identification_curves.json",
}
st.download_button(
    "Download my summary (JSON)",
    json.dumps(summary, indent=2),
    file_name="privrisk-summary.json",
    mime="application/json",
)
if st.button("Forget me", type="primary"):
    forget_everything()
    st.rerun()
