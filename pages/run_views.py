"""The Train page's live view of one run (not a page itself): progress, figures, curves and
what became of the run, drawn from a LiveRun that every session watching the run shares."""
import streamlit as st

from nin_explorer.look import help_text as H
from nin_explorer.runs.queries import offers_offline_copy, offline_copy, progress_line, run_metrics
from nin_explorer.runs.roles import public_error


@st.cache_resource(max_entries=16)
def _watched(home: str, run_id: int, _store):
    from nin_explorer.look.live import LiveRun
    return LiveRun(_store, run_id)


def watched(store, run_id: int):
    """The run as it trains, one per run for every session (look/live.py): 20 visitors
    watching one run read its new metric rows once, not 20 times a second."""
    return _watched(str(store.home), run_id, store)


# The curves are redrawn less often than the numbers: each redraw of the figure is most of a
# browser's work for the live view, and 20 browsers redrawing it every second on the server's
# own 2 cores slowed the run they watched by 68% (docs/BENCHMARKS.md, "Classroom speed").
NUMBERS_EVERY_S, CURVES_EVERY_S = 1.0, 3.0


def live_curves(store, run_id: int) -> None:
    with watched(store, run_id).viewing() as shown:   # its figure changes in place: draw it here
        st.plotly_chart(shown.figure, key="curves", width="stretch")


def live_view(run_id: int, jobs, who, launch) -> str:
    """Draw the run's progress, figures and what became of it; `launch(spec, cfg, name)` queues
    a run (the offline copy of a failed one). Returns the run's status."""
    shown = watched(jobs.store, run_id).view()
    run, last = shown.run, shown.last_step
    st.progress(*progress_line(run, last))
    row = st.container(horizontal=True, wrap=False)   # one block: fewer messages than columns
    for label, value in run_metrics(run, last).items():
        row.metric(label, value)
    if run["status"] == "diverged":
        st.warning(H.diverged_text(run.get("reason")))
    elif run["status"] == "failed":
        st.error(f"The run failed: {public_error(run.get('error'))}")
        if who.is_teacher:   # tracebacks and paths: the teacher's, never every visitor's
            with st.expander("Details (only the teacher sees them)"):
                st.code(run.get("error_detail") or jobs.log_tail(run_id) or "(the log is empty)")
        if offers_offline_copy(run):
            st.button("Run the same on the offline `shapes` data set", key="t.offline",
                      on_click=launch, args=offline_copy(run))
    elif run["status"] in ("stopped", "interrupted") and run.get("reason"):
        st.info(run["reason"])
    return run["status"]
