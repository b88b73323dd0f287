"""AppTest of the Ablations and Compare pages with real worker processes on `shapes`."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.runs.store import RunStore


@pytest.fixture
def data_env(shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))  # workers inherit it


def page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(path)
    return at.run()


def test_exercises_are_listed_with_their_plans():
    at = page("pages/ablation.py")
    assert not at.exception
    titles = " ".join(m.value for m in at.markdown)
    for words in ("Exercise 1", "Exercise 2", "Exercise 4", "batch-size puzzle"):
        assert words in titles
    assert "No ablation yet" in at.info[0].value


def test_custom_ablation_queues_and_finishes(data_env):
    at = page("pages/ablation.py")
    at.number_input(key="a.epochs").set_value(1)
    at.number_input(key="a.subset").set_value(512)
    at.multiselect(key="a.values.n_extra_1x1").set_value([0, 1]).run()
    assert not at.exception
    assert "2 runs" in " ".join(c.value for c in at.caption)
    at.number_input(key="a.at_once").set_value(2).run()        # both variants side by side
    try:
        at.button(key="a.queue").click().run()
        deadline = time.monotonic() + 240
        while True:
            text = at.get("progress")[0].proto.text
            if text.startswith("2 of 2"):
                break
            assert time.monotonic() < deadline, text
            time.sleep(2)
            at.run()
    finally:
        at.number_input(key="a.at_once").set_value(1).run()    # the manager is shared by tests
    assert not at.exception
    runs = sorted(RunStore().list_runs(), key=lambda r: r["id"])[-2:]
    assert runs[1]["started"] < runs[0]["ended"]                 # they overlapped
    table = at.dataframe[0].value
    assert len(table) == 2
    assert set(table["status"]) == {"1 completed"}
    assert table["params"].iloc[0] != table["params"].iloc[1]
    assert at.get("download_button")


def test_many_runs_warned_and_bad_plan_refused():
    at = page("pages/ablation.py")
    at.multiselect(key="a.factors").set_value(["lr", "batch_size"]).run()
    at.slider(key="a.seeds").set_value(2).run()
    assert not at.exception
    assert "18 runs" in at.warning[0].value
    at.multiselect(key="a.values.lr").set_value([]).run()
    assert "at least one value" in at.error[0].value


def test_the_plans_widgets_read_their_bounds_from_the_core():
    from nin_explorer.net.controls import ABLATION_LIMITS
    at = page("pages/ablation.py")
    for widget, name in ((at.number_input(key="a.epochs"), "epochs"),
                         (at.number_input(key="a.subset"), "max_train_examples"),
                         (at.slider(key="a.seeds"), "seeds")):
        assert (widget.min, widget.max) == ABLATION_LIMITS[name], name


def test_compare_needs_two_runs_and_shows_differences(use_trained_home):
    at = page("pages/compare.py")
    assert not at.exception
    assert "at least two runs" in at.info[0].value


# --- a shared server: who runs the queue (no worker starts in these) ---

from classroom import ALICE, TOKEN, classroom, open_page  # noqa: E402,F401 (a fixture)

def ablation_page(**query) -> AppTest:
    return open_page("pages/ablation.py", **query)


def test_a_visitor_cannot_change_runs_at_once_or_clear_the_queue(classroom):
    at = ablation_page(v=ALICE)
    assert not at.exception
    assert at.number_input(key="a.at_once").disabled
    assert not [b for b in at.button if b.key == "a.clear"]
    assert "Only the teacher sets it" in at.number_input(key="a.at_once").help
    # (a hand-made message that changed it anyway is refused by the job manager: test_jobs.py)


def test_the_teacher_sets_runs_at_once_and_clears_the_queue(classroom):
    at = ablation_page(v=ALICE)
    at.button(key="a.ex.last-block").click().run()                 # Alice queues 4 runs
    assert len(RunStore().list_runs("queued")) == 4
    at = ablation_page(teacher=TOKEN)
    assert not at.number_input(key="a.at_once").disabled
    try:
        at.number_input(key="a.at_once").set_value(3).run()
        assert ablation_page(teacher=TOKEN).number_input(key="a.at_once").value == 3
    finally:
        at.number_input(key="a.at_once").set_value(1).run()
    at.button(key="a.clear").click().run()
    assert not at.exception
    assert {r["status"] for r in RunStore().list_runs()} == {"stopped"}


def test_an_ablation_past_the_visitors_quota_is_refused_whole(classroom, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_MAX_QUEUED_PER_VISITOR", "4")
    at = ablation_page(v=ALICE)
    at.button(key="a.ex.lr-epochs").click().run()                  # 6 runs
    assert not at.exception
    assert "at most 4" in at.error[0].value and "this would add 6" in at.error[0].value
    assert RunStore().list_runs() == []
    at.button(key="a.ex.last-block").click().run()                 # 4 runs fit
    assert len(RunStore().list_runs()) == 4
    assert "4 of 4 queued" in " ".join(c.value for c in at.sidebar.caption)
