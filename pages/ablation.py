"""Ablation page: queue variants over one or two factors and seeds, compare the results."""
import streamlit as st

from nin_explorer.look import help_text as H
from nin_explorer.runs.ablation import (EXERCISES, FACTORS, WARN_RUNS, expand, exercise_of,
                                        exercise_plan, group_name, plan_text)
from nin_explorer.net.controls import ABLATION_LIMITS as LIMITS
from nin_explorer.runs.jobs import MAX_AT_ONCE
from nin_explorer.runs.roles import RoleError, may_stop
from nin_explorer.runs.queries import ablation_groups
from nin_explorer.net.spec import SpecError
from nin_explorer.runs.tables import ACTIVE
from nin_explorer.learn.config import ConfigError, RECIPES, TrainConfig
from nin_explorer.learn.devices import resolve_device
from nin_explorer.learn.data import DataError
from pages.common import get_jobs, page_title, visitor
from pages.present import presenting
from pages.ablation_views import curves_axis, result_card, results_view
from pages.data_views import adapted_spec, data_panel, dataset_picker
from pages.widgets import ABLATION_COLUMNS, ABLATION_ORDER, PALETTE, preset_choice

page_title("Ablations")
ss = st.session_state
jobs = get_jobs()
store = jobs.store
who = visitor()
A = "a."


def queue(runs, title: str) -> None:
    """Queue the whole ablation for this visitor, or none of it (the refusal is said)."""
    group = group_name(title)
    try:
        jobs.submit_many([(r.spec, r.config, r.name) for r in runs], owner=who.id, group=group)
    except (RoleError, SpecError) as e:
        ss[A + "refused"] = str(e)
        return
    ss[A + "group"] = group


def set_at_once() -> None:
    try:
        jobs.set_max_concurrent(int(ss[A + "at_once"]), by=who.id)
    except RoleError as e:
        ss[A + "refused"] = str(e)


def clear_queue() -> None:
    st.toast(f"Removed {len(jobs.clear_queue(by=who.id))} queued run(s).")


device = resolve_device("auto").type
ss[A + "at_once"] = jobs.max_concurrent            # another session may have changed it
col, note, clear = st.columns([1, 3, 1], vertical_alignment="bottom")
col.number_input("Runs at once", 1, MAX_AT_ONCE, key=A + "at_once", on_change=set_at_once,
                 disabled=not who.is_teacher,
                 help=H.AT_ONCE + ("" if who.is_teacher else " Only the teacher sets it."))
busy = [r["status"] for r in store.list_runs(ACTIVE)]
note.caption(f"Now: {busy.count('running')} running, {busy.count('queued')} queued (all pages "
             "share one queue). A run alone gets every CPU core.")
if who.is_teacher:
    clear.button("Clear the queue", key=A + "clear", on_click=clear_queue,
                 disabled="queued" not in busy, help="Remove every queued run, everyone's; "
                 "runs already training go on.")
if A + "refused" in ss:
    st.error(ss.pop(A + "refused"))
groups = ablation_groups(store)
shown = ss.get(A + "group") if ss.get(A + "group") in groups else st.query_params.get(A + "group")
if presenting():   # only the shown ablation's exercise card, if it is an exercise's
    key = exercise_of(shown)
    if key:
        st.markdown(f"**{EXERCISES[key].title}**  \n{EXERCISES[key].text}")
        if device != "cuda" and EXERCISES[key].cpu_note:
            st.caption(EXERCISES[key].cpu_note)
        result_card(store, [shown], key)
else:   # the controls that queue runs
    tab_ex, tab_custom = st.tabs(["The book's exercises", "Your own ablation"], key=A + "tab",
                                 bind="query-params")
    with tab_ex:
        st.caption("One click queues the experiment. " + (
            "On this GPU they use the book's network and Fashion-MNIST." if device == "cuda" else
            "Without a GPU they run the `tiny` preset on 20,000 `shapes` images so they finish in "
            "minutes; the lesson is the same."))
        for key, ex in EXERCISES.items():
            with st.container(border=True):
                st.markdown(f"**{ex.title}**  \n{ex.text}")
                spec, cfg, factors, seeds = exercise_plan(key, device)
                runs = expand(spec, cfg, factors, seeds)
                st.caption(plan_text(len(runs), factors, seeds, cfg))
                if device != "cuda" and ex.cpu_note:
                    st.caption(ex.cpu_note)
                st.button("Start", key=A + "ex." + key, on_click=queue,
                          args=(runs, ex.short))
                result_card(store, groups, key)

    with tab_custom:
        c1, c2 = st.columns(2)
        with c1:
            base = preset_choice("Base variant", A + "base", include_current=True, default="tiny")
            dataset = dataset_picker("Data set", A + "dataset")
            recipe = st.radio("Recipe", list(RECIPES), index=1, horizontal=True, key=A + "recipe",
                              format_func=lambda r: RECIPES[r].title)
            epochs = st.number_input("Epochs", *LIMITS["epochs"], 3, key=A + "epochs")
            subset = st.number_input("Training examples (0 = all)", *LIMITS["max_train_examples"],
                                     20_000, step=1000, key=A + "subset")
        with c2:
            names = st.multiselect("Factors (one or two)", list(FACTORS), default=["n_extra_1x1"],
                                   max_selections=2, format_func=lambda n: FACTORS[n].title,
                                   key=A + "factors")
            factors = {}
            for n in names:
                f = FACTORS[n]
                factors[n] = st.multiselect(f.title, list(f.values), default=list(f.values),
                                            key=A + "values." + n, help=f.help)
            seeds = st.slider("Seeds per setting", *LIMITS["seeds"], 1, key=A + "seeds",
                              help="Repeats with different seeds show how much of a difference is noise.")
        bad_files = data_panel(dataset, A + "dataset", who.is_teacher)
        try:
            cfg = TrainConfig.from_dict({"dataset": dataset, "bad_files": bad_files, "recipe": recipe,
                                         "epochs": int(epochs), "max_train_examples": int(subset) or None})
            runs = expand(adapted_spec(base, dataset)[0], cfg, factors, seeds)
        except (SpecError, ConfigError, DataError) as e:
            st.error(str(e))
            runs = []
        if runs:
            msg = f"{len(runs)} runs (cap {jobs.limits.max_ablation_runs})."
            (st.warning if len(runs) > WARN_RUNS else st.caption)(
                msg + (" That is many: on a CPU each takes a minute or more." if len(runs) > WARN_RUNS else ""))
            st.button("Queue the ablation", type="primary", key=A + "queue", on_click=queue,
                      args=(runs, "Ablation"))

# --- results ---
st.divider()
if not groups:
    st.info("No ablation yet: start an exercise or queue your own above.")
    st.stop()
group = st.selectbox("Ablation", groups, key=A + "group", bind="query-params")
active = bool(store.list_runs(ACTIVE, group=group))
stoppable = [r["id"] for r in store.list_runs(ACTIVE, group=group) if may_stop(who.id, r.get("owner"))]
if stoppable and st.button("Cancel the whole ablation", key=A + "cancel"):
    for run_id in stoppable:
        jobs.stop(run_id, by=who.id)
    st.toast("Cancelling...")


@st.fragment(run_every=2.0 if active else None)
def results(group: str, was_active: bool, metric: str, axis: str):
    if results_view(store, group, metric, axis, PALETTE, ABLATION_ORDER, ABLATION_COLUMNS) and was_active:
        st.rerun()


metric = st.radio("Curves of", ["test_acc", "train_loss", "train_acc"], horizontal=True,
                  key=A + "metric", format_func=lambda m: m.replace("_", " "), bind="query-params")
results(group, active, metric, curves_axis(A + "axis"))
