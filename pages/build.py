"""Build page: sliders in, shapes / parameters / FLOPs / memory out, and ways to take it away."""
import streamlit as st

from nin_explorer import charts, controls, help_text as H
from nin_explorer.compare import compare_rows, gap_example
from nin_explorer.export import from_query, pytorch_snippet, to_query
from nin_explorer.config import memory_settings
from nin_explorer.plan import available_memory_bytes
from nin_explorer.presets import DESCRIPTIONS, PRESETS
from nin_explorer.render import block_rows, human_bytes, human_count, table_rows
from nin_explorer.spec import NetSpec, SpecError
from nin_explorer.summary import OPTIMIZERS, PRECISIONS, MEMORY_BASIS, ShapeError, summarize
from pages.common import NUMBER_COLUMNS, leave_pages_directory_mode, measured_memory, set_current_spec

leave_pages_directory_mode()

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


def on_fix_last_block(channels: int):
    ss[f"{W}b{ss[W + 'n_blocks']}.out_channels"] = channels
    ss[f"{W}b{ss[W + 'n_blocks']}.widths_1x1"] = ""


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

# --- sidebar: every setting ---
sb = st.sidebar
sb.selectbox("Preset", list(PRESETS), key=W + "preset", on_change=on_preset, help=H.PRESET)
sb.caption(DESCRIPTIONS.get(ss[W + "preset"], ""))
sb.slider("Input size (height = width)", 8, 512, key=W + "input_size", help=H.INPUT_SIZE)
c1, c2 = sb.columns(2)
c1.number_input("Input channels", 1, 4, key=W + "in_channels", help=H.IN_CHANNELS)
c2.number_input("Classes", 2, 1000, key=W + "num_classes", help=H.CLASSES)
sb.slider("Number of blocks", 1, 12, key=W + "n_blocks", help=H.N_BLOCKS)
for i in range(1, ss[W + "n_blocks"] + 1):
    p = f"{W}b{i}."
    for k, v in controls.block_controls(controls.DEFAULT_BLOCK).items():
        ss.setdefault(p + k, v)
    with sb.expander(f"Block {i}: {ss[p + 'kind']} → {ss[p + 'out_channels']} ch", expanded=False):
        st.selectbox("Kind", ["nin", "conv", "inception"], key=p + "kind", help=H.KIND)
        kind = ss[p + "kind"]
        if kind == "inception":
            st.text_input("Path widths c1, c2a, c2b, c3a, c3b, c4", key=p + "paths", help=H.PATHS,
                          max_chars=controls.MAX_TEXT_CHARS)
        else:
            st.slider("Output channels", 1, 1024, key=p + "out_channels", help=H.OUT_CHANNELS)
            a, b, c = st.columns(3)
            a.number_input("Kernel", 1, 15, key=p + "kernel", help=H.KERNEL)
            b.number_input("Stride", 1, 8, key=p + "stride", help=H.STRIDE)
            c.number_input("Padding", 0, 10, key=p + "padding", help=H.PADDING)
        if kind == "nin":
            st.slider("Extra 1x1 convs", 0, 3, key=p + "n_extra_1x1", help=H.EXTRA_1X1)
            st.text_input("1x1 widths (blank: same as output channels)", key=p + "widths_1x1",
                          help=H.WIDTHS_1X1, max_chars=controls.MAX_TEXT_CHARS)
        elif kind == "conv":
            st.slider("Convs in the block", 1, 4, key=p + "n_convs", help=H.N_CONVS)
        st.checkbox("BatchNorm after each conv", key=p + "batch_norm", help=H.BATCH_NORM)
        st.selectbox("Pooling after the block", ["max", "avg", "none"], key=p + "pool", help=H.POOL)
        if ss[p + "pool"] != "none":
            a, b, c = st.columns(3)
            a.number_input("Pool kernel", 1, 15, key=p + "pool_kernel", help=H.POOL_KERNEL)
            b.number_input("Pool stride", 1, 8, key=p + "pool_stride", help=H.POOL_STRIDE)
            c.number_input("Pool pad", 0, 7, key=p + "pool_padding", help=H.POOL_PADDING)
        st.slider("Dropout after", 0.0, 0.9, step=0.05, key=p + "dropout", help=H.DROPOUT)
sb.radio("Head", ["gap", "gap-linear", "fc"], key=W + "head", horizontal=True, help=H.HEAD)
if ss[W + "head"] == "fc":
    a, b = sb.columns(2)
    a.number_input("Hidden FC layers", 0, 4, key=W + "fc_layers", help=H.FC_LAYERS)
    b.number_input("Hidden width", 1, 16384, key=W + "fc_width", help=H.FC_WIDTH)
    sb.slider("FC dropout", 0.0, 0.9, step=0.05, key=W + "fc_dropout", help=H.DROPOUT)
sb.divider()
sb.caption("Memory estimate settings")
ss.setdefault(W + "batch", 128)
sb.select_slider("Batch size", [1, 8, 16, 32, 64, 128, 256, 512, 1024], key=W + "batch", help=H.BATCH)
a, b = sb.columns(2)
precision = a.selectbox("Precision", PRECISIONS, key=W + "precision", help=H.PRECISION)
optimizer = b.selectbox("Optimiser", OPTIMIZERS, key=W + "optimizer", help=H.OPTIMIZER)

# --- the spec and its summary ---
st.title("Build a NiN variant")
values = {k[len(W):]: v for k, v in ss.items() if isinstance(k, str) and k.startswith(W)}
try:
    spec = controls.controls_to_spec(values)
    preset = PRESETS.get(values["preset"])
    spec = spec.replace(name=values["preset"]) if spec.replace(name=preset.name) == preset \
        else spec.replace(name=f"custom ({values['preset']})")
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
    last = values.get(f"b{values['n_blocks']}.out_channels")
    if values.get("head") == "gap" and last != values.get("num_classes"):
        st.button(f"Set the last block to {values['num_classes']} channels", on_click=on_fix_last_block,
                  args=(values["num_classes"],))
    st.stop()

set_current_spec(spec)
st.query_params.from_dict(to_query(spec))
m = summary.memory
st.caption(f"**{spec.name}** · input {' x '.join(map(str, summary.input_shape))} → "
           f"{' x '.join(map(str, summary.output_shape))} · {spec.head} head")
cols = st.columns(5)
cols[0].metric("Parameters", f"{summary.params:,}", help=H.PARAMS)
cols[1].metric("FLOPs per image", human_count(summary.flops), help=H.FLOPS)
cols[2].metric("Multiply-adds", human_count(summary.macs), help=H.MACS)
cols[3].metric("Training memory", human_bytes(m.train_bytes), help=MEMORY_BASIS)
cols[4].metric("Prediction memory", human_bytes(m.infer_bytes), help=MEMORY_BASIS)
free = available_memory_bytes("cpu")
st.caption(f"Memory at batch size {m.batch_size}, {precision}, {optimizer} (change in the sidebar)"
           + ("." if free is None else f"; this machine has {human_bytes(free)} of RAM free now "
              "(the Train page checks each run against it, with its data and evaluation batch)."))

tabs = st.tabs(["Layers", "Blocks", "Diagram", "Memory", "Compare", "Export", "About the numbers"])
with tabs[0]:
    show_relu = st.toggle("Show ReLU rows", value=False, key="show_relu")
    rows = table_rows(summary, include_relu=show_relu)
    st.dataframe(rows, hide_index=True, width="stretch", height=min(36 * (len(rows) + 1) + 4, 900),
                 key="layer_table", column_config=NUMBER_COLUMNS)
with tabs[1]:
    st.plotly_chart(charts.block_bars_figure(summary), key="block_bars", width="stretch")
    st.dataframe(block_rows(summary), hide_index=True, width="stretch", column_config=NUMBER_COLUMNS)
with tabs[2]:
    st.plotly_chart(charts.diagram_figure(summary), key="diagram", width="stretch")
with tabs[3]:
    st.plotly_chart(charts.memory_figure(summary), key="memory", width="stretch")
    st.markdown(MEMORY_BASIS)
    measured = measured_memory(spec)
    if measured:
        run, cfg = measured["run"], measured["run"]["config"]
        device = run.get("device") or "?"
        on_gpu = device.startswith("cuda")
        est = summarize(spec, cfg["batch_size"], *memory_settings(
            cfg["precision"], cfg["optimizer"], "cuda" if on_gpu else "cpu")).memory
        st.markdown(H.measured_memory_text(run["id"], device, cfg["batch_size"], est.train_bytes,
                                           measured["train"], est.infer_bytes, measured["infer"], on_gpu))
    else:
        st.caption("Train this exact network on the Train page to see measured peaks here.")
with tabs[4]:
    rows = compare_rows(spec, m.batch_size, precision, optimizer)
    st.plotly_chart(charts.compare_figure(rows), key="compare", width="stretch")
    st.dataframe(rows, hide_index=True, width="stretch", column_config=NUMBER_COLUMNS)
    g = gap_example(summary)
    st.markdown(H.gap_saving(g))
with tabs[5]:
    st.download_button("Download JSON", spec.to_json(), f"{spec.name.split()[0]}.json",
                       "application/json", key="dl_json")
    st.file_uploader("Load a JSON spec", type=["json"], key="up_json", max_upload_size=1,
                     on_change=on_upload)
    if "upload_error" in ss:
        st.error(ss["upload_error"])
    st.markdown("**Share link**: the address bar already holds this variant; copy it.")
    st.code("?" + "&".join(f"{k}={v}" for k, v in to_query(spec).items()), language=None)
    snippet = pytorch_snippet(spec)
    st.download_button("Download PyTorch code", snippet, "nin_variant.py", "text/x-python", key="dl_py")
    st.code(snippet, language="python")
with tabs[6]:
    st.markdown(H.about_numbers(summary))
