"""Data-set widgets for Train, Ablations, Lineage and Your data (a helper module, not a page):
the picker with folder sets beside the built-in ones, a folder's facts and sample grid, the bad-files
choice and the zip upload with progress."""
import io

import streamlit as st

from nin_explorer.learn.catalogue import BAD_FILES, DATASETS, bad_count

_SELECT = "data.select"  # (picker key, name): a just-imported set, chosen by the next run's picker


@st.cache_data(ttl=10, show_spinner="Looking for your image folders...")
def folder_sets(root: str) -> dict:
    """folder:NAME -> FolderFacts of every image folder under the data root (headers only;
    re-listed every 10 s or after an import)."""
    from nin_explorer.learn.folder_facts import list_folders
    return {facts.name: facts for facts in list_folders(root)}


def _root() -> str:
    from nin_explorer.learn.data import default_root
    return str(default_root())


@st.cache_data(ttl=60, max_entries=8, show_spinner="Reading a few images per class...")
def _samples(name: str, root: str, stamp: tuple) -> list:
    from nin_explorer.learn.folder_facts import sample_images
    return [(c, [t.permute(1, 2, 0).squeeze(-1).numpy() for t in images])   # (C, H, W) -> (H, W[, C])
            for c, images in sample_images(name, root, per_class=6)]


def dataset_picker(label: str, key: str, default: str = "shapes", help: str | None = None,
                   container=st, bind: str | None = None) -> str:
    """A selectbox of the built-in sets and the usable image folders, with the chosen one's line
    (bind="query-params": kept in the address under `key`)."""
    folders = {n: f for n, f in folder_sets(_root()).items() if f.info is not None}
    options = list(DATASETS) + list(folders)
    pending = st.session_state.get(_SELECT)
    if pending and pending[0] == key and pending[1] in options:
        st.session_state[key] = st.session_state.pop(_SELECT)[1]
        container.success(f"Imported `{pending[1]}`: chosen here, and listed on every page.")
    if st.session_state.get(key) not in options and not (bind and st.query_params.get(key)):
        st.session_state[key] = default
    name = container.selectbox(label, options, key=key, help=help, bind=bind,
                               format_func=lambda n: n if n in DATASETS else f"{n} (your images)")
    container.caption(DATASETS.get(name) or folders[name].summary)
    return name


def adapted_spec(spec, dataset: str):
    """(spec adapted to the data set's channels and classes, its DatasetInfo), saying what changed.
    DataError when the set cannot be used."""
    from nin_explorer.learn.data import dataset_info
    from nin_explorer.runs.plan import adapt_spec, adaptation_text
    info = dataset_info(dataset)
    if (spec.in_channels, spec.num_classes) == (info.channels, info.n_classes):
        return spec, info
    adapted = adapt_spec(spec, info.channels, info.n_classes)
    st.info(adaptation_text(spec, adapted, dataset), icon=":material/tune:")
    return adapted, info


def data_panel(name: str, select_key: str, allowed: bool) -> str:
    """The chosen folder set's details and bad-files choice (returned), and an expander to
    upload another set that the picker `select_key` then chooses."""
    folder_details(name)
    bad_files = bad_files_choice(name, select_key + ".bad_files")
    with st.expander("Upload your own images (.zip)"):
        zip_upload(select_key, allowed=allowed)
    return bad_files


def _facts(name: str):
    """The folder's facts: from "Check every image" in this session if done, else headers only."""
    return st.session_state.get(f"data.checked.{name}") or folder_sets(_root()).get(name)


def _on(bar):
    """A core progress callback (fraction, message) drawn on a progress bar."""
    return lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message)


def _check_every_image(name: str) -> None:
    from nin_explorer.learn.folder_facts import folder_facts
    bar = st.progress(0.0, text="Reading every image...")
    st.session_state[f"data.checked.{name}"] = folder_facts(name, _root(), decode=True,
                                                            progress=_on(bar))
    st.rerun()


def folder_details(name: str) -> None:
    """A folder set's warnings, counts per class, sizes, modes, bad files and a sample grid."""
    facts = _facts(name)
    if facts is None or facts.info is None:
        return
    for warning in facts.warnings:
        st.warning(warning, icon=":material/warning:")
    with st.expander(f"Preview of {name}: classes, counts and samples"):
        st.caption(f"Layout: {facts.layout}. Sizes: "
                   + ", ".join(f"{w}x{h} ({n:,})" for (w, h), n in facts.sizes.most_common(4))
                   + ". Modes: " + ", ".join(f"{m} ({n:,})" for m, n in facts.modes.most_common()) + ".")
        st.dataframe([{"class": c, "train": a, "test": b} for c, (a, b) in facts.counts.items()],
                     hide_index=True, key=f"data.counts.{name}")
        stamp = (facts.info.n_train, facts.info.n_test, len(facts.bad_files))
        for class_name, images in _samples(name, _root(), stamp):
            if images:
                st.image(images, caption=[class_name] + [""] * (len(images) - 1), width=64)
        if facts.bad_files:
            st.caption("Bad files: " + "; ".join(f"{p}: {w}" for p, w in list(facts.bad_files.items())[:10]))
        if f"data.checked.{name}" in st.session_state:
            st.caption("Every image was read (truncated and damaged files are named above, if any).")
        elif st.button("Check every image", key=f"data.check.{name}",
                       help="Headers are read already; this decodes every image (kept for training) "
                            "to find truncated or damaged files too."):
            _check_every_image(name)


def bad_files_choice(name: str, key: str) -> str:
    """'refuse' or 'skip' for a folder set with bad files (the user chooses); 'refuse' otherwise."""
    facts = _facts(name)
    if facts is None or not facts.bad_files:
        return "refuse"
    st.session_state.setdefault(key, "skip")
    return st.radio(bad_count(len(facts.bad_files)), list(BAD_FILES), key=key, horizontal=True,
                    format_func=lambda k: f"{k}: {BAD_FILES[k]}",
                    help="Files that cannot be read (damaged, truncated, too large, not an "
                         "allowed image format). Skip trains on the others; refuse stops the run.")


def zip_upload(select_key: str | None, key: str = "data.zip", allowed: bool = True) -> None:
    """Upload a .zip of an image folder, unpack it under a name with a progress bar; the picker
    `select_key` then chooses it. `allowed` False (a visitor on a shared server) says who can."""
    from nin_explorer.learn.data import DataError
    from nin_explorer.learn.zip_import import MAX_ZIP_BYTES, NAME_RULE, import_zip
    if not allowed:
        st.caption("On a shared server only the teacher adds data sets.")
        return
    limit_mb = min(MAX_ZIP_BYTES // 2**20, st.get_option("server.maxUploadSize"))
    up = st.file_uploader("A .zip of your images", type=["zip"], key=key, max_upload_size=limit_mb,
                          help="One subfolder per class (cat/, dog/, ...), or train/ and test/ each "
                               "holding them; one folder around them is fine. PNG, JPEG, BMP, GIF, WebP. "
                               f"Up to {limit_mb} MB here (server.maxUploadSize); a larger set: "
                               "`python -m nin_explorer data import ZIP NAME` on the server.")
    name = st.text_input("Name for the data set", key=key + ".name", max_chars=64, help=NAME_RULE)
    if not st.button("Import", key=key + ".go", disabled=up is None or not name):
        return
    bar = st.progress(0.0, text="Unpacking...")
    try:
        imported = import_zip(io.BytesIO(up.getvalue()), name, _root(), progress=_on(bar))
    except DataError as e:
        bar.empty()
        st.error(str(e))
        return
    folder_sets.clear()
    if select_key:
        st.session_state[_SELECT] = (select_key, imported)
    st.rerun()
