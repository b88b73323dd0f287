"""The GAP maps page's views (a helper module, not a page: app.py lists the pages)."""
import streamlit as st


@st.cache_resource(max_entries=4, show_spinner="Loading the test set...")
def test_set(name: str, bad_files: str = "refuse"):
    """A data set's test split, loaded once per server (DataError when it cannot be had); a
    folder's bad files as the run had them (skipped or refused)."""
    from nin_explorer.learn.data import load_dataset
    return load_dataset(name, train=False, bad_files=bad_files)


def example_of_class(labels, cls: int, container) -> int | None:
    """The index of the chosen test image of class `cls` (a folder's class may have one or none)."""
    members = (labels == cls).nonzero().flatten()
    if len(members) == 0:
        container.info("The test set has no image of this class.")
        return None
    k = container.slider("Example", 0, len(members) - 1, 0, key="maps_example",
                                 bind="query-params") if len(members) > 1 else 0
    return int(members[k])


@st.cache_resource(max_entries=4, show_spinner="Checking the checkpoint...")
def checkpoint_or_reason(key: str, _load):
    """What `_load()` gives (a Checkpoint), or the sentence saying why not, once per key: an
    upload's sha256 or a run's checkpoint path and time, whichever visitor asks and however
    often the page reruns."""
    from nin_explorer.look.maps import CheckpointError
    try:
        return _load()
    except CheckpointError as e:
        return str(e)


def block_maps_expander(block_outputs: dict, shown: int = 64) -> None:
    """The GAP maps page's 'any block' view: one block's feature maps for the image."""
    from nin_explorer.look import charts
    from nin_explorer.look.maps import channel_order
    with st.expander("Any block's feature maps for this image"):
        block = st.selectbox("Block", list(block_outputs), index=len(block_outputs) - 1, key="maps_block")
        fm = block_outputs[block][0]                              # (C, h, w)
        by_mean = st.toggle("Sort by mean activation", True, key="maps_sort")
        order = (channel_order(fm) if by_mean else list(range(len(fm))))[:shown]
        st.plotly_chart(charts.maps_grid_figure(fm[order], [f"ch {i}: {fm[i].mean():.2f}" for i in order],
                                                cols=8, cell_px=90),
                        key="block_maps", width="stretch")
        if len(fm) > shown:
            st.caption(f"The first {shown} of {len(fm)} channels.")


def test_set_figures(analysis, classes: list[str]) -> None:
    """The GAP maps page's whole-test-set view: accuracy, mean class maps, confusion, per class."""
    from nin_explorer.look import charts
    from nin_explorer.look import help_text as H
    st.metric("Test accuracy", f"{analysis.accuracy:.2%}")
    mm = analysis.mean_maps                                    # (K true, K channels, h, w)
    k = len(classes)
    st.markdown(H.CLASS_GRID)
    st.plotly_chart(charts.maps_grid_figure(mm.reshape(k * k, *mm.shape[-2:]),
                                            [f"ch {classes[j][:8]}" if i == 0 else "" for i in range(k) for j in range(k)],
                                            cols=k, cell_px=70, row_labels=[f"true {c[:10]}" for c in classes]),
                    key="class_grid", width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.confusion_figure(analysis.confusion, classes), key="confusion", width="stretch")
    c2.plotly_chart(charts.per_class_figure(analysis.per_class_accuracy, classes), key="per_class", width="stretch")
