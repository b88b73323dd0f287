import math

from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.net.lineage import lineage_rows
from nin_explorer.runs.queries import lineage_measured
from nin_explorer.runs.plan import smallest_input_size
from nin_explorer.net.presets import GOOGLENET, PRESETS, VGG11_NARROW
from nin_explorer.net.summary import summarize


def test_lineage_counts_and_fc_share():
    rows = {r["preset"]: r for r in lineage_rows()}
    assert rows["alexnet"]["params"] == 46_764_746 and rows["alexnet"]["fc_share"] > 0.9
    assert rows["d2l"]["fc_params"] == 0
    assert rows["googlenet"]["params"] == 5_977_530
    assert rows["googlenet"]["fc_params"] == 1024 * 10 + 10


def test_inception_sub_rows_sum_to_their_block():
    s = summarize(GOOGLENET)
    for block in s.blocks:
        rows = [r for r in s.rows if r.block == block.block]
        if not any(r.layer.path for r in rows):
            continue
        assert sum(r.params for r in rows if r.layer.path) == block.params
        assert {r.layer.path for r in rows if r.layer.path} == {"p1", "p2", "p3", "p4"}
        concat = next(r for r in rows if r.type == "Concat")
        ends = [s.rows[i].output_shape[0] for i in concat.layer.concat_of]
        assert concat.output_shape[0] == sum(ends)
    assert [b.output_shape for b in s.blocks if b.block in ("block1", "block3", "block5", "block10")] == [
        (64, 24, 24), (192, 12, 12), (480, 6, 6), (832, 3, 3)]


def test_smallest_input_sizes():
    assert smallest_input_size(PRESETS["d2l"]) == 67
    assert smallest_input_size(VGG11_NARROW, at_least=28) == 32
    assert smallest_input_size(GOOGLENET, at_least=28) == 28


def _run(i, name, acc, size=28, epochs=2, status="completed", seed=0):
    return {"id": i, "spec": {"name": name, "input_size": size}, "status": status,
            "config": {"dataset": "shapes", "epochs": epochs, "seed": seed},
            "final_test_acc": acc, "examples_per_sec": 100.0 * i, "device": "cpu"}


def test_measured_rows_pick_matching_runs():
    runs = [_run(2, "d2l", 0.9), _run(1, "alexnet", 0.5, size=65, epochs=3)]
    rows = lineage_measured(runs, "shapes", 2)
    assert [r["run ids"] for r in rows] == ["#2"]
    assert rows[0]["test accuracy"] == "90.0% (1 seed)"


def test_measured_rows_show_mean_and_spread_over_seeds():
    runs = [_run(1, "d2l", 0.80, seed=0), _run(2, "d2l", 0.84, seed=1), _run(3, "d2l", 0.82, seed=2),
            _run(4, "googlenet", 0.81, seed=0), _run(5, "googlenet", 0.82, seed=1),
            _run(6, "alexnet", 0.60, seed=0), _run(7, "alexnet", 0.62, seed=1),
            _run(8, "d2l", 0.99, status="diverged"), _run(9, "d2l", 0.5, size=32)]
    rows = {(r["network"], r["input"]): r for r in lineage_measured(runs, "shapes", 2)}
    nin = rows[("NiN (2013)", "28 px")]
    assert nin["runs"] == 3 and nin["run ids"] == "#1, #2, #3"      # the diverged run is left out
    assert nin["test accuracy"] == "82.0% ± 2.0 (3 seeds)" and nin["examples_per_sec"] == 200.0
    assert nin["vs best"] == "best"
    # 0.815 against 0.82 +/- 0.02: within noise; AlexNet 21 points down is beyond it
    assert rows[("GoogLeNet (2014)", "28 px")]["vs best"] == "within noise"
    assert rows[("AlexNet (2012)", "28 px")]["vs best"] == "-21.0 pts (beyond noise)"
    assert rows[("NiN (2013)", "32 px")]["vs best"] == "-32.0 pts (spread unknown)"
    assert [r["network"] for r in lineage_measured(runs, "shapes", 2)] == [
        "AlexNet (2012)", "NiN (2013)", "NiN (2013)", "GoogLeNet (2014)"]


def test_lineage_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/lineage.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert "No finished run" in at.info[0].value


def test_course_recipe_per_network():
    from nin_explorer.learn.config import TrainConfig, recipe_defaults
    assert recipe_defaults("course", "alexnet")["lr"] == 0.001
    assert recipe_defaults("course", "alexnet")["epochs"] == 3
    v = recipe_defaults("course", "vgg11-narrow")
    assert (v["optimizer"], v["batch_size"], v["epochs"]) == ("adam", 64, 5)
    g = recipe_defaults("course", "googlenet")
    assert (g["optimizer"], g["lr"], g["input_size"]) == ("sgd", 0.1, 96)
    assert recipe_defaults("course", "d2l")["lr"] == 0.002
    TrainConfig.from_dict({**g, "recipe": "course"})


def test_googlenet_and_narrow_vgg_train_at_small_size(shapes_root, monkeypatch):
    """Short CPU runs of the neighbours at small inputs complete an epoch with a finite loss
    (beating chance takes more than this test's 1,024 images: they measured 0.08-0.11)."""
    from nin_explorer.learn.data import load_dataset
    from nin_explorer.learn.config import TrainConfig
    from nin_explorer.learn.train import train
    tr, te = load_dataset("shapes", root=shapes_root), load_dataset("shapes", root=shapes_root, train=False)
    for name, size in (("googlenet", 28), ("vgg11-narrow", 32)):
        cfg = TrainConfig.from_dict({"recipe": "modern", "epochs": 1, "batch_size": 64,
                                     "input_size": size, "max_train_examples": 1024,
                                     "max_test_examples": 256})
        result = train(PRESETS[name], cfg, tr, te, lambda e: None, lambda: False)
        assert result.status == "completed", (name, result)
        assert result.epochs == 1 and math.isfinite(result.train_loss), (name, result)
        assert result.train_loss < 2 * math.log(10), (name, result)    # not blown up


def test_smallest_input_size_jumps_to_what_the_scan_one_size_at_a_time_finds():
    """It jumps to where a ShapeError says shapes start to work; the answer is the same as
    trying every size from `at_least` up."""
    from nin_explorer.net.spec import SpecError
    from nin_explorer.net.summary import summarize

    def one_by_one(spec, at_least):
        for size in range(at_least, 513):
            try:
                summarize(spec.replace(input_size=size))
                return size
            except SpecError:
                continue
        return None
    for spec in (PRESETS["d2l"], VGG11_NARROW, GOOGLENET):
        for at_least in (8, 28, 40, 67, 100):
            assert smallest_input_size(spec, at_least) == one_by_one(spec, at_least), (spec.name, at_least)
