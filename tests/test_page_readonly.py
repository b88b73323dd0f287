"""Pages that only read runs start nothing: a queued run stays queued while they render
(only the Train and Ablations pages, which launch and stop runs, hold the job manager)."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.runs.jobs import JobManager
from nin_explorer.net.presets import TINY
from nin_explorer.runs.store import RunStore, default_home


@pytest.fixture
def spawned(monkeypatch):
    """Every worker a job manager would start in this process (none really starts)."""
    calls = []
    monkeypatch.setattr(JobManager, "_spawn", lambda self, run: calls.append(run["id"]))
    return calls


@pytest.mark.parametrize("page", ["pages/build.py", "pages/compare.py", "pages/lineage.py",
                                  "pages/maps.py"])
def test_reading_pages_start_no_queued_run(page, spawned):
    store = RunStore(default_home())
    run_id = store.create_run(TINY.to_dict(), {"dataset": "shapes", "epochs": 1})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if page != "pages/build.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    assert spawned == []
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["pid"] is None
