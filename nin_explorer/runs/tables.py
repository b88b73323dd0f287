"""The run store's SQLite tables: the statuses a run goes through and every column once (its
name and declaration), from which the schema, the inserts and the migration of an older file
are written."""
from __future__ import annotations

import sqlite3

STATUSES = ("queued", "running", "completed", "stopped", "diverged", "failed", "interrupted")
ACTIVE = ("queued", "running")
FINISHED = tuple(s for s in STATUSES if s not in ACTIVE)
METRIC_KINDS = ("step", "epoch")

# --- the tables, each column once: name and declaration, in the order of the first release ---
RUN_COLUMNS = (
    ("id", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    ("created", "REAL NOT NULL"),
    ("name", "TEXT"),
    ("spec", "TEXT NOT NULL"),                 # JSON, parsed by _run_dict (JSON_COLUMNS)
    ("config", "TEXT NOT NULL"),               # JSON
    ("status", f"TEXT NOT NULL DEFAULT 'queued' CHECK (status IN {STATUSES})"),
    ("reason", "TEXT"),
    ("error", "TEXT"),
    ("pid", "INTEGER"),
    ("pid_start", "TEXT"),
    ("heartbeat", "REAL"),
    ("started", "REAL"),
    ("ended", "REAL"),
    ("best_test_acc", "REAL"),
    ("final_test_acc", "REAL"),
    ("train_loss", "REAL"),
    ("examples_per_sec", "REAL"),
    ("wall_s", "REAL"),
    ("device", "TEXT"),
    ("git_commit", "TEXT"),
    ("torch_version", "TEXT"),
    ("group_id", "TEXT"),
    ("stop_requested", "INTEGER NOT NULL DEFAULT 0"),   # a bool in a run dict
    ("checkpoint", "TEXT"),
    ("owner", "TEXT"),                         # added since the first release (ADDED_COLUMNS)
    ("error_detail", "TEXT"),
)
ADDED_COLUMNS = ("owner", "error_detail")   # an older runs.sqlite gets them on first open
JSON_COLUMNS = ("spec", "config")
RESULT_COLUMNS = ("best_test_acc", "final_test_acc", "train_loss", "examples_per_sec", "wall_s")
UPDATABLE_COLUMNS = ("device", "torch_version", "git_commit", "checkpoint", "name", "reason")
METRIC_TYPES = (("step", "INTEGER"), ("epoch", "REAL"), ("train_loss", "REAL"),
                ("train_acc", "REAL"), ("test_loss", "REAL"), ("test_acc", "REAL"), ("lr", "REAL"),
                ("examples_per_sec", "REAL"), ("elapsed_s", "REAL"),
                ("peak_train_memory_bytes", "INTEGER"), ("peak_infer_memory_bytes", "INTEGER"))
METRIC_COLUMNS = tuple(name for name, _ in METRIC_TYPES)


def _columns_sql(columns) -> str:
    return ",\n".join(f"    {name} {declaration}" for name, declaration in columns)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
{_columns_sql(RUN_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN {METRIC_KINDS}),
{_columns_sql(METRIC_TYPES)}
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, kind, id);
"""
# Indexes added since the first release: made by migrate() on an older file too.
ADDED_INDEXES = {"runs_owner": "runs(owner, status)",
                 "runs_group": "runs(group_id, id)"}   # an ablation's runs, and the list of ablations


def migrate(con: sqlite3.Connection) -> None:
    """Add the columns and indexes an older database lacks (checked again under the write lock,
    so two processes opening it at once add each one once)."""
    def missing():
        have = {r["name"] for r in con.execute("PRAGMA table_info(runs)")}
        return [c for c in ADDED_COLUMNS if c not in have]

    def missing_indexes():
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        return [name for name in ADDED_INDEXES if name not in have]
    if not missing() and not missing_indexes():
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        for column in missing():
            con.execute(f"ALTER TABLE runs ADD COLUMN {column} {dict(RUN_COLUMNS)[column]}")
        for name in missing_indexes():
            con.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {ADDED_INDEXES[name]}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
