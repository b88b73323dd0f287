"""The GAP maps page's 'across training' view: per-epoch class maps of the probe set, with an
epoch slider and a play button (a helper module, not a page)."""
import streamlit as st


@st.cache_resource(max_entries=4, show_spinner=False)
def _epoch_maps(run_dir: str, stamp: tuple):
    """The run's per-epoch maps, read again only when its files change (stamp)."""
    from nin_explorer.look.epochs import load_epoch_maps
    return load_epoch_maps(run_dir)


def _stamp(run_dir) -> tuple:
    from nin_explorer.look.epochs import DIR
    folder = run_dir / DIR
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("epoch_*.pt"))) if folder.is_dir() else ()


def _default(em, index, label) -> int:
    """The chosen image when it is in the probe set, else the first of its class, else 0."""
    if index is not None and index in em.indices:
        return em.indices.index(index)
    same = [i for i, y in enumerate(em.labels.tolist()) if y == label]
    return same[0] if same else 0


def epochs_section(store, run: dict | None, data, index, label, classes: list[str]) -> None:
    from nin_explorer.look import charts
    from nin_explorer.look.epochs import MAX_IMAGES, PER_CLASS, epochs_figure
    if run is None or data is None:
        return
    st.subheader("Across training")
    run_dir = store.run_dir(run["id"])
    em = _epoch_maps(str(run_dir), _stamp(run_dir))
    if em is None:
        st.caption("This run kept no per-epoch maps (runs trained before they were kept, and `fc` "
                   "heads, keep none).")
        return
    st.caption(f"Every epoch the run saved the class maps of a fixed probe set: the first {PER_CLASS} "
               f"test images of each class (at most {MAX_IMAGES}). Drag the epoch slider or press "
               f"Play; {len(em.epochs)} epoch(s) kept.")
    k = len(classes)
    pick = st.selectbox("Probe image", range(len(em.indices)), index=_default(em, index, label),
                        key=f"maps_epoch_image_{index}",
                        format_func=lambda i: f"test image {em.indices[i]} ({classes[int(em.labels[i])]})")
    start = -1
    if len(em.epochs) > 1:
        epoch = st.select_slider("Open at epoch", em.epochs, value=em.epochs[-1], key="epoch",
                                 bind="query-params", help="Where both figures start (the "
                                 "address keeps it); their own slider and Play move through epochs.")
        start = em.epochs.index(epoch)
    left, right = st.columns([1, 3])
    left.plotly_chart(charts.image_figure(data.images[em.indices[pick]]), key="epoch_image",
                      width="content")
    maps = em.maps[:, pick]                                        # (E, K, h, w)
    titles = lambda e: [f"{c}: {m:.2f}" for c, m in zip(classes, maps[e].mean((1, 2)).tolist())]
    right.plotly_chart(epochs_figure(maps, em.epochs, titles, cols=5, start=start), key="epoch_maps",
                       width="stretch")
    st.markdown("**Class-average maps per epoch** (rows: true class of the probe images; columns: "
                "class maps). Training lights up the diagonal.")
    avg = em.class_average(k)                                      # (E, K, K, h, w)
    grid = avg.reshape(len(em.epochs), k * k, *avg.shape[-2:])
    heads = lambda e: [f"ch {classes[j][:8]}" if i == 0 else "" for i in range(k) for j in range(k)]
    st.plotly_chart(epochs_figure(grid, em.epochs, heads, cols=k, cell_px=70,
                                  row_labels=[f"true {c[:10]}" for c in classes], start=start),
                    key="epoch_class_grid", width="stretch")
