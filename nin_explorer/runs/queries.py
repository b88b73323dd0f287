"""Reading runs back: labels, tables, settings that differ, and the questions pages ask of the store."""
from __future__ import annotations

from dataclasses import dataclass


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, v in enumerate(value, start=1):
            _flatten(f"{prefix}[{i}]", v, out)
    else:
        out[prefix] = value


def settings(run: dict) -> dict:
    """A run's spec and config as flat 'spec.blocks[2].kernel'-style keys; a config stored
    before a setting existed gets that setting's default, so it does not look different."""
    from nin_explorer.learn.config import ConfigError, TrainConfig

    try:
        config = TrainConfig.from_dict(run["config"]).to_dict()
    except (ConfigError, TypeError):
        config = run["config"]
    out: dict = {}
    _flatten("spec", run["spec"], out)
    _flatten("config", config, out)
    return out


def differing_settings(runs: list[dict]) -> list[dict]:
    """Rows (setting, value per run) for the settings that are not the same in every run."""
    flat = [settings(r) for r in runs]
    keys = sorted(set().union(*flat))
    rows = []
    for k in keys:
        values = [f.get(k) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append({"setting": k, **{f"#{r['id']}": str(v) for r, v in zip(runs, values)}})
    return rows


# --- labels and tables of runs ---

def run_name(run: dict) -> str:
    return f"#{run['id']} {run.get('name') or run['spec']['name']}"


def run_label(run: dict) -> str:
    acc = f" · best {run['best_test_acc']:.1%}" if run.get("best_test_acc") is not None else ""
    return f"{run_name(run)} · {run['status']}{acc}"


def run_title(run: dict) -> str:
    """What never changes about a run: id, name, when it was queued. For pickers whose text
    Streamlit does not redraw while their value stays the same (a status there would go stale)."""
    import time
    when = time.strftime("%d %b %H:%M", time.localtime(run["created"])) if run.get("created") else ""
    return run_name(run) + (f" · {when}" if when else "")


def checkpoint_label(run: dict) -> str:
    """A run in the GAP maps page's picker: name, data set, status and best accuracy."""
    acc = f" · best {run['best_test_acc']:.1%}" if run.get("best_test_acc") else ""
    return f"{run_name(run)} · {run['config']['dataset']} · {run['status']}{acc}"


def runs_table(runs: list[dict]) -> list[dict]:
    """One row per run for the Train and Compare pages' tables."""
    from nin_explorer.runs.plan import human_duration
    return [{
        "run": r["id"], "name": r.get("name"), "status": r["status"],
        "data set": r["config"].get("dataset"), "recipe": r["config"].get("recipe"),
        "epochs": r["config"].get("epochs"), "batch": r["config"].get("batch_size"),
        "lr": r["config"].get("lr"),
        "best test acc": None if r.get("best_test_acc") is None else f"{r['best_test_acc']:.2%}",
        "examples/sec": None if not r.get("examples_per_sec") else round(r["examples_per_sec"]),
        "time": human_duration(r["wall_s"]) if r.get("wall_s") else None,
        "device": r.get("device"),
    } for r in runs]


# --- questions asked of the store ---

def index_of(ids: list[int], wanted: str | None, default: int = 0) -> int:
    """Where the run id an address asks for (?run=7) is in `ids`, else `default`. Compared as
    text, never int(): '²'.isdigit() is True and int('²') raises."""
    return next((k for k, i in enumerate(ids) if str(i) == wanted), default)


def ids_in(wanted: str | None, ids) -> list:
    """The run ids an address lists (?runs=3,5,9) that are among `ids`, in its order; compared
    as text, like index_of."""
    known = {str(i): i for i in ids}
    return [known[w] for w in dict.fromkeys((wanted or "").split(",")) if w in known]


def checkpoint_version(store, run_id: int):
    """(path, key) of a run's checkpoint: the key names this version of the file (its path
    and time written), so a cache of loaded checkpoints sees a rewrite."""
    path = store.checkpoint_path(run_id)
    try:
        written_ns = path.stat().st_mtime_ns
    except OSError:  # deleted since the list was made: the load says so
        written_ns = 0
    return path, f"run {path} {written_ns}"


def runs_with_checkpoint(store, limit: int = 500) -> list[dict]:
    """The newest `limit` finished runs (of any ending) whose checkpoint file is there: what GAP
    maps can open (a store of 10,000 runs took 1.2 s to list them all)."""
    return [r for r in store.list_runs(("completed", "stopped", "diverged", "interrupted"), limit=limit)
            if store.checkpoint_path(r["id"]).exists()]


def ablation_groups(store, limit: int = 1000) -> list[str]:
    """Each ablation's group id, newest first."""
    return store.groups(limit)


def measured_rate(store, spec, device: str) -> float | None:
    """examples/s of the latest finished run of this exact network on this device type."""
    for run in store.list_runs(("completed", "stopped"), limit=50):
        if run["spec"] == spec.to_dict() and (run.get("device") or "").startswith(device) \
                and run.get("examples_per_sec"):
            return run["examples_per_sec"]
    return None


def measured_memory(store, spec) -> dict | None:
    """Peak memory measured by the latest finished run of exactly this network, beside the
    estimate for that run's batch, precision and optimiser (the keyword arguments of
    help_text.measured_memory_text), or None when no such run measured any."""
    from nin_explorer.learn.config import memory_settings
    from nin_explorer.net.summary import summarize
    for run in store.list_runs(("completed", "stopped", "diverged"), limit=100):
        if run["spec"] != spec.to_dict():
            continue
        epochs = store.metrics(run["id"], "epoch")
        if not (epochs and epochs[-1].get("peak_train_memory_bytes")):
            continue
        cfg, device = run["config"], run.get("device") or "?"
        on_gpu = device.startswith("cuda")
        est = summarize(spec, cfg["batch_size"], *memory_settings(
            cfg["precision"], cfg["optimizer"], "cuda" if on_gpu else "cpu")).memory
        return {"run_id": run["id"], "device": device, "batch": cfg["batch_size"],
                "est_train": est.train_bytes,
                "got_train": max(e.get("peak_train_memory_bytes") or 0 for e in epochs),
                "est_infer": est.infer_bytes,
                "got_infer": max(e.get("peak_infer_memory_bytes") or 0 for e in epochs),
                "on_gpu": on_gpu}
    return None


def progress_line(run: dict, last_step: dict | None) -> tuple[float, str]:
    """A run's progress bar: the share done and its line ('#3 running · epoch 1.50 of 3 · ...')."""
    from nin_explorer.runs.plan import human_duration
    epochs, status = run["config"]["epochs"], run["status"]
    done = (last_step["epoch"] / epochs) if last_step else 0.0
    text = f"#{run['id']} {status}"
    if last_step:
        text += (f" · epoch {last_step['epoch']:.2f} of {epochs} · "
                 f"{last_step.get('examples_per_sec') or 0:,.0f} examples/sec")
        if status == "running" and done > 0:
            eta = last_step["elapsed_s"] / done - last_step["elapsed_s"]
            text += f" · about {human_duration(eta)} left"
    if status == "running" and not last_step and run.get("reason"):
        text += f" · {run['reason']}"  # data being downloaded or generated
    return min(1.0, done if status != "completed" else 1.0), text


def offers_offline_copy(run: dict, data_root=None) -> bool:
    """Whether the Train page offers a failed run again on the offline `shapes` set: when its
    data set still needs a download that never reached this machine. Decided from the run's
    status and the data folder (data.is_local), not from the words of its error."""
    from nin_explorer.learn.data import DataError, is_local
    if run["status"] != "failed":
        return False
    try:
        return not is_local(run["config"].get("dataset") or "", data_root)
    except DataError:   # a data set this version does not know: nothing to offer
        return False


def offline_copy(run: dict):
    """(spec, config, name) of the same run on the offline `shapes` data set, its network
    adapted to that set's channels and classes: the way on when a download failed."""
    from nin_explorer.learn.data import dataset_info
    from nin_explorer.runs.plan import adapt_spec
    from nin_explorer.net.spec import NetSpec
    from nin_explorer.learn.config import TrainConfig
    info = dataset_info("shapes")
    spec = adapt_spec(NetSpec.from_dict(run["spec"]), info.channels, info.n_classes)
    return spec, TrainConfig.from_dict({**run["config"], "dataset": "shapes"}), f"{spec.name} on shapes"


@dataclass(frozen=True)
class Forecast:
    """What the Train page says before a launch: the run's time, memory and where it runs."""
    spec: object           # the network the recipe trains (NetSpec, after apply_recipe)
    device: str            # "cpu", "cuda" or "mps"
    estimate: dict         # plan.estimate's: epoch_s, basis, slow
    fit: object            # plan.RunMemory: what the run needs
    fit_error: str | None  # why it would not fit this machine, or None


def forecast(store, spec, cfg, device: str) -> Forecast:
    """Time per epoch (from this store's latest finished run of the network when there is
    one) and the memory fit of a run of `spec` with `cfg` on `device` ('auto' resolved)."""
    from nin_explorer.learn.data import dataset_info
    from nin_explorer.runs.plan import FitError, check_fits, estimate
    from nin_explorer.learn.config import apply_recipe
    from nin_explorer.learn.devices import resolve_device
    info = dataset_info(cfg.dataset)
    real_spec, _ = apply_recipe(spec, cfg)
    dev = resolve_device(device).type
    n_train = min(cfg.max_train_examples or info.n_train, info.n_train)
    est = estimate(real_spec, cfg.batch_size, n_train, info.n_test, dev,
                   measured_rate(store, real_spec, dev), cfg.optimizer, cfg.precision)
    try:
        return Forecast(real_spec, dev, est, check_fits(spec, cfg, device=dev), None)
    except FitError as e:
        return Forecast(real_spec, dev, est, e.fit, str(e))


def run_metrics(run: dict, last_step: dict | None) -> dict[str, str]:
    """The Train page's four figures of a run, as shown: label -> value."""
    from nin_explorer.runs.plan import human_duration
    last = last_step or {}
    acc = run.get("best_test_acc")
    return {"Best test accuracy": f"{acc:.2%}" if acc is not None else "–",
            "Train loss": f"{last['train_loss']:.3f}" if last_step else "–",
            "examples/sec": f"{run['examples_per_sec'] or last.get('examples_per_sec') or 0:,.0f}",
            "Wall time": human_duration(run["wall_s"] or last.get("elapsed_s") or 0)}


# --- Lineage: the chapter's networks measured on the same data ---

def lineage_measured(runs: list[dict], dataset: str, epochs: int) -> list[dict]:
    """For each lineage network and input size, its finished runs on `dataset` with `epochs`
    epochs, over seeds: final test accuracy as mean ± sd, examples/s (mean), the device, and
    each row against the best (noise.NOISE_RULE). Rows in the lineage's order."""
    from nin_explorer.net.lineage import LINEAGE
    from nin_explorer.runs.noise import METRIC, mean_pm, spread, verdicts

    order = [spec.name for _, spec in LINEAGE]
    labels = {spec.name: label for label, spec in LINEAGE}
    found: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        cfg, name = r["config"], r["spec"].get("name")
        if name in labels and r["status"] in ("completed", "stopped") \
                and cfg.get("dataset") == dataset and cfg.get("epochs") == epochs:
            found.setdefault((name, r["spec"].get("input_size")), []).append(r)
    keys = sorted(found, key=lambda k: (order.index(k[0]), k[1] or 0))
    accs = {k: [r.get(METRIC) for r in found[k]] for k in keys}
    v = verdicts(accs)
    return [{"network": labels[k[0]], "input": f"{k[1]} px", "runs": len(found[k]),
             "test accuracy": mean_pm(accs[k]), "vs best": v[k],
             "examples_per_sec": spread([r.get("examples_per_sec") for r in found[k]])[0],
             "device": ", ".join(sorted({r["device"] for r in found[k] if r.get("device")})) or "-",
             "run ids": ", ".join(f"#{r['id']}" for r in sorted(found[k], key=lambda r: r["id"]))}
            for k in keys]
