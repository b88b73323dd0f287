"""The training config: validation with one-line messages, recipes, and the facts others read
from it (the choices, bf16 only on CUDA, each optimiser's memory category)."""
import subprocess
import sys

import pytest

from conftest import ROOT
from nin_explorer.net import summary
from nin_explorer.learn.config import (OPTIMIZERS, RECIPES, ConfigError, TrainConfig, apply_recipe,
                                       effective_precision, memory_settings, setting_types)
from nin_explorer.net.presets import get_preset


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "number of epochs must be between 1 and 1000"),
    ({"epochs": 2.5}, "'epochs' must be a whole number"),
    ({"batch_size": 10_000}, "batch size must be between 1 and 4096"),
    ({"lr": 0}, "learning rate must be above 0"),
    ({"lr": float("nan")}, "learning rate must be above 0"),
    ({"lr": "fast"}, "'lr' must be a number"),
    ({"optimizer": "rmsprop"}, "Optimizer must be one of sgd, sgd-momentum, adamw, adam"),
    ({"schedule": "step"}, "Schedule must be one of constant, cosine, onecycle"),
    ({"warmup_epochs": 20}, "Warm-up must be between 0 and 10"),
    ({"weight_decay": -1e-4}, "Weight decay must be between 0 and 1"),
    ({"label_smoothing": 1.0}, "Label smoothing must be at least 0 and below 1"),
    ({"recipe": "fancy"}, "Recipe must be one of book, modern"),
    ({"recipe": ["book"]}, "Recipe must be one of book, modern"),
    ({"precision": "fp16"}, "Precision must be one of fp32, bf16"),
    ({"device": "tpu"}, "Device must be one of auto, cpu, cuda, mps"),
    ({"seed": -1}, "seed must be between 0"),
    ({"eval_every": 0}, "eval_every must be between 1"),
    ({"input_size": 0}, "input size must be between 1 and 1024"),
    ({"max_train_examples": 0}, "max_train_examples must be between 1"),
    ({"max_test_examples": -3}, "max_test_examples must be between 1"),
    ({"time_budget_s": -5.0}, "time budget must be above 0"),
    ({"dataset": ""}, "Choose a data set"),
    ({"dataset": 7}, "'dataset' must be a text"),
    ({"batch_size": True}, "'batch_size' must be a whole number"),
    ({"learning_rate": 0.1}, "Unknown training setting(s): learning_rate"),
    ({"compile": "max-autotune"}, "Compile must be one of off, default, reduce-overhead"),
    ({"eval_batch_size": 0}, "evaluation batch size must be between 1 and 65536"),
    ({"fused_optimizer": 1}, "'fused_optimizer' must be a boolean (true or false)"),
    ({"ablation_setting": "x" * 301}, "An ablation setting is a short label (at most 300"),
    ({"ablation_setting": ["Head = fc"]}, "'ablation_setting' must be a text"),
])
def test_config_errors_say_what_to_change(change, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict({**TrainConfig().to_dict(), **change})
    assert message in str(e.value)


def test_config_not_a_dict():
    with pytest.raises(ConfigError, match="must be a JSON object"):
        TrainConfig.from_dict(["epochs", 3])


def test_config_round_trip_and_recipe_defaults():
    cfg = TrainConfig.from_dict({"recipe": "modern", "lr": 0.05, "time_budget_s": 30})
    assert cfg.optimizer == "sgd-momentum" and cfg.schedule == "onecycle"
    assert cfg.label_smoothing == 0.1 and cfg.lr == 0.05
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    book = TrainConfig.from_dict({})
    assert book == TrainConfig()
    assert (book.lr, book.batch_size, book.epochs, book.optimizer) == (0.1, 128, 10, "sgd")
    assert all(getattr(TrainConfig.from_dict({"recipe": name}), k) == v
               for name, r in RECIPES.items() for k, v in r.defaults.items())


def test_apply_recipe_shows_what_changes():
    d2l = get_preset("d2l")
    spec, cfg = apply_recipe(d2l, TrainConfig())
    assert spec == d2l and cfg.input_size == 224
    spec, cfg = apply_recipe(d2l, TrainConfig.from_dict({"recipe": "modern", "input_size": 96}))
    assert spec.input_size == 96 and cfg.input_size == 96
    assert all(b.batch_norm for b in spec.blocks)
    assert spec.replace(blocks=d2l.blocks, input_size=224) == d2l
    assert apply_recipe(spec, cfg) == (spec, cfg)  # applying twice changes nothing more




def test_types_come_from_the_annotations():
    types = setting_types()
    assert set(types) == set(TrainConfig().to_dict())
    assert types["input_size"] == (int, True) and types["time_budget_s"] == (float, True)
    assert types["lr"] == (float, False) and types["fused_optimizer"] == (bool, False)
    assert types["dataset"] == (str, False)
    assert TrainConfig.from_dict({"lr": 1, "input_size": None}).lr == 1  # 1 is a number too


def test_bf16_only_on_cuda():
    assert effective_precision("bf16", "cuda") == "bf16"
    assert effective_precision("bf16", "cpu") == effective_precision("bf16", "mps") == "fp32"
    assert effective_precision("fp32", "cuda") == "fp32"


def test_every_training_optimiser_has_a_memory_category():
    for optimizer in OPTIMIZERS:
        precision, category = memory_settings("bf16", optimizer, "cuda")
        assert precision == "bf16" and category in summary.MEMORY_OPTIMIZERS
        summary.summarize(get_preset("tiny"), 8, precision, category)   # the summary takes it
    assert memory_settings("bf16", "adamw", "cpu") == ("fp32", "adam")  # Adam's two moments


def test_every_setting_has_help_text():
    for name, field in TrainConfig.__dataclass_fields__.items():
        assert len(field.metadata["help"]) > 10, name


def test_the_config_loads_without_torch():
    code = "import sys, nin_explorer.learn.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
