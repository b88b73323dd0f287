"""`python -m nin_explorer data list|check|import`: the user's folders of images, as the app shows them."""
from __future__ import annotations

import json
import sys


def add_data_parser(sub, cli_error) -> None:
    """The `data` command and its three subcommands; `cli_error` is the CLI's one-line error."""
    d = sub.add_parser("data", help="your folders of images under the data directory")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=type(d))
    common = dict(help="data directory (default: $NIN_EXPLORER_DATA or ~/.cache/nin-explorer/data)")
    ls = dsub.add_parser("list", help="every image folder: classes, counts, channels, size")
    ls.add_argument("--root", **common)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ck = dsub.add_parser("check", help="one folder's facts, warnings and bad files (reads every image)")
    ck.add_argument("name", help="the folder under the data directory (or folder:NAME)")
    ck.add_argument("--root", **common)
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    im = dsub.add_parser("import", help="unpack a .zip of an image folder into the data directory")
    im.add_argument("zip", help="the .zip: one subfolder per class, or train/ and test/ with them")
    im.add_argument("name", help="the new data set's name (letters, digits, - and _)")
    im.add_argument("--root", **common)
    for parser, func in ((ls, cmd_list), (ck, cmd_check), (im, cmd_import)):
        parser.set_defaults(func=lambda args, f=func: _run(f, args, cli_error))


def _run(func, args, cli_error) -> int:
    from nin_explorer.learn.data import DataError
    try:
        return func(args)
    except DataError as e:
        raise cli_error(str(e)) from None


def _facts_dict(facts) -> dict:
    info = facts.info
    return {"name": facts.name, "error": facts.error, "layout": facts.layout,
            "classes": list(info.classes) if info else [], "channels": info and info.channels,
            "image_size": info and info.image_size, "n_train": info and info.n_train,
            "n_test": info and info.n_test, "counts": {c: list(n) for c, n in facts.counts.items()},
            "sizes": {f"{w}x{h}": n for (w, h), n in facts.sizes.items()}, "modes": dict(facts.modes),
            "bad_files": facts.bad_files, "warnings": facts.warnings}


def cmd_list(args) -> int:
    from nin_explorer.learn.folder_facts import list_folders
    found = list_folders(args.root)
    if args.json:
        print(json.dumps([_facts_dict(f) for f in found], indent=1))
        return 0
    if not found:
        print("No image folders in the data directory; `data import ZIP NAME` adds one.")
    for facts in found:
        print(facts.summary)
    return 0


def cmd_check(args) -> int:
    from nin_explorer.learn.catalogue import FOLDER_PREFIX
    from nin_explorer.learn.data import DataError
    from nin_explorer.learn.folder_facts import folder_facts
    name = args.name if args.name.startswith(FOLDER_PREFIX) else FOLDER_PREFIX + args.name
    facts = folder_facts(name, args.root, decode=True)
    if facts.error:
        raise DataError(facts.error)
    if args.json:
        print(json.dumps(_facts_dict(facts), indent=1))
        return 0
    print(facts.summary)
    print(f"layout: {facts.layout}")
    for class_name, (n_train, n_test) in facts.counts.items():
        print(f"  {class_name}: {n_train:,} train, {n_test:,} test")
    print("sizes: " + ", ".join(f"{w}x{h} ({n:,})" for (w, h), n in facts.sizes.most_common(5))
          + (f" and {len(facts.sizes) - 5} more" if len(facts.sizes) > 5 else ""))
    print("modes: " + ", ".join(f"{m} ({n:,})" for m, n in facts.modes.most_common()))
    for warning in facts.warnings:
        print(f"warning: {warning}")
    for path, why in facts.bad_files.items():
        print(f"bad file: {path}: {why}")
    return 0


def cmd_import(args) -> int:
    from nin_explorer.learn.zip_import import import_zip

    def progress(fraction, message):  # on a terminal only: an error stays one line
        print(f"\r{fraction:4.0%} {message}".ljust(60), end="", file=sys.stderr, flush=True)
    name = import_zip(args.zip, args.name, args.root, progress if sys.stderr.isatty() else None)
    print(f"Imported {name}; train on it with --dataset {name}")
    return 0
