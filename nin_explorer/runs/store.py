"""Where runs live: one SQLite file (runs + metrics) and a folder per run for its files.

The database is the source of truth shared by the app, the worker processes and the CLI:
WAL mode, a short-lived connection per call, `BEGIN IMMEDIATE` for every write, so any thread
or process may call any function. The tables are declared in tables.py, checkpoint files are
checkpoint.py's.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from nin_explorer.base.files import remove_stale_tmp
from nin_explorer.base.places import cache_folder
from nin_explorer.base.procs import process_alive
from nin_explorer.runs.tables import (ACTIVE, FINISHED, JSON_COLUMNS, METRIC_COLUMNS, METRIC_KINDS,
                                      RESULT_COLUMNS, RUN_COLUMNS, SCHEMA, STATUSES,
                                      UPDATABLE_COLUMNS, migrate)

STALE_AFTER_S = 60.0   # a running row with no process and no heartbeat for this long is interrupted
WRITE_RETRY_S = 60.0   # a write waits this long in all for a locked database before it fails
CHECKPOINT_NAME = "checkpoint.pt"
ERROR_DETAIL_CHARS = 2000  # the end of a log or traceback kept for the teacher (error_detail)
LOG_NAME = "worker.log"


def _patiently(con: sqlite3.Connection, sql: str, deadline: float) -> None:
    """Execute `sql`, trying again while the database is locked (each try itself waits up to
    busy_timeout) until `deadline` (time.monotonic()); other errors are raised at once."""
    pause = 0.05
    while True:
        try:
            con.execute(sql)
            return
        except sqlite3.OperationalError as e:
            code = getattr(e, "sqlite_errorcode", 0) & 0xFF   # extended codes: BUSY_SNAPSHOT...
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 1.0)


class StoreError(ValueError):
    """A run or file that does not exist or cannot be read; the message says which."""


def default_home() -> Path:
    """$NIN_EXPLORER_HOME, else the cache folder (~/.cache/nin-explorer)."""
    env = os.environ.get("NIN_EXPLORER_HOME")
    return Path(env).expanduser() if env else cache_folder()


class RunStore:
    """Runs and their metrics in `home`/runs.sqlite, their files in `home`/checkpoints/<id>/."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.db_path = self.home / "runs.sqlite"
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            for folder in self.home.glob("checkpoints/*/"):
                remove_stale_tmp(folder, CHECKPOINT_NAME)
            with self._connect() as con:
                if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone():
                    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        con.execute("PRAGMA journal_mode=WAL")    # persists in the file
                    con.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
                migrate(con)
        except (OSError, sqlite3.Error) as e:                 # a read-only or misplaced folder
            raise StoreError(f"Cannot keep runs in {self.home} ({e}); set NIN_EXPLORER_HOME "
                             "(or --home) to a writable folder.") from None

    # --- connections ---
    @contextmanager
    def _connect(self):
        con = sqlite3.connect(self.db_path, timeout=5.0, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout=5000")
            con.execute("PRAGMA synchronous=NORMAL")       # WAL: safe against app crashes
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self):
        """A write transaction: BEGIN IMMEDIATE takes the write lock before any read. A locked
        database is waited for, with backoff, up to WRITE_RETRY_S in all (then the error)."""
        deadline = time.monotonic() + WRITE_RETRY_S
        with self._connect() as con:
            _patiently(con, "BEGIN IMMEDIATE", deadline)
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            _patiently(con, "COMMIT", deadline)   # busy only without WAL (readers hold locks)

    # --- files ---
    def run_dir(self, run_id: int) -> Path:
        return self.home / "checkpoints" / str(int(run_id))

    def checkpoint_path(self, run_id: int) -> Path:
        return self.run_dir(run_id) / CHECKPOINT_NAME

    def log_path(self, run_id: int) -> Path:
        return self.run_dir(run_id) / LOG_NAME

    # --- runs ---
    def create_run(self, spec: dict, config: dict, name: str | None = None,
                   group: str | None = None, status: str = "queued",
                   commit: str | None = None, owner: str | None = None,
                   admit: Callable[[int, int], None] | None = None) -> int:
        """A new run (queued unless told otherwise); returns its id. `owner`, `admit`: as
        for create_runs."""
        return self.create_runs([{"spec": spec, "config": config, "name": name, "group": group}],
                                status=status, commit=commit, owner=owner, admit=admit)[0]

    def create_runs(self, runs: list[dict], status: str = "queued", commit: str | None = None,
                    owner: str | None = None,
                    admit: Callable[[int, int], None] | None = None) -> list[int]:
        """New runs (dicts of spec, config, name, group) in one transaction; returns their ids.

        `owner` is who launched them (None: the CLI or an older app). `admit(active, of_owner)`
        is called under the write lock with the counts of queued and running runs, all and
        the owner's; it raises to refuse the whole batch, so concurrent callers cannot pass
        a limit between its check and the insert.
        """
        if status not in ACTIVE:
            raise ValueError(f"a new run is queued or running, not {status!r}")
        now = time.time()
        ids = []
        with self._write() as con:
            if admit is not None:
                admit(*_count_active(con, owner))
            for r in runs:
                row = {"created": now, "name": r.get("name"), "spec": r["spec"],
                       "config": r["config"], "status": status, "group_id": r.get("group"),
                       "git_commit": commit, "owner": owner}
                if status == "running":
                    row["started"] = row["heartbeat"] = now
                ids.append(_insert_run(con, row))
        return ids

    def count_active(self, owner: str | None = None) -> tuple[int, int]:
        """(queued and running runs, those of them that `owner` launched)."""
        with self._connect() as con:
            return _count_active(con, owner)

    def clear_queue(self, reason: str) -> list[int]:
        """Stop every queued run (running ones keep training); returns their ids."""
        with self._write() as con:
            ids = [r[0] for r in con.execute("SELECT id FROM runs WHERE status = 'queued'")]
            con.execute("UPDATE runs SET status = 'stopped', stop_requested = 1, ended = ?, "
                        "reason = ? WHERE status = 'queued'", (time.time(), reason))
        return ids

    def claim_next(self, max_running: int = 1) -> dict | None:
        """Atomically move the oldest queued run to running, unless `max_running` already run."""
        now = time.time()
        with self._write() as con:
            running = con.execute("SELECT count(*) FROM runs "
                                  "WHERE status = 'running'").fetchone()[0]
            if running >= max_running:
                return None
            row = con.execute("SELECT id FROM runs WHERE status = 'queued' "
                              "ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            con.execute("UPDATE runs SET status = 'running', started = ?, heartbeat = ? "
                        "WHERE id = ?", (now, now, row["id"]))
        return self.get_run(row["id"])

    def set_process(self, run_id: int, pid: int, pid_start: str | None) -> None:
        with self._write() as con:
            con.execute("UPDATE runs SET pid = ?, pid_start = ?, heartbeat = ? WHERE id = ?",
                        (pid, pid_start, time.time(), run_id))

    def update_run(self, run_id: int, **fields) -> None:
        """Set provenance columns (device, torch_version, git_commit, checkpoint, name), or the
        reason line a running worker shows before training starts (e.g. download progress)."""
        bad = set(fields) - set(UPDATABLE_COLUMNS)
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if fields:
            with self._write() as con:
                con.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            (*fields.values(), run_id))

    def set_status(self, run_id: int, status: str, *, reason: str | None = None,
                   error: str | None = None, error_detail: str | None = None,
                   expect: tuple[str, ...] | None = None, **results) -> bool:
        """Move a run to `status`, with its results (RESULT_COLUMNS) when it finished.

        `error` is the one line every visitor reads; `error_detail` (a log tail, a traceback)
        only the teacher.

        With `expect`, only a run currently in one of those statuses changes (compare-and-set,
        so a late writer cannot overwrite an outcome); returns whether the row changed.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        bad = set(results) - set(RESULT_COLUMNS)
        if bad:
            raise ValueError(f"unknown result columns {sorted(bad)}")
        sets = {"status": status, **results}
        if reason is not None:
            sets["reason"] = reason
        if error is not None:
            sets["error"] = error
        if error_detail is not None:
            sets["error_detail"] = error_detail
        if status in FINISHED:
            sets["ended"] = time.time()
        sql = f"UPDATE runs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?"
        args = [*sets.values(), run_id]
        if expect:
            sql += f" AND status IN ({', '.join('?' * len(expect))})"
            args += list(expect)
        with self._write() as con:
            return con.execute(sql, args).rowcount > 0

    def request_stop(self, run_id: int) -> str | None:
        """Flag a run to stop; a queued run stops at once. Returns the run's status after."""
        with self._write() as con:
            con.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            con.execute("UPDATE runs SET status = 'stopped', ended = ?, "
                        "reason = 'Stopped before it started.' WHERE id = ? AND status = 'queued'",
                        (time.time(), run_id))
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row["status"] if row else None

    def stop_requested(self, run_id: int) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def heartbeat(self, run_id: int) -> None:
        with self._write() as con:
            con.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time(), run_id))

    def get_run(self, run_id: int) -> dict | None:
        """One run as a dict (spec and config parsed), or None."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_dict(row) if row else None

    def list_runs(self, status: str | tuple[str, ...] | None = None, group: str | None = None,
                  limit: int | None = None) -> list[dict]:
        """Runs, newest first, optionally of some statuses or one group."""
        where, args = [], []
        if status:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if group is not None:
            where.append("group_id = ?")
            args.append(group)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY id DESC" + (" LIMIT ?" if limit else "")
        if limit:
            args.append(int(limit))
        with self._connect() as con:
            return [_run_dict(r) for r in con.execute(sql, args).fetchall()]

    def groups(self, limit: int = 1000) -> list[str]:
        """Ablation group ids, the newest (by its latest run) first (an index, not a scan)."""
        with self._connect() as con:
            rows = con.execute("SELECT group_id FROM runs WHERE group_id IS NOT NULL GROUP BY group_id "
                               "ORDER BY MAX(id) DESC LIMIT ?", (int(limit),)).fetchall()
        return [r[0] for r in rows]

    # --- metrics ---
    def add_metrics(self, run_id: int, rows: list[dict]) -> None:
        """Append step/epoch events (train.py's report dicts) in one transaction."""
        if not rows:
            return
        values = [(run_id, r["kind"], *(r.get(c) for c in METRIC_COLUMNS)) for r in rows]
        with self._write() as con:
            con.executemany(
                f"INSERT INTO metrics (run_id, kind, {', '.join(METRIC_COLUMNS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(METRIC_COLUMNS))})", values)

    def metrics(self, run_id: int, kind: str = "epoch", after_id: int = 0) -> list[dict]:
        """Metric rows of one kind in order; `after_id` (a row's 'id') fetches only newer ones."""
        if kind not in METRIC_KINDS:
            raise ValueError(f"kind must be one of {METRIC_KINDS}")
        with self._connect() as con:
            rows = con.execute(
                f"SELECT id, {', '.join(METRIC_COLUMNS)} FROM metrics "
                "WHERE run_id = ? AND kind = ? AND id > ? ORDER BY id", (run_id, kind, after_id))
            return [dict(r) for r in rows.fetchall()]

    # --- housekeeping ---
    def reconcile_stale(self, stale_after_s: float = STALE_AFTER_S,
                        skip: tuple[int, ...] = ()) -> list[int]:
        """Mark 'running' runs 'interrupted' when their worker process is gone, or when no
        process was ever recorded and the heartbeat is older than `stale_after_s`.

        `skip`: runs whose worker the caller watches itself (it records their exit better).
        """
        now = time.time()
        changed = []
        with self._write() as con:
            rows = con.execute("SELECT id, pid, pid_start, heartbeat FROM runs "
                               "WHERE status = 'running'").fetchall()
            for r in rows:
                if r["id"] in skip:
                    continue
                silent = now - (r["heartbeat"] or 0)
                if r["pid"]:  # a known process decides: a live one may just be slow to beat
                    if process_alive(r["pid"], r["pid_start"]):
                        continue
                    why = f"The worker process (pid {r['pid']}) is gone; it ended without a result."
                elif silent > stale_after_s:
                    why = f"The worker never started: no heartbeat for {silent:.0f} s."
                else:
                    continue
                con.execute("UPDATE runs SET status = 'interrupted', reason = ?, ended = ? "
                            "WHERE id = ?", (why, now, r["id"]))
                changed.append(r["id"])
        return changed


def _count_active(con: sqlite3.Connection, owner: str | None) -> tuple[int, int]:
    """(queued and running runs, those of them that `owner` launched)."""
    active = f"SELECT count(*) FROM runs WHERE status IN ({', '.join('?' * len(ACTIVE))})"
    return (con.execute(active, ACTIVE).fetchone()[0],
            con.execute(active + " AND owner IS ?", (*ACTIVE, owner)).fetchone()[0])


def _insert_run(con: sqlite3.Connection, row: dict) -> int:
    """INSERT one run from a dict of RUN_COLUMNS (JSON_COLUMNS as values); returns its id."""
    unknown = set(row) - set(dict(RUN_COLUMNS))
    if unknown:
        raise ValueError(f"unknown run columns {sorted(unknown)}")
    values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in row.items()]
    cur = con.execute(f"INSERT INTO runs ({', '.join(row)}) "
                      f"VALUES ({', '.join('?' * len(row))})", values)
    return cur.lastrowid


def _run_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    for column in JSON_COLUMNS:
        d[column] = json.loads(d[column])
    d["stop_requested"] = bool(d["stop_requested"])
    return d
