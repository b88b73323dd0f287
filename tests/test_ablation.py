import csv
import io

import pytest

from nin_explorer.runs.ablation import MAX_RUNS, aggregate, apply_factor, expand, to_csv
from nin_explorer.net.presets import D2L, TINY
from nin_explorer.net.spec import SpecError
from nin_explorer.net.summary import summarize
from nin_explorer.learn.config import TrainConfig

CFG = TrainConfig(epochs=1)


def test_expansion_is_the_cartesian_product_times_seeds():
    runs = expand(TINY, CFG, {"n_extra_1x1": [0, 1, 2], "head": ["gap", "fc"]}, seeds=2)
    assert len(runs) == 12
    assert {r.seed for r in runs} == {0, 1}
    assert len({r.label for r in runs}) == 6
    one = next(r for r in runs if r.setting == {"n_extra_1x1": 1, "head": "fc"})
    assert one.spec.head == "fc" and all(b.n_extra_1x1 == 1 for b in one.spec.blocks)
    for r in runs:
        summarize(r.spec)  # every planned network is valid


@pytest.mark.parametrize("factors, seeds, message", [
    ({}, 1, "at least one factor"),
    ({"lr": [0.1], "epochs": [1], "width": [1.0]}, 1, "at most two factors"),
    ({"lr": [0.1]}, 0, "between 1 and 10 seeds"),
    ({"colour": [1]}, 1, "Unknown factor"),
    ({"lr": []}, 1, "at least one value"),
    ({"lr": [0.1] * 7, "epochs": [1] * 7}, 1, f"cap is {MAX_RUNS}"),
    ({"input_size": [2]}, 1, "does not make a valid network"),
])
def test_bad_plans_refused(factors, seeds, message):
    with pytest.raises(SpecError, match=message):
        for r in expand(TINY, CFG, factors, seeds):
            summarize(r.spec)


def test_factors_change_what_they_say():
    spec, cfg = apply_factor(D2L, CFG, "lr", 0.05)
    assert cfg.lr == 0.05 and spec == D2L
    spec, _ = apply_factor(D2L, CFG, "width", 0.5)
    assert [b.out_channels for b in spec.blocks] == [48, 128, 192, 10]
    spec, _ = apply_factor(D2L, CFG, "last_block", "one conv")
    assert spec.blocks[-1].n_extra_1x1 == 0 and spec.blocks[0].n_extra_1x1 == 2
    spec, _ = apply_factor(D2L, CFG, "head", "gap-linear")
    assert len(spec.blocks) == 3 and summarize(spec).output_shape == (10,)
    spec, _ = apply_factor(D2L, CFG, "dropout", 0.0)
    assert all(b.dropout == 0 for b in spec.blocks)
    spec, _ = apply_factor(TINY, CFG, "batch_norm", False)
    assert not any(b.batch_norm for b in spec.blocks)


def test_aggregate_mean_and_spread_over_seeds_and_csv():
    rows = [
        {"setting": "a", "status": "completed", "best_test_acc": 0.8, "final_test_acc": 0.7,
         "params": 10, "flops": 20, "examples_per_sec": 100.0, "wall_s": 5.0},
        {"setting": "a", "status": "diverged", "best_test_acc": 0.6, "final_test_acc": 0.1,
         "params": 10, "flops": 20, "examples_per_sec": 300.0, "wall_s": 7.0},
        {"setting": "b", "status": "running", "best_test_acc": None, "final_test_acc": None,
         "params": 5, "flops": 6, "examples_per_sec": None, "wall_s": None},
    ]
    out = {r["setting"]: r for r in aggregate(rows)}
    assert out["a"]["runs"] == 2
    assert out["a"]["best_test_acc"] == pytest.approx(0.7)
    assert out["a"]["best_test_acc_sd"] == pytest.approx(0.1414, abs=1e-3)
    assert out["a"]["examples_per_sec"] == 200.0
    assert out["a"]["status"] == "1 completed, 1 diverged"
    assert out["b"]["best_test_acc"] is None
    parsed = list(csv.DictReader(io.StringIO(to_csv(aggregate(rows)))))
    assert [p["setting"] for p in parsed] == ["a", "b"]
    assert float(parsed[0]["best_test_acc"]) == pytest.approx(0.7)


def test_an_ablation_run_keeps_its_setting_in_its_config():
    """The results table groups by the setting recorded at submit, not by the run's name;
    a run stored before that field existed falls back to its name."""
    from nin_explorer.runs.ablation import result_rows, run_setting
    runs = expand(TINY, CFG, {"head": ["gap", "fc"]}, seeds=2)
    assert {r.config.ablation_setting for r in runs} == {"Head = gap", "Head = fc"}
    assert runs[0].name == "Head = gap · seed 0"
    stored = [{"id": i, "name": "renamed by hand", "status": "completed", "spec": r.spec.to_dict(),
               "config": r.config.to_dict()} for i, r in enumerate(runs)]
    old = {"id": 9, "name": "Head = fc · seed 1", "status": "completed", "spec": TINY.to_dict(),
           "config": {k: v for k, v in CFG.to_dict().items() if k != "ablation_setting"}}
    assert run_setting(old) == "Head = fc"
    rows = result_rows(stored + [old], {i: [] for i in (0, 1, 2, 3, 9)})
    assert [r["setting"] for r in rows] == ["Head = gap"] * 2 + ["Head = fc"] * 3
    table = {r["setting"]: r for r in aggregate(rows)}
    assert table["Head = fc"]["runs"] == 3
    assert table["Head = fc"]["params"] == summarize(runs[2].spec).params
