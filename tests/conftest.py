import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Before torch loads: AppTest runs torch in many script threads, each with its own OpenMP
# team; spinning idle teams made in-process training here 10x slower (233 s -> 72 s suite).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own run store and data cache unless it asks for something else."""
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(tmp_path / "data"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report to fixtures (browser tests screenshot on failure)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def shapes_root(request):
    """`shapes` generated once into pytest's cache folder (reused by later sessions)."""
    from nin_explorer.learn.data import load_dataset
    root = request.config.cache.mkdir("nin-explorer-data")
    load_dataset("shapes", root=root)
    return root


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory, shapes_root):
    """A run store holding one short `tiny` run on `shapes`, trained for real in-process."""
    from nin_explorer.net.presets import TINY
    from nin_explorer.runs.store import RunStore
    from nin_explorer.learn.config import TrainConfig
    from nin_explorer.runs.worker import execute_run

    home = tmp_path_factory.mktemp("trained")
    cfg = TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 2,
                                 "batch_size": 128, "lr": 0.1, "max_train_examples": 8000,
                                 "max_test_examples": 1000, "seed": 0})
    old = os.environ.get("NIN_EXPLORER_DATA")
    os.environ["NIN_EXPLORER_DATA"] = str(shapes_root)
    try:
        store = RunStore(home)
        run_id = store.create_run(TINY.to_dict(), cfg.to_dict(), name="tiny on shapes",
                                  status="running")
        execute_run(store, run_id)
    finally:
        if old is None:
            os.environ.pop("NIN_EXPLORER_DATA")
        else:
            os.environ["NIN_EXPLORER_DATA"] = old
    return home


@pytest.fixture
def use_trained_home(trained_home, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(trained_home))
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    return trained_home


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches():
    """cache_resource (job manager, data sets) outlives AppTest instances; start clean.
    Only where a test loaded streamlit: the core's tests also run without it (on a GPU box)."""
    yield
    st = sys.modules.get("streamlit")
    if st is None:
        return
    st.cache_resource.clear()
    st.cache_data.clear()


def wait_for(predicate, timeout: float, what: str):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
