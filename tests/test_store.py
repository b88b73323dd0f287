"""The SQLite run store: WAL, atomic claims, concurrent writers, reconciliation, migration."""
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from nin_explorer.base.procs import process_start
from nin_explorer.runs.store import RunStore, default_home

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
    return (f"from nin_explorer.runs.store import RunStore\n"
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
    import nin_explorer.runs.store as store_module
    monkeypatch.setattr(store_module, "WRITE_RETRY_S", 0.0)   # one try: busy_timeout only
    run_id = store.create_run(SPEC, CONFIG)
    holder = hold_write_lock(store, 6.5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.heartbeat(run_id)
    holder.join()


# --- owners (a shared server's visitors) ---

def test_an_older_database_gains_the_owner_and_error_detail_columns(tmp_path):
    from nin_explorer.runs import tables
    home = tmp_path / "old"
    home.mkdir()
    old_schema = tables.SCHEMA.replace("    checkpoint TEXT,\n    owner TEXT,\n"
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


# --- compatibility: a runs.sqlite written by the release before the columns were derived ---

RELEASED_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, name TEXT,
    spec TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'queued' CHECK
    (status IN ('queued', 'running', 'completed', 'stopped', 'diverged', 'failed',
    'interrupted')), reason TEXT, error TEXT, pid INTEGER, pid_start TEXT, heartbeat REAL,
    started REAL, ended REAL, best_test_acc REAL, final_test_acc REAL, train_loss REAL,
    examples_per_sec REAL, wall_s REAL, device TEXT, git_commit TEXT, torch_version TEXT,
    group_id TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, checkpoint TEXT, owner TEXT,
    error_detail TEXT);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_owner ON runs(owner, status);
CREATE TABLE metrics (id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('step', 'epoch')), step INTEGER, epoch REAL,
    train_loss REAL, train_acc REAL, test_loss REAL, test_acc REAL, lr REAL,
    examples_per_sec REAL, elapsed_s REAL, peak_train_memory_bytes INTEGER,
    peak_infer_memory_bytes INTEGER);
CREATE INDEX metrics_run ON metrics(run_id, kind, id);
"""


def table_info(path) -> dict:
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f"PRAGMA table_info({t})").fetchall() for t in ("runs", "metrics")}
    finally:
        con.close()


def test_a_released_database_opens_and_matches_the_derived_schema(tmp_path, store):
    home = tmp_path / "released"
    home.mkdir()
    con = sqlite3.connect(home / "runs.sqlite")
    con.executescript(RELEASED_SCHEMA)
    con.execute("INSERT INTO runs (created, name, spec, config, status, group_id, git_commit, "
                "started, heartbeat, owner) VALUES (1, 'old', '{\"name\": \"tiny\"}', "
                "'{\"epochs\": 1}', 'completed', 'g', 'abc', 1, 1, NULL)")
    con.execute("INSERT INTO metrics (run_id, kind, step, test_acc) VALUES (1, 'epoch', 3, 0.5)")
    con.commit()
    con.close()
    assert table_info(store.db_path) == table_info(home / "runs.sqlite")  # same columns, types
    released = RunStore(home)
    run = released.get_run(1)
    assert (run["name"], run["spec"], run["config"], run["group_id"]) == \
        ("old", SPEC, CONFIG, "g")
    assert run["stop_requested"] is False and run["status"] == "completed"
    assert released.metrics(1, "epoch")[0]["test_acc"] == 0.5
    new = released.create_run(SPEC, CONFIG, name="new", status="running", commit="def")
    assert released.get_run(new)["git_commit"] == "def" and released.get_run(new)["heartbeat"]


def index_names(path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                          "AND name NOT LIKE 'sqlite_%'")}
    finally:
        con.close()


def test_a_released_database_gets_the_new_indexes(tmp_path, store):
    """A file from the release above gets the group index a new file has (an ablation's runs
    and the list of ablations are looked up by index, not by reading every run)."""
    home = tmp_path / "released"
    home.mkdir()
    con = sqlite3.connect(home / "runs.sqlite")
    con.executescript(RELEASED_SCHEMA)
    con.close()
    assert "runs_group" not in index_names(home / "runs.sqlite")
    RunStore(home)
    assert index_names(home / "runs.sqlite") == index_names(store.db_path)
    assert "runs_group" in index_names(store.db_path)
    con = sqlite3.connect(store.db_path)
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE group_id = 'g' ORDER BY id DESC"))
    con.close()
    assert "runs_group" in plan


def test_groups_newest_first_by_their_latest_run(store):
    for group in ("a", "b", "a", None, "c", "b"):
        store.create_run(SPEC, CONFIG, group=group, status="running")
    assert store.groups() == ["b", "c", "a"]
    assert store.groups(limit=2) == ["b", "c"]
