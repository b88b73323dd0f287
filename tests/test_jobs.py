"""The job manager: the rules for a shared server (quotas, whole-batch checks, who may stop
what), runs at once, reconciling on start, a killed worker, which runs use the GPUs.

The `jm` fixture starts no worker: `_start_queued` is replaced, so every run stays queued.
The `manager` fixture (also used by test_worker.py) starts real workers on `shapes`.
"""
import os
import signal
import subprocess
import sys
import threading

import pytest
import torch

from conftest import wait_for
from nin_explorer.runs.jobs import JobManager, default_at_once, run_gpus
from nin_explorer.net.presets import get_preset
from nin_explorer.runs.roles import TEACHER, Limits, QuotaError, RoleError
from nin_explorer.net.spec import SpecError
from nin_explorer.runs.store import RunStore
from nin_explorer.runs.tables import ACTIVE
from nin_explorer.learn.config import TrainConfig

TINY = get_preset("tiny")
CFG = TrainConfig.from_dict({"recipe": "modern", "epochs": 1, "max_train_examples": 256})
ALICE, BOB = "alice-" + "a" * 20, "bob-" + "b" * 20


@pytest.fixture
def jm(tmp_path, monkeypatch):
    monkeypatch.setattr(JobManager, "_start_queued", lambda self: None)  # queue only
    manager = JobManager(tmp_path / "home", poll_s=0.05,
                         limits=Limits(max_queued_per_visitor=4, max_queued=50,
                                       max_ablation_runs=24))
    yield manager
    manager.close()


def in_threads(n: int, target, *args) -> None:
    threads = [threading.Thread(target=target, args=args) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_ten_thousand_rapid_submits_are_refused_after_the_global_cap(jm):
    refused, accepted, lock = [], [], threading.Lock()

    def flood(n: int) -> None:
        for _ in range(n):
            try:
                run_id = jm.submit(TINY, CFG, owner=TEACHER)
            except QuotaError as e:
                with lock:
                    refused.append(str(e))
            else:
                with lock:
                    accepted.append(run_id)

    in_threads(4, flood, 2500)
    assert len(accepted) == 50 and len(refused) == 9950
    assert len(jm.store.list_runs(ACTIVE)) == 50
    assert "The queue is full" in refused[-1] and "at most 50" in refused[-1]
    assert "NIN_EXPLORER_MAX_QUEUED" in refused[-1]


def test_the_cap_holds_inside_the_transaction_when_checks_race(jm, monkeypatch):
    """Everyone passes the early check at once; only the transaction's check keeps the cap."""
    monkeypatch.setattr(jm.store, "count_active", lambda owner=None: (0, 0))
    go, errors = threading.Barrier(8), []

    def burst() -> None:
        go.wait()
        for _ in range(10):
            try:
                jm.submit_many([(TINY, CFG, None)] * 3, owner=TEACHER)
            except QuotaError as e:
                errors.append(e)

    in_threads(8, burst)
    assert len(jm.store.list_runs()) == 48      # 16 whole batches of 3; the 17th passes 50
    assert len(errors) == 80 - 16


def test_a_visitors_fifth_run_is_refused_with_a_message_naming_the_limit(jm):
    for _ in range(4):
        jm.submit(TINY, CFG, owner=ALICE)
    with pytest.raises(QuotaError, match=r"You have 4 run\(s\).*at most 4.*"
                                         "NIN_EXPLORER_MAX_QUEUED_PER_VISITOR"):
        jm.submit(TINY, CFG, owner=ALICE)
    jm.submit(TINY, CFG, owner=BOB)            # the limit is each visitor's own
    jm.submit(TINY, CFG, owner=TEACHER)        # the teacher has none of their own
    jm.stop(jm.store.list_runs(("queued",))[-1]["id"], by=ALICE)   # Alice's first run
    jm.submit(TINY, CFG, owner=ALICE)          # a stopped run frees its place
    assert len(jm.store.list_runs()) == 7


def test_a_batch_is_checked_whole_before_any_run_is_queued(jm):
    jm.submit_many([(TINY, CFG, "a"), (TINY, CFG, "b")], owner=ALICE, group="g")
    assert [r["group_id"] for r in jm.store.list_runs()] == ["g", "g"]
    with pytest.raises(QuotaError, match="this would add 3"):
        jm.submit_many([(TINY, CFG, None)] * 3, owner=ALICE)
    bad_last = [(TINY, CFG, None), (TINY, CFG.replace(input_size=3), None)]
    with pytest.raises(SpecError, match="input of at least"):
        jm.submit_many(bad_last, owner=BOB)
    with pytest.raises(QuotaError, match="25 runs.*at most 24.*NIN_EXPLORER_MAX_ABLATION_RUNS"):
        jm.submit_many([(TINY, CFG, None)] * 25, owner=TEACHER)
    assert len(jm.store.list_runs()) == 2       # nothing of the refused batches was queued


@pytest.mark.parametrize("stranger", [BOB, "", None, "teacher ", "TEACHER", ALICE + " "])
def test_a_visitor_cannot_stop_another_visitors_run(jm, stranger):
    run_id = jm.submit(TINY, CFG, owner=ALICE)
    with pytest.raises(RoleError, match=f"Run #{run_id} is not yours"):
        jm.stop(run_id, by=stranger)
    assert jm.store.get_run(run_id)["status"] == "queued"
    assert jm.stop(run_id, by=ALICE) == "stopped"


def test_the_teacher_stops_any_run_and_only_the_teacher_runs_the_server(jm):
    mine, theirs = jm.submit(TINY, CFG, owner=ALICE), jm.submit(TINY, CFG, owner=BOB)
    cli = jm.store.create_run(TINY.to_dict(), CFG.to_dict())      # no owner: a CLI run
    with pytest.raises(RoleError, match="not yours"):
        jm.stop(cli, by=ALICE)
    assert jm.stop(theirs, by=TEACHER) == "stopped"
    with pytest.raises(RoleError, match="Only the teacher can change how many runs"):
        jm.set_max_concurrent(4, by=ALICE)
    with pytest.raises(RoleError, match="Only the teacher can clear the queue"):
        jm.clear_queue(by=ALICE)
    assert jm.max_concurrent == 1
    jm.set_max_concurrent(3, by=TEACHER)
    assert sorted(jm.clear_queue(by=TEACHER)) == sorted([mine, cli])
    run = jm.store.get_run(mine)
    assert run["status"] == "stopped" and "by the teacher" in run["reason"]
    assert jm.stop(10**9, by=ALICE) is None                        # no such run


def test_a_worker_that_dies_leaves_one_line_for_visitors_and_the_tail_for_the_teacher(jm):
    run_id = jm.store.create_run(TINY.to_dict(), CFG.to_dict(), status="running", owner=ALICE)
    log = jm.store.log_path(run_id)
    log.parent.mkdir(parents=True)
    log.write_text('Traceback (most recent call last):\n  File "/srv/secret/nin_explorer/'
                   'worker.py", line 9\nImportError: no module named torch\n')
    jm._record_exit(run_id, 1, None)
    run = jm.store.get_run(run_id)
    assert run["error"] == "The worker exited with code 1."
    assert "/srv/secret" in run["error_detail"] and "Traceback" in run["error_detail"]


# --- real workers: runs at once, a killed worker ---

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
    return run if run["status"] not in ACTIVE else None


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


def test_killed_worker_is_interrupted_and_keeps_metrics(manager):
    run_id = manager.submit(TINY, config(epochs=100, max_train_examples=None))
    wait_for(lambda: manager.store.metrics(run_id, "step"), 60, "training to start")
    os.kill(manager.store.get_run(run_id)["pid"], signal.SIGKILL)
    run = wait_for(lambda: finished(manager, run_id), 10, "the dead worker to be noticed")
    assert run["status"] == "interrupted" and "SIGKILL" in run["reason"]
    assert manager.store.metrics(run_id, "step")


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


def test_only_runs_on_auto_or_cuda_use_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for device, gpus in (("auto", 4), ("cuda", 4), ("cpu", 0), ("mps", 0)):
        assert run_gpus({"config": {"device": device}}) == gpus, device
    assert run_gpus({"config": {}}) == 4                    # an older run's config: auto
