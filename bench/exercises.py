"""Run each of the book's exercises in full, as its Start button on the Ablations page does.

For each exercise: its plan for this device (runs/ablation.exercise_plan), queued as one group
through the app's own JobManager (real worker processes, the app's default runs at once), then
waited for. Prints, per exercise, the result card the page shows (the same exercise_result) and
how long the whole queue took from the click to the last run's end:

    .venv/bin/python bench/exercises.py                          # every exercise, a fresh store
    .venv/bin/python bench/exercises.py --only one-1x1 --home /tmp/ex --json docs/exercises.json

Run it on an otherwise idle machine (on the 2-core CPU all four take about 20 minutes).
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

from nin_explorer.learn.config import TrainConfig  # noqa: E402
from nin_explorer.learn.devices import resolve_device  # noqa: E402
from nin_explorer.runs.ablation import (EXERCISES, exercise_plan, exercise_result, expand,  # noqa: E402
                                        group_name)
from nin_explorer.runs.jobs import JobManager, default_at_once  # noqa: E402
from nin_explorer.runs.queries import ablation_groups  # noqa: E402
from nin_explorer.runs.tables import ACTIVE  # noqa: E402


def run_exercise(jobs: JobManager, key: str, device: str, timeout_s: float,
                 extra: dict | None = None) -> dict:
    spec, cfg, factors, seeds = exercise_plan(key, device)
    runs = expand(spec, cfg.replace(**(extra or {})), factors, seeds)
    t0 = time.perf_counter()
    group = group_name(EXERCISES[key].short)
    jobs.submit_many([(r.spec, r.config, r.name) for r in runs], group=group)
    while jobs.store.list_runs(ACTIVE, group=group):
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"{key}: not finished after {timeout_s:.0f} s")
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    done = jobs.store.list_runs(group=group)
    _, _, card = exercise_result(jobs.store, ablation_groups(jobs.store), key)
    return {"exercise": key, "title": EXERCISES[key].title, "group": group, "runs": len(done),
            "statuses": sorted(r["status"] for r in done), "queue_wall_s": round(wall, 1),
            "run_wall_s": [round(r.get("wall_s") or 0, 1) for r in sorted(done, key=lambda r: r["id"])],
            "card": card}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default=",".join(EXERCISES), help="exercise keys, comma-separated")
    p.add_argument("--home", help="run store folder (default: a fresh temporary one)")
    p.add_argument("--at-once", type=int, default=default_at_once(), help="runs at once (the app's default)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per exercise")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change every run's TrainConfig (then it is no longer the exercise's "
                        "plan: for smoke tests), e.g. --set max_train_examples=256")
    p.add_argument("--json", help="append one JSON line per exercise here")
    args = p.parse_args()
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        default = getattr(TrainConfig(), key)
        extra[key] = type(default)(value) if default is not None else int(value)
    device = resolve_device("auto").type
    home = args.home or tempfile.mkdtemp(prefix="nin-exercises-")
    jobs = JobManager(home, max_concurrent=args.at_once)
    print(f"{device}; torch {torch.__version__}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); {args.at_once} run(s) at once; "
          f"store {home}" + (f"; changed: {extra} (not the exercises' plans)" if extra else ""),
          file=sys.stderr)
    results = []
    try:
        for key in args.only.split(","):
            r = run_exercise(jobs, key, device, args.timeout, extra)
            results.append(r)
            print(f"{key}: {r['runs']} runs in {r['queue_wall_s']:.0f} s: {r['card']}",
                  file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({**r, "device": device, "at_once": args.at_once}) + "\n")
    finally:
        jobs.close(stop_runs=True)
    print(f"\nLoad average {os.getloadavg()[0]:.1f} at the end.\n")
    print("| exercise | runs | click to last result | result card |")
    print("|---|---:|---:|---|")
    for r in results:
        m, s = divmod(round(r["queue_wall_s"]), 60)
        print(f"| {r['title']} | {r['runs']} ({', '.join(sorted(set(r['statuses'])))}) | "
              f"{m} min {s:02d} s | {r['card']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
