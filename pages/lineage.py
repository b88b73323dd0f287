"""Lineage page: NiN beside AlexNet, VGG-11 and GoogLeNet."""
import plotly.graph_objects as go
import streamlit as st

from nin_explorer.net.controls import ABLATION_LIMITS
from nin_explorer.net.lineage import STORY, lineage_rows
from nin_explorer.runs.noise import NOISE_RULE
from nin_explorer.runs.queries import lineage_measured
from pages.common import get_store, page_title
from pages.data_views import dataset_picker, folder_details
from pages.widgets import NUMBER_COLUMNS

page_title("NiN and its neighbours")
st.markdown(STORY)
rows = lineage_rows()
names = [r["network"] for r in rows]
c1, c2 = st.columns(2)
fig = go.Figure()
fig.add_bar(x=names, y=[r["params"] - r["fc_params"] for r in rows], name="conv layers",
            marker_color="#4C78A8")
fig.add_bar(x=names, y=[r["fc_params"] for r in rows], name="fully connected",
            marker_color="#E45756", text=[f"{r['fc_share']:.0%} FC" for r in rows])
fig.update_layout(barmode="stack", height=360, yaxis=dict(title="parameters"),
                  margin=dict(l=5, r=5, t=30, b=5), title="Parameters: conv layers and fully connected head",
                  legend=dict(orientation="h", y=-0.15))
c1.plotly_chart(fig, key="lin_params", width="stretch")
fig = go.Figure(go.Bar(x=names, y=[r["flops"] for r in rows], marker_color="#F58518",
                       text=[r["input"] for r in rows]))
fig.update_layout(height=360, yaxis=dict(title="FLOPs per image", type="log"),
                  margin=dict(l=5, r=5, t=30, b=5), title="FLOPs per image at each input size (log)")
c2.plotly_chart(fig, key="lin_flops", width="stretch")
st.dataframe(rows, hide_index=True, width="stretch", column_config={
    **NUMBER_COLUMNS, "fc_share": st.column_config.NumberColumn("FC share", format="percent")})

st.subheader("Measured, from runs in the store")
c1, c2 = st.columns(2)
dataset = dataset_picker("Data set", "lin_data", container=c1, bind="query-params")
epochs = c2.number_input("Epochs", *ABLATION_LIMITS["epochs"], 2, key="lin_epochs", bind="query-params")
folder_details(dataset)
measured = lineage_measured(get_store().list_runs(limit=1000), dataset, int(epochs))
if measured:
    st.dataframe(measured, hide_index=True, width="stretch", column_config={
        "examples_per_sec": st.column_config.NumberColumn("examples/sec", format="%.0f")})
    st.caption("Final test accuracy over every finished run (seed) of each network at each input "
               "size, newest 1,000 runs. " + NOISE_RULE)
else:
    st.info(f"No finished run of these networks on `{dataset}` with {epochs} epoch(s) yet. Train "
            "them on the Train page (the presets alexnet, vgg11, d2l, googlenet) with the same data "
            "and epochs; on a CPU use a small input size and a subset of the examples.")
