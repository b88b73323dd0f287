"""One training run in its own process: `python -m nin_explorer.runs.worker --home DIR --run-id N`.

Reads the run from the store, trains it, and writes metrics, heartbeats, checkpoints and the
outcome back. Imports no streamlit, so the app starts it with subprocess.Popen; the CLI calls
`execute_run` in-process instead. Under torchrun (several GPUs) rank 0 does all of that and the
other ranks only train (`follow_run`).
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
from typing import Callable

import torch

from nin_explorer.learn import distributed
from nin_explorer.runs.checkpoint import save_checkpoint
from nin_explorer.learn.data import DataError, load_dataset
from nin_explorer.look.epochs import EpochMapWriter
from nin_explorer.base.procs import exit_process, process_start
from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.runs.store import ERROR_DETAIL_CHARS, RunStore
from nin_explorer.learn.config import ConfigError, TrainConfig
from nin_explorer.learn.train import TrainResult, train

HEARTBEAT_S = 2.0     # "last heard from" for pages; liveness itself is checked by pid
STOP_POLL_S = 0.5     # the stop flag is read from the database at most this often
FLUSH_S = 0.5         # metric rows are written in batches at most this often

# Errors whose message is a sentence for the learner; anything else is a bug, logged in full.
LEARNER_ERRORS = (SpecError, ConfigError, DataError)


class Terminated(Exception):
    """SIGTERM arrived: the job manager wants this run to end now."""


class StoreReporter:
    """train()'s report / should_stop / checkpoint callbacks, backed by the run store."""

    def __init__(self, store: RunStore, run_id: int, stop_event: threading.Event | None = None,
                 on_event: Callable[[dict], None] | None = None):
        self.store, self.run_id = store, run_id
        self.stop_event = stop_event or threading.Event()
        self.on_event = on_event
        self.rows: list[dict] = []
        self.last_flush = self.last_poll = 0.0
        self.stop_flag = False
        self.epochs: list[dict] = []
        self.epoch_maps = None        # look.epochs.EpochMapWriter: the probe set's maps per epoch

    def report(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self.store.update_run(self.run_id, device=event["device"])
        elif kind in ("step", "epoch"):
            self.rows.append(event)
            if kind == "epoch":
                self.epochs.append(event)
            if kind == "epoch" or time.monotonic() - self.last_flush >= FLUSH_S:
                self.flush()
        if self.on_event:
            self.on_event(event)

    def flush(self) -> None:
        """Write the buffered rows; they leave the buffer only once committed, so a write
        that fails (after the store's retries) loses nothing the next flush can still write."""
        self.store.add_metrics(self.run_id, self.rows)
        self.rows = []
        self.last_flush = time.monotonic()

    def should_stop(self) -> bool:
        if self.stop_event.is_set():
            return True
        if not self.stop_flag and time.monotonic() - self.last_poll >= STOP_POLL_S:
            self.stop_flag = self.store.stop_requested(self.run_id)
            self.last_poll = time.monotonic()
        return self.stop_flag

    def checkpoint(self, state: dict) -> None:
        path = self.store.checkpoint_path(self.run_id)
        save_checkpoint(state, path)
        self.store.update_run(self.run_id, checkpoint=str(path))
        if self.epoch_maps is not None:
            self.epoch_maps.write(path, self.store.run_dir(self.run_id))


class _DataProgress:
    """Shows data preparation (a download, generating `shapes`) in the run's reason line,
    at most twice a second, so the Train page can say what a starting run is doing."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id, self.last = store, run_id, 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5 or fraction >= 1:
            self.last = now
            self.store.update_run(self.run_id, reason=f"{message} ({fraction:.0%})")


def _heartbeat(store: RunStore, run_id: int, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_S):
        try:
            store.heartbeat(run_id)
        except sqlite3.Error as e:  # a busy database must not end the run; the next beat retries
            print(f"heartbeat failed: {e}", file=sys.stderr)


def _results(result: TrainResult) -> dict:
    return {"best_test_acc": result.best_test_acc, "final_test_acc": result.final_test_acc,
            "train_loss": result.train_loss, "examples_per_sec": result.examples_per_sec,
            "wall_s": result.wall_s}


def execute_run(store: RunStore, run_id: int, stop_event: threading.Event | None = None,
                on_event: Callable[[dict], None] | None = None,
                gate: distributed.Gate | None = None) -> TrainResult | None:
    """Train a run that is already 'running' in the store and record its outcome there.

    Returns the TrainResult, or None when the run was stopped before or outside training.
    A failure is recorded as 'failed' with its message, then re-raised. Under torchrun, rank 0
    calls this and sends the run through `gate` to the other ranks once its data is ready.
    """
    run = store.get_run(run_id)
    reporter = StoreReporter(store, run_id, stop_event, on_event)
    done = threading.Event()
    beats = threading.Thread(target=_heartbeat, args=(store, run_id, done), daemon=True)
    beats.start()
    t_start = time.perf_counter()
    try:
        store.update_run(run_id, torch_version=torch.__version__)
        spec = NetSpec.from_dict(run["spec"])
        cfg = TrainConfig.from_dict(run["config"])
        if reporter.should_stop():
            store.set_status(run_id, "stopped", reason="Stopped before training began.",
                             expect=("running",))
            return None
        progress = _DataProgress(store, run_id)
        train_data = load_dataset(cfg.dataset, train=True, progress=progress, bad_files=cfg.bad_files)
        test_data = load_dataset(cfg.dataset, train=False, progress=progress, bad_files=cfg.bad_files)
        reporter.epoch_maps = EpochMapWriter(test_data, spec.num_classes)
        store.update_run(run_id, reason=None)
        if gate is not None:
            gate.open({"spec": run["spec"], "config": run["config"]})
        result = train(spec, cfg, train_data, test_data, reporter.report, reporter.should_stop,
                       reporter.checkpoint)
        reporter.flush()
        store.set_status(run_id, result.status, reason=result.reason, expect=("running",),
                         **_results(result))
        return result
    except (Terminated, KeyboardInterrupt):
        reporter.flush()
        epochs = reporter.epochs
        store.set_status(run_id, "stopped", reason="Stopped by a signal before it could finish "
                         "cleanly.", expect=("running",),
                         final_test_acc=epochs[-1]["test_acc"] if epochs else None,
                         best_test_acc=max((e["test_acc"] for e in epochs), default=None),
                         train_loss=epochs[-1]["train_loss"] if epochs else None,
                         wall_s=time.perf_counter() - t_start)
        return None
    except BaseException as e:
        detail = None
        if isinstance(e, LEARNER_ERRORS):
            error = str(e)
        elif isinstance(e, torch.cuda.OutOfMemoryError):
            error = ("The GPU ran out of memory. Lower the batch size or the input size, or "
                     "use bf16 precision.")
        elif isinstance(e, OSError) and e.errno == errno.ENOSPC:
            error = ("The disk is full, so the run stopped: free some space and launch it again. "
                     "The metrics so far and the previous checkpoint are kept.")
        else:   # its text may hold paths: the teacher reads it, visitors get one line
            error = f"The run failed unexpectedly ({type(e).__name__}); the teacher can see why."
            detail = "".join(traceback.format_exception(e))[-ERROR_DETAIL_CHARS:]
            traceback.print_exc()
        try:
            reporter.flush()
        finally:
            store.set_status(run_id, "failed", error=error, error_detail=detail,
                             expect=("running",), wall_s=time.perf_counter() - t_start)
        raise
    finally:
        if gate is not None:
            gate.open(None)   # the other ranks give up if training never started
        done.set()


def follow_run(gate: distributed.Gate, stop_event: threading.Event) -> TrainResult | None:
    """A rank other than 0 under torchrun: train what rank 0 sends through `gate`, alongside it.

    Writes nothing: rank 0 records the run (so the run store need not exist on this host).
    The data set is loaded after rank 0 has prepared it; on several hosts, prepare it on each.
    """
    job = gate.wait()
    if job is None:
        return None
    spec, cfg = NetSpec.from_dict(job["spec"]), TrainConfig.from_dict(job["config"])
    train_data = load_dataset(cfg.dataset, train=True, bad_files=cfg.bad_files)
    test_data = load_dataset(cfg.dataset, train=False, bad_files=cfg.bad_files)
    return train(spec, cfg, train_data, test_data, lambda event: None, stop_event.is_set)


def stop_together_on_signals(stop_event: threading.Event) -> None:
    """Under torchrun: the agent forwards SIGTERM and SIGINT to every rank. Each rank then asks
    to stop, and all stop together at their next sync (a rank that just exited would leave the
    others waiting in a collective)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_event.set())


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough; let the cleanup finish
    raise Terminated()


def run_on_ranks(main_rank: Callable[[distributed.Gate, threading.Event], int],
                 on_sigterm=None) -> int:
    """The start-up shared by the worker and the CLI's `train`: under torchrun, join the other
    ranks; rank 0 (or a lone process) returns `main_rank(gate, stop)`, the others train what
    it sends through `gate` and return 0 (1 on a learner's error, which rank 0 reports).
    Under torchrun SIGTERM and SIGINT set `stop` on every rank; alone, SIGTERM goes to
    `on_sigterm` when given. The signal handlers are restored afterwards."""
    group = distributed.start()
    gate = distributed.Gate(group)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if group:
        stop_together_on_signals(stop)
    elif on_sigterm is not None:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if group is None or group.is_main:
            return main_rank(gate, stop)
        try:
            follow_run(gate, stop)
        except LEARNER_ERRORS:
            return 1
        return 0
    finally:
        gate.open(None)
        distributed.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nin_explorer.runs.worker", description=__doc__)
    p.add_argument("--home", required=True, help="the run store's folder")
    p.add_argument("--run-id", type=int, required=True)
    args = p.parse_args(argv)
    return run_on_ranks(lambda gate, stop: _main_rank(args, gate, stop), on_sigterm=_on_sigterm)


def _main_rank(args, gate: distributed.Gate, stop: threading.Event) -> int:
    group = gate.group
    store = RunStore(args.home)
    run = store.get_run(args.run_id)
    if run is None:
        print(f"error: there is no run {args.run_id} in {store.db_path}", file=sys.stderr)
        return 2
    if run["status"] == "queued":  # started by hand rather than by a JobManager
        store.set_status(args.run_id, "running", expect=("queued",))
    elif run["status"] != "running":
        print(f"run {args.run_id} is already {run['status']}; nothing to do", file=sys.stderr)
        return 0
    if group is None or not run["pid"]:  # under a job manager's torchrun, it holds the launcher
        store.set_process(args.run_id, os.getpid(), process_start(os.getpid()))
    try:
        result = execute_run(store, args.run_id, stop if group else None, gate=gate)
    except LEARNER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BaseException:  # recorded as failed (traceback already in the log)
        return 1
    if result is not None:
        print(f"run {args.run_id}: {result.status}. {result.reason}")
    return 0


if __name__ == "__main__":
    exit_process(main())
