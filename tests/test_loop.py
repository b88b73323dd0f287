"""The loop's pieces on made-up values: the divergence detector, the schedules, the metric
window and the time budget."""
import math

import pytest
import torch

from nin_explorer.learn.config import TrainConfig
from nin_explorer.learn.loop import DivergenceDetector, MetricWindow, TimeBudget, lr_factor


# --- the divergence detector on made-up losses ---

def feed(losses, num_classes=10):
    detector = DivergenceDetector(num_classes)
    for i, loss in enumerate(losses):
        reason = detector.update(loss)
        if reason:
            return i, reason
    return None


def test_detector_non_finite_and_explosion():
    assert feed([2.3, float("nan")])[0] == 1
    assert "not a finite number" in feed([2.3, 1.0, float("inf")])[1]
    assert "exploded" in feed([2.3, 1e4])[1]


def test_detector_collapse_back_to_chance():
    chance = math.log(10)
    at, reason = feed([2.2, 1.2, 0.6, chance + 0.01, chance - 0.015, chance])
    assert at == 5 and "collapsed" in reason and "2.303" in reason


@pytest.mark.parametrize("losses", [
    [math.log(10)] * 20,                                 # never learned: not a divergence
    [2.2, math.log(10), math.log(10), math.log(10)],     # never clearly below chance
    [1.0, 2.3, 2.3, 0.9, 2.3, 2.3, 0.8],                 # bumps that recover
    [1.0, 2.33, 2.34, 2.35, 2.36],                       # near chance but not within 0.02
])
def test_detector_leaves_healthy_or_stuck_runs_alone(losses):
    assert feed(losses) is None


def test_detector_uses_the_number_of_classes():
    at, reason = feed([0.2, math.log(2)] + [math.log(2)] * 2, num_classes=2)
    assert at == 3 and "ln(classes) = 0.693" in reason                # ln 2, not ln 10
    assert feed([0.2] + [math.log(10)] * 5, num_classes=2) is None  # ln 10 is not chance for 2



@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_schedules(schedule):
    cfg = TrainConfig(schedule=schedule, epochs=10, warmup_epochs=1.0)
    factors = [lr_factor(cfg, p / 100) for p in range(101)]
    assert factors[0] == pytest.approx(0.04)          # every warm-up starts at 4% of the peak
    assert factors[10] == pytest.approx(1.0)          # and reaches the peak after 1 epoch of 10
    assert max(factors) == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(1.0 if schedule == "constant" else 0.0, abs=1e-9)
    one_cycle = TrainConfig(schedule="onecycle")      # no warm-up given: rises for a quarter
    assert lr_factor(one_cycle, 0.25) == pytest.approx(1.0)
    assert lr_factor(one_cycle, 0.625) == pytest.approx(0.5)




# --- the metric window and the time budget ---

def test_metric_window_sums_on_the_device_and_reads_once():
    window = MetricWindow(torch.device("cpu"), None, t_start=0.0, steps_per_epoch=4)
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])                 # predicts 0, then 1
    window.add(torch.tensor(1.0), logits, torch.tensor([0, 0]))     # one of two right
    window.add(torch.tensor(3.0), logits, torch.tensor([0, 1]))     # both right
    window.close(2, lr=0.1)
    window.add(torch.tensor(0.5), logits, torch.tensor([1, 0]))     # none right
    window.close(3, lr=0.05)
    assert window.pending and window.sums.tolist() == [0, 0, 0]    # nothing read yet
    extra, events = window.read()
    assert extra == [] and not window.pending
    assert [(e["step"], e["epoch"], e["train_loss"], e["train_acc"], e["lr"]) for e in events] \
        == [(2, 0.5, 2.0, 0.75, 0.1), (3, 0.75, 0.5, 0.0, 0.05)]
    window.end_epoch()
    means = window.epoch_means()
    assert means["train_loss"] == pytest.approx(9 / 6) and means["train_acc"] == pytest.approx(0.5)
    assert window.epoch_sums.tolist() == [0, 0, 0]


def test_time_budget_pulls_the_schedule_and_ends_the_epoch():
    assert TimeBudget(None, t_start=0.0).progress(0.3) == 0.3
    assert TimeBudget(None, t_start=0.0).progress(1.2) == 1.0
    spent = TimeBudget(10.0, t_start=0.0)                 # started long ago (perf_counter 0)
    assert spent.progress(0.1) == 1.0 and spent.check(now=10.0) and spent.hit
    fresh = TimeBudget(10.0, t_start=100.0, shared=True)  # under torchrun rank 0's clock counts
    assert fresh.progress(0.1) == 0.1
    fresh.agree(5.0)
    assert fresh.progress(0.1) == 0.5 and not fresh.hit
    fresh.agree(10.0)
    assert fresh.hit and fresh.verdict(2, 5)[1].startswith("Stopped at the time budget of 10 s")
