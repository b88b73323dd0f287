"""Flat control values (one per widget) to and from a spec, so pages stay thin.

Keys are stable strings: `input_size`, `b2.kernel`, ... The Build page stores them in its
session state; these functions are plain and tested without Streamlit.
"""
from __future__ import annotations

from nin_explorer.net.spec import BLOCK_KINDS, HEADS, MAX_TEXT_CHARS, POOLS, BlockSpec, NetSpec, SpecError

NET_KEYS = ("name", "in_channels", "input_size", "num_classes", "n_blocks", "head",
            "fc_layers", "fc_width", "fc_dropout", "final_relu")
BLOCK_KEYS = ("kind", "out_channels", "kernel", "stride", "padding", "n_extra_1x1",
              "widths_1x1", "n_convs", "batch_norm", "pool", "pool_kernel", "pool_stride",
              "pool_padding", "dropout", "paths")
DEFAULT_BLOCK = BlockSpec(96, kernel=3, padding=1, pool="max", pool_kernel=3, pool_stride=2)
# (lowest, highest) of each numeric widget on the Build page, narrower than what a spec allows:
# a valid spec from a link or a file can lie outside them, and a widget given such a value raises.
LIMITS = {"input_size": (8, 512), "in_channels": (1, 4), "num_classes": (2, 1000),
          "n_blocks": (1, 12), "fc_layers": (0, 4), "fc_width": (1, 16384), "fc_dropout": (0.0, 0.9),
          "out_channels": (1, 1024), "kernel": (1, 15), "stride": (1, 8), "padding": (0, 10),
          "n_extra_1x1": (0, 3), "n_convs": (1, 4), "pool_kernel": (1, 15), "pool_stride": (1, 8),
          "pool_padding": (0, 7), "dropout": (0.0, 0.9)}
STEPS = {"fc_dropout": 0.05, "dropout": 0.05}     # the sliders' step where it is not 1
CHOICES = {"kind": BLOCK_KINDS, "pool": POOLS, "head": HEADS}
MEMORY_BATCH_SIZES = (1, 8, 16, 32, 64, 128, 256, 512, 1024)   # the Build page's memory estimate

# The Train, Ablations and Lineage pages' widgets (a config from the CLI may lie beyond them).
TRAIN_LIMITS = {"epochs": (1, 200), "lr": (1e-5, 10.0), "max_train_examples": (0, 10_000_000),
                "seed": (0, 2**31 - 1), "input_size": LIMITS["input_size"]}
TRAIN_BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
ABLATION_LIMITS = {"epochs": (1, 100), "max_train_examples": (0, 10_000_000), "seeds": (1, 5)}


def block_controls(b: BlockSpec) -> dict:
    return {
        "kind": b.kind, "out_channels": b.out_channels, "kernel": b.kernel, "stride": b.stride,
        "padding": b.padding, "n_extra_1x1": b.n_extra_1x1,
        "widths_1x1": ", ".join(map(str, b.extra_1x1_channels)), "n_convs": b.n_convs,
        "batch_norm": b.batch_norm, "pool": b.pool, "pool_kernel": b.pool_kernel,
        "pool_stride": b.pool_stride, "pool_padding": b.pool_padding, "dropout": float(b.dropout),
        "paths": ", ".join(map(str, b.paths)),
    }


def spec_to_controls(spec: NetSpec) -> dict:
    """Every control value for `spec`, keyed `name` or `b<i>.<field>` (i from 1)."""
    values = {
        "name": spec.name, "in_channels": spec.in_channels, "input_size": spec.input_size,
        "num_classes": spec.num_classes, "n_blocks": len(spec.blocks), "head": spec.head,
        "fc_layers": len(spec.fc_hidden), "fc_width": spec.fc_hidden[0] if spec.fc_hidden else 4096,
        "fc_dropout": float(spec.fc_dropout), "final_relu": spec.final_relu,
    }
    for i, b in enumerate(spec.blocks, start=1):
        values.update({f"b{i}.{k}": v for k, v in block_controls(b).items()})
    return values


def check_fits(values: dict) -> None:
    """SpecError when a control value (from spec_to_controls) is outside its widget's LIMITS."""
    for key, value in values.items():
        block, _, name = key.rpartition(".")
        low, high = LIMITS.get(name, (value, value))
        if not low <= value <= high:
            where = f"Block {block[1:]}'s " if block else "The "
            raise SpecError(f"{where}{name.replace('_', ' ')} is {value:g}; the Build page's "
                            f"controls go from {low:g} to {high:g}.")


def named_spec(values: dict, preset: NetSpec) -> NetSpec:
    """The controls' spec named for the preset they started from: the preset's own name while
    nothing differs from it, 'custom (<preset>)' once something does."""
    spec = controls_to_spec(values)
    same = spec.replace(name=preset.name) == preset
    return spec.replace(name=preset.name if same else f"custom ({preset.name})")


def last_block_fix(values: dict) -> dict | None:
    """With a GAP head whose last block's channels are not the classes: the control values
    that make them so (the Build page offers it as a button); None otherwise."""
    last = f"b{values['n_blocks']}."
    if values.get("head") != "gap" or values.get(last + "out_channels") == values.get("num_classes"):
        return None
    return {last + "out_channels": values["num_classes"], last + "widths_1x1": ""}


def _int_tuple(text: str, what: str) -> tuple[int, ...]:
    text = (text or "").strip()
    if not text:
        return ()
    if len(text) > MAX_TEXT_CHARS:
        raise SpecError(f"{what} are {len(text):,} characters long; type at most {MAX_TEXT_CHARS}.")
    try:
        return tuple(int(x) for x in text.replace(";", ",").split(","))
    except ValueError:
        raise SpecError(f"{what} must be whole numbers separated by commas, "
                        f"like '160, 96' (got {text[:40]!r}).") from None


def controls_to_spec(values: dict) -> NetSpec:
    """The spec the controls describe; SpecError says which setting is wrong."""
    blocks = []
    for i in range(1, int(values["n_blocks"]) + 1):
        v = {k: values.get(f"b{i}.{k}", getattr(DEFAULT_BLOCK, k, None)) for k in BLOCK_KEYS}
        kind = v["kind"]
        blocks.append(BlockSpec(
            kind=kind, out_channels=int(v["out_channels"]), kernel=int(v["kernel"]),
            stride=int(v["stride"]), padding=int(v["padding"]),
            n_extra_1x1=int(v["n_extra_1x1"]),
            extra_1x1_channels=_int_tuple(v["widths_1x1"], f"Block {i}'s 1x1 widths")
            if kind == "nin" else (),
            n_convs=int(v["n_convs"]),
            batch_norm=bool(v["batch_norm"]), pool=v["pool"], pool_kernel=int(v["pool_kernel"]),
            pool_stride=int(v["pool_stride"]), pool_padding=int(v["pool_padding"]),
            dropout=round(float(v["dropout"]), 4),
            paths=_int_tuple(v["paths"], f"Block {i}'s path widths") if kind == "inception" else (),
        ))
    head = values["head"]
    hidden = (int(values["fc_width"]),) * int(values["fc_layers"]) if head == "fc" else ()
    return NetSpec(
        name=str(values["name"]), in_channels=int(values["in_channels"]),
        input_size=int(values["input_size"]), num_classes=int(values["num_classes"]),
        blocks=tuple(blocks), head=head, fc_hidden=hidden,
        fc_dropout=round(float(values["fc_dropout"]), 4),
        final_relu=bool(values.get("final_relu", True)))
