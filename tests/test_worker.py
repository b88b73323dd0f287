"""JobManager + worker processes, for real: queueing, completion, Stop, a killed worker."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, wait_for
from nin_explorer.jobs import JobManager, default_at_once
from nin_explorer.presets import get_preset
from nin_explorer.spec import NetSpec, SpecError
from nin_explorer.store import RunStore, load_checkpoint
from nin_explorer.config import TrainConfig

TINY = get_preset("tiny")


@pytest.fixture
def manager(tmp_path, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))  # the workers inherit it
    jm = JobManager(tmp_path / "home", poll_s=0.1)
    yield jm
    jm.close(stop_runs=True)


def config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({"recipe": "modern", "epochs": 1, "batch_size": 64,
                                  "max_train_examples": 256, "max_test_examples": 256,
                                  "eval_every": 2, **changes})


def finished(jm, run_id):
    run = jm.store.get_run(run_id)
    return run if run["status"] not in ("queued", "running") else None


def test_runs_queue_then_complete_with_metrics(manager):
    first = manager.submit(TINY, config(epochs=2), name="first")
    second = manager.submit(TINY, config(), name="second", group="ablation-1")
    assert manager.store.get_run(first)["status"] == "running"
    assert manager.store.get_run(second)["status"] == "queued"   # one at a time

    run = wait_for(lambda: finished(manager, first), 90, "the first run")
    assert run["status"] == "completed", run
    second_run = wait_for(lambda: finished(manager, second), 90, "the second run")
    assert second_run["status"] == "completed"
    assert second_run["started"] >= run["ended"] - 1.0          # it waited for the first
    assert second_run["group_id"] == "ablation-1"

    assert run["pid"] and run["device"] == "cpu" and run["torch_version"]
    assert 0 <= run["final_test_acc"] <= 1 and run["examples_per_sec"] > 0
    epochs = manager.store.metrics(first, "epoch")
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert epochs[-1]["test_acc"] == run["final_test_acc"]
    assert len(manager.store.metrics(first, "step")) >= 4
    state = load_checkpoint(run["checkpoint"])
    assert state["epoch"] == 2 and NetSpec.from_dict(state["spec"]).blocks[0].batch_norm
    wait_for(lambda: manager.running() == [], 10, "the monitor to reap the workers")


def test_runs_at_once_at_start_up_come_from_the_environment_or_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for value, expected in (("3", 3), ("0", 1), ("999", 16), ("16", 16)):
        monkeypatch.setenv("NIN_EXPLORER_MAX_CONCURRENT", value)
        assert default_at_once() == expected, value
    cpu_default = 2 if os.cpu_count() >= 2 else 1
    for garbage in ("", " 4 ", "x", "-2", "1.5", "²", "1" * 5000, "2; rm -rf /"):
        monkeypatch.setenv("NIN_EXPLORER_MAX_CONCURRENT", garbage)
        assert default_at_once() == cpu_default, garbage
    monkeypatch.delenv("NIN_EXPLORER_MAX_CONCURRENT")
    assert default_at_once() == cpu_default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_at_once() == 1                   # with CUDA: torchrun over the GPUs


def test_raising_runs_at_once_starts_queued_runs_with_a_share_of_the_cores(manager,
                                                                              monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    first = manager.submit(TINY, config(epochs=100), name="long")
    second = manager.submit(TINY, config(), name="short")
    assert manager.store.get_run(second)["status"] == "queued"
    assert "OMP_NUM_THREADS" not in manager.worker_env()      # one at a time: every core
    manager.set_max_concurrent(2)
    assert manager.store.get_run(second)["status"] == "running"   # started at once
    assert manager.worker_env()["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 2))
    assert "OMP_NUM_THREADS" not in manager.worker_env(sharing=1)  # a run alone: every core
    run = wait_for(lambda: finished(manager, second), 90, "the second run")
    assert run["status"] == "completed", run
    assert manager.store.get_run(first)["status"] == "running"    # both trained side by side
    for bad in (0, 17, 1.5, True):
        with pytest.raises(ValueError, match="from 1 to 16"):
            manager.set_max_concurrent(bad)
    manager.stop(first)


def test_stop_is_honoured_within_two_seconds(manager):
    run_id = manager.submit(TINY, config(epochs=100, max_train_examples=None))
    wait_for(lambda: manager.store.metrics(run_id, "step"), 60, "training to start")
    asked = time.monotonic()
    manager.stop(run_id)
    run = wait_for(lambda: finished(manager, run_id), 10, "the run to stop")
    assert time.monotonic() - asked < 2.0
    assert run["status"] == "stopped" and run["stop_requested"]
    assert manager.store.metrics(run_id, "step")                 # what it learned so far stays


def test_killed_worker_is_interrupted_and_keeps_metrics(manager):
    run_id = manager.submit(TINY, config(epochs=100, max_train_examples=None))
    wait_for(lambda: manager.store.metrics(run_id, "step"), 60, "training to start")
    os.kill(manager.store.get_run(run_id)["pid"], signal.SIGKILL)
    run = wait_for(lambda: finished(manager, run_id), 10, "the dead worker to be noticed")
    assert run["status"] == "interrupted" and "SIGKILL" in run["reason"]
    assert manager.store.metrics(run_id, "step")


def test_failing_run_records_its_error_and_the_queue_moves_on(manager):
    bad = manager.submit(TINY, config(dataset="folder:no-such-folder"))
    good = manager.submit(TINY, config(max_train_examples=64))
    run = wait_for(lambda: finished(manager, bad), 60, "the bad run to fail")
    assert run["status"] == "failed" and "no-such-folder" in run["error"]
    assert wait_for(lambda: finished(manager, good), 90, "the next run")["status"] == "completed"


def test_stopping_a_queued_run_and_reconciling_on_start(tmp_path):
    store = RunStore(tmp_path / "home")
    orphan = store.create_run(TINY.to_dict(), config().to_dict(), status="running")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.set_process(orphan, dead.pid, "1")
    blocker = store.create_run(TINY.to_dict(), config().to_dict(), status="running")
    store.set_process(blocker, os.getpid(), None)              # a live CLI run holds the slot
    jm = JobManager(tmp_path / "home")
    try:
        assert store.get_run(orphan)["status"] == "interrupted"  # reconciled on construction
        queued = jm.submit(TINY, config())
        assert store.get_run(queued)["status"] == "queued"
        assert jm.stop(queued) == "stopped" and jm.running() == []
    finally:
        jm.close()


def test_submit_refuses_a_network_that_does_not_fit(tmp_path):
    jm = JobManager(tmp_path / "home")
    try:
        with pytest.raises(SpecError, match="Use an input of at least"):
            jm.submit(TINY, config(input_size=3))
        assert jm.store.list_runs() == []
    finally:
        jm.close()


def test_worker_command_line_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nin_explorer.worker", "--home",
                          str(tmp_path), "--run-id", "7"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "there is no run 7" in out.stderr


# --- the metric buffer ---

def test_metric_rows_stay_buffered_until_a_write_commits(tmp_path, monkeypatch):
    import sqlite3

    from nin_explorer.worker import StoreReporter
    store = RunStore(tmp_path / "home")
    run_id = store.create_run({"name": "tiny"}, {}, status="running")
    reporter = StoreReporter(store, run_id)
    real_add, calls = store.add_metrics, []

    def locked_once(run, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        real_add(run, rows)
    monkeypatch.setattr(store, "add_metrics", locked_once)
    step = {"kind": "step", "step": 1, "epoch": 0.5, "train_loss": 1.0}
    with pytest.raises(sqlite3.OperationalError):
        reporter.report(step)
    reporter.report({**step, "step": 2})
    assert calls == [1, 2]
    assert [m["step"] for m in store.metrics(run_id, "step")] == [1, 2]


def test_unexpected_error_shows_visitors_one_line_and_keeps_the_detail(tmp_path, monkeypatch):
    """An exception we did not foresee may carry paths: its text goes to error_detail (the
    teacher's), and every visitor reads one line without it."""
    import nin_explorer.worker as worker_module

    def boom(*args, **kwargs):
        raise RuntimeError("cannot open /home/teacher/secret/cache.bin")
    monkeypatch.setattr(worker_module, "load_dataset", boom)
    store = RunStore(tmp_path / "home")
    run_id = store.create_run(TINY.to_dict(), config().to_dict(), status="running")
    with pytest.raises(RuntimeError):
        worker_module.execute_run(store, run_id)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "/home/teacher" not in run["error"] and "\n" not in run["error"]
    assert "RuntimeError" in run["error"]
    assert "/home/teacher/secret/cache.bin" in run["error_detail"]
