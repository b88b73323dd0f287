"""Worker processes, for real (started by a JobManager): completion, Stop honoured, a failed
run's error; the metric buffer; the rank start-up that the worker and the CLI share."""
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, wait_for
from nin_explorer.runs.checkpoint import load_checkpoint
from nin_explorer.net.presets import get_preset
from nin_explorer.net.spec import NetSpec
from nin_explorer.runs.store import RunStore
from nin_explorer.runs.worker import run_on_ranks
from test_jobs import config, finished, manager  # noqa: F401  (manager: a fixture)

TINY = get_preset("tiny")


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
    assert run["best_test_acc"] == max(m["test_acc"] for m in manager.store.metrics(first))
    assert run["examples_per_sec"] > 0
    epochs = manager.store.metrics(first, "epoch")
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert epochs[-1]["test_acc"] == run["final_test_acc"]
    assert len(manager.store.metrics(first, "step")) >= 4
    state = load_checkpoint(run["checkpoint"])
    assert state["epoch"] == 2 and NetSpec.from_dict(state["spec"]).blocks[0].batch_norm
    wait_for(lambda: manager.running() == [], 10, "the monitor to reap the workers")


def test_stop_is_honoured_within_two_seconds(manager):
    run_id = manager.submit(TINY, config(epochs=100, max_train_examples=None))
    wait_for(lambda: manager.store.metrics(run_id, "step"), 60, "training to start")
    asked = time.monotonic()
    manager.stop(run_id)
    run = wait_for(lambda: finished(manager, run_id), 10, "the run to stop")
    assert time.monotonic() - asked < 2.0
    assert run["status"] == "stopped" and run["stop_requested"]
    assert manager.store.metrics(run_id, "step")                 # what it learned so far stays


def test_failing_run_records_its_error_and_the_queue_moves_on(manager):
    bad = manager.submit(TINY, config(dataset="folder:no-such-folder"))
    good = manager.submit(TINY, config(max_train_examples=64))
    run = wait_for(lambda: finished(manager, bad), 60, "the bad run to fail")
    assert run["status"] == "failed" and "no-such-folder" in run["error"]
    assert wait_for(lambda: finished(manager, good), 90, "the next run")["status"] == "completed"


def test_worker_command_line_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nin_explorer.runs.worker", "--home",
                          str(tmp_path), "--run-id", "7"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "there is no run 7" in out.stderr


# --- the metric buffer ---

def test_metric_rows_stay_buffered_until_a_write_commits(tmp_path, monkeypatch):
    import sqlite3

    from nin_explorer.runs.worker import StoreReporter
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
    import nin_explorer.runs.worker as worker_module

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


# --- the start-up the worker and the CLI's `train` share ---

def test_one_start_up_runs_rank_zero_and_restores_the_signal_handlers(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)          # a lone process, no torchrun
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    seen = []

    def on_sigterm(signum, frame):
        pass

    def main_rank(gate, stop):
        seen.append((gate.group, stop.is_set(), signal.getsignal(signal.SIGTERM)))
        return 7
    assert run_on_ranks(main_rank, on_sigterm=on_sigterm) == 7
    assert seen == [(None, False, on_sigterm)]
    assert {sig: signal.getsignal(sig) for sig in before} == before
