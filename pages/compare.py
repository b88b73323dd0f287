"""Compare page: overlay any runs' curves and see which settings differ."""
import streamlit as st

from nin_explorer.look import charts
from nin_explorer.runs.noise import AXES, NOISE_RULE, seed_groups, with_x
from nin_explorer.runs.queries import differing_settings, ids_in, run_label, runs_table
from pages.ablation_views import curves_axis
from pages.common import get_store, page_title
from pages.widgets import in_address

page_title("Compare runs")
store = get_store()
runs = store.list_runs(limit=500)
if len(runs) < 2:
    st.info("Compare needs at least two runs; launch some on the Train or Ablations page.")
    st.stop()
by_id = {r["id"]: r for r in runs}
linked = ids_in(st.query_params.get("runs"), by_id)
chosen = st.multiselect("Runs", list(by_id), default=linked or list(by_id)[:2], key="cmp_runs",
                        format_func=lambda i: run_label(by_id[i]))
in_address("runs", ",".join(map(str, chosen)))     # a link opens these runs
if not chosen:
    st.stop()
picked = [by_id[i] for i in chosen]
metric = st.radio("Curves of", ["test_acc", "train_loss", "train_acc"], horizontal=True,
                  key="cmp_metric", format_func=lambda m: m.replace("_", " "), bind="query-params")
axis = curves_axis("cmp_axis")
st.plotly_chart(charts.overlay_figure([(run_label(r), with_x(r, store.metrics(r["id"], "epoch"), axis))
                                       for r in picked], metric, x_title=AXES[axis]),
                key="cmp_curves", width="stretch")
st.dataframe(runs_table(picked), hide_index=True, width="stretch")
st.markdown("**Over seeds**: runs that differ only in their seed, together.")
st.dataframe(seed_groups(picked), hide_index=True, width="stretch", key="cmp_seeds")
st.caption(NOISE_RULE)
st.subheader("Settings that differ")
diff = differing_settings(picked)
if diff:
    st.dataframe(diff, hide_index=True, width="stretch")
else:
    st.caption("These runs have identical settings (only the randomness differs, if the seeds do).")
