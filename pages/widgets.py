"""Widgets shared by pages, bounded by the core's limits (not a page itself: app.py lists the pages)."""
import streamlit as st

from nin_explorer.net.presets import PRESETS
from nin_explorer.net.spec import NetSpec
from pages.common import BUILD_SPEC_KEY, current_spec

NUMBER_COLUMNS = {
    name: st.column_config.NumberColumn(name, format="localized")
    for name in ("params", "MACs", "FLOPs", "activations", "fc_params", "flops")
} | {name: st.column_config.NumberColumn(name, format="bytes")
     for name in ("train_memory_bytes", "infer_memory_bytes")}


# One colour per setting in the Ablations page's curves (its seeds share it): plotly's own ten.
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6",
           "#9D755D", "#BAB0AC", "#EECA3B"]

# The Ablations page's results table (ablation.aggregate's rows): order and column formats.
ABLATION_ORDER = ["setting", "status", "runs", "mean ± sd", "vs best", "best_test_acc",
                  "best_test_acc_sd", "final_test_acc", "final_test_acc_sd", "wall_s", "examples_per_sec", "params", "flops",
                  "train_memory_estimate_bytes", "peak_train_memory_bytes"]
ABLATION_COLUMNS = {
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
}


def _bounds(key: str) -> tuple:
    """controls.LIMITS of a Build page widget key's last part ('w.b2.kernel' -> kernel)."""
    from nin_explorer.net.controls import LIMITS
    return LIMITS[key.rpartition(".")[2]]


def number(where, label: str, key: str, help: str | None = None):
    """A Build page number input bounded by controls.LIMITS."""
    return where.number_input(label, *_bounds(key), key=key, help=help)


def slider(where, label: str, key: str, help: str | None = None):
    """A Build page slider bounded by controls.LIMITS (with its controls.STEPS step)."""
    from nin_explorer.net.controls import STEPS
    return where.slider(label, *_bounds(key), step=STEPS.get(key.rpartition(".")[2]), key=key,
                        help=help)


def in_address(name: str, value: str | None) -> None:
    """?name=value in the address (None removes it), written only when it changes: each write
    is a message to the browser. For values a bound widget cannot hold (run ids)."""
    if value is None:
        st.query_params.pop(name, None)
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


OPEN_BLOCK_KEY = "open.b{i}"   # the Build page's block expanders (set True to open one)


def keep_values(prefix: str) -> None:
    """Keep the values of widgets this run will not draw (a closed block's, keys starting with
    `prefix`): Streamlit forgets a widget's value at the end of a run that skipped it, unless the
    page set it itself (docs: "widget behavior"). Only for hidden widgets: setting a drawn one's
    value sends it to the browser, which would undo a key press made while this run was under way."""
    ss = st.session_state
    for key in [k for k in ss if isinstance(k, str) and k.startswith(prefix)]:
        ss[key] = ss[key]


def block_widgets(sidebar, p: str, i: int) -> None:
    """Block i's expander on the Build page; its widget keys start with `p` ('w.b2.'). The
    widgets are drawn only while it is open (they are most of the page's widgets, and every
    widget costs each rerun); their values are kept while it is closed."""
    from nin_explorer.net import controls
    from nin_explorer.look import help_text as H
    ss = st.session_state
    for k, v in controls.block_controls(controls.DEFAULT_BLOCK).items():
        ss.setdefault(p + k, v)
    box = sidebar.expander(f"Block {i}: {ss[p + 'kind']} → {ss[p + 'out_channels']} ch",
                           key=OPEN_BLOCK_KEY.format(i=i), on_change="rerun")
    if not box.open:
        keep_values(p)
        return
    with box:
        st.selectbox("Kind", controls.CHOICES["kind"], key=p + "kind", help=H.KIND)
        kind = ss[p + "kind"]
        if kind == "inception":
            st.text_input("Path widths c1, c2a, c2b, c3a, c3b, c4", key=p + "paths", help=H.PATHS,
                          max_chars=controls.MAX_TEXT_CHARS)
        else:
            slider(st, "Output channels", p + "out_channels", H.OUT_CHANNELS)
            a, b, c = st.columns(3)
            number(a, "Kernel", p + "kernel", H.KERNEL)
            number(b, "Stride", p + "stride", H.STRIDE)
            number(c, "Padding", p + "padding", H.PADDING)
        if kind == "nin":
            slider(st, "Extra 1x1 convs", p + "n_extra_1x1", H.EXTRA_1X1)
            st.text_input("1x1 widths (blank: same as output channels)", key=p + "widths_1x1",
                          help=H.WIDTHS_1X1, max_chars=controls.MAX_TEXT_CHARS)
        elif kind == "conv":
            slider(st, "Convs in the block", p + "n_convs", H.N_CONVS)
        st.checkbox("BatchNorm after each conv", key=p + "batch_norm", help=H.BATCH_NORM)
        st.selectbox("Pooling after the block", controls.CHOICES["pool"], key=p + "pool", help=H.POOL)
        if ss[p + "pool"] != "none":
            a, b, c = st.columns(3)
            number(a, "Pool kernel", p + "pool_kernel", H.POOL_KERNEL)
            number(b, "Pool stride", p + "pool_stride", H.POOL_STRIDE)
            number(c, "Pool pad", p + "pool_padding", H.POOL_PADDING)
        slider(st, "Dropout after", p + "dropout", H.DROPOUT)


BUILD_VARIANT = "(the Build page's variant)"


def preset_choice(label: str, key: str, help: str | None = None, include_current: bool = False,
                  default: str = "d2l", on_change=None) -> NetSpec:
    """A select box of presets, led by the Build page's variant when asked (and chosen by
    default once the Build page has been visited); returns the spec."""
    options = ([BUILD_VARIANT] if include_current else []) + list(PRESETS)
    if key not in st.session_state:
        st.session_state[key] = BUILD_VARIANT if include_current and BUILD_SPEC_KEY in st.session_state else default
    name = st.selectbox(label, options, key=key, help=help, on_change=on_change)
    if name == BUILD_VARIANT:
        st.caption(f"Build page: **{current_spec().name}**")
    return current_spec() if name not in PRESETS else PRESETS[name]


def training_widgets(left, right, p: str) -> str:
    """The Train page's settings in two columns, bounded and listed by the core (widget keys
    start with `p`); returns the chosen device."""
    from nin_explorer.look import help_text as H
    from nin_explorer.net.controls import TRAIN_BATCH_SIZES, TRAIN_LIMITS as LIMITS
    from nin_explorer.learn.config import DEVICES, OPTIMIZERS, SCHEDULES
    from nin_explorer.net.summary import PRECISIONS
    left.number_input("Epochs", *LIMITS["epochs"], key=p + "epochs")
    left.select_slider("Batch size", TRAIN_BATCH_SIZES, key=p + "batch_size")
    left.number_input("Learning rate (peak)", *LIMITS["lr"], format="%.4f", key=p + "lr")
    left.selectbox("Optimiser", OPTIMIZERS, key=p + "optimizer")
    right.selectbox("Schedule", SCHEDULES, key=p + "schedule")
    right.selectbox("Precision", PRECISIONS, key=p + "precision", help=H.TRAIN_PRECISION)
    device = right.selectbox("Device", DEVICES, key=p + "device")
    st.session_state.setdefault(p + "subset", 0)
    right.number_input("Training examples (0 = all)", *LIMITS["max_train_examples"], step=1000,
                       key=p + "subset", help="Train on the first N examples only: a quick demo.")
    right.number_input("Seed", *LIMITS["seed"], key=p + "seed")
    return device
