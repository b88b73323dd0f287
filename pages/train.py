"""Train page: launch a run of a variant, watch it live, stop it, find it again later."""
import streamlit as st

from nin_explorer import charts, help_text as H
from nin_explorer.data import DATASETS, DataError, dataset_info
from nin_explorer.plan import (FitError, adapt_spec, check_fits, estimate, human_duration,
                               smallest_input_size)
from nin_explorer.render import human_bytes
from nin_explorer.roles import RoleError, may_stop, public_error
from nin_explorer.spec import SpecError
from nin_explorer.presets import PRESETS
from nin_explorer.config import RECIPES, ConfigError, TrainConfig, apply_recipe, recipe_defaults
from nin_explorer.devices import resolve_device
from pages.common import (current_spec, get_jobs, leave_pages_directory_mode, measured_rate,
                          preset_choice, run_title, runs_table, visitor)

leave_pages_directory_mode()
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
    st.query_params["run"] = str(run_id)
    ss[T + "open"] = run_id      # the picker keeps its own choice unless told


WIDGETS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "precision")


def on_recipe():
    """Fill the settings with the recipe's values for the chosen network."""
    name = ss.get(T + "variant", "tiny")
    network = current_spec().name if name not in PRESETS else name
    for k, v in recipe_defaults(ss[T + "recipe"], network).items():
        if k in WIDGETS:
            ss[T + k] = v
        elif k == "input_size":
            ss[T + f"size.{network}"] = v


st.title("Train")
# --- 1. what to train ---
with st.expander("New run", expanded=not store.list_runs(("running", "queued"))):
    c1, c2, c3 = st.columns(3)
    with c1:
        spec = preset_choice("Variant", T + "variant", include_current=True, default="tiny",
                             help=H.TRAIN_VARIANT, on_change=on_recipe)
        ss.setdefault(T + "dataset", "shapes")
        dataset = st.selectbox("Data set", list(DATASETS), key=T + "dataset",
                               help=H.TRAIN_DATASET)
        st.caption(DATASETS[dataset])
        ss.setdefault(T + "recipe", "modern")
        st.radio("Recipe", list(RECIPES), key=T + "recipe", on_change=on_recipe, horizontal=True,
                 format_func=lambda r: RECIPES[r].title, help=H.TRAIN_RECIPE)
        st.caption(RECIPES[ss[T + "recipe"]].description)
    if T + "epochs" not in ss:
        on_recipe()
        ss[T + "epochs"] = 3
    with c2:
        st.number_input("Epochs", 1, 200, key=T + "epochs")
        st.select_slider("Batch size", [16, 32, 64, 128, 256, 512, 1024], key=T + "batch_size")
        st.number_input("Learning rate (peak)", 1e-5, 10.0, format="%.4f", key=T + "lr")
        st.selectbox("Optimiser", ["sgd", "sgd-momentum", "adamw", "adam"], key=T + "optimizer")
    with c3:
        st.selectbox("Schedule", ["constant", "cosine", "onecycle"], key=T + "schedule")
        st.selectbox("Precision", ["fp32", "bf16"], key=T + "precision", help=H.TRAIN_PRECISION)
        device = st.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key=T + "device")
        ss.setdefault(T + "subset", 0)
        st.number_input("Training examples (0 = all)", 0, 10_000_000, step=1000, key=T + "subset",
                        help="Train on the first N examples only: a quick demo.")
        st.number_input("Seed", 0, 2**31 - 1, key=T + "seed")

    try:
        info = dataset_info(dataset)
        if (spec.in_channels, spec.num_classes) != (info.channels, info.n_classes):
            st.info(f"`{dataset}` has {info.channels} channel(s) and {info.n_classes} classes; "
                    f"the variant is adapted to them.")
            spec = adapt_spec(spec, info.channels, info.n_classes)
        ss.setdefault(T + f"size.{spec.name}", spec.input_size)
        size = st.number_input("Input size", 8, 512, key=T + f"size.{spec.name}",
                               help=H.TRAIN_INPUT_SIZE)
        cfg = TrainConfig.from_dict({
            **recipe_defaults(ss[T + "recipe"], spec.name),
            "dataset": dataset, "input_size": int(size), "recipe": ss[T + "recipe"],
            **{k: ss[T + k] for k in ("epochs", "batch_size", "lr", "optimizer", "schedule",
                                      "precision", "device", "seed")},
            "max_train_examples": int(ss[T + "subset"]) or None})
        real_spec, real_cfg = apply_recipe(spec, cfg)
        dev = resolve_device(device).type
        n_train = min(cfg.max_train_examples or info.n_train, info.n_train)
        est = estimate(real_spec, cfg.batch_size, n_train, info.n_test, dev,
                       measured_rate(store, real_spec, dev), cfg.optimizer, cfg.precision)
        try:
            fit, fit_error = check_fits(spec, cfg, device=dev), None
        except FitError as e:
            fit, fit_error = e.fit, str(e)
    except (SpecError, ConfigError, DataError) as e:
        st.error(str(e))
        st.stop()
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
wanted = st.query_params.get("run", "")
current = next((i for i in ids if str(i) == wanted), ids[0])  # no int(): '²'.isdigit() is True
run_id = st.selectbox("Run", ids, index=ids.index(current), key=T + "open",
                      format_func=lambda i: run_title(next(r for r in runs if r["id"] == i)),
                      help="Its status and progress are in the line below.")
st.query_params["run"] = str(run_id)
shown = store.get_run(run_id)
active = shown["status"] in ("queued", "running")
if active and may_stop(who.id, shown.get("owner")):
    if st.button("Stop", key=T + "stop"):
        jobs.stop(run_id, by=who.id)
        st.toast(f"Stopping run #{run_id}...")
elif active:
    st.caption("Only the visitor who launched this run, or the teacher, can stop it.")


def relaunch_offline(run: dict):
    from nin_explorer.spec import NetSpec
    spec = NetSpec.from_dict(run["spec"])
    info = dataset_info("shapes")
    spec = adapt_spec(spec, info.channels, info.n_classes)
    cfg = TrainConfig.from_dict({**run["config"], "dataset": "shapes"})
    launch(spec, cfg, f"{spec.name} on shapes")


@st.fragment(run_every=1.0 if active else None)
def live(run_id: int, was_active: bool):
    run = store.get_run(run_id)
    steps, epochs = store.metrics(run_id, "step"), store.metrics(run_id, "epoch")
    cfg = run["config"]
    last = steps[-1] if steps else None
    done = (last["epoch"] / cfg["epochs"]) if last else 0.0
    eta = (last["elapsed_s"] / done - last["elapsed_s"]) if last and done > 0 else None
    text = f"#{run_id} {run['status']}"
    if last:
        text += (f" · epoch {last['epoch']:.2f} of {cfg['epochs']} · "
                 f"{last.get('examples_per_sec') or 0:,.0f} examples/sec")
        if run["status"] == "running" and eta is not None:
            text += f" · about {human_duration(eta)} left"
    if run["status"] == "running" and not last and run.get("reason"):
        text += f" · {run['reason']}"  # data being downloaded or generated
    st.progress(min(1.0, done if run["status"] != "completed" else 1.0), text=text)
    cols = st.columns(4)
    cols[0].metric("Best test accuracy", f"{run['best_test_acc']:.2%}" if run.get("best_test_acc") is not None else "–")
    cols[1].metric("Train loss", f"{last['train_loss']:.3f}" if last else "–")
    cols[2].metric("examples/sec", f"{run['examples_per_sec'] or (last or {}).get('examples_per_sec') or 0:,.0f}")
    cols[3].metric("Wall time", human_duration(run["wall_s"] or (last or {}).get("elapsed_s") or 0))
    st.plotly_chart(charts.curves_figure(steps, epochs), key=f"curves", width="stretch")
    if run["status"] == "diverged":
        st.warning(H.diverged_text(run.get("reason")))
    elif run["status"] == "failed":
        st.error(f"The run failed: {public_error(run.get('error'))}")
        if who.is_teacher:   # tracebacks and paths: the teacher's, never every visitor's
            with st.expander("Details (only the teacher sees them)"):
                st.code(run.get("error_detail") or jobs.log_tail(run_id) or "(the log is empty)")
        if "'shapes'" in (run.get("error") or ""):
            st.button("Run the same on the offline `shapes` data set", key="t.offline",
                      on_click=relaunch_offline, args=(run,))
    elif run["status"] in ("stopped", "interrupted") and run.get("reason"):
        st.info(run["reason"])
    if was_active and run["status"] not in ("queued", "running"):
        st.rerun()  # re-register the fragment without its timer


live(run_id, active)

# --- 3. all runs ---
st.subheader("All runs")
st.dataframe(runs_table(runs), hide_index=True, width="stretch", key=T + "table")
