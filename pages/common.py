"""What every page shares (not a page itself: app.py lists the pages): the menu and frame, who
the visitor is, the run store, the heading with its first-deep-link fix, the Build page's variant."""
from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

from nin_explorer.net.presets import D2L
from nin_explorer.net.spec import NetSpec
from pages import present

BUILD_SPEC_KEY = "build_spec"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
# The tab's icon as a data URL (a `:material:` icon comes from Google; a path is re-sent each rerun)
FAVICON = f"data:image/png;base64,{base64.b64encode((ASSETS / 'favicon.png').read_bytes()).decode()}"


# (file, title, menu icon, url path); the first is the default page (app.py gives st.Page no icon).
PAGES = [
    ("pages/build.py", "Build", ":material/construction:", "build"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/maps.py", "GAP maps", ":material/grid_view:", "maps"),
    ("pages/ablation.py", "Ablations", ":material/science:", "ablation"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("pages/lineage.py", "Lineage", ":material/account_tree:", "lineage"),
    ("pages/data.py", "Your data", ":material/folder_open:", "data"),
]


def draw_frame() -> None:
    """What every page shares: wide layout, our sidebar menu and the presentation switch."""
    st.set_page_config(page_title="NiN Explorer", page_icon=FAVICON, layout="wide")
    who = visitor()
    with st.sidebar:
        st.markdown("### NiN Explorer")
        for path, title, icon, _ in PAGES:   # the links carry who you are to the next page
            st.page_link(path, label=title, icon=icon, query_params=who.query)
        st.divider()
        _role_line(who)
    present.frame()


VISITOR_KEY = "role.visitor"


def visitor():
    """Who this browser is: roles.identify decides from the URL, the server's address and
    what this session remembers; kept in session state and in the URL (a reload keeps it)."""
    from nin_explorer.runs import roles
    from nin_explorer.runs.store import default_home

    single = roles.single_user(st.get_option("server.address"))
    try:
        token = "" if single else _teacher_token(str(default_home()))
    except roles.RoleError as e:
        st.error(str(e))
        st.stop()
    who = roles.identify(token, single, teacher_param=st.query_params.get("teacher"),
                         visitor_param=st.query_params.get("v"),
                         remembered=st.session_state.get(VISITOR_KEY))
    st.session_state[VISITOR_KEY] = who
    for name in ("teacher", "v"):
        if name not in who.query:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != who.query[name]:
            st.query_params[name] = who.query[name]
    return who


@st.cache_resource
def _teacher_token(home: str) -> str:
    """Read (or made) once per server, not on every rerun of every page."""
    from nin_explorer.runs.roles import teacher_token
    return teacher_token(home)


def _role_line(who) -> None:
    """The sidebar's 'who you are, what you may do' (skipped while the run store is unusable:
    the page says that itself)."""
    from nin_explorer.runs.roles import Limits, describe
    from nin_explorer.runs.store import StoreError, default_home
    if who.refused_link:
        st.warning("That teacher link does not match this server's token, so you are a visitor.")
    try:
        store = _store(str(default_home()))
    except StoreError:
        return
    st.caption(describe(who, Limits.from_env(), store.count_active(who.id)[1]))


def page_title(title: str) -> None:
    """A page's heading: every page calls it first, before any other widget.

    It is also the one place for the first-deep-link fix. Streamlit keeps a server in "pages
    directory" mode (a relic of its first multipage API) until some script calls st.navigation,
    and in that mode it runs a fresh server's first deep link (/train) straight from pages/,
    without app.py: no frame, and the mode never ends. Here such a page switches the mode off
    and draws app.py's frame itself. Streamlit 1.67 offers no supported switch (the mode is on
    whenever pages/ sits beside the main script); tests/test_page_common.py checks each page."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        draw_frame()
    st.title(title)


def current_spec() -> NetSpec:
    """The variant on the Build page in this session (the `d2l` preset before any visit)."""
    return st.session_state.get(BUILD_SPEC_KEY, D2L)


def set_current_spec(spec: NetSpec) -> None:
    st.session_state[BUILD_SPEC_KEY] = spec


def get_jobs():
    """The job manager every session shares (one per run-store folder), for the pages that
    launch or stop runs: it starts queued runs. If the folder cannot be used, the page says
    so and stops."""
    return _opened(_jobs)


def get_store():
    """The run store (NIN_EXPLORER_HOME, else the user's cache folder), for pages that only
    read runs: it starts no worker. If the folder cannot be used, the page says so and stops."""
    return _opened(_store)


def _opened(open_home):
    from nin_explorer.runs.store import StoreError, default_home
    try:
        return open_home(str(default_home()))
    except StoreError as e:
        st.error(str(e))
        st.stop()


@st.cache_resource
def _jobs(home: str):
    """Runs at once start as `default_at_once()` says; the Ablations page's "Runs at once"
    changes it while the app runs."""
    from nin_explorer.runs.jobs import JobManager, default_at_once
    return JobManager(home, max_concurrent=default_at_once())


@st.cache_resource
def _store(home: str):
    from nin_explorer.runs.store import RunStore
    return RunStore(home)


def optional_store():
    """The run store, or None when its folder cannot be used: for a page that works without
    runs (the Build page only shows measurements from them)."""
    from nin_explorer.runs.store import StoreError, default_home
    try:
        return _store(str(default_home()))
    except StoreError:
        return None
