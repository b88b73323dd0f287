"""Faults, caused on purpose: a worker killed mid-epoch, the app restarted under a running worker,
CUDA out of memory, two sessions launching at the same moment, the database locked mid-run. Each must end in a consistent
store (integrity_check, nothing earlier lost), an accurate status and a page that still renders.

tests/test_worker.py already covers the plain cases (a killed worker is 'interrupted', a dead
orphan is reconciled when a manager starts, Stop within 2 s); these go further.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT, wait_for
from nin_explorer.learn import train as train_module
from nin_explorer.runs.jobs import RECONCILE_EVERY_S, JobManager
from nin_explorer.look.maps import open_checkpoint
from nin_explorer.net.presets import TINY
from nin_explorer.base.procs import process_alive
from nin_explorer.runs.store import RunStore
from nin_explorer.runs.tables import ACTIVE
from nin_explorer.learn.config import TrainConfig
from nin_explorer.runs.worker import HEARTBEAT_S, execute_run
from test_reliability import assert_intact, earlier  # noqa: F401  (earlier: a fixture)

LONG = {"epochs": 100, "max_train_examples": None}   # runs that are ended by the test


def config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 1,
                                  "batch_size": 64, "max_train_examples": 256,
                                  "max_test_examples": 256, "eval_every": 2, **changes})


def status(store: RunStore, run_id: int) -> str:
    return store.get_run(run_id)["status"]


def ended(store: RunStore, run_id: int):
    run = store.get_run(run_id)
    return run if run["status"] not in ACTIVE else None


def train_page(run_id: int) -> AppTest:
    """The Train page on the current NIN_EXPLORER_HOME, opened on one run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/train.py")
    at.query_params["run"] = str(run_id)
    return at.run()


def page_says(at: AppTest) -> str:
    assert not at.exception, at.exception
    return at.get("progress")[0].proto.text


@pytest.fixture
def home(earlier, shapes_root):
    """The copied store of test_reliability's `earlier`; every worker left alive is killed."""
    path, before = earlier                    # NIN_EXPLORER_DATA is shapes_root: workers inherit
    yield path, before
    for run in RunStore(path).list_runs("running"):
        if process_alive(run["pid"], run["pid_start"]):
            os.killpg(run["pid"], signal.SIGKILL)


def kill_and_reap(pid: int) -> None:
    """SIGKILL a worker this process started and collect it, as init would for a dead server."""
    os.killpg(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # the manager's monitor reaped it first
        pass


# --- a worker killed with SIGKILL mid-epoch ---

def test_sigkill_mid_epoch_keeps_the_last_checkpoint_and_the_queue_moves_on(home):
    path, before = home
    jm = JobManager(path, poll_s=0.1)
    try:
        run_id = jm.submit(TINY, config(epochs=100, max_train_examples=4000))
        store = jm.store
        wait_for(lambda: [s for s in store.metrics(run_id, "step") if s["epoch"] > 1.2]
                 and store.checkpoint_path(run_id).exists(), 90, "epoch 2 to be under way")
        os.kill(store.get_run(run_id)["pid"], signal.SIGKILL)
        run = wait_for(lambda: ended(store, run_id), 10, "the monitor to notice")
        assert run["status"] == "interrupted" and "SIGKILL" in run["reason"]

        epochs = store.metrics(run_id, "epoch")
        assert epochs and [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
        ckpt = open_checkpoint(store.checkpoint_path(run_id))        # whole, not torn
        assert 1 <= ckpt.epoch <= len(epochs)
        assert_intact(path, before)

        nxt = jm.submit(TINY, config())                               # the app still trains
        assert wait_for(lambda: ended(store, nxt), 90, "the next run")["status"] == "completed"
    finally:
        jm.close(stop_runs=True)
    assert "interrupted" in page_says(train_page(run_id))
    assert_intact(path, before)


# --- the app restarted while a worker runs ---

def test_restarted_app_adopts_a_live_worker_and_can_stop_it(home, monkeypatch):
    path, before = home
    monkeypatch.setenv("NIN_EXPLORER_MAX_CONCURRENT", "1")  # the page's manager: one at a time too
    first = JobManager(path, poll_s=0.1)
    run_id = first.submit(TINY, config(**LONG))
    store = first.store
    wait_for(lambda: store.metrics(run_id, "step"), 90, "training to start")
    first.close()                              # the server goes away; its worker trains on

    second = JobManager(path, poll_s=0.1)      # the restarted server's manager
    try:
        assert status(store, run_id) == "running" and second.running() == []
        beat = store.get_run(run_id)["heartbeat"]
        wait_for(lambda: store.get_run(run_id)["heartbeat"] > beat, 3 * HEARTBEAT_S,
                 "a heartbeat after the restart")
        assert "running" in page_says(train_page(run_id))

        waiting = second.submit(TINY, config())
        time.sleep(0.5)
        assert status(store, waiting) == "queued"          # the adopted run holds the slot

        assert second.stop(run_id) == "running"
        run = wait_for(lambda: ended(store, run_id), 15, "the adopted run to stop")
        assert run["status"] == "stopped" and store.metrics(run_id, "step")
        done = wait_for(lambda: ended(store, waiting), 90, "the queued run")
        assert done["status"] == "completed" and done["started"] >= run["ended"] - 1.0
    finally:
        second.close(stop_runs=True)
    assert_intact(path, before)


def test_restarted_app_marks_a_vanished_worker_interrupted(home):
    path, before = home
    first = JobManager(path, poll_s=0.1)
    run_id = first.submit(TINY, config(**LONG))
    store = first.store
    wait_for(lambda: store.metrics(run_id, "step"), 90, "training to start")
    first.close()

    second = JobManager(path, poll_s=0.1)
    try:
        assert status(store, run_id) == "running"
        kill_and_reap(store.get_run(run_id)["pid"])       # not second's child: no exit code
        run = wait_for(lambda: ended(store, run_id), RECONCILE_EVERY_S + 5,
                       "the periodic reconcile to notice")
        assert run["status"] == "interrupted" and "is gone" in run["reason"]
        assert store.metrics(run_id, "step")
    finally:
        second.close()
    third = JobManager(path)                               # and a later start agrees
    third.close()
    assert status(store, run_id) == "interrupted"
    assert "interrupted" in page_says(train_page(run_id))
    assert_intact(path, before)


# --- CUDA out of memory, simulated on the CPU ---

def test_cuda_out_of_memory_fails_the_run_clearly_and_keeps_its_metrics(home, monkeypatch):
    path, before = home
    store = RunStore(path)
    run_id = store.create_run(TINY.to_dict(), config(epochs=3).to_dict(), status="running")
    real_build, calls = train_module.build_model, []

    def build_then_run_out_of_memory(spec):
        model = real_build(spec)

        def forward_hook(module, args):
            if module.training:
                calls.append(1)
                if len(calls) == 6:                 # 4 steps per epoch: in the second epoch
                    raise torch.cuda.OutOfMemoryError(
                        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total)")
        model.register_forward_pre_hook(forward_hook)
        return model

    monkeypatch.setattr(train_module, "build_model", build_then_run_out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        execute_run(store, run_id)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("The GPU ran out of memory. Lower the batch size")
    assert [e["epoch"] for e in store.metrics(run_id, "epoch")] == [1]   # kept
    assert store.metrics(run_id, "step")
    assert open_checkpoint(store.checkpoint_path(run_id)).epoch == 1
    at = train_page(run_id)
    assert "failed" in page_says(at)
    assert any("ran out of memory" in e.value for e in at.error)
    assert_intact(path, before)


# --- two sessions launching at the same moment ---

@pytest.mark.parametrize("managers", [1, 2], ids=["one-server", "two-servers"])
def test_two_sessions_launching_at_once_queue_one_behind_the_other(home, managers):
    path, before = home
    jms = [JobManager(path, poll_s=0.1) for _ in range(managers)]
    store = jms[0].store
    go, ids, errors = threading.Barrier(2), [], []
    most_running, sampling = [0], threading.Event()

    def session(i: int) -> None:
        try:
            go.wait()
            ids.append(jms[i % managers].submit(TINY, config(), name=f"session {i}"))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    def sample() -> None:
        while not sampling.is_set():
            most_running[0] = max(most_running[0], len(store.list_runs("running")))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors and len(ids) == 2
        assert sorted(status(store, i) for i in ids) == ["queued", "running"]
        runs = [wait_for(lambda i=i: ended(store, i), 120, f"run {i}") for i in sorted(ids)]
    finally:
        sampling.set()
        sampler.join()
        for jm in jms:
            jm.close(stop_runs=True)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert most_running[0] == 1
    first, second = sorted(runs, key=lambda r: r["started"])
    assert second["started"] >= first["ended"] - 1.0
    assert {r["name"] for r in runs} == {"session 0", "session 1"}
    at = train_page(runs[-1]["id"])
    assert "completed" in page_says(at)
    assert len(at.dataframe[-1].value) == 1 + len(runs)   # the earlier run and both new ones
    assert_intact(path, before)


# --- the database locked by another process for 10 s mid-run ---

HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


@pytest.mark.slow
def test_database_locked_10_s_mid_run_loses_no_metric(tmp_path, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    store = RunStore(tmp_path / "locked")
    run_id = store.create_run(TINY.to_dict(), config(epochs=3, max_train_examples=2000).to_dict(),
                              status="running")
    reported, errors = [], []   # what train() reported (the oracle), and what execute_run raised

    def run() -> None:
        try:
            execute_run(store, run_id, on_event=lambda e: reported.append((time.monotonic(), e)))
        except BaseException as e:  # noqa: BLE001  (asserted below)
            errors.append(e)

    trainer = threading.Thread(target=run)
    trainer.start()
    try:
        wait_for(lambda: store.metrics(run_id, "step"), 90, "the first step rows")
        locker = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store.db_path), "10"],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        assert status(store, run_id) == "running"
    finally:
        trainer.join(120)
    assert locker.wait(5) == 0 and not trainer.is_alive()
    assert not errors, errors
    run = store.get_run(run_id)
    assert run["status"] == "completed", run
    assert any(locked_at < t < locked_at + 10 for t, _ in reported)   # it trained into the lock
    for kind in ("step", "epoch"):
        sent = [e["step"] for _, e in reported if e["kind"] == kind]
        assert sent and [r["step"] for r in store.metrics(run_id, kind)] == sent, kind
    assert len([e for _, e in reported if e["kind"] == "epoch"]) == 3
