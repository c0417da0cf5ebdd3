"""Which of my photos give me away: up to 10 photos of you and a stranger's snapshot; per photo, how
findable it is, and the least damaging change that protects it (computed in memory)."""

import dataclasses
import io

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app_pages.common import (
    IMAGE_TYPES,
    SETTINGS,
    attribution,
    consent_gate,
    face_model,
    forget_everything,
    sample_world,
)
from privrisk.errors import PrivriskError
from privrisk.photocheck import MAX_PHOTOS, check_photos, identity_doubts
from privrisk.protect import LEVELS, TARGET, Attacker, Search
from privrisk.selfcheck import decision_threshold
from privrisk.tailmodel import GROUP_BLIND_CAVEAT
from privrisk.transforms import TRANSFORMS

st.title("Which of my photos give me away?")
st.write(
    f"Give up to {MAX_PHOTOS} photos of yourself (your profile photo, photos others tagged you in, ...) and one "
    "**stranger's snapshot** of you. For each photo privrisk searches the snapshot against it, hidden among the "
    "consenting sample faces, and says how likely it is to come first at platform scale; then it finds the least "
    "damaging change (shrinking, blurring, compressing, cropping or covering part of the face) that makes the "
    "photo safe at the level you choose, and shows the protected copy."
)
consent_gate("mp_consent")

generation = st.session_state.get("upload_generation", 0)
# One form: adding photos does not re-run the page (so nothing added meanwhile can be lost); "Check my
# photos" sends the photos and the snapshot at once.
with st.form(f"mp_photos_form_{generation}", border=False):
    left, right = st.columns(2)
    with left:
        photos = st.file_uploader(
            f"Your photos (up to {MAX_PHOTOS})",
            type=IMAGE_TYPES,
            accept_multiple_files=True,
            key=f"mp_photos_{generation}",
        )
    with right:
        snapshot = st.file_uploader("A stranger's snapshot of you", type=IMAGE_TYPES, key=f"mp_snapshot_{generation}")
    st.form_submit_button("Check my photos", type="primary", key=f"mp_check_{generation}")
level = st.radio(
    "Safe means",
    list(LEVELS),
    horizontal=True,
    key="mp_level",
    format_func=lambda lv: f"under {TARGET:.0%} chance of coming first among {LEVELS[lv]:,} people",
    help="The upper end of the range for the chance of rank 1 at that gallery size must be under the target.",
)
size = LEVELS[level]

if len(photos) > MAX_PHOTOS:
    st.error(f"{len(photos)} photos: the check takes at most {MAX_PHOTOS}. Remove {len(photos) - MAX_PHOTOS}.")
    st.stop()
if not photos or snapshot is None:
    st.info("Add your photos and a snapshot, then press **Check my photos**.")
    st.stop()

PREVIEW_SIDE = 480


def png_bytes(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")  # lossless: the copy is the one that was measured
    return buf.getvalue()


def preview(rgb):
    """A small copy for the page: the session keeps previews and the protected copy's PNG, not ten
    full-size photos twice over."""
    if rgb is None:
        return None
    im = Image.fromarray(rgb)
    im.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return np.asarray(im)


def for_session(row):
    """(row without pixels, preview before, preview after, protected copy as PNG bytes or None)."""
    image = row.protection.image if row.protection is not None else None
    light = dataclasses.replace(
        row,
        rgb=None,
        protection=dataclasses.replace(row.protection, image=None) if row.protection is not None else None,
    )
    return light, preview(row.rgb), preview(image), (png_bytes(image) if image is not None else None)


key = (tuple(p.file_id for p in photos), snapshot.file_id, level)
threshold = decision_threshold(face_model())  # the attacker's: this face model's
held = st.session_state.get("photo_check")
if held is None or held[0] != key:  # once per set of photos and level; other widgets do not re-run it
    bar = st.progress(0.0, text=f"checking {len(photos)} photos")
    try:
        rows = check_photos(
            [(p.name, p.getvalue()) for p in photos],
            snapshot.getvalue(),
            Search(sample_world(), Attacker(face_model(), SETTINGS, threshold)),
            level=level,
            progress=lambda done, total: bar.progress(done / total, text=f"checked {done} of {total} photos"),
        )
    except PrivriskError as exc:
        bar.empty()
        st.error(f"Snapshot: {getattr(exc, 'reason', exc)}")
        st.stop()
    bar.empty()
    held = (key, [for_session(r) for r in rows])
    del rows
    st.session_state["photo_check"] = held
shown = sorted(held[1], key=lambda v: -v[0].risk(size))  # the most revealing first
rows = [v[0] for v in shown]

doubts = identity_doubts(rows, threshold)
if doubts and st.session_state.get("mp_same_person_confirmed") != key[:2]:
    # the snapshot or the photos may be someone else: ask before any verdict is shown
    with st.container(border=True):
        st.warning("**Is this really you?** " + " ".join(d[0].upper() + d[1:] + "." for d in doubts))
        st.write(
            "The verdicts below are only about you if every photo and the snapshot show you. If they do, go on; "
            "otherwise change the photos."
        )
        yes, no = st.columns(2)
        if yes.button("Yes, they are all of me: go on", type="primary", key="mp_same_person_yes"):
            st.session_state["mp_same_person_confirmed"] = key[:2]
            st.rerun()
        if no.button("No: start again with other photos", key="mp_same_person_no"):
            forget_everything()
            st.rerun()
    st.stop()


def chance(s) -> str:
    """The chance of coming first at a size, as the range the data allows (extrapolated)."""
    if s is None:
        return "unknown"
    lo, hi = s.p_rank1_range if s.p_rank1_range else (s.p_rank1, s.p_rank1)
    return f"{lo:.0%}-{hi:.0%}"


def protection_text(row) -> str:
    p = row.protection
    if p is None:
        return "unknown"
    if p.transform is None:
        return "none needed" if row.before.safe(size) else "none found: no setting tried moves you off rank 1"
    return TRANSFORMS[p.transform].label(p.strength)


def rank_text(f) -> str:
    return f"{f.rank:,} of {f.gallery_size:,}" if f is not None and f.rank is not None else "unknown"


table = pd.DataFrame(
    [
        {
            "photo": r.name,
            "verdict": r.verdict(size),
            "cheapest protection": protection_text(r),
            "rank now": rank_text(r.before),
            "rank protected": (
                rank_text(r.protection.after) if r.protection and r.protection.after else "no copy made"
            ),
            "copy quality (SSIM)": (
                f"{r.protection.quality.ssim:.3f}" if r.protection and r.protection.quality else "no copy made"
            ),
            "why not checked": r.error or "",
        }
        for r in rows
    ]
)
if not table["why not checked"].any():
    table = table.drop(columns="why not checked")
details = pd.DataFrame(
    [
        {
            "photo": r.name,
            "chance of coming first among 10^6 (extrapolated)": chance(r.before.at(1_000_000) if r.before else None),
            "chance of coming first among 10^9 (extrapolated)": chance(
                r.before.at(1_000_000_000) if r.before else None
            ),
            "face width (px)": (
                f"{r.before.face_width:,}" if r.before is not None and r.before.face_width is not None else "unknown"
            ),
            "face found by the detector": ("yes" if r.before.detected else "no") if r.before else "no",
        }
        for r in rows
    ]
)
given_away = sum(r.verdict(size) == "gives you away" for r in rows)
st.subheader(f"{given_away} of {len(rows)} photos give you away at {size:,} people")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "photo": st.column_config.TextColumn(pinned=True),
        "verdict": st.column_config.TextColumn(pinned=True, width="medium"),
        "cheapest protection": st.column_config.TextColumn(width="medium"),
    },
)
with st.expander("Chances at platform scale, face size and detection"):
    st.dataframe(details, hide_index=True, width="stretch")
st.caption(
    "Rank now, rank protected: measured, among the consenting sample faces plus you, when your snapshot is searched against the photo. "
    "A photo found first there gives you away, whatever the model says about larger galleries: measured beats "
    "modelled. Chances at 10^6 and 10^9 people: extrapolated with the tail models fitted on the sample set "
    "(closed form, no search); the range spans two tail models and their bootstrap refits, and the data cannot "
    "pin a value down inside it. 'Safe' means not coming first: a photo ranked just behind a look-alike among "
    "the sample faces is safe from rank 1 at every larger size, yet still on a stranger's top-10 list. A photo "
    "whose face the detector misses is still judged at the face's known box, as a stronger detector would find "
    "it. Quality: SSIM (1 = unchanged) over the face and its surroundings."
)
st.caption(GROUP_BLIND_CAVEAT)
attribution()


st.subheader("Photo by photo")
for i, (r, before_preview, after_preview, protected_png) in enumerate(shown):
    verdict = r.verdict(size)
    with st.expander(f"{r.name}: {verdict}", expanded=i == 0 and verdict == "gives you away"):
        if not r.ok:
            st.warning(r.error)
            if before_preview is not None:
                st.image(before_preview, caption="your photo", width=320)
            continue
        p = r.protection
        st.markdown(f"**Protection:** {p.reason}.")
        if protected_png is None:
            st.image(before_preview, caption=f"your photo: rank {rank_text(r.before)} (measured)", width=320)
            continue
        c1, c2 = st.columns(2)
        c1.image(
            before_preview,
            caption=f"before: rank {rank_text(r.before)} (measured); chance of coming first among {size:,}: "
            f"{chance(r.before.at(size))} (extrapolated)",
        )
        c2.image(
            after_preview,
            caption=f"after ({protection_text(r)}): rank {rank_text(p.after)} (measured); "
            f"{chance(p.after.at(size))} (extrapolated)",
        )
        attribution()
        m1, m2, m3 = st.columns(3)
        m1.metric("Rank among the sample faces (measured)", f"{r.before.rank:,} -> {p.after.rank:,}")
        m2.metric("SSIM (1 = unchanged)", f"{p.quality.ssim:.3f}")
        m3.metric("PSNR", f"{p.quality.psnr:.1f} dB")
        st.download_button(
            "Download the protected copy (PNG)",
            protected_png,
            file_name=f"protected-{i + 1}.png",
            mime="image/png",
            key=f"mp_download_{i}",
            on_click="ignore",
        )

if st.button("Forget me", type="primary", key="mp_forget"):
    forget_everything()
    st.rerun()
