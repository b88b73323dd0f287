"""Which process is which: identity by pid and start time, our workers, torchrun's ranks; and
the commit a run is recorded with (provenance.py)."""
import os
import subprocess
import sys

from conftest import ROOT, wait_for
from nin_explorer.base.procs import WORKER_MODULE, is_worker, launched, process_alive, process_start
from nin_explorer.runs.provenance import git_commit


def test_process_identity():
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(os.getpid(), "not-my-start-time")
    assert not process_alive(None, None)


def test_a_finished_process_is_neither_alive_nor_a_worker():
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m",
                               WORKER_MODULE])
    try:
        wait_for(lambda: is_worker(worker.pid), 10, "its command line")  # empty for a moment
        assert process_alive(worker.pid, process_start(worker.pid))
        assert not is_worker(os.getpid())                  # pytest: not a worker, no signals
    finally:
        worker.kill()
        worker.wait()
    assert not is_worker(worker.pid) and not process_alive(worker.pid, None)


def test_launched_by_torchrun_only_with_several_ranks(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched()


def test_git_commit_is_the_checkout_or_none(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert git_commit() == head and len(head) == 40
    assert git_commit(tmp_path) is None                    # not a git checkout
