"""Several small runs at once, or one after another? Total throughput of an ablation's queue.

Queues the same N runs (one seed each) through the app's own JobManager, so every run is a real
worker process with its start-up, data loading, evaluation and checkpoints, and times the whole
queue for each "runs at once" setting. Total throughput is the training examples of all runs
divided by the queue's wall time. Works on a CPU and on a GPU (no streamlit or plotly needed):

    .venv/bin/python bench/runs_at_once.py                          # tiny on shapes, 4 runs
    PYTHONPATH=. python3 bench/runs_at_once.py --at-once 1,2,4,8 --runs 8 --examples 60000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from nin_explorer.learn.data import load_dataset  # noqa: E402
from nin_explorer.runs.jobs import JobManager  # noqa: E402
from nin_explorer.net.presets import get_preset  # noqa: E402
from nin_explorer.runs.tables import FINISHED  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402


def run_queue(spec, cfg: TrainConfig, runs: int, at_once: int, split_threads: bool,
              timeout_s: float) -> dict:
    """Queue `runs` seeds of one variant in a fresh store; wait for all; time it."""
    home = tempfile.mkdtemp(prefix="nin-concurrent-")
    jobs = JobManager(home, max_concurrent=at_once, poll_s=0.05, split_threads=split_threads)
    try:
        t0 = time.perf_counter()
        ids = [jobs.submit(spec, cfg.replace(seed=seed), name=f"seed {seed}")
               for seed in range(runs)]
        deadline = t0 + timeout_s
        while time.perf_counter() < deadline:
            rows = [jobs.store.get_run(i) for i in ids]
            if all(r["status"] in FINISHED for r in rows):
                break
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    finally:
        jobs.close(stop_runs=True)
    bad = [f"#{r['id']} {r['status']}: {r.get('error') or r.get('reason') or ''}"[:300]
           for r in rows if r["status"] != "completed"]
    if bad:
        raise SystemExit("runs did not complete:\n" + "\n".join(bad))
    examples = runs * cfg.epochs * cfg.max_train_examples
    return {"at_once": at_once, "split_threads": split_threads, "runs": runs,
            "wall_s": round(wall, 2), "total_examples_per_s": round(examples / wall, 1),
            "per_run_examples_per_s": [round(r["examples_per_sec"] or 0) for r in rows],
            "final_test_acc": [r["final_test_acc"] for r in rows]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--recipe", default="modern")
    p.add_argument("--runs", type=int, default=4, help="runs in the queue")
    p.add_argument("--at-once", default="1,2", help="settings to compare, comma-separated")
    p.add_argument("--examples", type=int, default=10_000, help="training examples per run")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-split", action="store_true",
                   help="also measure concurrent runs that each use every CPU core")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per queue")
    p.add_argument("--json", help="write the rows here too")
    args = p.parse_args()

    load_dataset(args.dataset, train=True)        # build the cache once, outside the timing
    load_dataset(args.dataset, train=False)
    spec = get_preset(args.preset)
    cfg = TrainConfig.from_dict({"recipe": args.recipe, "dataset": args.dataset,
                                 "epochs": args.epochs, "max_train_examples": args.examples,
                                 "device": args.device})
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu"
              else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(f"{args.preset} on {args.dataset}, {args.runs} runs of {args.epochs} epoch(s) x "
          f"{args.examples:,} examples, recipe {args.recipe}; {device}, torch {torch.__version__}")

    settings = [(int(n), True) for n in args.at_once.split(",")]
    if args.no_split:
        settings += [(n, False) for n, _ in settings if n > 1]
    rows = []
    for at_once, split in settings:
        row = run_queue(spec, cfg, args.runs, at_once, split, args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)

    base = rows[0]["total_examples_per_s"]
    print("\n| runs at once | threads per run | queue wall s | total examples/s | vs one at a time "
          "| per-run examples/s | final test acc |")
    print("|---:|---|---:|---:|---:|---|---|")
    for r in rows:
        threads = (str(max(1, (os.cpu_count() or 1) // r["at_once"]))
                   if r["split_threads"] and r["at_once"] > 1 else "all")
        accs = ", ".join(f"{a:.3f}" for a in r["final_test_acc"])
        print(f"| {r['at_once']} | {threads} | {r['wall_s']:.1f} | {r['total_examples_per_s']:,.0f} "
              f"| {r['total_examples_per_s'] / base:.2f}x | "
              f"{', '.join(f'{x:,}' for x in r['per_run_examples_per_s'])} | {accs} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "torch": torch.__version__,
                                               "args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
