"""Build page: sliders in, shapes / parameters / FLOPs / memory out, and ways to take it away."""
import streamlit as st

from nin_explorer.net import controls
from nin_explorer.look import help_text as H
from nin_explorer.net.export import from_query, to_query
from nin_explorer.runs.plan import available_memory_bytes
from nin_explorer.net.presets import DESCRIPTIONS, PRESETS
from nin_explorer.net.render import human_bytes, human_count
from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.net.summary import MEMORY_BASIS, MEMORY_OPTIMIZERS, PRECISIONS, ShapeError, summarize
from pages import build_views
from pages.common import page_title, set_current_spec
from pages.widgets import block_widgets, number, slider

page_title("Build a NiN variant")
ss = st.session_state
W = "w."  # prefix of every widget key on this page


def load_controls(spec: NetSpec) -> None:
    values = controls.spec_to_controls(spec)
    controls.check_fits(values)  # a valid spec from a link or a file may lie beyond the widgets
    for k, v in values.items():
        ss[W + k] = v
    ss[W + "preset"] = spec.name if spec.name in PRESETS else ss.get(W + "preset", "d2l")


def on_preset():
    load_controls(PRESETS[ss[W + "preset"]])


def on_upload():
    up = ss.get("up_json")
    if up is None:
        return
    try:
        load_controls(NetSpec.from_json(up.getvalue()))
        ss.pop("upload_error", None)
    except SpecError as e:
        ss["upload_error"] = f"That file is not a usable spec, so nothing changed: {e}"


# --- first visit: a share link, else the preset ---
if W + "n_blocks" not in ss:
    try:
        linked = from_query(dict(st.query_params))
    except SpecError as e:
        linked = None
        st.warning(f"{e}")
    try:
        load_controls(linked or PRESETS["d2l"])
    except SpecError as e:
        st.warning(f"{e} Showing the d2l preset instead.")
        load_controls(PRESETS["d2l"])


def share_link(wanted: dict) -> None:
    """The address bar names this variant (`preset` or `spec`), and keeps who you are (`v`,
    `teacher`); written only when it changes (each write is a message to the browser)."""
    params = st.query_params
    for name in {"preset", "spec"} - set(wanted):
        params.pop(name, None)
    for name, value in wanted.items():
        if params.get(name) != value:
            params[name] = value


@st.fragment
def variant() -> None:
    """Everything a setting changes, as a fragment: a widget here reruns only this, not app.py's
    menu and frame (a third of a rerun's server time on this page)."""
    # --- sidebar: every setting ---
    sb = st.sidebar
    sb.selectbox("Preset", list(PRESETS), key=W + "preset", on_change=on_preset, help=H.PRESET)
    sb.caption(DESCRIPTIONS.get(ss[W + "preset"], ""))
    slider(sb, "Input size (height = width)", W + "input_size", H.INPUT_SIZE)
    c1, c2 = sb.columns(2)
    number(c1, "Input channels", W + "in_channels", H.IN_CHANNELS)
    number(c2, "Classes", W + "num_classes", H.CLASSES)
    slider(sb, "Number of blocks", W + "n_blocks", H.N_BLOCKS)
    for i in range(1, ss[W + "n_blocks"] + 1):
        block_widgets(sb, f"{W}b{i}.", i)
    sb.radio("Head", controls.CHOICES["head"], key=W + "head", horizontal=True, help=H.HEAD)
    sb.toggle("Final ReLU", key=W + "final_relu", help=H.FINAL_RELU)
    if ss[W + "head"] == "fc":
        a, b = sb.columns(2)
        number(a, "Hidden FC layers", W + "fc_layers", H.FC_LAYERS)
        number(b, "Hidden width", W + "fc_width", H.FC_WIDTH)
        slider(sb, "FC dropout", W + "fc_dropout", H.DROPOUT)
    sb.divider()
    sb.caption("Memory estimate settings")
    ss.setdefault(W + "batch", 128)
    sb.select_slider("Batch size", controls.MEMORY_BATCH_SIZES, key=W + "batch", help=H.BATCH,
                     bind="query-params")
    a, b = sb.columns(2)
    precision = a.selectbox("Precision", PRECISIONS, key=W + "precision", help=H.PRECISION,
                            bind="query-params")
    optimizer = b.selectbox("Optimiser", MEMORY_OPTIMIZERS, key=W + "optimizer", help=H.OPTIMIZER,
                            bind="query-params")

    # --- the spec and its summary ---
    values = {k[len(W):]: v for k, v in ss.items() if isinstance(k, str) and k.startswith(W)}
    try:
        spec = controls.named_spec(values, PRESETS[values["preset"]])
        summary = summarize(spec, ss[W + "batch"], precision, optimizer)
    except ShapeError as e:
        st.error(str(e))
        st.caption(f"The rows up to {e.layer}, which receives {' x '.join(map(str, e.received))}:")
        st.dataframe(
            [{"layer": r.name, "type": r.type, "settings": r.settings,
              "output": " x ".join(map(str, r.output_shape))} for r in e.rows],
            hide_index=True, width="stretch")
        st.stop()
    except SpecError as e:
        st.error(str(e))
        fix = controls.last_block_fix(values)
        if fix:
            st.button(f"Set the last block to {values['num_classes']} channels",
                      on_click=ss.update, args=({W + k: v for k, v in fix.items()},))
        st.stop()

    set_current_spec(spec)
    share_link(to_query(spec))
    m = summary.memory
    st.caption(f"**{spec.name}** · input {' x '.join(map(str, summary.input_shape))} → "
               f"{' x '.join(map(str, summary.output_shape))} · {spec.head} head")
    row = st.container(horizontal=True, wrap=False)   # one block: fewer messages than columns
    row.metric("Parameters", f"{summary.params:,}", help=H.PARAMS)
    row.metric("FLOPs per image", human_count(summary.flops), help=H.FLOPS)
    row.metric("Multiply-adds", human_count(summary.macs), help=H.MACS)
    row.metric("Training memory", human_bytes(m.train_bytes), help=MEMORY_BASIS)
    row.metric("Prediction memory", human_bytes(m.infer_bytes), help=MEMORY_BASIS)
    free = available_memory_bytes("cpu")
    st.caption(f"Memory at batch size {m.batch_size}, {precision}, {optimizer} (change in the sidebar)"
               + ("." if free is None else f"; this machine has {human_bytes(free)} of RAM free now "
                  "(the Train page checks each run against it, with its data and evaluation batch)."))

    # Only the open view is computed and sent (lazy tabs): a slider move redraws one view, not seven.
    views = build_views.views(spec, summary, precision, optimizer, on_upload)
    tabs = st.tabs(list(views), key=build_views.VIEW_KEY, on_change="rerun", bind="query-params")
    for tab, view in zip(tabs, views.values()):
        if tab.open:
            with tab:
                view()


variant()
