"""`python -m nin_explorer train` and `runs`: the smoke path CI runs end to end, and bad input."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from nin_explorer.cli import main


def run_cli(*args, data_root=None, timeout=120):
    env = dict(os.environ)
    if data_root is not None:
        env["NIN_EXPLORER_DATA"] = str(data_root)
    return subprocess.run([sys.executable, "-m", "nin_explorer", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


SMOKE = ("--preset", "tiny", "--dataset", "shapes", "--epochs", "2", "--batch-size", "64",
         "--max-train-examples", "256", "--max-test-examples", "256", "--recipe", "modern")


def test_train_records_the_run_and_prints_json(tmp_path, shapes_root):
    home = tmp_path / "home"
    out = run_cli("train", *SMOKE, "--name", "smoke", "--home", str(home), "--json",
                  data_root=shapes_root)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"run_id", "status", "test_acc", "train_loss", "examples_per_sec",
                           "wall_s"}
    assert result["run_id"] == 1 and result["status"] == "completed"
    assert result["examples_per_sec"] > 0
    assert "epoch 2/2: train loss" in out.stderr  # progress goes to stderr with --json

    listed = run_cli("runs", "--home", str(home), "--json")
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [1] and runs[0]["name"] == "smoke"
    assert runs[0]["config"]["recipe"] == "modern" and runs[0]["config"]["epochs"] == 2
    assert runs[0]["spec"]["name"] == "tiny" and runs[0]["checkpoint"]
    assert runs[0]["final_test_acc"] == result["test_acc"]   # what it printed is what it recorded

    table = run_cli("runs", "--home", str(home))
    assert table.returncode == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:6] == ["id", "name", "network", "data", "recipe", "status"]
    assert row.split()[:6] == ["1", "smoke", "tiny", "shapes", "modern", "completed"]
    assert row.split()[6] == f"{result['test_acc']:.3f}"          # and the table shows it


def test_train_config_file_and_flags(tmp_path, shapes_root):
    settings = tmp_path / "train.json"
    settings.write_text(json.dumps({"recipe": "book", "lr": 0.05, "epochs": 3}))
    out = run_cli("train", *SMOKE[:-2], "--epochs", "1", "--train-config", str(settings),
                  "--home", str(tmp_path), data_root=shapes_root)
    assert out.returncode == 0, out.stderr
    assert "epoch 1/1: train loss" in out.stdout and "run 1 completed" in out.stdout
    runs = json.loads(run_cli("runs", "--home", str(tmp_path), "--json").stdout)
    assert runs[0]["config"]["lr"] == 0.05 and runs[0]["config"]["epochs"] == 1  # flag wins


def test_runs_on_an_empty_home(tmp_path):
    out = run_cli("runs", "--home", str(tmp_path))
    assert out.returncode == 0 and "no runs yet" in out.stdout


@pytest.mark.parametrize("args, message", [
    (("--lr", "-1"), "learning rate must be above 0"),
    (("--lr", "fast"), "argument --lr: invalid float value"),
    (("--epochs", "0"), "argument --epochs: 0 must be at least 1"),
    (("--recipe", "fancy"), "Recipe must be one of book, modern"),
    (("--optimizer", "rmsprop"), "Optimizer must be one of"),
    (("--dataset", "no-such-data"), "Unknown data set 'no-such-data'"),
    (("--preset", "resnet"), "argument --preset: invalid choice"),
    (("--input-size", "3"), "Use an input of at least"),
    (("--train-config", "missing.json"), "cannot read missing.json"),
    (("--config", "missing.json"), "cannot read missing.json"),
    (("--bogus",), "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    try:
        code = main(["train", *args, "--home", str(tmp_path)])
    except SystemExit as e:  # argparse's own checks
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_argument_from_the_shell_has_no_traceback(tmp_path):
    out = run_cli("train", "--lr", "-1", "--home", str(tmp_path))
    assert out.returncode == 2 and out.stderr.startswith("error: The learning rate")
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"epochs": "ten"}', "'epochs' must be a whole number"),
])
def test_bad_train_config_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["train", "--train-config", str(path), "--home", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs.sqlite").exists()  # nothing recorded for a bad command


def test_train_flags_come_from_the_config_fields(monkeypatch, capsys):
    from dataclasses import fields

    from nin_explorer.cli import make_parser
    from nin_explorer.learn.config import TrainConfig

    monkeypatch.setenv("COLUMNS", "1000")          # one line per flag: no wrapped help
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for f in fields(TrainConfig):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if flag is None:   # bookkeeping the app records (ablation_setting): no flag
            assert f"--{f.name.replace('_', '-')}" not in out
            continue
        assert f"\n  {flag}" in out and f.metadata["help"] in out, flag
    args = make_parser().parse_args(["train", "--time-budget", "5", "--no-fused-optimizer",
                                     "--seed", "0", "--input-size", "32", "--lr", "0.5"])
    assert (args.time_budget_s, args.fused_optimizer, args.seed) == (5.0, False, 0)
    assert (args.input_size, args.lr, args.epochs, args.dataset) == (32, 0.5, None, None)
