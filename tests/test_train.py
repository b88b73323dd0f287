"""The training loop: it learns, it is reproducible, it notices divergence, it validates."""
import time

import pytest
import torch

from nin_explorer.learn.config import ConfigError, TrainConfig
from nin_explorer.learn.data import Dataset, load_dataset
from nin_explorer.net.presets import get_preset
from nin_explorer.net.spec import BlockSpec, NetSpec
from nin_explorer.runs.checkpoint import load_checkpoint, save_checkpoint
from nin_explorer.learn.train import train

TINY = get_preset("tiny")


@pytest.fixture(scope="session")
def shapes(shapes_root):
    return load_dataset("shapes", root=shapes_root), load_dataset("shapes", root=shapes_root,
                                                                  train=False)


def run(spec, cfg, train_data, test_data, should_stop=lambda: False):
    events, states = [], []
    result = train(spec, cfg, train_data, test_data, events.append, should_stop, states.append)
    return result, events, states


def small(**changes) -> TrainConfig:
    values = {"recipe": "modern", "epochs": 1, "batch_size": 64, "max_train_examples": 512,
              "max_test_examples": 256, "eval_every": 2, "seed": 1, **changes}
    return TrainConfig.from_dict(values)


# --- training for real ---

def test_short_run_learns_and_reports(shapes, tmp_path):
    train_data, test_data = shapes
    cfg = small(epochs=2, batch_size=32, max_train_examples=2500, max_test_examples=1000,
                eval_every=10)
    result, events, states = run(TINY, cfg, train_data, test_data)

    assert result.status == "completed" and result.epochs == 2
    assert result.final_test_acc > 0.4, result  # chance is 0.1; seeds 1-3 gave 0.65-0.71
    assert result.best_test_acc >= result.final_test_acc and result.examples_per_sec > 0
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "start" and kinds.count("epoch") == 2
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["step"] for e in steps[:3]] == [10, 20, 30]
    assert set(steps[0]) == {"kind", "step", "epoch", "train_loss", "train_acc", "lr",
                             "examples_per_sec", "elapsed_s"}
    epoch = [e for e in events if e["kind"] == "epoch"][-1]
    assert epoch["test_acc"] == result.final_test_acc and epoch["epoch"] == 2
    assert epoch["peak_train_memory_bytes"] > 10 * 2**20
    assert epoch["peak_infer_memory_bytes"] > 10 * 2**20
    assert epoch["peak_memory_bytes"] == max(epoch["peak_train_memory_bytes"],
                                             epoch["peak_infer_memory_bytes"])
    assert epoch["train_loss"] < steps[0]["train_loss"]

    # one checkpoint per epoch, plain tensors and builtins, loadable with weights_only=True
    assert [s["epoch"] for s in states] == [1, 2]
    path = tmp_path / "ckpt.pt"
    save_checkpoint(states[-1], path)
    state = load_checkpoint(path)
    assert state["config"] == cfg.replace(input_size=28).to_dict()
    assert state["classes"] == train_data.classes
    spec = NetSpec.from_dict(state["spec"])
    assert all(b.batch_norm for b in spec.blocks)  # the modern recipe's network
    assert all(t.device.type == "cpu" for t in state["model"].values())


def test_same_seed_same_metrics(shapes):
    train_data, test_data = shapes
    first = run(TINY, small(), train_data, test_data)
    second = run(TINY, small(), train_data, test_data)
    other = run(TINY, small(seed=2), train_data, test_data)

    def losses(r):
        return [e["train_loss"] for e in r[1] if e["kind"] == "step"]

    assert losses(first) == losses(second)
    assert first[0].final_test_acc == second[0].final_test_acc
    assert losses(first) != losses(other)


def test_absurd_learning_rate_diverges(shapes):
    train_data, test_data = shapes
    cfg = small(recipe="book", lr=1e6, epochs=3)
    result, events, _ = run(TINY, cfg, train_data, test_data)
    assert result.status == "diverged"
    assert "learning rate" in result.reason
    assert result.epochs == 1 and not [e for e in events if e["kind"] == "epoch"]


def test_stop_is_honoured_quickly(shapes):
    train_data, test_data = shapes
    t_stop = time.perf_counter() + 1.0
    result, _, states = run(TINY, small(epochs=50, max_train_examples=None), train_data,
                            test_data, should_stop=lambda: time.perf_counter() > t_stop)
    assert result.status == "stopped" and "Stopped" in result.reason
    assert time.perf_counter() - t_stop < 2.0
    assert states == []


def test_time_budget_ends_the_run(shapes):
    train_data, test_data = shapes
    result, events, states = run(TINY, small(epochs=50, max_train_examples=None,
                                             time_budget_s=1.5), train_data, test_data)
    assert result.status == "completed" and "time budget" in result.reason
    assert result.epochs == 1 and len(states) == 1 and len(events) >= 3


def test_input_size_resizes_on_the_fly(shapes):
    train_data, test_data = shapes
    result, events, _ = run(TINY, small(recipe="book", input_size=36, max_train_examples=128),
                            train_data, test_data)
    assert result.status == "completed"
    assert events[0]["input_size"] == 36 and events[0]["spec"]["input_size"] == 36


def test_data_that_does_not_fit_the_network():
    rgb = Dataset("rgb", torch.zeros(8, 3, 28, 28, dtype=torch.uint8),
                  torch.zeros(8, dtype=torch.int64), ["a", "b"])
    with pytest.raises(ConfigError, match="takes 1-channel images but rgb has 3"):
        run(TINY, small(), rgb, rgb)
    many = Dataset("many", torch.zeros(8, 1, 28, 28, dtype=torch.uint8),
                   torch.arange(8) * 3, [str(i) for i in range(22)])
    with pytest.raises(ConfigError, match="has 22 classes but the network has 10 outputs"):
        run(TINY, small(), many, many)


def test_missing_device_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = Dataset("d", torch.zeros(8, 1, 28, 28, dtype=torch.uint8),
                   torch.zeros(8, dtype=torch.int64), ["a"])
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        run(TINY, small(device="cuda"), data, data)


def test_gap_head_spec_with_three_classes_trains():
    spec = NetSpec(name="three", input_size=28, num_classes=3, blocks=(
        BlockSpec(8, kernel=3, padding=1, pool="max", pool_kernel=2, pool_stride=2),
        BlockSpec(3, kernel=3, padding=1, n_extra_1x1=1)))
    labels = torch.arange(64) % 3   # class c is brightness 100 c (+ noise): learnable in 12 steps
    noise = torch.randint(0, 50, (64, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    images = (labels.view(-1, 1, 1, 1) * 100 + noise).to(torch.uint8)
    data = Dataset("three", images, labels, ["a", "b", "c"])
    result, _, _ = run(spec, small(max_train_examples=None, batch_size=16, epochs=3), data, data)
    assert result.status == "completed" and result.final_test_acc > 0.5  # chance 1/3; saw 0.67-1


# --- the loop's arithmetic, pinned ---

def pinned_data():
    g = torch.Generator().manual_seed(123)

    def split(n):
        return Dataset("pin", torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                       torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(10)])
    return split(96), split(40)


# Produced by the loop before it was split into data, metric window and budget objects (CPU,
# fp32): a refactor of train() must give these numbers. A ragged eval_every (a point at each
# epoch's end), a subset, a resize and a ragged last evaluation batch are all on the path.
PINNED = {
    "modern": dict(
        steps=[(3, 0.75, 2.3012917836507163, 0.14583333333333334, 0.05),
               (4, 1.0, 2.3022713661193848, 0.0625, 0.04166666666666667),
               (6, 1.5, 2.2074451446533203, 0.65625, 0.025),
               (8, 2.0, 2.2401695251464844, 0.4375, 0.008333333333333331)],
        epochs=[(4, 1, 2.3015365600585938, 0.125, 2.3015370686848957, 0.16666666666666666,
                 0.04166666666666667),
                (8, 2, 2.2238073348999023, 0.546875, 2.295948791503906, 0.16666666666666666,
                 0.008333333333333331)],
        weights=1846.1749430320185),
    "book": dict(
        steps=[(3, 0.75, 2.3308585484822593, 0.125, 0.05),
               (4, 1.0, 2.3432466983795166, 0.25, 0.05),
               (6, 1.5, 2.3264875411987305, 0.0625, 0.05),
               (8, 2.0, 2.1916747093200684, 0.25, 0.05)],
        epochs=[(4, 1, 2.3339555263519287, 0.15625, 2.3242813110351563, 0.03333333333333333, 0.05),
                (8, 2, 2.2590811252593994, 0.15625, 2.3402313232421874, 0.06666666666666667, 0.05)],
        weights=2632.861203696718),
}


@pytest.mark.parametrize("recipe", sorted(PINNED))
def test_seeded_run_gives_the_pinned_numbers(recipe):
    cfg = TrainConfig.from_dict({
        "recipe": recipe, "epochs": 2, "batch_size": 16, "max_train_examples": 64,
        "max_test_examples": 30, "eval_batch_size": 8, "eval_every": 3, "seed": 5,
        "input_size": 32, "device": "cpu", "lr": 0.05})
    result, events, states = run(TINY, cfg, *pinned_data())
    steps = [(e["step"], e["epoch"], e["train_loss"], e["train_acc"], e["lr"])
             for e in events if e["kind"] == "step"]
    epochs = [(e["step"], e["epoch"], e["train_loss"], e["train_acc"], e["test_loss"],
               e["test_acc"], e["lr"]) for e in events if e["kind"] == "epoch"]
    want = PINNED[recipe]
    assert (result.status, result.epochs, result.steps) == ("completed", 2, 8)
    assert [r[:2] for r in steps] == [r[:2] for r in want["steps"]]
    assert steps == [pytest.approx(r, rel=1e-6, abs=1e-6) for r in want["steps"]]
    assert epochs == [pytest.approx(r, rel=1e-6, abs=1e-6) for r in want["epochs"]]
    assert (result.train_loss, result.final_test_loss, result.final_test_acc) == pytest.approx(
        want["epochs"][-1][2:3] + want["epochs"][-1][4:6], rel=1e-6)
    weights = sum(float(v.double().abs().sum()) for v in states[-1]["model"].values())
    assert weights == pytest.approx(want["weights"], rel=1e-6)
