"""A run store and checkpoint written by an earlier version (tests/fixtures/compat-store, made by
tests/fixtures/make_compat_store.py) still open, read and extend the same way today."""
import json
from dataclasses import replace
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from fixtures.make_compat_store import FAILING, TRAINED, fixed_input
from nin_explorer.look.maps import open_checkpoint
from nin_explorer.net.presets import get_preset
from nin_explorer.net.spec import NetSpec
from nin_explorer.runs.store import RunStore
from nin_explorer.learn.config import ConfigError, TrainConfig

FIXTURE = ROOT / "tests" / "fixtures" / "compat-store"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def home(tmp_path):
    """A copy, so that opening it (migrations, WAL files) never touches the committed one."""
    copy = tmp_path / "old-store"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_the_fixture_is_one_sqlite_file_and_one_small_checkpoint():
    files = sorted(str(p.relative_to(FIXTURE)) for p in FIXTURE.rglob("*") if p.is_file())
    assert files == ["checkpoints/1/checkpoint.pt", "expected.json", "runs.sqlite"]
    assert sum((FIXTURE / f).stat().st_size for f in files) < 300 * 1024


def test_old_runs_read_as_they_were_written(home):
    runs = RunStore(home).list_runs()
    assert [(r["id"], r["name"], r["status"]) for r in runs] == [
        (2, "tiny failing", "failed"), (1, "tiny trained", "completed")]
    failed, done = runs
    assert failed["error"] == "The learning rate must be above 0 and at most 1e6 (it is -1.0)."
    assert failed["final_test_acc"] is None and failed["checkpoint"] is None
    assert done["error"] is None and done["reason"] == "Trained for 2 epoch(s)."
    assert done["device"] == "cpu" and done["final_test_acc"] == pytest.approx(0.12890625)
    assert NetSpec.from_dict(done["spec"]) == get_preset("tiny")
    assert done["config"] == TRAINED and failed["config"] == FAILING
    assert TrainConfig.from_dict(done["config"]).max_train_examples == 1024
    with pytest.raises(ConfigError, match="learning rate"):
        TrainConfig.from_dict(failed["config"])
    for run, then in zip(runs, EXPECTED["runs"]):   # every column the old code wrote, unchanged
        assert {k: run[k] for k in then} == then


def test_old_metric_rows_read_as_they_were_written(home):
    store = RunStore(home)
    epochs = store.metrics(1, "epoch")
    assert [m["epoch"] for m in epochs] == [1.0, 2.0]
    assert epochs[-1]["test_acc"] == pytest.approx(0.12890625)
    assert epochs == EXPECTED["metrics"]["epoch"]
    assert store.metrics(1, "step") == EXPECTED["metrics"]["step"]
    assert store.metrics(2, "epoch") == []


def test_old_checkpoint_loads_and_predicts_what_it_predicted(home):
    ckpt = open_checkpoint(RunStore(home).checkpoint_path(1))
    tiny = get_preset("tiny")   # as trained: the modern recipe puts BatchNorm in every block
    assert ckpt.spec == tiny.replace(blocks=tuple(replace(b, batch_norm=True)
                                                  for b in tiny.blocks))
    assert ckpt.epoch == EXPECTED["epoch"] == 2 and ckpt.config == TrainConfig.from_dict(
        TRAINED).to_dict()
    assert ckpt.classes == EXPECTED["classes"] and ckpt.classes[0] == "circle"
    with torch.no_grad():
        logits = ckpt.model(fixed_input())
    torch.testing.assert_close(logits, torch.tensor(EXPECTED["logits"]), atol=1e-4, rtol=1e-4)


def test_cli_lists_the_old_runs(home):
    out = subprocess.run([sys.executable, "-m", "nin_explorer", "runs", "--home", str(home)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["id", "name"] and len(lines) == 3
    assert lines[1].startswith("2") and "tiny failing" in lines[1] and "failed" in lines[1]
    assert "tiny trained" in lines[2] and "completed" in lines[2] and "0.129" in lines[2]


def test_a_new_run_joins_the_old_store(home):
    store = RunStore(home)
    new = store.create_run(get_preset("tiny").to_dict(), TRAINED, name="new one",
                           status="running")
    assert new == 3
    store.add_metrics(new, [{"kind": "epoch", "step": 4, "epoch": 1.0, "test_acc": 0.5}])
    assert store.set_status(new, "completed", final_test_acc=0.5, expect=("running",))
    assert [r["id"] for r in store.list_runs()] == [3, 2, 1]
    assert store.metrics(new)[0]["id"] > EXPECTED["metrics"]["step"][-1]["id"]
    assert store.get_run(new)["final_test_acc"] == 0.5
    assert store.metrics(1, "epoch") == EXPECTED["metrics"]["epoch"]   # the old rows stay
