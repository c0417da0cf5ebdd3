"""Check my exposure: two photos of you, your visibility settings, your score."""

import json

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.common import (
    IMAGE_TYPES,
    attribution,
    consent_gate,
    curves,
    face_vector,
    forget_everything,
    sample_world,
    session_findability,
)
from privrisk.config import ExposureSettings
from privrisk.exposure import Scorer, score, single_changes, top_changes
from privrisk.exposure.words import range_text
from privrisk.profiles import AUDIENCES, FIELDS, LEVELS, PRESETS, profile_from_dict
from privrisk.scenarios import WHO, first_screen, scenarios
from privrisk.selfcheck import (
    identity_doubt,
    score_from_search,
    search_headline,
    search_link_source,
    searched_first_screen,
)


def show_search(result) -> None:
    """Where the snapshot found the profile photo: one plain sentence first, then the numbers."""
    st.subheader("How a stranger's snapshot finds you")
    million = result.at(1_000_000)
    st.markdown(f"**{search_headline(result, 1_000_000)}**")
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Distance between your two photos",
        f"{result.distance:.3f}",
        help=f"Under {result.threshold:g} this face model calls two photos the same person.",
    )
    c2.metric(
        "Rank among 1,000,000 people",
        f"{million.rank:,.0f}",
        help="Counted where the search is real (the sample's faces); beyond that, the rank the tail model "
        "expects from the sample's real pairs of different people (modelled or extrapolated: see the table).",
    )
    billion = result.at(1_000_000_000)
    lo, hi = billion.p_rank1_range or (billion.p_rank1, billion.p_rank1)
    c3.metric(
        "Chance you come first, 1 billion",
        f"{lo:.0%}-{hi:.0%}" if billion.kind == "extrapolated" else f"{billion.p_rank1:.0%}",
        help="Past what real pairs can check this is extrapolated with the tail models: the range is what "
        "the data allows, and it cannot pin the chance down inside it.",
    )
    st.dataframe(
        pd.DataFrame([size_row(s) for s in result.sizes]),
        hide_index=True,
        width="stretch",
        column_config={"how we know": st.column_config.TextColumn(width="large")},
    )
    st.caption(
        f"Your closest look-alike among the sample faces is person {result.nearest_sample} "
        f"(distance {result.nearest_sample_distance:.3f})."
    )


def scenario_row(sc) -> dict:
    """One scenario as ``privrisk score --json`` gives it, one kind of value per column."""
    return {
        "who searches": sc.who.replace("_", " "),
        "with which face recogniser": sc.attacker_label,
        "among how many people": f"{sc.gallery_size:,}",
        "their photo of you": sc.photo or WHO.get(sc.who, ("", sc.snapshot))[1],
        "how they decide": DECISION_WORDS.get(sc.decision, sc.decision),
        "chance they find you": "not covered" if sc.p_found is None else f"{sc.p_found[0]:.1%}–{sc.p_found[1]:.1%}",
        "how we know": sc.kind,
        "source": sc.source,
    }


DECISION_WORDS = {
    "automatic": "automatically: the top candidate is taken as you",
    "review_top10": "a person checks the top 10 candidates by eye",
}


def show_first_screen(sentences: list[str], found) -> None:
    """The answer in brief (the same sentences as ``privrisk score``), then every scenario behind it."""
    st.subheader("Your answer in brief")
    st.markdown(" ".join(sentences))
    with st.expander("Who could find you, among how many people, and how sure we are (every scenario)"):
        st.caption(
            "Each row is one scenario: who searches, with which face recogniser, among how many people, with "
            "what photo of you, and how they decide. The chance is a range; 'not covered' means no valid source "
            "gives a figure. These are the same scenarios as `privrisk score` (docs/answers.md)."
        )
        st.dataframe(
            pd.DataFrame([scenario_row(sc) for sc in found]),
            hide_index=True,
            width="stretch",
            column_config={"source": st.column_config.TextColumn(width="large")},
        )


def size_row(s) -> dict:
    """One gallery size: each column holds one kind of value."""
    lo, hi = s.p_rank1_range or (s.p_rank1, s.p_rank1)
    return {
        "people in the gallery": f"{s.gallery_size:,}",
        "your rank": f"{s.rank:,.0f}" if s.measured else f"about {s.rank:,.0f}",
        "chance you come first": f"{s.p_rank1:.0%}" if s.measured else f"{lo:.0%}-{hi:.0%}",
        "how we know": (
            (
                "modelled with the tail models (a range)"
                if s.kind == "modelled"
                else "extrapolated with the tail models (a range)"
            )
            if not s.measured
            else "counted among the real sample faces"
            if s.kind == "measured"
            else "counted among real and simulated faces"
        ),
    }


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

brief = st.container()  # the answer in brief leads the results; filled once the score is known
profile_vec = face_vector(profile_file, "Profile photo")
snapshot_vec = face_vector(snapshot_file, "Snapshot")

result = None
if profile_vec is not None and snapshot_vec is not None:
    result = session_findability(profile_vec, snapshot_vec)  # once per pair of photos, not per widget change
    doubt = identity_doubt(result)
    pair = hash((profile_vec.tobytes(), snapshot_vec.tobytes()))
    if doubt and st.session_state.get("same_person_confirmed") != pair:
        # the photos may not be of one person: ask before any answer is shown
        with st.container(border=True):
            st.warning(f"**Is this really you in both photos?** {doubt[0].upper()}{doubt[1:]}.")
            st.write(
                "If both photos are of you, go on: the answer below is then about how badly this model "
                "recognises you. If one is someone else, the answer would be about them: change the photos."
            )
            yes, no = st.columns(2)
            if yes.button("Yes, both photos are of me: go on", type="primary", key="same_person_yes"):
                st.session_state["same_person_confirmed"] = pair
                st.rerun()
            if no.button("No: start again with other photos", key="same_person_no"):
                forget_everything()
                st.rerun()
        st.stop()
    show_search(result)
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
# one answer per page: once photos were searched, the score's chance of being linked is that search's
link_from = search_link_source(result) if result is not None else None
if result is not None:
    scored, sentence = score_from_search(result, profile, id_curves, audience)
else:
    scored = score(profile, id_curves, audience)
    sentence = (
        "**Population estimate, not your photos:** with no photos searched, this score uses how often a "
        "stranger's snapshot finds people in the sample set. " + scored.explain()
    )
lo, hi = scored.score_range
link = scored.link
st.subheader("Your exposure score")
st.markdown(sentence)
m1, m2, m3 = st.columns(3)
m1.metric(f"Exposure score ({audience.replace('_', ' ')})", f"{scored.score:.0f} / 100")
m2.metric("Range", range_text(lo, hi), help="What the data allows for the score (chance of being linked and content)")
m3.metric(
    "Chance a photo leads here",
    f"{link.p:.0%}" if link.lo == link.hi else f"{link.lo:.0%}-{link.hi:.0%}",
    help="From your own search when photos were given; otherwise from the sample set's identification curve.",
)
if result is not None and link.curve is not None and audience != "friend":
    st.caption(scored.explain())
st.caption(f"If they were sure to find you, the score would be {scored.score_if_linked:.0f}.")
if link.notes:
    with st.expander("How the chance was worked out"):
        for note in link.notes:
            st.write(f"- {note[0].upper()}{note[1:]}.")
if scored.national_id is not None:
    st.markdown(f"**National ID ({scored.national_id.scheme}).** {scored.national_id_text}.")
    st.caption(scored.national_id.plain + " Sources: " + scored.national_id.source + ".")
parts = pd.DataFrame(
    [
        {"what": p.label, "points": round(p.points, 1)}
        for p in (*scored.parts, *scored.inferences)
        if round(p.points, 1) > 0
    ]
)
if not parts.empty:  # no empty chart: only what adds at least 0.1 point
    st.caption("What each item adds to the score (points)")
    st.altair_chart(
        alt.Chart(parts)
        .mark_bar()
        .encode(
            x=alt.X("points:Q", title="points", axis=alt.Axis(format=".0f")),
            y=alt.Y("what:N", sort="-x", title=None, axis=alt.Axis(labelLimit=400)),
            tooltip=["what", "points"],
        ),
        width="stretch",
    )
best = [
    c
    for c in top_changes(profile, Scorer(id_curves, link_from=link_from), audience)
    if round(c.before) != round(c.after) or round(c.before_high or 0) != round(c.after_high or 0)
]
settings = ExposureSettings()
found = scenarios(id_curves, extra_size=settings.scenario_gallery_size or None, stranger_curve=settings.curve)
brief_args = {
    "change": best[0].description if best else None,
    "score": scored.to_dict() if audience == "stranger" else None,  # its sentence is about a stranger
}
screen = (
    searched_first_screen(result, found, sample_world(), **brief_args)
    if result is not None
    else first_screen(found, **brief_args)
)
with brief:
    show_first_screen(screen, found)
st.subheader("The changes that lower it most")
st.caption("Sets of up to three changes; the first lowers the score most per setting changed.")
if best:
    for i, change in enumerate(best, 1):
        high = (
            f"; upper end of the range {change.before_high:.0f} -> {change.after_high:.0f}"
            if change.before_high is not None
            and change.after_high is not None
            and (round(change.before_high) != round(change.before) or round(change.after_high) != round(change.after))
            else ""
        )
        count = len(change.settings)
        moved = (
            f"{change.before:.0f} -> {change.after:.0f}"
            if round(change.before) != round(change.after)
            else f"the score stays {change.before:.0f}"  # no "0 -> 0": the range's upper end is what moves
        )
        st.write(f"{i}. {change.description}: {moved} ({count} setting{'s' if count != 1 else ''} changed{high})")
    st.caption("What each change does for every audience (score before -> after):")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "change": f"{i}",
                    **{
                        f"for a {a.replace('_', ' ')}": f"{b:.0f} -> {x:.0f}"
                        if round(b) != round(x)
                        else f"stays {b:.0f}"
                        for a, (b, x) in c.effect.items()
                    },
                }
                for i, c in enumerate(best, 1)
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.write("No change to these settings lowers the score for this audience.")
with st.expander("Every single change"):
    st.dataframe(
        pd.DataFrame(
            [
                {"change": c.description, "score after": f"{c.after:.0f}"}
                for c in single_changes(profile, Scorer(id_curves, link_from=link_from), audience)
            ]
        ),
        hide_index=True,
        width="stretch",
    )

summary = {
    "findability": result.to_dict() if result else None,
    "profile": profile.to_dict(),
    "scores": {a: score(profile, id_curves, a, link_from=link_from).to_dict() for a in AUDIENCES},
    "score_source": "your search" if result is not None else "population estimate (the sample set's curves)",
    "top_changes": [c.to_dict() for c in best],
    "first_screen": screen,
    "scenarios": [sc.to_dict() for sc in found],
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
