"""Shared by the page tests of a classroom server: a teacher token, two visitors, and a page
opened with URL parameters. Runs stay queued (no worker starts)."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT

TOKEN = "teacher-token-for-page-tests"
ALICE, BOB = "alice-" + "a" * 20, "bob-" + "b" * 20


@pytest.fixture
def classroom(monkeypatch):
    from nin_explorer.runs.jobs import JobManager
    monkeypatch.setenv("NIN_EXPLORER_TEACHER_TOKEN", TOKEN)
    monkeypatch.setattr(JobManager, "_start_queued", lambda self: None)   # runs stay queued


def open_page(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(path)
    return at.run()
