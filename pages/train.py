"""Train page: launch a run of a variant, watch it live, stop it, find it again later."""
import streamlit as st

from nin_explorer.look import help_text as H
from nin_explorer.net.controls import TRAIN_LIMITS as LIMITS
from nin_explorer.learn.data import DataError
from nin_explorer.runs.plan import human_duration, smallest_input_size
from nin_explorer.net.render import human_bytes
from nin_explorer.runs.roles import RoleError, may_stop
from nin_explorer.runs.queries import forecast, index_of, run_title, runs_table
from nin_explorer.net.spec import SpecError
from nin_explorer.runs.tables import ACTIVE
from nin_explorer.net.presets import PRESETS
from nin_explorer.learn.config import ConfigError, RECIPES, TrainConfig, recipe_defaults
from pages import run_views
from pages.common import current_spec, get_jobs, page_title, visitor
from pages.data_views import adapted_spec, data_panel, dataset_picker
from pages.widgets import in_address, preset_choice, training_widgets

page_title("Train")
ss = st.session_state
jobs = get_jobs()
store = jobs.store
who = visitor()
T = "t."  # widget key prefix


def launch(spec, cfg, name: str) -> None:
    """Queue a run for this visitor and open it; a refusal (quota, fit) is said on the page."""
    try:
        run_id = jobs.submit(spec, cfg, name=name, owner=who.id)
    except (RoleError, SpecError) as e:
        ss[T + "refused"] = str(e)
        return
    in_address("run", str(run_id))
    ss[T + "open"] = run_id      # the picker keeps its own choice unless told


def on_recipe():
    """Fill the settings with the recipe's values for the chosen network."""
    widgets = ("epochs", "batch_size", "lr", "optimizer", "schedule", "precision")
    name = ss.get(T + "variant", "tiny")
    network = current_spec().name if name not in PRESETS else name
    for k, v in recipe_defaults(ss[T + "recipe"], network).items():
        if k in widgets:
            ss[T + k] = v
        elif k == "input_size":
            ss[T + f"size.{network}"] = v


# --- 1. what to train ---
with st.expander("New run", expanded=not store.list_runs(ACTIVE)):
    c1, c2, c3 = st.columns(3)
    with c1:
        spec = preset_choice("Variant", T + "variant", include_current=True, default="tiny",
                             help=H.TRAIN_VARIANT, on_change=on_recipe)
        dataset = dataset_picker("Data set", T + "dataset", help=H.TRAIN_DATASET)
        ss.setdefault(T + "recipe", "modern")
        st.radio("Recipe", list(RECIPES), key=T + "recipe", on_change=on_recipe, horizontal=True,
                 format_func=lambda r: RECIPES[r].title, help=H.TRAIN_RECIPE)
        st.caption(RECIPES[ss[T + "recipe"]].description)
    if T + "epochs" not in ss:
        on_recipe()
        ss[T + "epochs"] = 3
    device = training_widgets(c2, c3, T)

    bad_files = data_panel(dataset, T + "dataset", who.is_teacher)
    try:
        spec, info = adapted_spec(spec, dataset)
        ss.setdefault(T + f"size.{spec.name}", spec.input_size)
        size = st.number_input("Input size", *LIMITS["input_size"], key=T + f"size.{spec.name}",
                               help=H.TRAIN_INPUT_SIZE)
        cfg = TrainConfig.from_dict({
            **recipe_defaults(ss[T + "recipe"], spec.name),
            "dataset": dataset, "bad_files": bad_files, "input_size": int(size), "recipe": ss[T + "recipe"],
            **{k: ss[T + k] for k in ("epochs", "batch_size", "lr", "optimizer", "schedule",
                                      "precision", "device", "seed")},
            "max_train_examples": int(ss[T + "subset"]) or None})
        fc = forecast(store, spec, cfg, device)
    except (SpecError, ConfigError, DataError) as e:
        st.error(str(e))
        st.stop()
    est, fit, fit_error, dev, real_spec = fc.estimate, fc.fit, fc.fit_error, fc.device, fc.spec
    m = st.columns(4)
    m[0].metric("Estimated time per epoch", human_duration(est["epoch_s"]), help=est["basis"])
    m[1].metric("Whole run", human_duration(est["epoch_s"] * cfg.epochs))
    m[2].metric("Memory needed", human_bytes(fit.total_bytes), help=f"This run {fit.text()}.")
    m[3].metric("Device", dev.upper())
    if est["slow"]:
        st.warning(H.slow_warning(real_spec, dev, est["epoch_s"]))
        small = smallest_input_size(spec, at_least=min(info.image_size, spec.input_size))
        if small and small < size:
            st.button(f"Use {small}x{small} input (the smallest that works from {info.image_size} px data)",
                      key=T + "shrink", on_click=ss.__setitem__, args=(T + f"size.{spec.name}", small))
    if fit_error:
        st.error(fit_error)
    st.button("Launch", type="primary", key=T + "launch", on_click=launch, disabled=bool(fit_error),
              args=(spec, cfg, f"{spec.name} on {dataset}"))
    if T + "refused" in ss:
        st.error(ss.pop(T + "refused"))

# --- 2. one run, live ---
runs = store.list_runs(limit=200)
if not runs:
    st.info("No runs yet. Launch one above: the `tiny` preset on `shapes` reaches 90% in about a minute.")
    st.stop()
ids = [r["id"] for r in runs]
run_id = st.selectbox("Run", ids, index=index_of(ids, st.query_params.get("run")), key=T + "open",
                      format_func=lambda i: run_title(next(r for r in runs if r["id"] == i)),
                      help="Its status and progress are in the line below.")
in_address("run", str(run_id))
shown = store.get_run(run_id)
active = shown["status"] in ACTIVE
if active and may_stop(who.id, shown.get("owner")):
    if st.button("Stop", key=T + "stop"):
        jobs.stop(run_id, by=who.id)
        st.toast(f"Stopping run #{run_id}...")
elif active:
    st.caption("Only the visitor who launched this run, or the teacher, can stop it.")


@st.fragment(run_every=run_views.NUMBERS_EVERY_S if active else None)
def live(run_id: int, was_active: bool):
    status = run_views.live_view(run_id, jobs, who, launch)
    if was_active and status not in ACTIVE:
        st.rerun()  # re-register both fragments without their timers


@st.fragment(run_every=run_views.CURVES_EVERY_S if active else None)
def curves(run_id: int):
    run_views.live_curves(store, run_id)


live(run_id, active)
curves(run_id)

# --- 3. all runs ---
st.subheader("All runs")
st.dataframe(runs_table(runs), hide_index=True, width="stretch", key=T + "table")
