"""Widget helpers shared by the pages (not a page itself: app.py does not list it)."""
from __future__ import annotations

import streamlit as st

from nin_explorer.presets import D2L, PRESETS
from nin_explorer.spec import NetSpec

BUILD_SPEC_KEY = "build_spec"
NUMBER_COLUMNS = {
    name: st.column_config.NumberColumn(name, format="localized")
    for name in ("params", "MACs", "FLOPs", "activations", "fc_params", "flops")
} | {name: st.column_config.NumberColumn(name, format="bytes")
     for name in ("train_memory_bytes", "infer_memory_bytes")}


def leave_pages_directory_mode() -> None:
    """Call first on every page. Until some session has called st.navigation, Streamlit serves
    a fresh server's first deep link (/build) from pages/ directly, without app.py's frame;
    switch that mode off and rerun through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_spec() -> NetSpec:
    """The variant on the Build page in this session (the `d2l` preset before any visit)."""
    return st.session_state.get(BUILD_SPEC_KEY, D2L)


def set_current_spec(spec: NetSpec) -> None:
    st.session_state[BUILD_SPEC_KEY] = spec


def preset_choice(label: str, key: str, help: str | None = None, include_current: bool = False) -> NetSpec:
    """A select box of presets (optionally led by the Build page's variant); returns the spec."""
    options = (["(the Build page's variant)"] if include_current else []) + list(PRESETS)
    name = st.selectbox(label, options, key=key, help=help)
    return current_spec() if name not in PRESETS else PRESETS[name]
