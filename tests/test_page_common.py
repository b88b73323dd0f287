"""pages/common.py: the frame every page shares, and a fresh server's first deep link."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from pages.common import PAGES


@pytest.mark.parametrize("path, title", [(p, t) for p, t, *_ in PAGES])
def test_a_fresh_servers_first_deep_link_draws_the_frame_once(path, title):
    """AppTest starts like a fresh server: Streamlit then runs a deep link (/train) from pages/
    without app.py (pages directory mode); page_title must draw app.py's frame and end that
    mode, so that the next run goes through app.py and draws the frame once, not twice."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(path)
    for _ in range(2):                                   # the first run and the one after it
        at.run()
        assert not at.exception
        frame = [m for m in at.sidebar.markdown if m.value == "### NiN Explorer"]
        assert len(frame) == 1, f"{path}: the sidebar has {len(frame)} frames"
        assert at.title and at.title[0].value, path


def test_every_pages_address_is_its_file_name():
    """A fresh server's first deep link is looked up in pages/ by file name (pages directory
    mode, see page_title): /your-data for pages/data.py opened "Page not found" there."""
    from pathlib import Path
    for i, (path, _, _, url) in enumerate(PAGES):
        assert url == Path(path).stem, path
