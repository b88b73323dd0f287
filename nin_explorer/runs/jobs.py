"""Which runs are training now: start queued runs as worker processes, watch them, stop them.

`JobManager` is the app's one handle on training (the app keeps it in `st.cache_resource`).
The database is the source of truth: queueing and "at most N running" are decided there, so a
second manager (another server process) or a CLI run cannot break them. On a machine with
several GPUs, a run that one manager runs at a time uses all of them through torchrun.
No streamlit here.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nin_explorer.runs import plan
from nin_explorer.base.procs import WORKER_MODULE, is_worker, process_alive, process_start
from nin_explorer.runs.roles import (TEACHER, Limits, check_ablation_size, check_quota, check_stop,
                                     check_teacher)
from nin_explorer.runs.provenance import REPO_ROOT, git_commit
from nin_explorer.net.spec import NetSpec
from nin_explorer.runs.store import ERROR_DETAIL_CHARS, RunStore
from nin_explorer.runs.tables import ACTIVE
from nin_explorer.learn.config import TrainConfig

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 5.0
MAX_AT_ONCE = 16


def default_at_once() -> int:
    """Runs at once at start-up: NIN_EXPLORER_MAX_CONCURRENT when it is a whole number (held to
    1..MAX_AT_ONCE), else 2 on a CPU with two or more cores (a queue of four `tiny` runs finished
    1.6x sooner on a 2-core machine, each run on one core, see bench/runs_at_once.py and
    docs/BENCHMARKS.md), else 1: with CUDA one run at a time goes to torchrun over several GPUs,
    and whether small runs gain from sharing one GPU is not measured yet."""
    value = os.environ.get("NIN_EXPLORER_MAX_CONCURRENT", "")
    if value.isascii() and value.isdecimal() and len(value) < 4:   # else ignored (not "٣")
        return min(MAX_AT_ONCE, max(1, int(value)))
    return 2 if not torch.cuda.is_available() and (os.cpu_count() or 1) >= 2 else 1


@dataclass
class _Stop:
    """A stop in progress: flag set at `since`; SIGTERM, then SIGKILL if the worker lingers."""

    pid: int | None
    pid_start: str | None
    since: float
    sent: int = 0   # 0 nothing yet, 1 SIGTERM sent, 2 SIGKILL sent


def run_gpus(run: dict) -> int:
    """The CUDA GPUs `run` may train on: every visible one when its device is auto or cuda,
    else none (a run on the CPU or MPS is left out of torchrun and GPU assignment)."""
    if run["config"].get("device", "auto") not in ("auto", "cuda"):
        return 0
    return torch.cuda.device_count()


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - ERROR_DETAIL_CHARS))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class JobManager:
    """Starts queued runs as `python -m nin_explorer.runs.worker` processes, one at a time by default.

    With max_concurrent=1 on a machine with more than one CUDA GPU, a run on device auto or cuda
    starts under torchrun with one process per GPU (`worker_command`). With max_concurrent>1 each
    run is a plain worker: small variants then share the first GPU, several at once, and with
    split_threads each worker gets an equal share of the CPU cores (OMP_NUM_THREADS) instead of
    all of them (bench/runs_at_once.py measures both).

    Who may do what is decided in roles.py and enforced here too: `owner` and `by` are owner
    ids (roles.TEACHER for the teacher, a visitor's id, None for the CLI); `limits` are the
    queue quotas (from the environment by default).

    A daemon thread polls the children every `poll_s`: it records a worker that died without an
    outcome, escalates stops, and starts the next queued run. Every method is thread-safe.
    """

    def __init__(self, home: str | os.PathLike | None = None, max_concurrent: int = 1,
                 poll_s: float = 0.25, term_after_s: float = 1.0, kill_after_s: float = 10.0,
                 split_threads: bool = True, limits: Limits | None = None):
        self.store = RunStore(home)
        self.limits = limits or Limits.from_env()
        self.home = self.store.home
        self.max_concurrent = max_concurrent
        self.split_threads = split_threads
        self.poll_s, self.term_after_s, self.kill_after_s = poll_s, term_after_s, kill_after_s
        self._lock = threading.RLock()
        self._children: dict[int, subprocess.Popen] = {}
        self._stops: dict[int, _Stop] = {}
        self._gpu_of: dict[int, int] = {}      # run id -> GPU index, with several at once
        self._closed = threading.Event()
        self._last_reconcile = 0.0
        self.store.reconcile_stale()
        self._start_queued()
        self._thread = threading.Thread(target=self._watch, name="nin-explorer-jobs", daemon=True)
        self._thread.start()

    # --- what pages call ---
    def submit(self, spec: NetSpec, cfg: TrainConfig, name: str | None = None,
               group: str | None = None, owner: str | None = None) -> int:
        """Queue a run for `owner`; it starts now if fewer than max_concurrent runs are running.

        Raises SpecError when the network does not fit its input size, QuotaError when a queue
        limit would be passed; either way nothing is queued.
        """
        return self.submit_many([(spec, cfg, name)], owner=owner, group=group)[0]

    def submit_many(self, items: list[tuple[NetSpec, TrainConfig, str | None]],
                    owner: str | None = None, group: str | None = None) -> list[int]:
        """Queue (spec, config, name) runs together (an ablation): the quotas and every run's
        launch check are passed by the whole batch before any run is queued."""
        check_ablation_size(self.limits, len(items))
        check_quota(self.limits, owner, len(items), *self.store.count_active(owner))  # early
        self.check_launch([(spec, cfg) for spec, cfg, _ in items])
        ids = self.store.create_runs(
            [{"spec": spec.to_dict(), "config": cfg.to_dict(), "name": name, "group": group}
             for spec, cfg, name in items], commit=git_commit(), owner=owner,
            admit=lambda active, mine: check_quota(self.limits, owner, len(items), active, mine))
        self._start_queued()
        return ids

    def check_launch(self, runs: list[tuple[NetSpec, TrainConfig]]) -> None:
        """SpecError when a run cannot train (its network does not fit its input size), FitError
        (a SpecError) when a run, or the largest `max_concurrent` side by side, would not fit
        this machine's free memory."""
        plan.check_fits_together(runs, at_once=self.max_concurrent)

    def stop(self, run_id: int, by: str = TEACHER) -> str | None:
        """Ask a run to stop: the flag now, SIGTERM after term_after_s, SIGKILL after
        kill_after_s. Returns the run's status (a queued run is 'stopped' at once), None when
        there is no such run. RoleError when `by` is neither the teacher nor the run's owner."""
        run = self.store.get_run(run_id)
        if run is None:
            return None
        check_stop(by, run)
        status = self.store.request_stop(run_id)
        if status == "running":
            run = self.store.get_run(run_id)
            with self._lock:
                self._stops.setdefault(run_id, _Stop(run["pid"], run["pid_start"],
                                                     time.monotonic()))
        return status

    def clear_queue(self, by: str = TEACHER) -> list[int]:
        """The teacher's: stop every queued run (running ones go on). Returns their ids."""
        check_teacher(by, "clear the queue")
        return self.store.clear_queue("Removed from the queue by the teacher.")

    def set_max_concurrent(self, n: int, by: str = TEACHER) -> None:
        """How many runs may train at once from now on (1 to MAX_AT_ONCE); more start at once
        if the queue has them. Runs already training are left alone when it goes down.
        Only the teacher may (RoleError)."""
        check_teacher(by, "change how many runs train at once")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_AT_ONCE:
            raise ValueError(f"Runs at once must be a whole number from 1 to {MAX_AT_ONCE}.")
        with self._lock:
            self.max_concurrent = n
        self._start_queued()

    def log_tail(self, run_id: int) -> str:
        """The end of a run's worker log (for the teacher: it holds tracebacks and paths)."""
        return _log_tail(self.store.log_path(run_id))

    def running(self) -> list[int]:
        """Ids of the runs whose worker this manager started and that are still alive."""
        with self._lock:
            return sorted(self._children)

    def poll(self) -> None:
        """One pass of the monitor (the thread calls it; tests may too)."""
        with self._lock:
            self._reap()
            self._escalate_stops()
            if time.monotonic() - self._last_reconcile >= RECONCILE_EVERY_S:
                self._last_reconcile = time.monotonic()
                self.store.reconcile_stale(skip=tuple(self._children))
            self._start_queued()

    def close(self, stop_runs: bool = False, timeout: float = 15.0) -> None:
        """Stop the monitor thread; with stop_runs, stop this manager's workers first and wait.

        Without it, workers keep training on their own (a later manager reconciles them).
        """
        if stop_runs:
            for run_id in self.running():
                self.stop(run_id)
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                time.sleep(self.poll_s)
        self._closed.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- the monitor ---
    def _watch(self) -> None:
        while not self._closed.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # the monitor must outlive a busy database or a failed spawn
                log.exception("job monitor pass failed")

    def _start_queued(self) -> None:
        with self._lock:
            while not self._closed.is_set():
                run = self.store.claim_next(self.max_concurrent)
                if run is None:
                    return
                self._spawn(run)

    def worker_command(self, run: dict) -> list[str]:
        """The command that trains `run`: torchrun over every visible GPU when there are several
        and runs go one at a time, else a single worker process."""
        worker = ["-m", WORKER_MODULE, "--home", str(self.home), "--run-id", str(run["id"])]
        gpus = run_gpus(run)
        if self.max_concurrent == 1 and gpus > 1:
            return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={gpus}", *worker]
        return [sys.executable, *worker]

    def worker_env(self, run: dict | None = None, sharing: int | None = None) -> dict[str, str]:
        """The worker's environment. With several runs at once, each gets its share of the cores
        (unless OMP_NUM_THREADS is already set): shared by `sharing` runs (running and queued,
        at most max_concurrent; default max_concurrent), so a run alone keeps every core. On a
        machine with several GPUs each also gets the GPU that the fewest of this manager's
        running workers use (CUDA_VISIBLE_DEVICES)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.max_concurrent == 1:
            return env
        sharing = min(self.max_concurrent, sharing or self.max_concurrent)
        if self.split_threads and sharing > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // sharing))
        gpus = run_gpus(run) if run is not None else 0
        if gpus > 1:
            visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            visible = visible[:gpus] if len(visible) >= gpus else [str(i) for i in range(gpus)]
            with self._lock:
                load = [sum(g == i for r, g in self._gpu_of.items() if r in self._children)
                        for i in range(gpus)]
                choice = load.index(min(load))
                self._gpu_of[run["id"]] = choice
            env["CUDA_VISIBLE_DEVICES"] = visible[choice]
        return env

    def _spawn(self, run: dict) -> None:
        run_id = run["id"]
        log_path = self.store.log_path(run_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.worker_command(run)
        sharing = len(self.store.list_runs(ACTIVE)) if self.max_concurrent > 1 else 1
        try:
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(
                    cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    env=self.worker_env(run, sharing))
        except OSError as e:
            self.store.set_status(run_id, "failed", error="Could not start the worker process.",
                                  error_detail=str(e), expect=("running",))
            return
        self._children[run_id] = proc
        self.store.set_process(run_id, proc.pid, process_start(proc.pid))

    def _reap(self) -> None:
        for run_id, proc in list(self._children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._children[run_id]
            self._gpu_of.pop(run_id, None)
            stop = self._stops.pop(run_id, None)
            self._record_exit(run_id, code, stop)

    def _record_exit(self, run_id: int, code: int, stop: _Stop | None) -> None:
        """A worker ended; if it left its run 'running', say why the run ended."""
        if code < 0:
            name = signal.Signals(-code).name
            if stop is not None and stop.sent:
                status, text = "stopped", (f"Stopped: the worker did not stop within "
                                           f"{self.term_after_s:g} s and was ended with {name}.")
            else:
                hint = " (possibly by the system for lack of memory)" if name == "SIGKILL" else ""
                status, text = "interrupted", f"The worker process was killed by {name}{hint}."
            self.store.set_status(run_id, status, reason=text, expect=("running",))
            return
        error = ("The worker exited without recording a result." if code == 0 else
                 f"The worker exited with code {code}.")
        # the tail may hold a traceback and this machine's paths: the teacher's, not everyone's
        self.store.set_status(run_id, "failed", error=error, expect=("running",),
                              error_detail=self.log_tail(run_id) or None)

    def _escalate_stops(self) -> None:
        now = time.monotonic()
        for run_id, stop in list(self._stops.items()):
            proc = self._children.get(run_id)
            pid = proc.pid if proc is not None else stop.pid
            if proc is None:
                # not ours: signal only a live worker process that is still the one recorded
                if not (process_alive(stop.pid, stop.pid_start) and is_worker(stop.pid)):
                    del self._stops[run_id]
                    continue
            waited = now - stop.since
            sig = (signal.SIGKILL if waited >= self.kill_after_s and stop.sent < 2 else
                   signal.SIGTERM if waited >= self.term_after_s and stop.sent < 1 else None)
            if sig is None:
                continue
            stop.sent = 2 if sig == signal.SIGKILL else 1
            try:
                os.killpg(pid, sig)   # the worker leads its own session (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
