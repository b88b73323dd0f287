"""AppTest of the Train page on a shared server: who sees which Stop button and which error.

No worker starts (`_start_queued` is replaced), so runs stay queued; the teacher's token is set,
so the server is not a single user's.
"""
import pytest

from classroom import ALICE, BOB, TOKEN, classroom, open_page  # noqa: F401 (a fixture)
from nin_explorer.runs.jobs import JobManager
from nin_explorer.net.presets import get_preset
from nin_explorer.runs.store import RunStore
from nin_explorer.learn.config import TrainConfig

TINY = get_preset("tiny")
CFG = TrainConfig.from_dict({"recipe": "modern", "epochs": 1, "max_train_examples": 256})
SECRET = "/srv/classroom/secret-path/nin_explorer/runs/worker.py"
pytestmark = pytest.mark.usefixtures("classroom")


def train_page(**query):
    return open_page("pages/train.py", **query)


def queued(owner: str | None) -> int:
    return RunStore().create_run(TINY.to_dict(), CFG.to_dict(), name="queued", owner=owner)


def text_of(at) -> str:
    parts = [e.value for kind in ("error", "markdown", "caption", "code", "info") for e in
             getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_a_visitor_sees_no_stop_button_on_another_visitors_run():
    theirs, mine = queued(BOB), queued(ALICE)
    at = train_page(v=ALICE, run=str(theirs))
    assert not at.exception
    assert not [b for b in at.button if b.key == "t.stop"]
    assert "Only the visitor who launched this run" in text_of(at)
    at = train_page(v=ALICE, run=str(mine))
    at.button(key="t.stop").click().run()
    assert RunStore().get_run(mine)["status"] == "stopped"
    assert RunStore().get_run(theirs)["status"] == "queued"


def test_the_teacher_sees_every_stop_button():
    theirs = queued(BOB)
    at = train_page(teacher=TOKEN, run=str(theirs))
    assert "You are the teacher" in " ".join(c.value for c in at.sidebar.caption)
    at.button(key="t.stop").click().run()
    assert RunStore().get_run(theirs)["status"] == "stopped"


def test_a_garbage_teacher_link_makes_a_visitor():
    theirs = queued(BOB)
    at = train_page(teacher=TOKEN[:-1] + "X", run=str(theirs))
    assert not at.exception
    assert "does not match" in at.sidebar.warning[0].value
    assert "You are a visitor" in " ".join(c.value for c in at.sidebar.caption)
    assert not [b for b in at.button if b.key == "t.stop"]
    assert "teacher" not in at.query_params and "v" in at.query_params


def test_runs_launched_by_a_browser_stay_its_own_after_a_reload():
    at = train_page()
    assert not at.exception
    visitor = at.query_params["v"]
    visitor = visitor[0] if isinstance(visitor, list) else visitor
    at.button(key="t.launch").click().run()
    run = RunStore().list_runs()[0]
    assert run["owner"] == visitor and at.selectbox(key="t.open").value == run["id"]
    assert "1 of 6 queued" in " ".join(c.value for c in at.sidebar.caption)
    at.button(key="t.launch").click().run()                  # a second launch opens it too
    assert at.selectbox(key="t.open").value == run["id"] + 1
    reloaded = train_page(v=visitor, run=str(run["id"]))     # the same address, a new session
    assert [b for b in reloaded.button if b.key == "t.stop"]
    stranger = train_page(run=str(run["id"]))                 # the same page without the id
    assert not [b for b in stranger.button if b.key == "t.stop"]


def test_a_visitors_fifth_launch_is_refused_on_the_page(monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_MAX_QUEUED_PER_VISITOR", "4")
    for _ in range(4):
        queued(ALICE)
    at = train_page(v=ALICE)
    at.button(key="t.launch").click().run()
    assert not at.exception
    assert "at most 4" in at.error[0].value
    assert len(RunStore().list_runs()) == 4


def failed_run() -> int:
    """A run whose worker died printing a traceback with this machine's paths."""
    jm = JobManager(poll_s=60)
    jm.close()                                      # only its exit bookkeeping is used
    run_id = jm.store.create_run(TINY.to_dict(), CFG.to_dict(), status="running")
    log = jm.store.log_path(run_id)
    log.parent.mkdir(parents=True)
    log.write_text(f'Traceback (most recent call last):\n  File "{SECRET}", line 9\n'
                   "ModuleNotFoundError: No module named 'torchvision'\n")
    jm._record_exit(run_id, 1, None)
    return run_id


def test_a_failed_run_shows_visitors_one_line_and_the_teacher_the_details():
    run_id = failed_run()
    at = train_page(v=ALICE, run=str(run_id))
    assert not at.exception
    shown = text_of(at)
    assert "The run failed: The worker exited with code 1." in shown
    assert "Traceback" not in shown and SECRET not in shown
    assert not [e for e in at.expander if "only the teacher" in e.label]
    at = train_page(teacher=TOKEN, run=str(run_id))
    assert "The run failed: The worker exited with code 1." == at.error[0].value
    assert [e for e in at.expander if "only the teacher" in e.label]
    assert "Traceback" in at.code[0].value and SECRET in at.code[0].value


def test_one_user_at_home_is_the_teacher_with_no_link(monkeypatch):
    monkeypatch.delenv("NIN_EXPLORER_TEACHER_TOKEN")      # .streamlit/config.toml: 127.0.0.1
    theirs = queued(BOB)
    at = train_page(run=str(theirs))
    assert "You are the teacher" in " ".join(c.value for c in at.sidebar.caption)
    assert "v" not in at.query_params and "teacher" not in at.query_params
    at.button(key="t.stop").click().run()
    assert RunStore().get_run(theirs)["status"] == "stopped"


def test_a_server_for_the_network_without_a_token_has_visitors(monkeypatch):
    import streamlit
    monkeypatch.delenv("NIN_EXPLORER_TEACHER_TOKEN")
    monkeypatch.setattr(streamlit, "get_option", lambda name, _real=streamlit.get_option:
                        "0.0.0.0" if name == "server.address" else _real(name))
    theirs = queued(BOB)
    at = train_page(run=str(theirs))
    assert "You are a visitor" in " ".join(c.value for c in at.sidebar.caption)
    assert not [b for b in at.button if b.key == "t.stop"]


def failed_on(dataset: str, error: str) -> int:
    store = RunStore()
    run_id = store.create_run(TINY.to_dict(), {**CFG.to_dict(), "dataset": dataset},
                              name=f"tiny on {dataset}", owner=ALICE, status="running")
    store.set_status(run_id, "failed", error=error)
    return run_id


def test_the_offline_button_follows_a_missing_download_not_the_words_of_the_error():
    """Offered when the run's data set never reached this machine (here: Fashion-MNIST, not
    downloaded), whatever its error says; not for a run whose error merely names 'shapes'."""
    words = failed_on("shapes", "Unknown data set 'shapes-x'; choose one of 'shapes', ...")
    at = train_page(v=ALICE, run=str(words))
    assert not at.exception
    assert not [b for b in at.button if b.key == "t.offline"]
    download = failed_on("fashion-mnist", "The worker exited with code 1.")
    at = train_page(v=ALICE, run=str(download))
    at.button(key="t.offline").click().run()
    assert not at.exception
    newest = RunStore().list_runs()[0]
    assert newest["config"]["dataset"] == "shapes" and newest["name"] == "tiny on shapes"
    assert newest["status"] == "queued" and at.selectbox(key="t.open").value == newest["id"]


def test_the_settings_read_their_bounds_and_choices_from_the_core():
    from nin_explorer.learn import config
    from nin_explorer.net import controls
    from nin_explorer.net import summary
    at = train_page(v=ALICE)
    assert not at.exception
    bounds = {"t.epochs": "epochs", "t.lr": "lr", "t.subset": "max_train_examples", "t.seed": "seed"}
    for key, name in bounds.items():
        box = at.number_input(key=key)
        assert (box.min, box.max) == controls.TRAIN_LIMITS[name], key
    size = next(b for b in at.number_input if b.key.startswith("t.size."))
    assert (size.min, size.max) == controls.LIMITS["input_size"]
    assert at.select_slider(key="t.batch_size").options == [str(b) for b in controls.TRAIN_BATCH_SIZES]
    for key, choices in (("t.optimizer", config.OPTIMIZERS), ("t.schedule", config.SCHEDULES),
                         ("t.precision", summary.PRECISIONS), ("t.device", config.DEVICES)):
        assert at.selectbox(key=key).options == list(choices), key
