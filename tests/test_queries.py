from nin_explorer.net.presets import TINY
from nin_explorer.runs.queries import differing_settings, settings


def test_differing_settings_lists_only_what_differs():
    a = {"id": 1, "spec": TINY.to_dict(), "config": {"lr": 0.1, "epochs": 3}}
    b = {"id": 2, "spec": TINY.replace_block(0, n_extra_1x1=1).to_dict(),
         "config": {"lr": 0.05, "epochs": 3}}
    rows = {r["setting"]: r for r in differing_settings([a, b])}
    assert set(rows) == {"config.lr", "spec.blocks[1].n_extra_1x1"}
    assert rows["config.lr"] == {"setting": "config.lr", "#1": "0.1", "#2": "0.05"}
    assert settings(a)["spec.blocks[4].out_channels"] == 10


def test_settings_added_later_do_not_count_as_differences():
    old = {"id": 1, "spec": TINY.to_dict(), "config": {"lr": 0.1}}
    new = {"id": 2, "spec": TINY.to_dict(), "config": {"lr": 0.1, "compile": "off"}}
    assert differing_settings([old, new]) == []


# --- the questions pages ask of the store (they lived in pages/common.py and the pages) ---

import pytest  # noqa: E402

from nin_explorer.runs import queries as runs  # noqa: E402
from nin_explorer.runs.store import RunStore  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402

CFG = TrainConfig.from_dict({"recipe": "modern", "epochs": 3, "batch_size": 64}).to_dict()


def finished(store, spec=TINY, status="completed", device="cpu", rate=500.0, group=None,
             peaks=None) -> int:
    run_id = store.create_run(spec.to_dict(), CFG, name="r", group=group, status="running")
    store.update_run(run_id, device=device)
    store.set_status(run_id, status, examples_per_sec=rate)
    if peaks:
        store.add_metrics(run_id, [{"kind": "epoch", "epoch": i + 1, "peak_train_memory_bytes": t,
                                    "peak_infer_memory_bytes": p} for i, (t, p) in enumerate(peaks)])
    return run_id


def test_measured_rate_is_the_latest_finished_run_of_that_network_on_that_device():
    store = RunStore()
    assert runs.measured_rate(store, TINY, "cpu") is None
    finished(store, rate=400.0)
    finished(store, rate=600.0)
    finished(store, rate=9000.0, device="cuda:0")
    finished(store, spec=TINY.replace(input_size=32), rate=1.0)
    finished(store, status="failed", rate=2.0)
    assert runs.measured_rate(store, TINY, "cpu") == 600.0
    assert runs.measured_rate(store, TINY, "cuda") == 9000.0


def test_measured_memory_is_the_largest_peak_beside_the_estimate_for_that_run():
    from nin_explorer.net.summary import summarize
    store = RunStore()
    assert runs.measured_memory(store, TINY) is None
    finished(store)                                         # measured nothing: skipped
    run_id = finished(store, peaks=[(100, 10), (300, 20)])
    got = runs.measured_memory(store, TINY)
    est = summarize(TINY, 64, "fp32", "sgd-momentum").memory   # modern: momentum; fp32 on a CPU
    assert got == {"run_id": run_id, "device": "cpu", "batch": 64, "est_train": est.train_bytes,
                   "got_train": 300, "est_infer": est.infer_bytes, "got_infer": 20, "on_gpu": False}


def test_ablation_groups_newest_first_and_runs_with_a_checkpoint():
    store = RunStore()
    first, second = finished(store, group="A"), finished(store, group="B")
    finished(store, group="A")
    finished(store)
    assert runs.ablation_groups(store) == ["A", "B"]          # A has the newest run
    store.checkpoint_path(second).parent.mkdir(parents=True)
    store.checkpoint_path(second).write_bytes(b"x")
    assert [r["id"] for r in runs.runs_with_checkpoint(store)] == [second]
    path, version = runs.checkpoint_version(store, second)
    assert path == store.checkpoint_path(second) and str(path) in version
    assert runs.checkpoint_version(store, first)[1].endswith(" 0")   # no file: the load says so


def test_progress_line_and_the_run_pickers_index():
    run = {"id": 3, "status": "running", "config": {"epochs": 4}, "reason": "Generating shapes"}
    assert runs.progress_line(run, None) == (0.0, "#3 running · Generating shapes")
    step = {"epoch": 1.0, "elapsed_s": 20.0, "examples_per_sec": 1234.0}
    share, text = runs.progress_line(run, step)
    assert share == 0.25 and text == "#3 running · epoch 1.00 of 4 · 1,234 examples/sec · about 60 s left"
    assert runs.progress_line({**run, "status": "completed"}, step)[0] == 1.0
    assert runs.index_of([5, 7, 9], "7") == 1
    assert runs.index_of([5, 7, 9], "²") == 0 and runs.index_of([5, 7, 9], None) == 0


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_runs_table_rows_and_labels(status):
    run = {"id": 2, "name": "tiny on shapes", "status": status, "spec": TINY.to_dict(),
           "config": CFG, "best_test_acc": 0.9123, "examples_per_sec": 812.4, "wall_s": 75.0,
           "device": "cpu", "created": 0}
    row = runs.runs_table([run])[0]
    assert row["best test acc"] == "91.23%" and row["examples/sec"] == 812 and row["time"] == "75 s"
    assert runs.run_label(run) == f"#2 tiny on shapes · {status} · best 91.2%"
