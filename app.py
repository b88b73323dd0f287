"""NiN Explorer: the entry point. Lists the pages (all in pages/) and draws the shared frame."""
import os
from urllib.parse import unquote, urlsplit

# Before torch loads: every session's script thread that runs torch gets its own OpenMP team,
# and idle teams that spin steal the cores a training worker needs. Workers inherit it: on a
# 2-core CPU that costs them ~25% when the machine is idle and gains 2.5x when it is busy
# (1,000 vs 400 examples/s for `tiny`; docs/BENCHMARKS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from pages.common import PAGES, draw_frame  # noqa: E402

PAGE_NOTE_KEY = "page_note"


def asked_path() -> str:
    """The page name in the browser's address (after the server's base path), '' for the root."""
    path = urlsplit(st.context.url or "").path.strip("/")
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base):].strip("/")
    return path


def no_such_page() -> None:
    """Stands in for an address that is no page (an old link, a typo): Streamlit would show a
    modal "Page not found" that blocks every widget; go to the first page with a note instead."""
    asked = st.session_state.pop("asked_path", "")
    path, title, _, url = PAGES[0]
    if asked != url:   # /build is the first page's own name: no note for that
        st.session_state[PAGE_NOTE_KEY] = f"No page at /{asked}; here is {title}."
    st.switch_page(path)


# Our own menu (draw_frame): the built-in one would list pages/ files on a server's first session.
# The first page lives at the root; its own name (/build) is then free for old links.
# No icons here: Streamlit makes a page's icon the favicon, fetched from Google for `:material:`.
pages = [st.Page(path, title=title, url_path="" if i == 0 else url, default=i == 0)
         for i, (path, title, _, url) in enumerate(PAGES)]
asked = asked_path()
if asked and asked not in {p.url_path for p in pages} and "/" not in asked:
    st.session_state["asked_path"] = unquote(asked)
    pages.append(st.Page(no_such_page, title="No such page", url_path=asked, visibility="hidden"))
page = st.navigation(pages, position="hidden")
draw_frame()
if PAGE_NOTE_KEY in st.session_state:
    st.info(st.session_state.pop(PAGE_NOTE_KEY))
page.run()
