"""How fast does the tiny NiN learn `shapes` on this CPU? Time-to-accuracy, as a markdown table.

Each row is one run given a wall-clock budget (the one-cycle schedule spans the budget, so every
run anneals fully); "to 90%" adds the data loading to the smallest budget that reached 90% test
accuracy. Run it on an otherwise idle machine:

    .venv/bin/python bench/train_cpu.py                      # budgets 10,20,30,45 s
    .venv/bin/python bench/train_cpu.py --budgets 15 --csv docs/train_cpu.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from nin_explorer.learn.data import load_dataset  # noqa: E402
from nin_explorer.net.presets import get_preset  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402
from nin_explorer.learn.train import train  # noqa: E402


def run_budget(spec, cfg, train_data, test_data) -> tuple[dict, list[dict]]:
    events: list[dict] = []
    result = train(spec, cfg, train_data, test_data, events.append, lambda: False)
    return result.to_dict(), [e for e in events if e["kind"] in ("step", "epoch")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--recipe", default="modern")
    p.add_argument("--budgets", default="10,20,30,45", help="seconds, comma-separated")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig field, e.g. --set lr=0.2 (repeatable)")
    p.add_argument("--cold", action="store_true",
                   help="generate the data into a fresh folder (counts generation as loading)")
    p.add_argument("--csv", help="write every run's curve (step and epoch events) here")
    args = p.parse_args()

    # --- data ---
    root = tempfile.mkdtemp(prefix="nin-bench-") if args.cold else None
    t0 = time.perf_counter()
    train_data = load_dataset(args.dataset, root=root, train=True)
    test_data = load_dataset(args.dataset, root=root, train=False)
    load_s = time.perf_counter() - t0

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        default = getattr(TrainConfig(), key)
        overrides[key] = type(default)(value) if default is not None else float(value)
    spec = get_preset(args.preset)
    rows, curves = [], []
    for budget in (float(b) for b in args.budgets.split(",")):
        cfg = TrainConfig.from_dict({"recipe": args.recipe, "dataset": args.dataset,
                                     "epochs": 100, "time_budget_s": budget, **overrides})
        result, events = run_budget(spec, cfg, train_data, test_data)
        n_train = min(len(train_data.images), cfg.max_train_examples or len(train_data.images))
        result["epochs_done"] = result["steps"] * cfg.batch_size / n_train
        rows.append((budget, result))
        curves += [{"budget_s": budget, **{k: e.get(k) for k in (
            "kind", "step", "epoch", "elapsed_s", "train_loss", "train_acc", "test_acc", "lr",
            "examples_per_sec")}} for e in events]
        print(f"budget {budget:g} s: test acc {result['final_test_acc']:.4f} "
              f"({result['wall_s']:.1f} s wall)", file=sys.stderr)

    # --- report ---
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n`{args.preset}` on `{args.dataset}`, recipe `{args.recipe}` {overrides or ''}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} at the end; "
          f"data loaded in {load_s:.1f} s{' (generated)' if args.cold else ''}.\n")
    print("| budget (s) | epochs | steps | test acc | train loss | examples/s | wall (s) | "
          "wall + data load (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for budget, r in rows:
        print(f"| {budget:g} | {r['epochs_done']:.2f} | "
              f"{r['steps']} | {r['final_test_acc']:.4f} | {r['train_loss']:.3f} | "
              f"{r['examples_per_sec']:,.0f} | {r['wall_s']:.1f} | {r['wall_s'] + load_s:.1f} |")
    reached = [r['wall_s'] + load_s for _, r in rows if (r["final_test_acc"] or 0) >= 0.9]
    print(f"\nTime to 90% test accuracy (smallest budget that reached it, with data loading): "
          + (f"**{min(reached):.1f} s**" if reached else "not reached"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(curves[0]))
            writer.writeheader()
            writer.writerows(curves)
        print(f"curves written to {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
