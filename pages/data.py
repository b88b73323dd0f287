"""Your data page: every image folder under the data directory, what it holds, and a zip upload."""
import streamlit as st

from nin_explorer.learn.catalogue import bad_count
from nin_explorer.learn.data import default_root
from pages.common import page_title, visitor
from pages.data_views import folder_details, folder_sets, zip_upload

page_title("Your data")
who = visitor()
st.markdown(
    "Train on your own images: a folder under the data directory (`NIN_EXPLORER_DATA`) with **one "
    "subfolder per class** (`cat/`, `dog/`, ...; every fifth image is held out for testing), or "
    "with **`train/` and `test/`**, each holding the class subfolders. Upload one as a .zip below "
    "(one folder around it is fine), then pick it on the Train, Ablations or Lineage page.")

with st.expander("Upload a .zip", expanded=True):
    zip_upload(None, key="data.zip", allowed=who.is_teacher)

folders = folder_sets(str(default_root()))
if not folders:
    st.info("No image folders in the data directory yet. Upload a .zip above, or copy a folder "
            "there (`python -m nin_explorer data import ZIP NAME` does the same from a terminal).")
    st.stop()
st.dataframe([{"data set": name, "classes": f.info.n_classes if f.info else None,
               "train": f.info.n_train if f.info else None, "test": f.info.n_test if f.info else None,
               "input": f"{f.info.channels}x{f.info.image_size}x{f.info.image_size}" if f.info else "",
               "bad files": len(f.bad_files), "layout": f.layout, "usable": f.error or "yes"}
              for name, f in folders.items()], hide_index=True, key="data.table")
usable = [name for name, f in folders.items() if f.info is not None]
if usable:
    name = st.selectbox("Look at", usable, key="data.pick", bind="query-params")
    st.caption(folders[name].summary + (f" ({bad_count(len(folders[name].bad_files))} named below)"
                                        if folders[name].bad_files else ""))
    folder_details(name)
