"""Command line: `python -m nin_explorer summary|train|runs|data ...` on the same core as the app."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from nin_explorer.learn.config import TrainConfig, setting_types
from nin_explorer.net.presets import PRESETS, get_preset
from nin_explorer.net.render import summary_json, summary_text
from nin_explorer.net.spec import MAX_SPEC_JSON_BYTES, NetSpec, SpecError
from nin_explorer.runs.store import StoreError
from nin_explorer.net.summary import MEMORY_OPTIMIZERS, PRECISIONS, summarize


class CliError(Exception):
    """A bad argument; printed as one line, exit status 2."""


def read_json_file(name: str, max_bytes: int = MAX_SPEC_JSON_BYTES) -> str:
    """The text of a small settings file, its size checked before it is read: CliError (one
    line) when it is missing, larger than `max_bytes` or not UTF-8."""
    path = Path(name)
    try:
        size = path.stat().st_size
        if size <= max_bytes:
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)   # a pipe or device reports no size
    except OSError as e:
        raise CliError(f"cannot read {name}: {e.strerror or e}") from None
    if size > max_bytes or len(data) > max_bytes:
        raise CliError(f"{name} is over {max_bytes:,} bytes, too large for a settings file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CliError(f"{name} is not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x}); "
                       "save it as UTF-8 JSON") from None


def load_spec(preset: str | None, config: str | None, input_size: int | None) -> NetSpec:
    if config:
        spec = NetSpec.from_json(read_json_file(config))
    else:
        spec = get_preset(preset or "d2l")
    if input_size is not None:
        spec = spec.replace(input_size=input_size)
    return spec


def cmd_summary(args) -> int:
    spec = load_spec(args.preset, args.config, args.input_size)
    s = summarize(spec, args.batch_size, args.precision, args.optimizer)
    print(json.dumps(summary_json(s)) if args.json else summary_text(s))
    return 0


# --- train and runs ---

def _train_config(args, network: str) -> TrainConfig:
    from nin_explorer.learn.config import recipe_defaults

    values = {}
    if args.train_config:
        try:
            values = json.loads(read_json_file(args.train_config))
        except (ValueError, RecursionError) as e:
            raise CliError(f"{args.train_config} is not valid JSON ({e})") from None
        if not isinstance(values, dict):
            raise CliError(f"{args.train_config} must hold a JSON object of training settings")
    # a flag left out (None) keeps the file's value, else the recipe's default
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig)
                   if getattr(args, f.name, None) is not None})
    # the recipe's per-network defaults (course notes) under anything given explicitly
    values = {**recipe_defaults(values.get("recipe", "book"), network), **values}
    return TrainConfig.from_dict(values)


class _Progress:
    """Training progress as text: a \r line on a terminal, one line per epoch elsewhere."""

    def __init__(self, stream, epochs: int):
        self.stream, self.epochs = stream, epochs
        self.tty = stream.isatty()

    def __call__(self, e: dict) -> None:
        if e["kind"] == "start":
            print(f"training on {e['device']} ({e['precision']}): {e['train_examples']:,} "
                  f"images, {e['steps_per_epoch']} steps per epoch", file=self.stream)
        elif e["kind"] == "step" and self.tty:
            print(f"\repoch {e['epoch']:.2f}/{self.epochs}  loss {e['train_loss']:.3f}  "
                  f"acc {e['train_acc']:.3f}  {e['examples_per_sec'] or 0:,.0f} ex/s  "
                  f"{e['elapsed_s']:.0f} s", end="", file=self.stream, flush=True)
        elif e["kind"] == "epoch":
            print(("\r" if self.tty else "") +
                  f"epoch {e['epoch']}/{self.epochs}: train loss {e['train_loss']:.3f}, train acc "
                  f"{e['train_acc']:.3f}, test acc {e['test_acc']:.3f}, "
                  f"{e['examples_per_sec']:,.0f} ex/s, {e['elapsed_s']:.1f} s",
                  file=self.stream, flush=True)


def cmd_train(args) -> int:
    """Train and record one run. Under torchrun every rank runs this; rank 0 records the run."""
    from nin_explorer.learn.data import DataError, dataset_info
    from nin_explorer.learn.config import ConfigError, apply_recipe
    from nin_explorer.runs.worker import run_on_ranks

    spec = load_spec(args.preset or "tiny", args.config, None)
    try:
        cfg = _train_config(args, spec.name)
        summarize(apply_recipe(spec, cfg)[0], cfg.batch_size)  # shape errors before any work
        dataset_info(cfg.dataset)
    except (ConfigError, DataError) as e:
        raise CliError(str(e)) from None
    return run_on_ranks(lambda gate, stop: _train_here(args, spec, cfg, gate, stop))


def _train_here(args, spec, cfg, gate, stop) -> int:
    """Record the run and train it in this process (rank 0 under torchrun)."""
    import os
    import signal

    from nin_explorer.base.procs import process_start
    from nin_explorer.runs.provenance import git_commit
    from nin_explorer.runs.store import RunStore
    from nin_explorer.runs.worker import LEARNER_ERRORS, execute_run

    store = RunStore(args.home)
    run_id = store.create_run(spec.to_dict(), cfg.to_dict(), name=args.name, status="running",
                              commit=git_commit())
    store.set_process(run_id, os.getpid(), process_start(os.getpid()))
    out = sys.stderr if args.json else sys.stdout
    print(f"run {run_id} in {store.db_path}", file=out)

    def on_interrupt(signum, frame):  # first Ctrl-C stops cleanly, a second one at once
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    alone = gate.group is None   # under torchrun the signals are already handled
    previous = signal.signal(signal.SIGINT, on_interrupt) if alone else None
    try:
        execute_run(store, run_id, stop, _Progress(out, cfg.epochs), gate=gate)
    except LEARNER_ERRORS as e:
        raise CliError(f"run {run_id} failed: {e}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    run = store.get_run(run_id)
    print(f"run {run_id} {run['status']}: {run['reason'] or run['error'] or ''}", file=out)
    if args.json:
        print(json.dumps({"run_id": run_id, "status": run["status"],
                          "test_acc": run["final_test_acc"], "train_loss": run["train_loss"],
                          "examples_per_sec": run["examples_per_sec"], "wall_s": run["wall_s"]}))
    return {"completed": 0, "stopped": 130}.get(run["status"], 1)


def _runs_rows(runs: list[dict]) -> list[list[str]]:
    def num(v, fmt):
        return "" if v is None else format(v, fmt)
    return [[str(r["id"]), r["name"] or "", r["spec"].get("name", ""),
             r["config"].get("dataset", ""), r["config"].get("recipe", ""), r["status"],
             num(r["final_test_acc"], ".3f"), num(r["best_test_acc"], ".3f"),
             num(r["examples_per_sec"], ",.0f"), num(r["wall_s"], ".1f")] for r in runs]


def cmd_runs(args) -> int:
    from nin_explorer.runs.store import RunStore

    store = RunStore(args.home)
    runs = store.list_runs(limit=args.limit)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print(f"no runs yet in {store.db_path}")
        return 0
    head = ["id", "name", "network", "data", "recipe", "status", "test acc", "best",
            "ex/s", "wall s"]
    rows = [head, *_runs_rows(runs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_teacher_link(args) -> int:
    """The link that makes its holder the teacher of the app served from this run store."""
    from nin_explorer.runs import roles
    from nin_explorer.runs.store import default_home

    try:
        token = roles.teacher_token(args.home or default_home())
    except (roles.RoleError, OSError) as e:
        raise CliError(str(e)) from None
    print(f"Teacher link (keep it to yourself; visitors use the plain address): "
          f"{roles.teacher_link(token, args.port)}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _add_config_flags(parser) -> None:
    """One flag per TrainConfig field, with the field's help text. A flag left out is None, so
    the recipe's default applies. No choices= here: TrainConfig says what is wrong, in a line."""
    for f in fields(TrainConfig):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if flag is None:   # bookkeeping the app records, not a training option
            continue
        kind, _ = setting_types()[f.name]
        help_text = f.metadata["help"].replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
            continue
        if kind is int and f.metadata.get("positive"):
            kind = _positive_int
        parser.add_argument(flag, dest=f.name, type=None if kind is str else kind,
                            metavar=f.metadata.get("metavar"), help=help_text)


def _add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a network here and record the run")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: tiny")
    t.add_argument("--config", metavar="FILE.json", help="a spec saved from the Build page")
    t.add_argument("--train-config", metavar="FILE.json",
                   help="training settings as JSON; the flags below override them")
    _add_config_flags(t)
    t.add_argument("--name", help="a label for the run")
    t.add_argument("--home", help="run store folder (default: $NIN_EXPLORER_HOME or "
                   "~/.cache/nin-explorer)")
    t.add_argument("--json", action="store_true", help="end with one JSON line of results")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("runs", help="list recorded training runs")
    r.add_argument("--home", help="run store folder")
    r.add_argument("--limit", type=_positive_int, default=None)
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=cmd_runs)

    k = sub.add_parser("teacher-link", help="print the link that opens the app as the teacher")
    k.add_argument("--home", help="run store folder (the token is kept there)")
    k.add_argument("--port", type=_positive_int, default=8501)
    k.set_defaults(func=cmd_teacher_link)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m nin_explorer", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("summary", help="per-layer shapes, parameters, FLOPs and memory")
    s.add_argument("--preset", choices=sorted(PRESETS), default=None)
    s.add_argument("--config", metavar="FILE.json", help="a spec saved from the Build page")
    s.add_argument("--input-size", type=int)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--precision", choices=PRECISIONS, default="fp32")
    s.add_argument("--optimizer", choices=MEMORY_OPTIMIZERS, default="sgd")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_summary)
    _add_train_parser(sub)
    from nin_explorer.cli_data import add_data_parser
    add_data_parser(sub, CliError)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, CliError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
