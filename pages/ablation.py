"""Ablation page: queue variants over one or two factors and seeds, compare the results."""
import time

import streamlit as st

from nin_explorer import charts
from nin_explorer.ablation import (EXERCISES, FACTORS, WARN_RUNS, aggregate, expand,
                                   exercise_plan, setting_label, to_csv)
from nin_explorer.data import DATASETS
from nin_explorer.jobs import MAX_AT_ONCE
from nin_explorer.plan import human_duration
from nin_explorer.roles import RoleError, may_stop
from nin_explorer.spec import NetSpec, SpecError
from nin_explorer.summary import summarize
from nin_explorer.config import RECIPES, ConfigError, TrainConfig
from nin_explorer.devices import resolve_device
from pages.common import get_jobs, leave_pages_directory_mode, preset_choice, visitor

leave_pages_directory_mode()
ss = st.session_state
jobs = get_jobs()
store = jobs.store
who = visitor()
A = "a."


def queue(runs, title: str) -> None:
    """Queue the whole ablation for this visitor, or none of it (the refusal is said)."""
    group = f"{title} · {time.strftime('%H:%M:%S')}"
    try:
        jobs.submit_many([(r.spec, r.config, r.label + f" · seed {r.seed}") for r in runs],
                         owner=who.id, group=group)
    except (RoleError, SpecError) as e:
        ss[A + "refused"] = str(e)
        return
    ss[A + "group"] = group


AT_ONCE_HELP = (
    "How many queued runs train side by side, for everyone using this server. A run alone "
    "always gets every CPU core; with several at once each gets an equal share. Measured on a "
    "2-core CPU: a queue of four `tiny` runs on `shapes` finished 1.6x sooner with two at once "
    "(one core each) than one after the other; with two at once fighting over both cores it "
    "gained nothing (docs/BENCHMARKS.md). Small variants do not fill a large GPU either, so "
    "several at once may pay off there too, but that is not measured yet; with one at a time a "
    "machine with several GPUs trains each run on all of them (torchrun).")


def set_at_once() -> None:
    try:
        jobs.set_max_concurrent(int(ss[A + "at_once"]), by=who.id)
    except RoleError as e:
        ss[A + "refused"] = str(e)


def clear_queue() -> None:
    st.toast(f"Removed {len(jobs.clear_queue(by=who.id))} queued run(s).")


st.title("Ablations")
device = resolve_device("auto").type
ss[A + "at_once"] = jobs.max_concurrent            # another session may have changed it
col, note, clear = st.columns([1, 3, 1], vertical_alignment="bottom")
col.number_input("Runs at once", 1, MAX_AT_ONCE, key=A + "at_once", on_change=set_at_once,
                 disabled=not who.is_teacher,
                 help=AT_ONCE_HELP + ("" if who.is_teacher else " Only the teacher sets it."))
busy = [r["status"] for r in store.list_runs(("queued", "running"))]
note.caption(f"Now: {busy.count('running')} running, {busy.count('queued')} queued (all pages "
             "share one queue). A run alone gets every CPU core.")
if who.is_teacher:
    clear.button("Clear the queue", key=A + "clear", on_click=clear_queue,
                 disabled="queued" not in busy, help="Remove every queued run, everyone's; "
                 "runs already training go on.")
if A + "refused" in ss:
    st.error(ss.pop(A + "refused"))
tab_ex, tab_custom = st.tabs(["The book's exercises", "Your own ablation"])
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
            st.caption(f"{len(runs)} runs: " + "; ".join(
                f"{FACTORS[k].title} in {v}" for k, v in factors.items())
                + f", {seeds} seed(s)" + ("" if "epochs" in factors else f", {cfg.epochs} epochs")
                + f", recipe {cfg.recipe}.")
            st.button("Start", key=A + "ex." + key, on_click=queue,
                      args=(runs, ex.title.split(":")[0]))

with tab_custom:
    c1, c2 = st.columns(2)
    with c1:
        base = preset_choice("Base variant", A + "base", include_current=True, default="tiny")
        dataset = st.selectbox("Data set", list(DATASETS), index=list(DATASETS).index("shapes"),
                               key=A + "dataset")
        recipe = st.radio("Recipe", list(RECIPES), index=1, horizontal=True, key=A + "recipe",
                          format_func=lambda r: RECIPES[r].title)
        epochs = st.number_input("Epochs", 1, 100, 3, key=A + "epochs")
        subset = st.number_input("Training examples (0 = all)", 0, 10_000_000, 20_000, step=1000,
                                 key=A + "subset")
    with c2:
        names = st.multiselect("Factors (one or two)", list(FACTORS), default=["n_extra_1x1"],
                               max_selections=2, format_func=lambda n: FACTORS[n].title,
                               key=A + "factors")
        factors = {}
        for n in names:
            f = FACTORS[n]
            factors[n] = st.multiselect(f.title, list(f.values), default=list(f.values),
                                        key=A + "values." + n, help=f.help)
        seeds = st.slider("Seeds per setting", 1, 5, 1, key=A + "seeds",
                          help="Repeats with different seeds show how much of a difference is noise.")
    try:
        cfg = TrainConfig.from_dict({"dataset": dataset, "recipe": recipe, "epochs": int(epochs),
                                     "max_train_examples": int(subset) or None})
        runs = expand(base, cfg, factors, seeds)
    except (SpecError, ConfigError) as e:
        st.error(str(e))
        runs = []
    if runs:
        msg = f"{len(runs)} runs (cap {jobs.limits.max_ablation_runs})."
        (st.warning if len(runs) > WARN_RUNS else st.caption)(
            msg + (" That is many: on a CPU each takes a minute or more." if len(runs) > WARN_RUNS else ""))
        st.button("Queue the ablation", type="primary", key=A + "queue", on_click=queue,
                  args=(runs, "Ablation"))

# --- results ---
groups = []
for r in store.list_runs(limit=1000):
    if r.get("group_id") and r["group_id"] not in groups:
        groups.append(r["group_id"])
st.divider()
if not groups:
    st.info("No ablation yet: start an exercise or queue your own above.")
    st.stop()
group = st.selectbox("Ablation", groups, key=A + "group")
active = any(r["status"] in ("queued", "running") for r in store.list_runs(group=group))
stoppable = [r["id"] for r in store.list_runs(("queued", "running"), group=group)
             if may_stop(who.id, r.get("owner"))]
if stoppable and st.button("Cancel the whole ablation", key=A + "cancel"):
    for run_id in stoppable:
        jobs.stop(run_id, by=who.id)
    st.toast("Cancelling...")


@st.fragment(run_every=2.0 if active else None)
def results(group: str, was_active: bool, metric: str):
    runs = sorted(store.list_runs(group=group), key=lambda r: r["id"])
    done = sum(r["status"] not in ("queued", "running") for r in runs)
    st.progress(done / len(runs), text=f"{done} of {len(runs)} runs finished")
    rows, series = [], []
    settings = sorted({r["name"].rsplit(" · seed", 1)[0] for r in runs})
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6",
               "#9D755D", "#BAB0AC", "#EECA3B"]
    colours = []
    for r in runs:
        setting = r["name"].rsplit(" · seed", 1)[0]
        cfg = r["config"]
        s = summarize(NetSpec.from_dict(r["spec"]), cfg["batch_size"])
        epochs = store.metrics(r["id"], "epoch")
        peaks = [e["peak_train_memory_bytes"] for e in epochs if e.get("peak_train_memory_bytes")]
        rows.append({"setting": setting, "status": r["status"],
                     "best_test_acc": r.get("best_test_acc"), "final_test_acc": r.get("final_test_acc"),
                     "params": s.params, "flops": s.flops,
                     "examples_per_sec": r.get("examples_per_sec"), "wall_s": r.get("wall_s"),
                     "train_memory_estimate_bytes": s.memory.train_bytes,
                     "peak_train_memory_bytes": max(peaks) if peaks else None})
        series.append((f"#{r['id']} {r['name']}", epochs))
        colours.append(palette[settings.index(setting) % len(palette)])
    st.plotly_chart(charts.overlay_figure(series, metric, colours), key="ablation_curves",
                    width="stretch")
    table = aggregate(rows)
    order = ["setting", "status", "runs", "best_test_acc", "best_test_acc_sd", "final_test_acc",
             "final_test_acc_sd", "wall_s", "examples_per_sec", "params", "flops",
             "train_memory_estimate_bytes", "peak_train_memory_bytes"]
    st.dataframe(table, hide_index=True, width="stretch", column_order=order, column_config={
        "best_test_acc": st.column_config.NumberColumn("best test acc", format="percent"),
        "best_test_acc_sd": st.column_config.NumberColumn("± sd", format="percent"),
        "final_test_acc": st.column_config.NumberColumn("final test acc", format="percent"),
        "final_test_acc_sd": st.column_config.NumberColumn("± sd", format="percent"),
        "params": st.column_config.NumberColumn(format="localized"),
        "flops": st.column_config.NumberColumn("FLOPs", format="localized"),
        "examples_per_sec": st.column_config.NumberColumn("examples/sec", format="%.0f"),
        "wall_s": st.column_config.NumberColumn("wall s", format="%.0f"),
        "train_memory_estimate_bytes": st.column_config.NumberColumn("memory estimate", format="bytes"),
        "peak_train_memory_bytes": st.column_config.NumberColumn(
            "measured peak", format="bytes",
            help="CUDA peak allocated on a GPU; on a CPU the process's peak resident memory "
                 "(Python, torch and the data set included)."),
    })
    st.download_button("Download CSV", to_csv(table), "ablation.csv", "text/csv", key="ablation_csv")
    collapsed = [r for r in runs if r["status"] == "diverged"]
    if collapsed:
        st.warning(f"{len(collapsed)} run(s) diverged: " + ", ".join(f"#{r['id']} {r['name']}" for r in collapsed)
                   + ". See the Train page for what a collapse is and what to try.")
    if was_active and done == len(runs):
        st.rerun()


metric = st.radio("Curves of", ["test_acc", "train_loss", "train_acc"], horizontal=True,
                  key=A + "metric", format_func=lambda m: m.replace("_", " "))
results(group, active, metric)
