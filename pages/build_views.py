"""The Build page's views, one per tab (not a page itself): pages/build.py draws only the open
one, so a slider move computes and sends one table or figure instead of seven."""
from functools import partial

import streamlit as st

from nin_explorer.look import charts
from nin_explorer.look import help_text as H
from nin_explorer.net.compare import compare_rows, gap_example
from nin_explorer.net.export import pytorch_snippet, to_query
from nin_explorer.net.render import block_rows, table_rows
from nin_explorer.net.summary import MEMORY_BASIS
from nin_explorer.runs.queries import measured_memory
from pages.common import optional_store
from pages.widgets import NUMBER_COLUMNS

VIEW_KEY = "build.view"   # the open tab's label, in session state (set it to open another)


def layers(spec, summary, precision, optimizer):
    show_relu = st.toggle("Show ReLU rows", value=False, key="show_relu")
    rows = table_rows(summary, include_relu=show_relu)
    st.dataframe(rows, hide_index=True, width="stretch", height=min(36 * (len(rows) + 1) + 4, 900),
                 key="layer_table", column_config=NUMBER_COLUMNS)


def blocks(spec, summary, precision, optimizer):
    st.plotly_chart(charts.block_bars_figure(summary), key="block_bars", width="stretch")
    st.dataframe(block_rows(summary), hide_index=True, width="stretch", column_config=NUMBER_COLUMNS)


def diagram(spec, summary, precision, optimizer):
    st.plotly_chart(charts.diagram_figure(summary), key="diagram", width="stretch")


def memory(spec, summary, precision, optimizer):
    st.plotly_chart(charts.memory_figure(summary), key="memory", width="stretch")
    st.markdown(MEMORY_BASIS)
    store = optional_store()   # the Build page works without a run store (no measurements)
    measured = measured_memory(store, spec) if store else None
    if measured:
        st.markdown(H.measured_memory_text(**measured))
    else:
        st.caption("Train this exact network on the Train page to see measured peaks here.")


def compare(spec, summary, precision, optimizer):
    rows = compare_rows(spec, summary.memory.batch_size, precision, optimizer)
    st.plotly_chart(charts.compare_figure(rows), key="compare", width="stretch")
    st.dataframe(rows, hide_index=True, width="stretch", column_config=NUMBER_COLUMNS)
    st.markdown(H.gap_saving(gap_example(summary)))


def export(spec, summary, precision, optimizer, on_upload):
    st.download_button("Download JSON", spec.to_json(), f"{spec.name.split()[0]}.json",
                       "application/json", key="dl_json")
    st.file_uploader("Load a JSON spec", type=["json"], key="up_json", max_upload_size=1,
                     on_change=on_upload)
    if "upload_error" in st.session_state:
        st.error(st.session_state["upload_error"])
    st.markdown("**Share link**: the address bar already holds this variant; copy it.")
    st.code("?" + "&".join(f"{k}={v}" for k, v in to_query(spec).items()), language=None)
    snippet = pytorch_snippet(spec)
    st.download_button("Download PyTorch code", snippet, "nin_variant.py", "text/x-python", key="dl_py")
    st.code(snippet, language="python")


def about(spec, summary, precision, optimizer):
    st.markdown(H.about_numbers(summary))


def views(spec, summary, precision: str, optimizer: str, on_upload) -> dict:
    """Tab label -> a function drawing that view of this variant; `on_upload` loads a JSON spec."""
    shown = (spec, summary, precision, optimizer)
    return {"Layers": partial(layers, *shown), "Blocks": partial(blocks, *shown),
            "Diagram": partial(diagram, *shown), "Memory": partial(memory, *shown),
            "Compare": partial(compare, *shown), "Export": partial(export, *shown, on_upload),
            "About the numbers": partial(about, *shown)}
