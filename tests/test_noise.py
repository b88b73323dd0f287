"""The "within noise" rule, curves at equal cost and exercise findings, on synthetic results."""
import pytest

from nin_explorer.net.presets import TINY
from nin_explorer.runs.noise import (finding, mark_table, mean_pm, verdicts, with_x,
                                     within_noise)


def _rows(setting, accs, status="completed", flops=100, speed=1000.0):
    return [{"setting": setting, "status": status, "final_test_acc": a, "best_test_acc": a,
             "flops": flops, "examples_per_sec": speed} for a in accs]


def test_the_rule_is_difference_of_means_against_the_larger_seed_sd():
    assert within_noise([0.80, 0.82, 0.78], [0.81, 0.79, 0.83]) is True      # diff 0.01 < sd 0.02
    assert within_noise([0.80, 0.81, 0.79], [0.70, 0.71, 0.69]) is False     # diff 0.10 > sd 0.01
    assert within_noise([0.80], [0.70, 0.71]) is None                         # one seed: unknown
    assert within_noise([0.80, None], [0.70, 0.71]) is None


def test_table_marks_best_within_noise_and_beyond():
    rows = (_rows("a", [0.80, 0.81, 0.79]) + _rows("b", [0.795, 0.805, 0.80])
            + _rows("c", [0.60, 0.61, 0.59]) + _rows("d", [0.5]) + _rows("e", [None]))
    v = verdicts({k: [r["final_test_acc"] for r in rows if r["setting"] == k and r["final_test_acc"] is not None]
                  for k in "abcde"})
    assert v == {"a": "best", "b": "within noise", "c": "-20.0 pts (beyond noise)",
                 "d": "-30.0 pts (spread unknown)", "e": "no result yet"}
    table = mark_table([{"setting": k} for k in "abcde"], rows)
    assert table[0]["mean ± sd"] == "80.0% ± 1.0 (3 seeds)" and table[4]["mean ± sd"] == "-"
    assert mean_pm([0.5]) == "50.0% (1 seed)"


def test_findings_say_the_numbers_or_that_the_runs_do_not_settle_it():
    clear = _rows("two", [0.80, 0.81, 0.79], flops=100, speed=1000) + \
        _rows("one", [0.70, 0.71, 0.69], flops=82, speed=1120)
    assert finding(clear) == ("two: 10.0 points above one ± 1.0 over 3 seeds, 22% more FLOPs, "
                              "11% slower.")
    noisy = _rows("a", [0.80, 0.84]) + _rows("b", [0.81, 0.82])
    assert finding(noisy).startswith("The runs do not settle it: a leads b by 0.50 points, within "
                                     "the seed spread of ± 2.8 over 2 seeds")
    one = _rows("a", [0.8]) + _rows("b", [0.7])
    assert "spread is unknown" in finding(one)
    crashed = _rows("256", [0.8, 0.1], status="completed") + _rows("128", [0.8, 0.79])
    crashed[1]["status"] = "diverged"
    assert "collapsed: 1 of 2 at 256, 0 of 2 at 128" in finding(crashed)
    assert "no run collapsed (4 runs)" in finding(_rows("a", [0.8, 0.8]) + _rows("b", [0.7, 0.7]),
                                                  always_count_collapses=True)
    assert finding(_rows("a", [None])).startswith("The runs do not settle it yet: 0 of 1")
    stuck = _rows("256", [0.10, 0.12, 0.09]) + _rows("128", [0.10, 0.10, 0.11])
    assert finding(stuck, always_count_collapses=True) == (
        "The runs do not settle it: none of the 6 runs left chance (best test accuracy 12%, chance "
        "10%), so there was nothing to compare or to collapse.")
    some = _rows("256", [0.80, 0.12, 0.82]) + _rows("128", [0.81, 0.83, 0.79])
    assert finding(some).endswith("; 1 of 6 runs never left chance.")


def test_x_axes_epochs_examples_seconds_flops():
    run = {"spec": TINY.to_dict(), "config": {"batch_size": 64, "recipe": "modern"}}
    rows = [{"epoch": 1, "step": 10, "elapsed_s": 3.0}, {"epoch": 2, "step": 20, "elapsed_s": 6.5}]
    assert [r["x"] for r in with_x(run, rows, "epochs")] == [1, 2]
    assert [r["x"] for r in with_x(run, rows, "examples seen")] == [640, 1280]
    assert [r["x"] for r in with_x(run, rows, "seconds")] == [3.0, 6.5]
    from nin_explorer.net.summary import summarize
    assert [r["x"] for r in with_x(run, rows, "FLOPs")] == [640 * 3 * summarize(TINY, 1).flops,
                                                             1280 * 3 * summarize(TINY, 1).flops]
    with pytest.raises(ValueError):
        with_x(run, rows, "hours")


def test_differences_under_a_point_keep_two_decimals():
    small = _rows("one", [0.9824, 0.9821]) + _rows("two", [0.9820, 0.9812])
    assert finding(small).startswith("one: 0.07 points above two ± 0.06 over 2 seeds")
