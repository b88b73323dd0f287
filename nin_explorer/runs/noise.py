"""Honest comparisons: mean +/- spread over seeds, a "within noise" rule, curves at equal cost,
and each exercise's finding in one sentence from its own runs.

The rule (NOISE_RULE): two settings differ "within noise" when the difference of their mean
test accuracies is smaller than the larger of their two seed standard deviations (sample sd,
n - 1). With fewer than two finished seeds on either side the spread is unknown, and the runs
do not settle the question. It is a rule of thumb, not a significance test: with 2-3 seeds a
Welch t-test has too few degrees of freedom to say much, and the rule is what a learner can
check by eye in the table.
"""
from __future__ import annotations

import statistics

NOISE_RULE = ("A difference is within noise when the difference of the means is smaller than "
              "the larger of the two settings' seed standard deviations; with one finished seed "
              "a setting's spread is unknown.")
METRIC = "final_test_acc"
ENDED = ("completed", "stopped", "diverged")   # runs that trained to an end (not failed or lost)
CHANCE_MARGIN = 0.05   # a finished run whose best test accuracy stays within this of chance never learned
AXES = {"epochs": "epoch", "examples seen": "examples seen", "seconds": "seconds",
        "FLOPs": "training FLOPs"}      # choice -> axis title


def spread(values) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation or None below two values, how many values)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    sd = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), sd, len(values)


def within_noise(a, b) -> bool | None:
    """NOISE_RULE for two lists of seed results; None when either has under two values."""
    ma, sa, _ = spread(a)
    mb, sb, _ = spread(b)
    if sa is None or sb is None:
        return None
    return abs(ma - mb) < max(sa, sb)


def mean_pm(values, scale: float = 100.0, unit: str = "%") -> str:
    """'81.2% ± 1.3 (3 seeds)', '81.2% (1 seed)' or '-'."""
    m, sd, n = spread(values)
    if m is None:
        return "-"
    pm = f" ± {sd * scale:.1f}" if sd is not None else ""
    return f"{m * scale:.1f}{unit}{pm} ({n} seed{'s' if n > 1 else ''})"


def by_setting(rows: list[dict], metric: str = METRIC) -> dict[str, list[float]]:
    """Run rows (ablation.result_rows) -> setting -> its runs' finished values of `metric`."""
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r["setting"], [])
        if r.get(metric) is not None:
            out[r["setting"]].append(r[metric])
    return out


def verdicts(groups: dict[str, list[float]]) -> dict[str, str]:
    """Each setting against the best mean: 'best', 'within noise', '-3.1 pts (beyond noise)',
    '-3.1 pts (spread unknown)' or 'no result yet'."""
    means = {k: spread(v)[0] for k, v in groups.items()}
    done = [k for k, m in means.items() if m is not None]
    if not done:
        return {k: "no result yet" for k in groups}
    best = max(done, key=means.get)
    out = {}
    for k, vals in groups.items():
        if means[k] is None:
            out[k] = "no result yet"
        elif k == best:
            out[k] = "best"
        else:
            noise = within_noise(vals, groups[best])
            diff = f"{(means[k] - means[best]) * 100:+.1f} pts"
            out[k] = ("within noise" if noise else f"{diff} (beyond noise)" if noise is False
                      else f"{diff} (spread unknown)")
    return out


def mark_table(table: list[dict], rows: list[dict], metric: str = METRIC) -> list[dict]:
    """The ablation table (ablation.aggregate) with 'mean ± sd' and 'vs best' columns."""
    groups = by_setting(rows, metric)
    v = verdicts(groups)
    return [{**t, "mean ± sd": mean_pm(groups.get(t["setting"], [])),
             "vs best": v.get(t["setting"], "")} for t in table]


# --- curves at equal cost ---

def forward_flops(run: dict) -> int:
    """FLOPs of one image's forward pass of the network the run trained (its recipe applied)."""
    from nin_explorer.learn.config import TrainConfig, apply_recipe
    from nin_explorer.net.spec import NetSpec
    from nin_explorer.net.summary import summarize
    spec, _ = apply_recipe(NetSpec.from_dict(run["spec"]), TrainConfig.from_dict(run["config"]))
    return summarize(spec, batch_size=1).flops


def with_x(run: dict, rows: list[dict], axis: str) -> list[dict]:
    """Epoch rows with an 'x' for the axis: the epoch; examples seen = steps x batch size (the
    ragged last batch is dropped, so epoch x steps per epoch x batch); seconds since the start
    (elapsed_s); FLOPs = examples x 3 x forward FLOPs (a backward pass costs about two)."""
    if axis not in AXES:
        raise ValueError(f"x axis must be one of {', '.join(AXES)}")
    batch = run["config"].get("batch_size", 128)
    per_example = 3 * forward_flops(run) if axis == "FLOPs" else 1
    out = []
    for r in rows:
        if axis == "epochs":
            x = r["epoch"]
        elif axis == "seconds":
            x = r.get("elapsed_s")
        else:
            x = (r.get("step") or 0) * batch * per_example
        out.append({**r, "x": x})
    return out


# --- an exercise's finding, in one sentence ---

def _costs(rows: list[dict], a: str, b: str) -> str:
    def mean_of(key, setting):
        return spread([r.get(key) for r in rows if r["setting"] == setting])[0]
    parts = []
    fa, fb = mean_of("flops", a), mean_of("flops", b)
    if fa and fb and abs(fa / fb - 1) >= 0.005:
        parts.append(f"{abs(fa / fb - 1):.0%} {'more' if fa > fb else 'fewer'} FLOPs")
    sa, sb = mean_of("examples_per_sec", a), mean_of("examples_per_sec", b)
    if sa and sb and abs(sa / sb - 1) >= 0.005:
        parts.append(f"{abs(sa / sb - 1):.0%} {'faster' if sa > sb else 'slower'}")
    return "".join(f", {p}" for p in parts)


def collapses(rows: list[dict]) -> str:
    """'collapsed: 1 of 3 at Batch size = 256, 0 of 3 at Batch size = 128', or ''."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        c = counts.setdefault(r["setting"], [0, 0])
        c[0] += r["status"] == "diverged"
        c[1] += r["status"] in ENDED
    if not any(c[0] for c in counts.values()):
        return ""
    return "collapsed: " + ", ".join(f"{d} of {n} at {s}" for s, (d, n) in counts.items())


def never_learned(rows: list[dict]) -> list[dict]:
    """Finished runs whose best test accuracy stayed within CHANCE_MARGIN of chance (1 / classes)."""
    return [r for r in rows if r["status"] in ENDED and r.get("best_test_acc") is not None
            and r["best_test_acc"] < 1 / r.get("classes", 10) + CHANCE_MARGIN]


def finding(rows: list[dict], always_count_collapses: bool = False) -> str:
    """One sentence with numbers from an exercise's own run rows (ablation.result_rows)."""
    stuck = never_learned(rows)
    if rows and len(stuck) == len(rows):          # every run ended, and none left chance
        best = max(r["best_test_acc"] for r in stuck)
        return (f"The runs do not settle it: none of the {len(rows)} runs left chance (best test "
                f"accuracy {best:.0%}, chance {1 / rows[0].get('classes', 10):.0%}), so there was "
                "nothing to compare or to collapse.")
    groups = by_setting(rows)
    means = {k: spread(v)[0] for k, v in groups.items() if v}
    crash = collapses(rows)
    if always_count_collapses and not crash and rows:
        crash = f"no run collapsed ({len(rows)} runs)"
    tail = (f"; {crash}" if crash else "") + (
        f"; {len(stuck)} of {len(rows)} runs never left chance." if stuck else ".")
    if len(means) < 2:
        return (f"The runs do not settle it yet: {sum(map(len, groups.values()))} of "
                f"{len(rows)} runs have a result" + tail)
    best, second = sorted(means, key=means.get, reverse=True)[:2]
    diff = (means[best] - means[second]) * 100
    sa, sb = spread(groups[best])[1], spread(groups[second])[1]
    sd = max(sa, sb) * 100 if sa is not None and sb is not None else None
    n = min(len(groups[best]), len(groups[second]))
    costs = _costs(rows, best, second)
    if sd is None:
        return (f"The runs do not settle it: {best} leads {second} by {_pts(diff)} points with "
                f"one seed, so the spread is unknown{costs}" + tail)
    if diff < sd:
        return (f"The runs do not settle it: {best} leads {second} by {_pts(diff)} points, within "
                f"the seed spread of ± {_pts(sd)} over {n} seeds{costs}" + tail)
    return (f"{best}: {_pts(diff)} points above {second} ± {_pts(sd)} over {n} seeds{costs}" + tail)


def _pts(x: float) -> str:
    """Points of accuracy: one decimal, two below 1 (0.07 against 0.06 must not read 0.1 ± 0.1)."""
    return f"{x:.2f}" if abs(x) < 1 else f"{x:.1f}"


# --- runs picked by hand (Compare page): seeds of the same settings grouped ---

IGNORED = ("config.seed", "config.ablation_setting", "spec.name")


def seed_groups(runs: list[dict]) -> list[dict]:
    """Runs that differ only in their seed, grouped: settings that differ, runs, final test
    accuracy as mean ± sd and the verdict against the best (NOISE_RULE)."""
    from nin_explorer.runs.queries import settings
    flat = [{k: v for k, v in settings(r).items() if k not in IGNORED} for r in runs]
    keys = sorted(k for k in set().union(*flat) if len({repr(f.get(k)) for f in flat}) > 1)
    rows = [{"setting": ", ".join(f"{k.split('.', 1)[1]} = {f.get(k)}" for k in keys) or "same settings",
             "status": r["status"], METRIC: r.get(METRIC)} for r, f in zip(runs, flat)]
    groups = by_setting(rows)
    v = verdicts(groups)
    return [{"settings": k, "runs": sum(r["setting"] == k for r in rows),
             "final test acc": mean_pm(vals), "vs best": v[k]} for k, vals in groups.items()]
