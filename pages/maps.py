"""GAP maps page: what each class channel of a trained network finds."""
import hashlib

import streamlit as st
import torch

from nin_explorer.look import charts
from nin_explorer.look import help_text as H
from nin_explorer.learn.data import DataError
from nin_explorer.learn.images import IMAGE_EXTENSIONS
from nin_explorer.look.maps import (MAX_UPLOAD_BYTES, MAX_UPLOAD_PARAMS, ImageError,
                                    analyse_test_set, cached_analysis, class_maps, identity_gap,
                                    image_from_upload, load_upload, open_checkpoint,
                                    most_confident_mistakes, upload_dataset)
from nin_explorer.runs.queries import checkpoint_label, checkpoint_version, index_of, runs_with_checkpoint
from pages.common import get_store, page_title
from pages.map_views import (block_maps_expander, checkpoint_or_reason, example_of_class, test_set,
                              test_set_figures)
from pages.epoch_views import epochs_section
from pages.probe_views import probe_section
from pages.widgets import in_address


page_title("GAP feature maps")
st.markdown(H.GAP_INTRO)

store = get_store()
# --- 1. which network ---
source = st.radio("Network", ["A run from the store", "Upload a checkpoint"], horizontal=True,
                  key="maps_source", bind="query-params")
ckpt = run = None
if source == "A run from the store":
    runs = runs_with_checkpoint(store)
    if not runs:
        st.info("No run has a checkpoint yet. Train one on the Train page (the `tiny` preset on "
                "`shapes` takes about a minute), or upload a checkpoint.")
        st.stop()
    labels = {r["id"]: checkpoint_label(r) for r in runs}
    ids = list(labels)
    run_id = st.selectbox("Run", ids, index=index_of(ids, st.query_params.get("run")),
                          format_func=labels.get, key="maps_run")
    in_address("run", str(run_id))
    run = store.get_run(run_id)
    path, version = checkpoint_version(store, run_id)
    ckpt = checkpoint_or_reason(version, lambda: open_checkpoint(path))
else:
    up = st.file_uploader("Checkpoint (.pt, weights only)", type=["pt", "pth"], key="maps_ckpt",
                          max_upload_size=MAX_UPLOAD_BYTES // 2**20,
                          help=f"A checkpoint NiN Explorer wrote: up to {MAX_UPLOAD_BYTES // 2**20} MB "
                               f"and {MAX_UPLOAD_PARAMS // 10**6} M parameters, checked before it is used.")
    if up is None:
        st.stop()
    data_bytes = up.getvalue()
    upload_digest = hashlib.sha256(data_bytes).hexdigest()
    ckpt = checkpoint_or_reason(f"upload {upload_digest}", lambda: load_upload(data_bytes))
if isinstance(ckpt, str):
    st.error(ckpt)
    st.stop()

spec, classes = ckpt.spec, ckpt.classes
dataset = ckpt.config.get("dataset")
data = None
if dataset and run is None:
    try:
        dataset = upload_dataset(dataset)
    except DataError as e:
        st.warning(str(e))
        dataset = None  # not shown: an upload's name may be anything
if dataset:
    try:
        data = test_set(dataset, ckpt.config.get("bad_files", "refuse"))
    except DataError as e:
        st.warning(f"{e} Upload an image below instead.")
st.caption(f"**{spec.name}**, {spec.head} head{'' if spec.final_relu else ', no final ReLU'}, trained {ckpt.epoch} epoch(s)"
           + (f" on `{dataset}`" if dataset else "") + f"; input {spec.in_channels}x{spec.input_size}x{spec.input_size}.")
analysis_key = f"analysis_{run['id']}" if run else f"analysis_upload_{upload_digest[:16]}"
probe_section(ckpt, data, run, f"{analysis_key} {version if run else ''}")

# --- 2. which image ---
modes = (["By class", "Random", "Most confident mistakes"] if data is not None else []) + ["Upload an image"]
mode = st.radio("Image", modes, horizontal=True, key="maps_mode", bind="query-params")
image, label, index = None, None, None
if mode == "Upload an image":
    up = st.file_uploader("PNG, JPEG, BMP, GIF or WebP", type=[e[1:] for e in IMAGE_EXTENSIONS], key="maps_image")
    if up is not None:
        try:
            image = image_from_upload(up.getvalue(), spec.in_channels, data.images.shape[-1] if data else spec.input_size)
        except ImageError as e:
            st.error(str(e))
elif mode == "By class":
    c1, c2 = st.columns([2, 3])
    cls = c1.selectbox("Class", range(len(classes)), format_func=lambda i: classes[i], key="maps_class",
                       bind="query-params")
    index = example_of_class(data.labels, cls, c2)
elif mode == "Random":
    if "maps_random_index" not in st.session_state:   # a link's ?image= first, else a draw
        st.session_state["maps_random_index"] = index_of(range(len(data.labels)), st.query_params.get("image"),
                                                         int(torch.randint(len(data.labels), ())))
    if st.button("Another one", key="maps_random"):
        st.session_state["maps_random_index"] = int(torch.randint(len(data.labels), ()))
    index = st.session_state["maps_random_index"]
else:
    analysis = st.session_state.get(analysis_key)
    if analysis is None:
        st.info("Analyse the test set (section 3 below) to find the most confident mistakes.")
    else:
        picks = most_confident_mistakes(analysis, 24)
        if not picks:
            st.success("No mistakes on the test set.")
        else:
            k = st.select_slider("Mistake (most confident first)", range(len(picks)), key="maps_mistake",
                                 format_func=lambda i: f"{i + 1}: {classes[analysis.labels[picks[i]]]} "
                                                       f"taken for {classes[analysis.predictions[picks[i]]]}")
            index = picks[k]
if index is not None:
    image, label = data.images[index], int(data.labels[index])
in_address("image", str(index) if mode == "Random" else None)

if image is not None:
    r = class_maps(ckpt, image[None])
    maps = r.class_maps[0]                                        # (K, h, w)
    logits, probs = r.logits[0].tolist(), r.probs[0].tolist()
    pred = max(range(len(probs)), key=probs.__getitem__)
    left, right = st.columns([1, 3])
    with left:
        st.plotly_chart(charts.image_figure(image), key="input_image", width="content")
        st.markdown((f"true: **{classes[label]}**  \n" if label is not None else "")
                    + f"predicted: **{classes[pred]}** ({probs[pred]:.1%})")
    with right:
        overlay = st.toggle("Overlay on the input", key="maps_overlay")
        under = None
        if overlay:
            small = torch.nn.functional.interpolate(image[None].float().mean(1, keepdim=True),
                                                    size=maps.shape[-2:], mode="area")[0, 0]
            under = small.expand(len(classes), *maps.shape[-2:])
        titles = [f"{c}: {m:.3f}" for c, m in zip(classes, maps.mean((1, 2)).tolist())]
        st.plotly_chart(charts.maps_grid_figure(maps, titles, cols=5, zmin=float(maps.min()),
                                                zmax=float(maps.max()), overlay=under),
                        key="class_maps", width="stretch")
        st.caption(H.maps_caption(r.kind))
    st.plotly_chart(charts.logits_figure(logits, probs, classes), key="logits", width="stretch")
    st.markdown(H.identity_text(r.kind, classes, maps.mean((1, 2)).tolist(), logits,
                                float(identity_gap(r)), pred))

    block_maps_expander(r.block_outputs)
epochs_section(store, run, data, index, label, classes)

# --- 3. the whole test set ---
if data is not None:
    st.subheader("The whole test set")
    key = analysis_key
    if key not in st.session_state and st.button("Analyse the test set", key="maps_analyse", type="primary"):
        bar = st.progress(0.0, text="Running the test set through the network...")
        compute = lambda: analyse_test_set(ckpt, data.images, data.labels,
                                           progress=lambda f: bar.progress(f, text=f"{f:.0%} of the test set"))
        st.session_state[key] = (cached_analysis(store.run_dir(run["id"]) / "analysis.pt", path, compute)
                                 if run else compute())
        bar.empty()
    analysis = st.session_state.get(key)
    if analysis is not None:
        test_set_figures(analysis, classes)

st.divider()
st.markdown(H.GAP_TEACHING)
