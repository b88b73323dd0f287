"""The benchmark scripts start and produce their tables (tiny sizes; nothing here is timed).

They run as `python bench/<script>.py`, as on a GPU machine, so a file in bench/ that shadows a
standard module (bench/concurrent.py once hid `concurrent.futures` from torch) fails here.
"""
import json
import os
import subprocess
import sys

from conftest import ROOT


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_train_gpu_smoke_runs_every_cpu_row_and_the_ten_epoch_process(tmp_path, shapes_root,
                                                                         monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    out = tmp_path / "gpu.json"
    done = bench("bench/train_gpu.py", "--smoke", "--all", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["failed"] == [] and result["data"] == "shapes"
    assert [r["variant"] for r in result["rows"]] == ["fp32", "eval-1024"]
    assert all(r["train_examples_per_sec"] > 0 for r in result["rows"])
    assert result["ten_epochs"]["wall_s"] > result["ten_epochs"]["train_s"] > 0
    assert "| book: PIL resize" in done.stdout and "10 epochs of" in done.stdout


def test_memory_gpu_prints_the_estimates_without_cuda():
    done = bench("bench/memory_gpu.py", "--presets", "tiny,d2l", "--batch", "8")
    rows = [line for line in done.stdout.splitlines() if line.startswith("| d2l")]
    assert len(rows) == 3                                # fp32 sgd, fp32 adam, bf16 momentum


def test_runs_at_once_compares_queues(tmp_path, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    out = tmp_path / "at_once.json"
    bench("bench/runs_at_once.py", "--runs", "2", "--at-once", "1,2", "--examples", "256",
          "--json", str(out), "--timeout", "200")
    rows = json.loads(out.read_text())["rows"]
    assert [r["at_once"] for r in rows] == [1, 2]
    assert all(len(r["final_test_acc"]) == 2 and r["wall_s"] > 0 for r in rows)


def test_exercises_runs_a_plan_through_the_queue_and_prints_its_card(tmp_path, shapes_root,
                                                                     monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    out = tmp_path / "ex.jsonl"
    done = bench("bench/exercises.py", "--only", "last-block", "--home", str(tmp_path / "home"),
                 "--set", "max_train_examples=256", "--set", "max_test_examples=64",
                 "--set", "epochs=1", "--json", str(out))
    row = json.loads(out.read_text())
    assert row["runs"] == 4 and row["statuses"] == ["completed"] * 4 and row["queue_wall_s"] > 0
    assert row["card"] and row["card"] in done.stdout and "Exercise 4" in done.stdout


def test_batch_collapse_sorts_runs_and_reprints_its_table(tmp_path, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    out = tmp_path / "bc.jsonl"
    done = bench("bench/batch_collapse.py", "--batch", "64", "--lr", "0.1", "--examples", "256",
                 "--epochs", "1", "--seeds", "2", "--max-test", "64", "--json", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["outcome"] in ("collapsed", "collapsed late", "exploded",
                                                   "stuck at ln(10)", "learning") for r in rows)
    again = bench("bench/batch_collapse.py", "--table-from", str(out))
    assert again.stdout.strip().splitlines()[-1] == done.stdout.strip().splitlines()[-1]
