"""Command line: `python -m nin_explorer summary|train|runs ...` on the same core as the app."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .presets import PRESETS, get_preset
from .render import summary_json, summary_text
from .spec import NetSpec, SpecError
from .summary import OPTIMIZERS, PRECISIONS, summarize


class CliError(Exception):
    """A bad argument; printed as one line, exit status 2."""


def load_spec(preset: str | None, config: str | None, input_size: int | None) -> NetSpec:
    if config:
        path = Path(config)
        try:
            text = path.read_text()
        except OSError as e:
            raise CliError(f"cannot read {config}: {e.strerror or e}") from None
        spec = NetSpec.from_json(text)
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
    s.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, CliError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
