"""What a run is asked to do: the training config, its choices, and the recipes.

No torch here: the CLI's flags, the store, the share link and the memory plan read this module
without loading torch. Each field of TrainConfig carries its help text (the CLI's `train` flags
are made from the fields), and `from_dict` / validation give one-line ConfigErrors.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from nin_explorer.learn.catalogue import BAD_FILES
from nin_explorer.net.spec import MAX_INPUT_SIZE, NetSpec
from nin_explorer.net.summary import PRECISIONS

# Each training optimiser, and the memory it keeps as one of summary.MEMORY_OPTIMIZERS (the optimiser
# state per parameter): AdamW keeps Adam's two moments.
OPTIMIZER_MEMORY = MappingProxyType({"sgd": "sgd", "sgd-momentum": "sgd-momentum",
                                     "adamw": "adam", "adam": "adam"})
OPTIMIZERS = tuple(OPTIMIZER_MEMORY)
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
# torch.compile modes; "reduce-overhead" also replays the step as a CUDA graph on a GPU.
COMPILE_MODES = ("off", "default", "reduce-overhead")


class ConfigError(ValueError):
    """A training setting a learner must change; the message says what to change."""


def effective_precision(precision: str, device_type: str) -> str:
    """The precision a run computes in on `device_type` ('cpu', 'cuda', 'mps'): bf16 autocast
    applies on CUDA only, since on a CPU it is 25-40x slower (AVX2) and elsewhere untested."""
    return precision if device_type == "cuda" else "fp32"


def memory_settings(precision: str, optimizer: str, device_type: str) -> tuple[str, str]:
    """The (precision, optimiser) that summarize() weighs for a run on `device_type`."""
    return effective_precision(precision, device_type), OPTIMIZER_MEMORY.get(optimizer, optimizer)


# --- recipes ---

@dataclass(frozen=True)
class Recipe:
    """A named set of config defaults plus what it does to the network."""

    name: str
    title: str
    description: str
    defaults: MappingProxyType     # TrainConfig fields
    batch_norm: bool               # add BatchNorm to every block of the spec
    xavier_init: bool              # Xavier-uniform conv and linear weights (else torch's init)


# The book's settings; the other recipes list what they change.
_BOOK = dict(epochs=10, batch_size=128, lr=0.1, optimizer="sgd", weight_decay=0.0,
             schedule="constant", warmup_epochs=0.0, label_smoothing=0.0, precision="fp32")

RECIPES: dict[str, Recipe] = {
    "book": Recipe(
        "book", "The book (d2l.ai 7.3)",
        "Xavier-uniform init, plain SGD at lr 0.1, batch 128, 10 epochs, constant learning "
        "rate, fp32, pixels scaled to [0, 1] with no normalisation.",
        MappingProxyType(_BOOK), batch_norm=False, xavier_init=True),
    # The tiny preset's best recipe on `shapes` (bench/train_cpu.py measures it).
    "modern": Recipe(
        "modern", "Modern",
        "BatchNorm after every conv, SGD with Nesterov momentum 0.9, one-cycle learning rate "
        "peaking at 0.1, weight decay 5e-4, label smoothing 0.1, bf16 on a CUDA GPU.",
        MappingProxyType({**_BOOK, "optimizer": "sgd-momentum", "weight_decay": 5e-4,
                          "schedule": "onecycle", "label_smoothing": 0.1, "precision": "bf16"}),
        batch_norm=True, xavier_init=False),
    # The course notes' settings; per-network values come from COURSE_SETTINGS.
    "course": Recipe(
        "course", "Course notes",
        "The settings the course notes train each network with: Xavier init, no BatchNorm, "
        "fp32; AlexNet Adam 0.001 for 3 epochs, narrow VGG-11 Adam 0.001 for 5 epochs at batch "
        "64, NiN Adam 0.002 for 5 epochs, GoogLeNet SGD 0.1 for 5 epochs at 96x96.",
        MappingProxyType({**_BOOK, "epochs": 5, "lr": 0.002, "optimizer": "adam"}),
        batch_norm=False, xavier_init=True),
}


# Per-network settings of the course recipe, by preset name (REFERENCE.md).
COURSE_SETTINGS = {
    "alexnet": dict(optimizer="adam", lr=0.001, epochs=3),
    "vgg11": dict(optimizer="adam", lr=0.001, epochs=5, batch_size=64),
    "vgg11-narrow": dict(optimizer="adam", lr=0.001, epochs=5, batch_size=64),
    "d2l": dict(optimizer="adam", lr=0.002, epochs=5),
    "googlenet": dict(optimizer="sgd", lr=0.1, epochs=5, input_size=96),
}


def recipe_defaults(recipe: str, network: str) -> dict:
    """The config values a recipe sets for a network (the course recipe differs per network)."""
    if recipe not in RECIPES:
        raise ConfigError(f"Recipe must be one of {', '.join(RECIPES)}, not {recipe!r:.40}.")
    extra = COURSE_SETTINGS.get(network, {}) if recipe == "course" else {}
    return {**RECIPES[recipe].defaults, **extra}


# --- the config ---

def _setting(default, help: str, **cli):
    """A TrainConfig field with its help text. `cli` for the command line's flag: `flag` (its
    name when not --field-name; None for no flag), `metavar`, `positive` (a whole number of at
    least 1)."""
    return field(default=default, metadata={"help": help, **cli})


def _one_of(choices) -> str:
    return ", ".join(choices)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run except the network. Defaults are the book recipe's."""

    dataset: str = _setting("shapes", "the data set: shapes (default), shapes-hard, "
                            "fashion-mnist, ... or folder:PATH")
    bad_files: str = _setting("refuse", f"a folder's unreadable images: {_one_of(BAD_FILES)} "
                              "(refuse names them; skip leaves them out)")
    input_size: int | None = _setting(None, "resize images to this size (default: the "
                                      "network's)", positive=True)
    epochs: int = _setting(10, "passes over the training images", positive=True)
    batch_size: int = _setting(128, "images per step (over all processes under torchrun)",
                               positive=True)
    lr: float = _setting(0.1, "(peak) learning rate: the top of a warm-up or one-cycle")
    optimizer: str = _setting("sgd", f"the update rule: {_one_of(OPTIMIZERS)}")
    weight_decay: float = _setting(0.0, "L2 penalty on the weights, 0 to 1")
    schedule: str = _setting("constant", f"learning rate schedule: {_one_of(SCHEDULES)}")
    warmup_epochs: float = _setting(0.0, "epochs of linear warm-up; for one-cycle the rise "
                                    "(0: a quarter of the run)")
    label_smoothing: float = _setting(0.0, "share of each target spread over all classes")
    recipe: str = _setting("book", f"{_one_of(RECIPES)} (default book): sets the defaults of "
                           "the other settings")
    precision: str = _setting("fp32", f"{_one_of(PRECISIONS)} (bf16 applies on CUDA only; "
                              "elsewhere the run uses fp32)")
    device: str = _setting("auto", f"{_one_of(DEVICES)} (auto: CUDA, then MPS, then CPU)")
    seed: int = _setting(0, "seeds the weights, the subset and the shuffles")
    eval_every: int = _setting(25, "steps per point of the step-level curve", positive=True)
    max_train_examples: int | None = _setting(None, "train on a random subset (seeded) of this "
                                              "many images", positive=True)
    max_test_examples: int | None = _setting(None, "evaluate on the first N test images (the "
                                             "same for every run)", positive=True)
    time_budget_s: float | None = _setting(None, "end the run after this many seconds",
                                           flag="--time-budget", metavar="SECONDS")
    # --- speed only: the same training, faster on a GPU (bench/train_gpu.py measures them) ---
    compile: str = _setting("off", f"torch.compile: {_one_of(COMPILE_MODES)} (CUDA graphs); "
                            "slow to start, worth it on a GPU", metavar="MODE")
    eval_batch_size: int | None = _setting(None, "batch size for evaluation (default: the "
                                           "training batch size)", positive=True)
    fused_optimizer: bool = _setting(True, "one fused kernel per optimiser step on CUDA "
                                     "(default: on)")
    # --- bookkeeping, no flag: what an ablation's run tries ("Head = fc"), for its results ---
    ablation_setting: str | None = _setting(None, "the setting an ablation's run tries",
                                            flag=None)

    def __post_init__(self):
        _validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        """Missing fields take the defaults of the dict's recipe (book when none is given)."""
        if not isinstance(d, dict):
            raise ConfigError("A training config must be a JSON object with keys such as "
                              "'epochs' and 'lr'.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, d)) - known)
        if unknown:
            raise ConfigError(f"Unknown training setting(s): {', '.join(unknown[:5])}. "
                              f"Known: {', '.join(sorted(known))}.")
        recipe = d.get("recipe", "book")
        if not isinstance(recipe, str) or recipe not in RECIPES:
            raise ConfigError(f"Recipe must be one of {', '.join(RECIPES)}, not {recipe!r:.40}.")
        values = {**RECIPES[recipe].defaults, **d}
        _check_types(values)
        return cls(**values)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@functools.cache
def setting_types() -> dict[str, tuple[type, bool]]:
    """Each TrainConfig field's type and whether it may be None: `int | None` -> (int, True)."""
    types = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint) or (hint,)
        types[name] = (next(a for a in args if a is not type(None)), type(None) in args)
    return types


_KINDS = {int: ((int,), "whole number"), float: ((int, float), "number"),
          str: ((str,), "text"), bool: ((bool,), "boolean (true or false)")}


def _check_types(values: dict) -> None:
    for name, (base, optional) in setting_types().items():
        if name not in values:
            continue
        value = values[name]
        if value is None and optional:
            continue
        types, kind = _KINDS[base]
        if not isinstance(value, types) or (isinstance(value, bool) and base is not bool):
            raise ConfigError(f"'{name}' must be a {kind}, not {value!r:.40}.")


def _choice(what: str, value, options) -> None:
    if value not in options:
        raise ConfigError(f"{what} must be one of {', '.join(options)}, not {value!r:.40}.")


def _in_range(what: str, value, low, high, unit: str = "") -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{what} must be between {low:g} and {high:g}{unit} "
                          f"(it is {value!r:.40}).")


def _validate(c: TrainConfig) -> None:
    _check_types(dataclasses.asdict(c))
    if c.ablation_setting is not None and len(c.ablation_setting) > 300:
        raise ConfigError("An ablation setting is a short label (at most 300 characters).")
    if not c.dataset or len(c.dataset) > 300:
        raise ConfigError("Choose a data set (a name such as 'shapes', or folder:<path>).")
    if c.input_size is not None:
        _in_range("The input size", c.input_size, 1, MAX_INPUT_SIZE, " pixels")
    _in_range("The number of epochs", c.epochs, 1, 1000)
    _in_range("The batch size", c.batch_size, 1, 4096)
    if not (math.isfinite(c.lr) and 0 < c.lr <= 1e6):
        raise ConfigError("The learning rate must be above 0 and at most 1e6 "
                          f"(it is {c.lr!r:.40}).")
    _choice("Bad files", c.bad_files, BAD_FILES)
    _choice("Optimizer", c.optimizer, OPTIMIZERS)
    _in_range("Weight decay", c.weight_decay, 0, 1)
    _choice("Schedule", c.schedule, SCHEDULES)
    _in_range("Warm-up", c.warmup_epochs, 0, c.epochs, " epochs (the length of the run)")
    if not 0 <= c.label_smoothing < 1:
        raise ConfigError("Label smoothing must be at least 0 and below 1 "
                          f"(it is {c.label_smoothing!r:.40}); 0.1 is usual.")
    _choice("Recipe", c.recipe, tuple(RECIPES))
    _choice("Precision", c.precision, PRECISIONS)
    _choice("Device", c.device, DEVICES)
    _choice("Compile", c.compile, COMPILE_MODES)
    if c.eval_batch_size is not None:
        _in_range("The evaluation batch size", c.eval_batch_size, 1, 65536)
    _in_range("The seed", c.seed, 0, 2**31 - 1)
    _in_range("eval_every", c.eval_every, 1, 100_000, " steps")
    if c.max_train_examples is not None:
        _in_range("max_train_examples", c.max_train_examples, 1, 10**8)
    if c.max_test_examples is not None:
        _in_range("max_test_examples", c.max_test_examples, 1, 10**8)
    if c.time_budget_s is not None and not (math.isfinite(c.time_budget_s)
                                            and 0 < c.time_budget_s <= 7 * 86400):
        raise ConfigError("The time budget must be above 0 and at most a week "
                          f"(it is {c.time_budget_s!r:.40} s); leave it empty for no limit.")


def apply_recipe(spec: NetSpec, cfg: TrainConfig) -> tuple[NetSpec, TrainConfig]:
    """The network and config a run really uses: the recipe's changes to the spec, and the
    config's input size. Config defaults come from the recipe already (TrainConfig.from_dict)."""
    if cfg.input_size is not None and cfg.input_size != spec.input_size:
        spec = spec.replace(input_size=cfg.input_size)
    if RECIPES[cfg.recipe].batch_norm:
        spec = spec.replace(blocks=tuple(dataclasses.replace(b, batch_norm=True)
                                         for b in spec.blocks))
    return spec, cfg.replace(input_size=spec.input_size)
