"""NiN Explorer: the entry point. Lists the pages (all in pages/) and draws the navigation."""
import streamlit as st

st.set_page_config(page_title="NiN Explorer", page_icon="🧱", layout="wide")

PAGES = [
    st.Page("pages/build.py", title="Build", icon=":material/construction:", url_path="build", default=True),
]

# Our own menu: the built-in one would also list pages/ files on a server's first session.
page = st.navigation(PAGES, position="hidden")
with st.sidebar:
    st.markdown("### NiN Explorer")
    for p in PAGES:
        st.page_link(p)
    st.divider()
page.run()
