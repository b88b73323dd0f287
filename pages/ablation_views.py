"""The Ablations page's results and the exercises' result cards (a helper module, not a page)."""
import streamlit as st

from nin_explorer.look import charts
from nin_explorer.runs.ablation import aggregate, exercise_result, result_rows, to_csv
from nin_explorer.runs.noise import AXES, NOISE_RULE, mark_table, with_x
from nin_explorer.runs.tables import ACTIVE


def result_card(store, groups: list[str], key: str) -> None:
    """An exercise's finding from its newest runs, in one sentence; nothing before any run."""
    result = exercise_result(store, groups, key)
    if result:
        group, left, text = result
        st.info(f"**Result** ({group}{f', {left} run(s) still to finish' if left else ''}): {text}",
                icon=":material/lab_research:")


def curves_axis(key: str) -> str:
    return st.radio("Against", list(AXES), horizontal=True, key=key, bind="query-params",
                    help="Compare runs at equal cost: epochs, examples seen, seconds of "
                         "training or training FLOPs (examples x 3 x forward FLOPs).")


def results_view(store, group: str, metric: str, axis: str, palette: list[str],
                 order: list[str], columns: dict) -> bool:
    """Curves, the table with mean ± sd and 'vs best', CSV; True once every run finished."""
    runs = sorted(store.list_runs(group=group), key=lambda r: r["id"])
    done = sum(r["status"] not in ACTIVE for r in runs)
    st.progress(done / len(runs), text=f"{done} of {len(runs)} runs finished")
    epochs = {r["id"]: store.metrics(r["id"], "epoch") for r in runs}
    rows = result_rows(runs, epochs)
    settings = sorted({row["setting"] for row in rows})
    series = [(f"#{r['id']} {r['name']}", with_x(r, epochs[r["id"]], axis)) for r in runs]
    colours = [palette[settings.index(row["setting"]) % len(palette)] for row in rows]
    st.plotly_chart(charts.overlay_figure(series, metric, colours, AXES[axis]),
                    key="ablation_curves", width="stretch")
    table = mark_table(aggregate(rows), rows)
    st.dataframe(table, hide_index=True, width="stretch", column_order=order, column_config=columns)
    st.caption(f"Final test accuracy over seeds. {NOISE_RULE}")
    st.download_button("Download CSV", to_csv(table), "ablation.csv", "text/csv", key="ablation_csv")
    collapsed = [r for r in runs if r["status"] == "diverged"]
    if collapsed:
        st.warning(f"{len(collapsed)} run(s) diverged: " + ", ".join(f"#{r['id']} {r['name']}" for r in collapsed)
                   + ". The GAP maps page probes a diverged run's checkpoint and says why it died.")
    return done == len(runs)
