"""Widget helpers shared by the pages (not a page itself: app.py does not list it)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from nin_explorer.presets import D2L, PRESETS
from nin_explorer.spec import NetSpec

BUILD_SPEC_KEY = "build_spec"
# The browser tab's icon, served by this server: a `:material/...:` page icon makes the
# browser fetch an SVG from fonts.gstatic.com (the menu's icons come from a bundled font).
FAVICON = str(Path(__file__).resolve().parent.parent / "assets" / "favicon.png")
NUMBER_COLUMNS = {
    name: st.column_config.NumberColumn(name, format="localized")
    for name in ("params", "MACs", "FLOPs", "activations", "fc_params", "flops")
} | {name: st.column_config.NumberColumn(name, format="bytes")
     for name in ("train_memory_bytes", "infer_memory_bytes")}


# (file, title, icon, url path); the first is the default page. The icons are drawn by the menu's
# page links only (a bundled font); app.py gives st.Page none, as each would become a favicon.
PAGES = [
    ("pages/build.py", "Build", ":material/construction:", "build"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/maps.py", "GAP maps", ":material/grid_view:", "maps"),
    ("pages/ablation.py", "Ablations", ":material/science:", "ablation"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("pages/lineage.py", "Lineage", ":material/account_tree:", "lineage"),
]


def draw_frame() -> None:
    """What every page shares: wide layout and our sidebar menu."""
    st.set_page_config(page_title="NiN Explorer", page_icon=FAVICON, layout="wide")
    who = visitor()
    with st.sidebar:
        st.markdown("### NiN Explorer")
        for path, title, icon, _ in PAGES:   # the links carry who you are to the next page
            st.page_link(path, label=title, icon=icon, query_params=who.query)
        st.divider()
        _role_line(who)


VISITOR_KEY = "role.visitor"


def visitor():
    """Who this browser is: roles.identify decides from the URL, the server's address and
    what this session remembers; kept in session state and in the URL (a reload keeps it)."""
    from nin_explorer import roles
    from nin_explorer.store import default_home

    single = roles.single_user(st.get_option("server.address"))
    try:
        token = "" if single else roles.teacher_token(default_home())
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


def _role_line(who) -> None:
    """The sidebar's 'who you are, what you may do' (skipped while the run store is unusable:
    the page says that itself)."""
    from nin_explorer.roles import Limits, describe
    from nin_explorer.store import StoreError, default_home
    if who.refused_link:
        st.warning("That teacher link does not match this server's token, so you are a visitor.")
    try:
        store = _store(str(default_home()))
    except StoreError:
        return
    st.caption(describe(who, Limits.from_env(), store.count_active(who.id)[1]))


def leave_pages_directory_mode() -> None:
    """Call first on every page. Until some session has called st.navigation, Streamlit runs
    a fresh server's first deep link (/train) straight from pages/, without app.py; then the
    page draws the frame itself and switches that mode off for every later run."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        draw_frame()


def current_spec() -> NetSpec:
    """The variant on the Build page in this session (the `d2l` preset before any visit)."""
    return st.session_state.get(BUILD_SPEC_KEY, D2L)


def set_current_spec(spec: NetSpec) -> None:
    st.session_state[BUILD_SPEC_KEY] = spec


BUILD_VARIANT = "(the Build page's variant)"


def preset_choice(label: str, key: str, help: str | None = None, include_current: bool = False,
                  default: str = "d2l", on_change=None) -> NetSpec:
    """A select box of presets, led by the Build page's variant when asked (and chosen by
    default once the Build page has been visited); returns the spec."""
    options = ([BUILD_VARIANT] if include_current else []) + list(PRESETS)
    if key not in st.session_state:
        st.session_state[key] = BUILD_VARIANT if include_current and BUILD_SPEC_KEY in st.session_state else default
    name = st.selectbox(label, options, key=key, help=help, on_change=on_change)
    if name == BUILD_VARIANT:
        st.caption(f"Build page: **{current_spec().name}**")
    return current_spec() if name not in PRESETS else PRESETS[name]


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
    from nin_explorer.store import StoreError, default_home
    try:
        return open_home(str(default_home()))
    except StoreError as e:
        st.error(str(e))
        st.stop()


@st.cache_resource
def _jobs(home: str):
    """Runs at once start as `default_at_once()` says; the Ablations page's "Runs at once"
    changes it while the app runs."""
    from nin_explorer.jobs import JobManager, default_at_once
    return JobManager(home, max_concurrent=default_at_once())


@st.cache_resource
def _store(home: str):
    from nin_explorer.store import RunStore
    return RunStore(home)


def measured_rate(store, spec: NetSpec, device: str) -> float | None:
    """examples/s of the latest finished run of this exact network on this device type."""
    for run in store.list_runs(("completed", "stopped"), limit=50):
        if run["spec"] == spec.to_dict() and (run.get("device") or "").startswith(device) \
                and run.get("examples_per_sec"):
            return run["examples_per_sec"]
    return None


def run_name(run: dict) -> str:
    return f"#{run['id']} {run.get('name') or run['spec']['name']}"


def run_label(run: dict) -> str:
    acc = f" · best {run['best_test_acc']:.1%}" if run.get("best_test_acc") is not None else ""
    return f"{run_name(run)} · {run['status']}{acc}"


def run_title(run: dict) -> str:
    """What never changes about a run: id, name, when it was queued. For pickers whose text
    Streamlit does not redraw while their value stays the same (a status there would go stale)."""
    import time
    when = time.strftime("%d %b %H:%M", time.localtime(run["created"])) if run.get("created") else ""
    return run_name(run) + (f" · {when}" if when else "")


def runs_table(runs: list[dict]) -> list[dict]:
    from nin_explorer.plan import human_duration
    return [{
        "run": r["id"], "name": r.get("name"), "status": r["status"],
        "data set": r["config"].get("dataset"), "recipe": r["config"].get("recipe"),
        "epochs": r["config"].get("epochs"), "batch": r["config"].get("batch_size"),
        "lr": r["config"].get("lr"),
        "best test acc": None if r.get("best_test_acc") is None else f"{r['best_test_acc']:.2%}",
        "examples/sec": None if not r.get("examples_per_sec") else round(r["examples_per_sec"]),
        "time": human_duration(r["wall_s"]) if r.get("wall_s") else None,
        "device": r.get("device"),
    } for r in runs]


@st.cache_resource(max_entries=4, show_spinner="Loading the test set...")
def test_set(name: str):
    """A data set's test split, loaded once per server (DataError when it cannot be had)."""
    from nin_explorer.data import load_dataset
    return load_dataset(name, train=False)


def measured_memory(spec: NetSpec) -> dict | None:
    """Peak memory measured by the latest finished run of exactly this network, or None."""
    from nin_explorer.store import StoreError, default_home
    try:
        store = _store(str(default_home()))
    except StoreError:  # no usable run store: the Build page works without measurements
        return None
    for run in store.list_runs(("completed", "stopped", "diverged"), limit=100):
        if run["spec"] != spec.to_dict():
            continue
        epochs = store.metrics(run["id"], "epoch")
        if epochs and epochs[-1].get("peak_train_memory_bytes"):
            return {"run": run, "train": max(e.get("peak_train_memory_bytes") or 0 for e in epochs),
                    "infer": max(e.get("peak_infer_memory_bytes") or 0 for e in epochs)}
    return None
