"""NiN Explorer: the entry point. Lists the pages (all in pages/) and draws the shared frame."""
import os

# Before torch loads: every session's script thread that runs torch gets its own OpenMP team,
# and idle teams that spin steal the cores a training worker needs. Workers inherit it: on a
# 2-core CPU that costs them ~25% when the machine is idle and gains 2.5x when it is busy
# (1,000 vs 400 examples/s for `tiny`; docs/BENCHMARKS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from pages.common import PAGES, draw_frame  # noqa: E402

# Our own menu (draw_frame): the built-in one would list pages/ files on a server's first session.
page = st.navigation([st.Page(path, title=title, icon=icon, url_path=url, default=i == 0)
                      for i, (path, title, icon, url) in enumerate(PAGES)], position="hidden")
draw_frame()
page.run()
