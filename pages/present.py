"""The teacher's presentation mode (a helper module, not a page): large type, the controls hidden,
the chosen view only. A switch in the sidebar and the URL flag `?present=true`; a link with it
opens the page as the teacher showed it, since each page keeps its state in the URL too."""
import streamlit as st

KEY = "present"          # session state key and URL parameter (the toggle is bound to the URL)
EXIT_KEY = "present_exit"

# Widgets are hidden by their element's class; the tab strip too, so only the open tab shows.
CONTROLS = ("stSelectbox", "stMultiSelect", "stRadio", "stSlider", "stNumberInput",
            "stCheckbox", "stTextInput", "stFileUploader", "stButton", "stDownloadButton",
            "stSegmentedControl", "stPills", "stColorPicker", "stDateInput")
CSS = """
<style>
html { font-size: 24px; }
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
header[data-testid="stHeader"] { display: none; }
.stMain .block-container { padding-top: 1.5rem; max-width: 100%; }
.stTabs [role="tablist"] { display: none; }
""" + ",\n".join(f".stMain .stElementContainer:has(.{c}):not(.st-key-{EXIT_KEY})" for c in CONTROLS) \
    + """ { display: none; }
.st-key-present_exit { position: fixed; top: 0.4rem; right: 0.6rem; z-index: 1000; width: auto !important; }
</style>
"""


def presenting() -> bool:
    return bool(st.session_state.get(KEY))


def leave() -> None:
    st.session_state[KEY] = False


def frame() -> None:
    """The sidebar's switch; while it is on, the page's look (called by the shared frame)."""
    st.sidebar.toggle("Presentation mode", key=KEY, bind="query-params",
                      help="Large type, no sidebar or controls, only the open view: for a "
                           "projector. The address keeps it, with the page's state, so the link "
                           "opens exactly this. Leave it with the button at the top right.")
    if presenting():
        st.html(CSS)
        st.button("Leave presentation", key=EXIT_KEY, on_click=leave, icon=":material/close:")
