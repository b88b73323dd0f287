"""Ablations: a base variant, one or two factors, seeds -> a queue of runs -> one results table.

Everything here is plain values: the page expands a plan into (spec, config) pairs, submits
them to the job manager with a group id, and aggregates the store's rows back.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import time
from dataclasses import dataclass

from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.net.summary import summarize
from nin_explorer.learn.config import TrainConfig
from nin_explorer.runs.noise import spread

MAX_RUNS = 48          # hard cap on one ablation's queue
WARN_RUNS = 12         # above this the page warns about the time it takes


def _scale(width: int, factor: float) -> int:
    return max(1, round(width * factor))


def _with_width(spec: NetSpec, factor: float) -> NetSpec:
    """Every block's channels times `factor`, except a GAP head's class-map block."""
    blocks = []
    for i, b in enumerate(spec.blocks):
        if spec.head == "gap" and i == len(spec.blocks) - 1:
            blocks.append(b)
            continue
        blocks.append(dataclasses.replace(
            b, out_channels=_scale(b.out_channels, factor),
            extra_1x1_channels=tuple(_scale(w, factor) for w in b.extra_1x1_channels),
            paths=tuple(_scale(w, factor) for w in b.paths)))
    return spec.replace(blocks=tuple(blocks))


def _with_head(spec: NetSpec, head: str) -> NetSpec:
    if head == spec.head:
        return spec
    # A GAP head's last block only makes class maps; the other heads read the block before it.
    body = spec.blocks[:-1] if spec.head == "gap" and len(spec.blocks) > 1 else spec.blocks
    if head == "gap":
        last = body[-1]
        k = last.kernel if last.kind != "inception" else 3
        cls = dataclasses.replace(body[-1], kind="nin", out_channels=spec.num_classes, kernel=k,
                                  stride=1, padding=k // 2, extra_1x1_channels=(), paths=(),
                                  n_extra_1x1=2, pool="none", dropout=0.0)
        return spec.replace(blocks=(*body, cls), head="gap", fc_hidden=())
    if head == "gap-linear":
        return spec.replace(blocks=body, head="gap-linear", fc_hidden=())
    return spec.replace(blocks=body, head="fc", fc_hidden=(256, 256), fc_dropout=0.5)


def _with_dropout(spec: NetSpec, p: float) -> NetSpec:
    """Set the dropout of blocks that have it (or of the block before the last)."""
    targets = [i for i, b in enumerate(spec.blocks) if b.dropout > 0] or [max(0, len(spec.blocks) - 2)]
    blocks = [dataclasses.replace(b, dropout=p) if i in targets else b for i, b in enumerate(spec.blocks)]
    return spec.replace(blocks=tuple(blocks))


def _all_blocks(spec: NetSpec, **changes) -> NetSpec:
    return spec.replace(blocks=tuple(dataclasses.replace(b, **changes) if b.kind == "nin" or
                                     "n_extra_1x1" not in changes else b for b in spec.blocks))


def _last_block(spec: NetSpec, value: str) -> NetSpec:
    if value == "nin block":
        return spec
    return spec.replace_block(len(spec.blocks) - 1, n_extra_1x1=0, extra_1x1_channels=())


@dataclass(frozen=True)
class Factor:
    name: str
    title: str
    values: tuple
    help: str


FACTORS: dict[str, Factor] = {f.name: f for f in (
    Factor("n_extra_1x1", "1x1 convs per block", (0, 1, 2),
           "The book's exercise 2: why two 1x1 convs per block?"),
    Factor("head", "Head", ("gap", "gap-linear", "fc"),
           "GAP (NiN), GAP then a linear layer, or flatten + fully connected layers."),
    Factor("last_block", "Last block", ("nin block", "one conv"),
           "Exercise 4: the class maps made by a NiN block, or by a single conv straight from the "
           "previous block's channels."),
    Factor("final_relu", "Final ReLU", (True, False),
           "Whether the last block ends in a ReLU (the book's NiN does): without it the class "
           "maps, and so the logits, can be negative, and NiN's trap cannot close."),
    Factor("dropout", "Dropout", (0.0, 0.25, 0.5), "Dropout before the last block."),
    Factor("batch_norm", "BatchNorm", (False, True), "BatchNorm after every conv."),
    Factor("lr", "Learning rate", (0.01, 0.05, 0.1), "Peak learning rate."),
    Factor("batch_size", "Batch size", (64, 128, 256), "Examples per step."),
    Factor("input_size", "Input size", (28, 56), "Images are resized to this size on the device."),
    Factor("width", "Channel width x", (0.5, 1.0, 2.0), "Every block's channels times this."),
    Factor("epochs", "Epochs", (2, 5, 10), "Passes over the training data."),
)}


def apply_factor(spec: NetSpec, cfg: TrainConfig, name: str, value) -> tuple[NetSpec, TrainConfig]:
    if name == "n_extra_1x1":
        return _all_blocks(spec, n_extra_1x1=int(value), extra_1x1_channels=()), cfg
    if name == "head":
        return _with_head(spec, value), cfg
    if name == "last_block":
        return _last_block(spec, value), cfg
    if name == "dropout":
        return _with_dropout(spec, float(value)), cfg
    if name == "final_relu":
        return spec.replace(final_relu=bool(value)), cfg
    if name == "batch_norm":
        return _all_blocks(spec, batch_norm=bool(value)), cfg
    if name == "width":
        return _with_width(spec, float(value)), cfg
    if name == "input_size":
        return spec.replace(input_size=int(value)), cfg.replace(input_size=None)
    if name in ("lr", "batch_size", "epochs"):
        return spec, cfg.replace(**{name: type(getattr(cfg, name))(value)})
    raise SpecError(f"Unknown factor {name!r}; choose from {', '.join(FACTORS)}.")


@dataclass(frozen=True)
class PlannedRun:
    setting: dict          # factor name -> value
    seed: int
    spec: NetSpec
    config: TrainConfig

    @property
    def label(self) -> str:
        return setting_label(self.setting)

    @property
    def name(self) -> str:
        """The run's name in the store: its setting and seed."""
        return f"{self.label} · seed {self.seed}"


def setting_label(setting: dict) -> str:
    return ", ".join(f"{FACTORS[k].title if k in FACTORS else k} = {v}" for k, v in setting.items())


def plan_text(n_runs: int, factors: dict[str, list], seeds: int, cfg: TrainConfig) -> str:
    """What an exercise queues, in a line: '8 runs: Last block in [...], 2 seed(s), ...'."""
    return (f"{n_runs} runs: " + "; ".join(f"{FACTORS[k].title} in {v}" for k, v in factors.items())
            + f", {seeds} seed(s)" + ("" if "epochs" in factors else f", {cfg.epochs} epochs")
            + f", recipe {cfg.recipe}.")


def expand(base: NetSpec, cfg: TrainConfig, factors: dict[str, list], seeds: int = 1) -> list[PlannedRun]:
    """The cartesian product of the factors' values, each with `seeds` seeds.

    Raises SpecError when a combination is invalid or the queue would exceed MAX_RUNS.
    """
    if not factors:
        raise SpecError("Choose at least one factor to vary.")
    if len(factors) > 2:
        raise SpecError("Vary at most two factors at once; the results table stays readable.")
    if not 1 <= seeds <= 10:
        raise SpecError("Use between 1 and 10 seeds per setting.")
    for name, values in factors.items():
        if name not in FACTORS:
            raise SpecError(f"Unknown factor {name!r}; choose from {', '.join(FACTORS)}.")
        if not values:
            raise SpecError(f"Pick at least one value for '{FACTORS[name].title}'.")
    total = seeds
    for values in factors.values():
        total *= len(values)
    if total > MAX_RUNS:
        raise SpecError(f"That is {total} runs; the cap is {MAX_RUNS}. Use fewer values or seeds.")
    names = list(factors)
    runs = []
    for combo in itertools.product(*(factors[n] for n in names)):
        spec, c = base, cfg
        for name, value in zip(names, combo):
            try:
                spec, c = apply_factor(spec, c, name, value)
                summarize(spec)
            except SpecError as e:
                raise SpecError(f"{FACTORS[name].title} = {value} does not make a valid network: {e}") from None
        for seed in range(seeds):
            setting = dict(zip(names, combo))
            runs.append(PlannedRun(setting, cfg.seed + seed, spec, c.replace(
                seed=cfg.seed + seed, ablation_setting=setting_label(setting))))
    return runs


# --- results ---

def run_setting(run: dict) -> str:
    """The setting a stored run of an ablation tries: its config's `ablation_setting`, or for
    a run queued before that was recorded, its name less the seed ("Head = fc · seed 1")."""
    return run["config"].get("ablation_setting") or (run.get("name") or "").rsplit(" · seed", 1)[0]


def result_rows(runs: list[dict], epochs: dict[int, list[dict]]) -> list[dict]:
    """One row per stored run, as `aggregate` takes them: its setting, outcome, cost and
    measured memory peak; `epochs[run id]` are its epoch metrics (store.metrics)."""
    rows = []
    for r in runs:
        s = summarize(NetSpec.from_dict(r["spec"]), r["config"]["batch_size"])
        peaks = [e["peak_train_memory_bytes"] for e in epochs[r["id"]]
                 if e.get("peak_train_memory_bytes")]
        rows.append({"setting": run_setting(r), "status": r["status"], "classes": s.output_shape[0],
                     "best_test_acc": r.get("best_test_acc"), "final_test_acc": r.get("final_test_acc"),
                     "params": s.params, "flops": s.flops,
                     "examples_per_sec": r.get("examples_per_sec"), "wall_s": r.get("wall_s"),
                     "train_memory_estimate_bytes": s.memory.train_bytes,
                     "peak_train_memory_bytes": max(peaks) if peaks else None})
    return rows


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """noise.spread's mean and sd, the sd of a single value shown as 0 in the table."""
    mean, sd, _ = spread(values)
    return mean, (0.0 if sd is None and mean is not None else sd)


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per setting from run rows with keys: setting (label), status, best_test_acc,
    final_test_acc, params, flops, examples_per_sec, wall_s, and optionally
    train_memory_estimate_bytes and peak_train_memory_bytes (measured)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["setting"], []).append(r)
    out = []
    for setting, rs in groups.items():
        best_m, best_sd = _mean_sd([r.get("best_test_acc") for r in rs])
        final_m, final_sd = _mean_sd([r.get("final_test_acc") for r in rs])
        statuses: dict[str, int] = {}
        for r in rs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        out.append({
            "setting": setting, "runs": len(rs),
            "best_test_acc": best_m, "best_test_acc_sd": best_sd,
            "final_test_acc": final_m, "final_test_acc_sd": final_sd,
            "params": rs[0].get("params"), "flops": rs[0].get("flops"),
            "examples_per_sec": _mean_sd([r.get("examples_per_sec") for r in rs])[0],
            "train_memory_estimate_bytes": rs[0].get("train_memory_estimate_bytes"),
            "peak_train_memory_bytes": _mean_sd([r.get("peak_train_memory_bytes") for r in rs])[0],
            "wall_s": _mean_sd([r.get("wall_s") for r in rs])[0],
            "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
        })
    return out


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# --- the book's exercises as ready experiments ---

@dataclass(frozen=True)
class Exercise:
    key: str
    title: str
    text: str
    factors: dict
    seeds: int
    config: dict          # TrainConfig overrides
    base_change: str = ""   # "no-bn" or "nin-last-block": how exercise_plan alters the base
    cpu_config: dict = dataclasses.field(default_factory=dict)   # more overrides on a CPU
    cpu_note: str = ""      # what the CPU version shows, when it differs from the lesson

    @property
    def short(self) -> str:
        """'Exercise 2', the start of the title: what its queued groups are named after."""
        return self.title.split(":")[0]


EXERCISES: dict[str, Exercise] = {e.key: e for e in (
    Exercise("lr-epochs", "Exercise 1: tune the learning rate and the epochs",
             "The book trains at lr 0.1 for 10 epochs (test accuracy 0.83-0.87) and reports 0.885 at "
             "lr 0.05 for 20 epochs. Sweep both and see which matters more.",
             {"lr": [0.02, 0.05, 0.1], "epochs": [2, 4]}, 1, {"recipe": "book"}),
    Exercise("one-1x1", "Exercise 2: why two 1x1 convs per block?",
             "Each 1x1 conv is a per-pixel fully connected layer across channels: NiN's 'network "
             "in the network'. Remove one (or both) and compare accuracy, parameters and speed. "
             "The book found one 1x1 conv slightly worse (0.869) and faster.",
             {"n_extra_1x1": [0, 1, 2]}, 2, {"recipe": "book"}),
    Exercise("last-block", "Exercise 4: squeezing straight to one map per class",
             "What goes wrong if the last block turns its input straight into 10 class maps with a "
             "single conv, instead of a NiN block (conv, then two 1x1 convs at 10 channels)?",
             {"last_block": ["nin block", "one conv"]}, 2, {"recipe": "book"},
             base_change="nin-last-block"),
    Exercise("batch-puzzle", "The batch-size puzzle: 128 against 256 at lr 0.1",
             "Learners report that the book's NiN sometimes collapses at batch 256: accuracy rises, "
             "then the loss jumps back to ln(10) = 2.303 and stays there. Run both batch sizes over "
             "several seeds without BatchNorm and count the collapses.",
             {"batch_size": [128, 256]}, 3, {"recipe": "book", "lr": 0.1}, base_change="no-bn",
             # bench/batch_collapse.py, docs/BENCHMARKS.md "The batch-size puzzle on a CPU"
             cpu_config={"optimizer": "adam", "lr": 0.002, "epochs": 10},
             cpu_note="On a CPU the book's recipe shows nothing: plain SGD keeps `tiny` without "
                      "BatchNorm at ln(10) for minutes (0 of 10 runs left chance in 3 epochs, at "
                      "batch 128 and 256), as its signal fades through ten ReLU layers. So the CPU "
                      "plan trains with Adam at lr 0.002 for 10 epochs. Over 5 seeds per batch "
                      "size no run collapsed after rising; NiN's trap closed instead in the first "
                      "few dozen steps, at exactly ln(10): 1 of 5 runs at batch 128, 2 of 5 at 256 "
                      "(seed 1 at both). Without the final ReLU, seeds 0-3 at 256 all learned. "
                      "Probe a dead run on the GAP maps page and queue its fixes."),
)}

# On a CPU the exercises run the tiny preset on a slice of `shapes` so they finish in minutes;
# on a GPU they use the book's own network and data.
CPU_CONFIG = {"dataset": "shapes", "epochs": 3, "max_train_examples": 20_000, "batch_size": 128}
GPU_CONFIG = {"dataset": "fashion-mnist", "epochs": 10, "batch_size": 128, "precision": "fp32"}


def exercise_plan(key: str, device: str) -> tuple[NetSpec, TrainConfig, dict, int]:
    """(base spec, config, factors, seeds) for one exercise on this kind of device."""
    from nin_explorer.net.presets import D2L, TINY
    from nin_explorer.net.spec import BlockSpec

    ex = EXERCISES[key]
    gpu = device == "cuda"
    spec = D2L if gpu else TINY
    overrides = {**(GPU_CONFIG if gpu else CPU_CONFIG), **ex.config, **({} if gpu else ex.cpu_config)}
    if ex.base_change == "no-bn":
        spec = _all_blocks(spec, batch_norm=False)
    elif not gpu:
        # Without BatchNorm, plain SGD leaves tiny at chance on `shapes` for minutes, which
        # would hide every difference: CPU runs use the modern recipe.
        overrides["recipe"] = "modern"
    if ex.base_change == "nin-last-block" and not gpu:
        # tiny's last block is already a single 1x1 conv; give it a NiN block to compare with
        spec = spec.replace_block(len(spec.blocks) - 1, **dataclasses.asdict(
            BlockSpec(spec.num_classes, kernel=3, padding=1, n_extra_1x1=2)))
    cfg = TrainConfig.from_dict(overrides)
    factors = dict(ex.factors)
    if "epochs" in factors and gpu:
        factors["epochs"] = [10, 20]
    return spec, cfg, factors, ex.seeds


def group_name(title: str, at: float | None = None) -> str:
    """The group a queue of runs is recorded under: '<title> · 14:03:59' (local time)."""
    return f"{title} · {time.strftime('%H:%M:%S', time.localtime(at))}"


def exercise_of(group: str | None) -> str | None:
    """The key of the exercise whose Start button queued this group (group_name), else None."""
    return next((k for k, ex in EXERCISES.items() if str(group).startswith(ex.short + " · ")), None)


def exercise_result(store, groups: list[str], key: str) -> tuple[str, int, str] | None:
    """(newest group the exercise queued, runs still to finish, its finding in one sentence
    from those runs: noise.finding), or None before the exercise was ever started."""
    from nin_explorer.runs.noise import finding
    from nin_explorer.runs.tables import ACTIVE

    ex = EXERCISES[key]
    mine = [g for g in groups if exercise_of(g) == key]     # newest first, as given
    if not mine:
        return None
    runs = store.list_runs(group=mine[0])
    rows = result_rows(runs, {r["id"]: store.metrics(r["id"], "epoch") for r in runs})
    left = sum(r["status"] in ACTIVE for r in runs)
    return mine[0], left, finding(rows, always_count_collapses="batch_size" in ex.factors)
