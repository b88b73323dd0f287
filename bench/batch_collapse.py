"""Search for CPU-sized settings under which the batch-size puzzle shows its collapse.

Learners report that the book's NiN (no BatchNorm, plain SGD at lr 0.1) sometimes collapses at
batch 256: accuracy rises, then the loss goes back to ln(10) = 2.303 and stays there. The
exercise's CPU plan is `tiny` without BatchNorm on a slice of `shapes` (runs/ablation.py). This
bench trains that plan in this process over a grid of batch sizes, learning rates, data sizes
and epochs, with several seeds each, and counts per cell how the runs ended:

- collapsed: the trainer's own divergence rule ended it (the loss was clearly below ln(10),
  came back within 0.02 of it and stayed for 3 evaluations), the status the app shows;
- collapsed late: it ended "completed" with its last epoch's train loss within 0.05 of ln(10)
  after having been clearly below it (the rule had no time to fire);
- stuck at ln(10): its train loss never went 0.01 below ln(10) (NiN's trap closed at once, or
  the plateau of a network whose signal vanishes);
- learning: anything else (it may still be slow). Its final test accuracy is reported.

`--table-from FILE` prints the table again from a --json file, with these rules.

    .venv/bin/python bench/batch_collapse.py --batch 128,256 --lr 0.1,0.2 --seeds 5
    .venv/bin/python bench/batch_collapse.py --json docs/batch_collapse.json ...

Run it on an otherwise idle machine; each run of 3 epochs on 20,000 images takes about 30 s.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from nin_explorer.learn.config import TrainConfig  # noqa: E402
from nin_explorer.learn.data import load_dataset  # noqa: E402
from nin_explorer.learn.train import train  # noqa: E402
from nin_explorer.runs.ablation import exercise_plan  # noqa: E402

CHANCE = math.log(10)


def outcome(status: str, epoch_losses: list[float], step_losses: list[float]) -> str:
    """collapsed, collapsed late, exploded, stuck at ln(10) or learning (the module docstring)."""
    seen = step_losses + epoch_losses
    learned_once = any(x <= CHANCE - 0.2 for x in seen)
    if status == "diverged":
        return "collapsed" if learned_once else "exploded"
    if seen and min(seen) >= CHANCE - 0.01:
        return "stuck at ln(10)"
    if learned_once and epoch_losses and abs(epoch_losses[-1] - CHANCE) <= 0.05:
        return "collapsed late"
    return "learning"


def one_run(cfg: TrainConfig, spec, train_data, test_data) -> dict:
    events: list[dict] = []
    r = train(spec, cfg, train_data, test_data, events.append, lambda: False).to_dict()
    steps = [e for e in events if e["kind"] == "step"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    ep_loss = [e["train_loss"] for e in epochs if e.get("train_loss") is not None]
    st_loss = [e["train_loss"] for e in steps if e.get("train_loss") is not None]
    return {**r, "outcome": outcome(r["status"], ep_loss, st_loss),
            "epoch_train_loss": ep_loss, "epoch_test_acc": [e.get("test_acc") for e in epochs],
            "step_train_loss": st_loss[::max(1, len(st_loss) // 60)],
            "min_train_loss": min(st_loss + ep_loss) if st_loss or ep_loss else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", default="128,256")
    p.add_argument("--lr", default="0.1")
    p.add_argument("--examples", default="20000", help="training images, comma-separated")
    p.add_argument("--epochs", default="3", help="comma-separated")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--max-test", type=int, default=2000, help="test images per evaluation")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="another TrainConfig field for every run, e.g. --set optimizer=sgd-momentum")
    p.add_argument("--no-final-relu", action="store_true",
                   help="the last block without its ReLU (NetSpec.final_relu = False)")
    p.add_argument("--json", help="append one JSON line per run here")
    p.add_argument("--table-from", metavar="FILE", help="only print the table of a --json file")
    args = p.parse_args()
    if args.table_from:
        print_table([json.loads(line) for line in open(args.table_from)])
        return 0
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        default = getattr(TrainConfig(), key)
        extra[key] = type(default)(value) if default is not None else float(value)

    spec, base, _, _ = exercise_plan("batch-puzzle", "cpu")
    spec = spec.replace(final_relu=not args.no_final_relu)
    train_data = load_dataset(args.dataset, train=True)
    test_data = load_dataset(args.dataset, train=False)
    grid = list(itertools.product(
        [int(b) for b in args.batch.split(",")], [float(x) for x in args.lr.split(",")],
        [int(n) for n in args.examples.split(",")], [int(e) for e in args.epochs.split(",")]))
    print(f"`{spec.name}` without BatchNorm{'' if spec.final_relu else ' or its final ReLU'}, recipe {base.recipe} {extra or ''}, on `{args.dataset}`; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); {len(grid)} cells x {args.seeds} seeds",
          file=sys.stderr)
    t_all = time.perf_counter()
    rows = []
    for batch, lr, examples, epochs in grid:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            cfg = TrainConfig.from_dict({**base.to_dict(), "batch_size": batch, "lr": lr,
                                         "max_train_examples": examples, "epochs": epochs,
                                         "seed": seed, "dataset": args.dataset,
                                         "max_test_examples": args.max_test, **extra})
            row = one_run(cfg, spec, train_data, test_data)
            row.update(batch_size=batch, lr=lr, examples=examples, epochs_planned=epochs, seed=seed,
                       config=extra, final_relu=spec.final_relu)
            rows.append(row)
            print(f"batch {batch} lr {lr} n {examples} ep {epochs} seed {seed}: {row['outcome']}, "
                  f"test acc {row['final_test_acc']}, epoch losses "
                  f"{[round(x, 3) for x in row['epoch_train_loss']]}, {row['wall_s']:.0f} s",
                  file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print(f"\nAll runs: {time.perf_counter() - t_all:.0f} s; load average "
          f"{os.getloadavg()[0]:.1f} at the end.\n")
    print_table(rows)
    return 0


OUTCOMES = ("collapsed", "collapsed late", "exploded", "stuck at ln(10)")


def print_table(rows: list[dict]) -> None:
    """One line per cell (optimizer, final ReLU, batch, lr, images, epochs): how its runs ended."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        r["outcome"] = outcome(r["status"], r["epoch_train_loss"], r["step_train_loss"])
        key = (r.get("config", {}).get("optimizer", "sgd"), r.get("final_relu", True),
               r["batch_size"], r["lr"], r["examples"], r["epochs_planned"])
        cells.setdefault(key, []).append(r)
    print("| optimizer | final ReLU | batch | lr | images | epochs | seeds | " + " | ".join(OUTCOMES)
          + " | learning (final test acc) | s per run |")
    print("|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(OUTCOMES) + "---|---:|")
    for (opt, relu, batch, lr, examples, epochs), rs in cells.items():
        n = {o: sum(r["outcome"] == o for r in rs) for o in (*OUTCOMES, "learning")}
        acc = ", ".join(f"{r['final_test_acc']:.2f}" for r in rs if r["outcome"] == "learning") or "-"
        print(f"| {opt} | {'yes' if relu else 'no'} | {batch} | {lr:g} | {examples:,} | {epochs} | "
              f"{len(rs)} | " + " | ".join(str(n[o]) for o in OUTCOMES)
              + f" | {n['learning']} ({acc}) | {sum(r['wall_s'] for r in rs) / len(rs):.0f} |")


if __name__ == "__main__":
    sys.exit(main())
