"""Training under torchrun: two CPU ranks over gloo train one run, record it once, stop together.

Each launch starts two ranks plus torchrun's agent on the 2-core machine (about 7 s each).
"""
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, wait_for
from nin_explorer.learn import distributed
from nin_explorer.net.build import build_model, init_xavier
from nin_explorer.learn.data import load_dataset
from nin_explorer.runs.jobs import JobManager
from nin_explorer.net.presets import get_preset
from nin_explorer.net.spec import NetSpec
from nin_explorer.runs.checkpoint import load_checkpoint
from nin_explorer.runs.store import RunStore
from nin_explorer.learn.config import ConfigError, TrainConfig
from nin_explorer.learn.devices import rank_device
from nin_explorer.learn.train import train

TINY = get_preset("tiny")
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")


def torchrun_cli(*args, data_root, timeout=120):
    env = {**os.environ, "NIN_EXPLORER_DATA": str(data_root), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([*TORCHRUN, "-m", "nin_explorer", "train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (here: a test's own home folder)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_a_single_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and distributed.start() is None
    assert distributed.current() is None
    gate = distributed.Gate(None)
    gate.open({"spec": {}})                      # nothing to tell, nobody waiting
    assert gate.opened


def test_what_each_rank_trains_on():
    def group(backend, world_size=2, local_rank=1):
        return distributed.Group(0, world_size, local_rank, backend)

    assert rank_device(group("nccl"), torch.device("cuda"), 128) == torch.device("cuda", 1)
    assert rank_device(group("gloo"), torch.device("cpu"), 128) == torch.device("cpu")
    with pytest.raises(ConfigError, match="talk over nccl, which needs device 'cuda'"):
        rank_device(group("nccl"), torch.device("cpu"), 128)
    with pytest.raises(ConfigError, match=r"batch size \(4\) is split over 8 processes"):
        rank_device(group("gloo", world_size=8), torch.device("cpu"), 4)


def test_two_ranks_record_one_run(tmp_path, shapes_root):
    home = tmp_path / "home"
    out = torchrun_cli("--preset", "tiny", "--dataset", "shapes", "--recipe", "modern",
                       "--epochs", "2", "--batch-size", "64", "--max-train-examples", "4096",
                       "--max-test-examples", "1000", "--eval-every", "10", "--name", "ddp",
                       "--home", str(home), "--json", data_root=shapes_root)
    assert out.returncode == 0, out.stdout + out.stderr
    results = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1                                   # rank 0 alone prints
    result = json.loads(results[0])
    assert result["status"] == "completed"
    assert result["test_acc"] > 0.4, result                    # chance is 0.1; seen 0.68
    assert out.stderr.count("epoch 2/2: train loss") == 1

    store = RunStore(home)
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["name"] == "ddp"        # one run row
    run = runs[0]
    assert run["device"] == "cpu x2" and run["final_test_acc"] == result["test_acc"]
    epochs = store.metrics(run["id"], "epoch")
    assert [m["epoch"] for m in epochs] == [1, 2]              # one set of metrics
    steps = [m["step"] for m in store.metrics(run["id"], "step")]
    assert steps == [10, 20, 30, 40, 50, 60, 64, 70, 80, 90, 100, 110, 120, 128]
    files = sorted(p.name for p in store.run_dir(run["id"]).iterdir())
    assert files == ["checkpoint.pt", "epoch_maps"]            # one checkpoint, no leftovers
    state = load_checkpoint(run["checkpoint"])
    assert state["epoch"] == 2 and state["test_acc"] == result["test_acc"]
    spec = NetSpec.from_dict(state["spec"])                    # loads into a plain model
    build_model(spec).load_state_dict(state["model"])


def test_two_ranks_train_like_one_process(tmp_path, shapes_root):
    """Without BatchNorm (whose statistics are per rank on the CPU), splitting every batch over
    two ranks and averaging their gradients is the same training as one process."""
    spec = TINY.replace(name="tiny-no-bn", blocks=tuple(
        dataclasses.replace(b, batch_norm=False) for b in TINY.blocks))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    home = tmp_path / "home"
    out = torchrun_cli("--config", str(spec_file), "--dataset", "shapes", "--recipe", "book",
                       "--lr", "0.3", "--epochs", "1", "--batch-size", "64",
                       "--max-train-examples", "1280", "--max-test-examples", "500",
                       "--eval-every", "2", "--home", str(home), data_root=shapes_root)
    assert out.returncode == 0, out.stdout + out.stderr
    store = RunStore(home)
    run = store.list_runs()[0]
    two = store.metrics(run["id"], "step")

    cfg = TrainConfig.from_dict(run["config"])
    events, states = [], []
    data = [load_dataset("shapes", root=shapes_root, train=t) for t in (True, False)]
    alone = train(spec, cfg, *data, events.append, lambda: False, states.append)
    one = [e for e in events if e["kind"] == "step"]
    assert [m["step"] for m in two] == [e["step"] for e in one] == list(range(2, 21, 2))
    for m, e in zip(two, one):
        assert m["train_loss"] == pytest.approx(e["train_loss"], rel=1e-4)
        assert m["train_acc"] == pytest.approx(e["train_acc"], abs=0.01)
    epoch = store.metrics(run["id"], "epoch")[0]
    assert epoch["test_loss"] == pytest.approx(alone.final_test_loss, rel=1e-4)

    # the weights two ranks reached are one process's, to within 1% of how far training took them
    torch.manual_seed(cfg.seed)
    start = build_model(spec)
    init_xavier(start)
    ranks, single = load_checkpoint(run["checkpoint"])["model"], states[-1]["model"]
    moved = max((single[k] - v).abs().max().item() for k, v in start.state_dict().items())
    apart = max((single[k] - v).abs().max().item() for k, v in ranks.items())
    assert apart < moved / 100, (apart, moved)


@pytest.fixture
def two_gpu_manager(tmp_path, shapes_root, monkeypatch):
    """A job manager that believes it has two GPUs: it starts runs under torchrun, whose ranks
    (seeing no CUDA) train on the CPU over gloo."""
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    jm = JobManager(tmp_path / "home", poll_s=0.1)
    yield jm
    jm.close(stop_runs=True)


def config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({"recipe": "modern", "epochs": 1, "batch_size": 64,
                                  "max_test_examples": 256, "eval_every": 2, **changes})


def test_worker_command_uses_torchrun_for_several_gpus(tmp_path, monkeypatch):
    jm = JobManager(tmp_path / "home")
    try:
        run = {"id": 7, "config": config().to_dict()}
        worker = ["-m", "nin_explorer.runs.worker", "--home", str(jm.home), "--run-id", "7"]
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
        assert jm.worker_command(run) == [*TORCHRUN[:-1], "--nproc_per_node=4", *worker]
        cpu = {"id": 7, "config": config(device="cpu").to_dict()}
        assert jm.worker_command(cpu) == [sys.executable, *worker]
        jm.max_concurrent = 2                                 # small variants share a GPU
        assert jm.worker_command(run) == [sys.executable, *worker]
        jm.max_concurrent = 1
        for gpus in (0, 1):                                   # the CPU path stays as it is
            monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
            assert jm.worker_command(run) == [sys.executable, *worker]
    finally:
        jm.close()


class _Running:
    """Stands in for a worker's Popen that has not exited."""

    def poll(self):
        return None


def test_several_runs_at_once_spread_over_the_gpus(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    jm = JobManager(tmp_path / "home", max_concurrent=3)
    try:
        def env_for(run_id, device="auto"):
            env = jm.worker_env({"id": run_id, "config": config(device=device).to_dict()})
            jm._children[run_id] = _Running()                # as _spawn records it
            return env.get("CUDA_VISIBLE_DEVICES")

        assert [env_for(1), env_for(2), env_for(3)] == ["4", "6", "4"]
        del jm._children[2]                                   # the run on GPU 6 ended
        assert env_for(4) == "6"
        assert env_for(5, device="cpu") == "4,6"              # a CPU run is left as it was
        assert jm.worker_env()["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 3))
    finally:
        jm._children.clear()
        jm.close()


def test_job_manager_stops_a_torchrun_run_and_leaves_no_process(two_gpu_manager):
    jm = two_gpu_manager
    run_id = jm.submit(TINY, config(epochs=100))
    launcher = jm.store.get_run(run_id)["pid"]
    assert b"torch.distributed.run" in Path(f"/proc/{launcher}/cmdline").read_bytes()
    wait_for(lambda: jm.store.metrics(run_id, "step"), 60, "training to start")
    assert jm.store.get_run(run_id)["device"] == "cpu x2"
    assert jm.store.get_run(run_id)["pid"] == launcher       # rank 0 keeps the launcher's pid
    asked = time.monotonic()
    jm.stop(run_id)
    run = wait_for(lambda: jm.store.get_run(run_id)["status"] != "running" and
                   jm.store.get_run(run_id), 15, "the run to stop")
    assert run["status"] == "stopped", run
    assert time.monotonic() - asked < 5.0
    wait_for(lambda: not processes_mentioning(str(jm.home)), 15, "the ranks to exit")
    steps = [m["step"] for m in jm.store.metrics(run_id, "step")]
    assert steps == sorted(set(steps))                        # rank 0 alone wrote them
