import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NIN_EXPLORER_TESTING", "1")


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
