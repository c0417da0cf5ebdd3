"""privrisk's Streamlit app: `python3 -m uv run streamlit run app.py` (localhost only).

Three pages for three users; every computation is a privrisk library call (see app_pages/).
"""

import streamlit as st

st.set_page_config(page_title="privrisk: how findable am I?", page_icon=":mag:", layout="wide")

pages = [
    st.Page("app_pages/self_check.py", title="Check my exposure", icon=":material/person_search:", default=True),
    st.Page("app_pages/my_photos.py", title="Which photos give me away", icon=":material/photo_library:"),
    st.Page("app_pages/experiment.py", title="Run an experiment", icon=":material/science:"),
    st.Page("app_pages/trainer.py", title="Trainer demo", icon=":material/groups:"),
]
st.navigation(pages).run()
