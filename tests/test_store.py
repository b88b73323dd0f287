"""The SQLite run store: WAL, atomic claims, concurrent writers, reconciliation, checkpoints."""
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import ROOT
from nin_explorer.store import (RunStore, StoreError, default_home, load_checkpoint,
                                process_alive, process_start, save_checkpoint)

SPEC = {"name": "tiny"}
CONFIG = {"epochs": 1}


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def test_default_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x"
    assert RunStore().db_path == tmp_path / "x" / "runs.sqlite"
    monkeypatch.delenv("NIN_EXPLORER_HOME")
    assert default_home().parts[-2:] == (".cache", "nin-explorer")


def test_database_is_in_wal_mode(store):
    con = sqlite3.connect(store.db_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    RunStore(store.home)  # opening again keeps everything
    assert store.list_runs() == []


def test_queue_claims_oldest_first_and_respects_the_limit(store):
    a = store.create_run(SPEC, CONFIG, name="a", group="g1")
    b = store.create_run(SPEC, CONFIG, name="b")
    assert store.get_run(a)["status"] == "queued"
    first = store.claim_next(max_running=1)
    assert first["id"] == a and first["status"] == "running" and first["started"]
    assert store.claim_next(max_running=1) is None            # one at a time
    assert store.claim_next(max_running=2)["id"] == b
    assert store.claim_next(max_running=5) is None            # nothing queued
    assert [r["id"] for r in store.list_runs()] == [b, a]      # newest first
    assert [r["id"] for r in store.list_runs(group="g1")] == [a]
    assert store.get_run(a)["spec"] == SPEC and store.get_run(99) is None


def test_status_compare_and_set_and_results(store):
    run_id = store.create_run(SPEC, CONFIG, status="running")
    assert store.set_status(run_id, "completed", reason="done", expect=("running",),
                            final_test_acc=0.9, best_test_acc=0.91, wall_s=3.0)
    # a late writer (a monitor that saw the process exit) cannot overwrite the outcome
    assert not store.set_status(run_id, "failed", error="late", expect=("running",))
    run = store.get_run(run_id)
    assert (run["status"], run["reason"], run["error"]) == ("completed", "done", None)
    assert run["final_test_acc"] == 0.9 and run["ended"] >= run["started"]
    with pytest.raises(ValueError):
        store.set_status(run_id, "exploded")
    with pytest.raises(ValueError):
        store.set_status(run_id, "completed", accuracy=1.0)


def test_stop_request(store):
    queued = store.create_run(SPEC, CONFIG)
    running = store.create_run(SPEC, CONFIG, status="running")
    assert store.request_stop(queued) == "stopped"            # never starts
    assert store.claim_next(5) is None
    assert not store.stop_requested(running)
    assert store.request_stop(running) == "running"           # the worker sees the flag
    assert store.stop_requested(running) and store.get_run(running)["stop_requested"]


def test_metrics_batches_and_incremental_reads(store):
    run_id = store.create_run(SPEC, CONFIG, status="running")
    store.add_metrics(run_id, [{"kind": "step", "step": s, "train_loss": 1 / s} for s in (1, 2)])
    store.add_metrics(run_id, [{"kind": "epoch", "epoch": 1, "test_acc": 0.5,
                                "peak_train_memory_bytes": 2**40, "memory_basis": "ignored"}])
    store.add_metrics(run_id, [])
    steps = store.metrics(run_id, "step")
    assert [m["step"] for m in steps] == [1, 2] and steps[1]["train_loss"] == 0.5
    store.add_metrics(run_id, [{"kind": "step", "step": 3, "train_loss": 0.3}])
    assert [m["step"] for m in store.metrics(run_id, "step", after_id=steps[-1]["id"])] == [3]
    epoch = store.metrics(run_id, "epoch")
    assert epoch[0]["test_acc"] == 0.5 and epoch[0]["peak_train_memory_bytes"] == 2**40


def _writer(home: str, run_id: int, n: int) -> str:
    return (f"from nin_explorer.store import RunStore\n"
            f"s = RunStore({home!r})\n"
            f"for i in range({n}):\n"
            f"    s.add_metrics({run_id}, [{{'kind': 'step', 'step': i}}] * 5)\n"
            f"    s.heartbeat({run_id})\n"
            f"    s.stop_requested({run_id})\n")


def test_concurrent_writers_from_processes_and_threads(store):
    run_id = store.create_run(SPEC, CONFIG, status="running")
    procs = [subprocess.Popen([sys.executable, "-c", _writer(str(store.home), run_id, 60)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = []

    def thread_writer():
        try:
            for i in range(60):
                store.add_metrics(run_id, [{"kind": "epoch", "epoch": i}])
                store.list_runs()
        except sqlite3.Error as e:  # pragma: no cover - the failure we test for
            errors.append(e)

    threads = [threading.Thread(target=thread_writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    assert errors == []
    assert len(store.metrics(run_id, "step")) == 2 * 60 * 5
    assert len(store.metrics(run_id, "epoch")) == 2 * 60


def test_claims_are_atomic_across_threads(store):
    ids = [store.create_run(SPEC, CONFIG) for _ in range(3)]
    claimed = []
    barrier = threading.Barrier(6)

    def claim():
        barrier.wait()
        run = store.claim_next(max_running=2)
        if run:
            claimed.append(run["id"])

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids[:2]


def test_reconcile_stale_runs(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = store.create_run(SPEC, CONFIG, status="running")
    store.set_process(me, os.getpid(), process_start(os.getpid()))
    gone = store.create_run(SPEC, CONFIG, status="running")
    store.set_process(gone, dead.pid, "12345")
    reused = store.create_run(SPEC, CONFIG, status="running")   # same pid, another process
    store.set_process(reused, os.getpid(), "1")
    silent = store.create_run(SPEC, CONFIG, status="running")   # no pid yet, no heartbeat
    finished = store.create_run(SPEC, CONFIG, status="running")
    store.set_status(finished, "completed")
    skipped = store.create_run(SPEC, CONFIG, status="running")
    store.set_process(skipped, dead.pid, None)
    time.sleep(0.05)

    changed = store.reconcile_stale(stale_after_s=0.01, skip=(skipped,))
    assert sorted(changed) == sorted([gone, reused, silent])
    assert store.get_run(me)["status"] == "running"           # alive, however old its heartbeat
    assert store.get_run(gone)["status"] == "interrupted"
    assert "is gone" in store.get_run(gone)["reason"]
    assert "no heartbeat" in store.get_run(silent)["reason"]
    assert store.get_run(finished)["status"] == "completed"
    assert store.get_run(skipped)["status"] == "running"


def test_process_identity():
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(os.getpid(), "not-my-start-time")
    assert not process_alive(None, None)


def test_checkpoints_are_atomic_and_readable(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    state = {"model": {"w": torch.ones(2, 3)}, "spec": {"name": "tiny"}, "epoch": 1,
             "classes": ["a", "b"]}
    save_checkpoint(state, path)
    assert list(path.parent.iterdir()) == [path]               # no temporary file left
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 1

    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match="not a complete PyTorch checkpoint"):
        load_checkpoint(torn)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(StoreError, match="not a complete PyTorch checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(StoreError, match="missing"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(StoreError, match="not a NiN Explorer checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# --- a locked database: writes wait (bounded), then fail clearly ---

def hold_write_lock(store: RunStore, seconds: float) -> threading.Thread:
    """Another connection holds BEGIN IMMEDIATE for `seconds` (from a thread of its own)."""
    locked = threading.Event()

    def hold():
        con = sqlite3.connect(store.db_path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()
    t = threading.Thread(target=hold)
    t.start()
    locked.wait(5)
    return t


def test_writes_wait_out_a_lock_longer_than_busy_timeout(store):
    run_id = store.create_run(SPEC, CONFIG)
    holder = hold_write_lock(store, 6.5)                  # busy_timeout is 5 s
    start = time.monotonic()
    store.add_metrics(run_id, [{"kind": "step", "step": 1, "epoch": 0.1, "train_loss": 2.0}])
    waited = time.monotonic() - start
    holder.join()
    assert 5 < waited < 12 and [m["step"] for m in store.metrics(run_id, "step")] == [1]


def test_a_lock_held_past_the_retry_budget_fails_the_write(store, monkeypatch):
    import nin_explorer.store as store_module
    monkeypatch.setattr(store_module, "WRITE_RETRY_S", 0.0)   # one try: busy_timeout only
    run_id = store.create_run(SPEC, CONFIG)
    holder = hold_write_lock(store, 6.5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.heartbeat(run_id)
    holder.join()


# --- a save killed midway leaves no tmp file behind for good ---

SAVE_THEN_HANG = """
import os, sys, time, torch
from nin_explorer import store
def hang(fd):
    print("saving", flush=True)
    time.sleep(60)
os.fsync = hang                      # the save stops after writing, before the rename
store.save_checkpoint({"model": {"w": torch.zeros(1000)}, "spec": {}}, sys.argv[1])
"""


def killed_save(path) -> int:
    """Run save_checkpoint(path) in a process and SIGKILL it midway; returns its pid."""
    proc = subprocess.Popen([sys.executable, "-c", SAVE_THEN_HANG, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    proc.kill()
    proc.wait(10)
    return proc.pid


def test_tmp_files_of_a_killed_save_are_removed_by_the_next_save_or_open(store):
    path = store.checkpoint_path(7)
    pid = killed_save(path)
    [leftover] = path.parent.glob(f"checkpoint.pt.tmp-*-{pid}")   # <thread>-<pid>
    assert not path.exists()
    RunStore(store.home)                                       # the store opened again
    assert not leftover.exists()

    leftover.write_bytes(b"half a checkpoint")                # as if killed again
    save_checkpoint({"model": {}, "spec": {}}, path)           # the run's next save
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_a_live_save_keeps_its_tmp_file_unless_it_went_silent(store):
    folder = store.run_dir(3)
    folder.mkdir(parents=True)
    live = folder / f"checkpoint.pt.tmp-{os.getpid()}"         # this process: alive
    live.write_bytes(b"half a checkpoint")
    RunStore(store.home)
    assert live.exists()
    old = time.time() - 3600
    os.utime(live, (old, old))                                 # no write for an hour
    RunStore(store.home)
    assert not live.exists()

# --- owners (a shared server's visitors) ---

def test_an_older_database_gains_the_owner_and_error_detail_columns(tmp_path):
    from nin_explorer import store as store_module
    home = tmp_path / "old"
    home.mkdir()
    old_schema = store_module._SCHEMA.replace("    checkpoint TEXT,\n    owner TEXT,\n"
                                              "    error_detail TEXT\n", "    checkpoint TEXT\n")
    assert "owner" not in old_schema
    con = sqlite3.connect(home / "runs.sqlite")
    con.executescript(old_schema)
    con.execute("INSERT INTO runs (created, spec, config) VALUES (1, '{}', '{}')")
    con.commit()
    con.close()
    stores = []
    threads = [threading.Thread(target=lambda: stores.append(RunStore(home))) for _ in range(4)]
    for t in threads:       # several processes may open it at once: each column is added once
        t.start()
    for t in threads:
        t.join()
    store = RunStore(home)
    old = store.get_run(1)
    assert old["owner"] is None and old["error_detail"] is None and old["status"] == "queued"
    new = store.create_run(SPEC, CONFIG, owner="v" * 20)
    assert store.get_run(new)["owner"] == "v" * 20
    assert store.count_active("v" * 20) == (2, 1) and store.count_active(None) == (2, 1)
    store.set_status(new, "failed", error="one line", error_detail="Traceback ...")
    assert store.get_run(new)["error_detail"] == "Traceback ..."


def test_admit_sees_the_counts_under_the_write_lock_and_can_refuse_a_batch(store):
    store.create_run(SPEC, CONFIG, owner="a" * 20)
    seen = []

    def refuse(active, mine):
        seen.append((active, mine))
        raise ValueError("full")

    with pytest.raises(ValueError, match="full"):
        store.create_runs([{"spec": SPEC, "config": CONFIG}] * 3, owner="a" * 20, admit=refuse)
    assert seen == [(1, 1)] and len(store.list_runs()) == 1
    ids = store.create_runs([{"spec": SPEC, "config": CONFIG, "group": "g"}] * 2, owner="b" * 20,
                            admit=lambda active, mine: None)
    assert [store.get_run(i)["group_id"] for i in ids] == ["g", "g"]
    assert store.clear_queue("cleared") == [1, *ids]
    assert {r["status"] for r in store.list_runs()} == {"stopped"}
