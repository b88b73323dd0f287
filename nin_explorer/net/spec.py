"""What a network variant is: one immutable, JSON-round-trippable value.

A `NetSpec` is the only description of a network the app passes around: to the summary,
the builder, the URL, SQLite, the worker and the export. It never holds a module or tensor.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields

BLOCK_KINDS = ("nin", "conv", "inception")
POOLS = ("max", "avg", "none")
HEADS = ("gap", "gap-linear", "fc")

# Limits that keep a spec from allocating absurd amounts before it is even summarised.
MAX_INPUT_SIZE = 1024
MAX_CHANNELS = 8192
MAX_KERNEL = 31
MAX_BLOCKS = 16
MAX_CLASSES = 1000
MAX_FC_WIDTH = 16384
MAX_TEXT_CHARS = 200          # a name or a typed list of widths (the pages' text inputs stop here)
MAX_SPEC_JSON_BYTES = 200_000


class SpecError(ValueError):
    """A spec a learner must change; the message says what to change."""


@dataclass(frozen=True)
class BlockSpec:
    """One block: its convs, then optional pooling, then optional dropout.

    kind "nin":  conv(kernel, stride, padding) -> ReLU, then `n_extra_1x1` x (1x1 conv -> ReLU).
    kind "conv": `n_convs` x (conv(kernel, padding) -> ReLU), stride on the first (AlexNet, VGG).
    kind "inception": four parallel paths concatenated on channels (GoogLeNet):
        1x1 (c1) | 1x1 (c2a) -> 3x3 (c2b) | 1x1 (c3a) -> 5x5 (c3b) | 3x3 max pool -> 1x1 (c4).
    `batch_norm` puts BatchNorm between every conv and its ReLU.
    """

    out_channels: int = 96
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    kind: str = "nin"
    n_extra_1x1: int = 2
    n_convs: int = 1
    batch_norm: bool = False
    pool: str = "none"
    pool_kernel: int = 3
    pool_stride: int = 2
    pool_padding: int = 0
    dropout: float = 0.0
    # Widths of the extra 1x1 convs when they differ from out_channels (the 2013 paper's
    # 192-160-96 block); empty means all are out_channels. Only for kind "nin".
    extra_1x1_channels: tuple[int, ...] = ()
    # Inception path widths (c1, c2a, c2b, c3a, c3b, c4); only for kind "inception".
    paths: tuple[int, ...] = ()

    def __post_init__(self):
        # Settings a block kind does not use are reset, so that equal networks are equal specs.
        canon: dict = {}
        if self.kind != "nin":
            canon.update(n_extra_1x1=0, extra_1x1_channels=())
        if self.kind != "conv":
            canon["n_convs"] = 1
        if self.kind == "inception":
            canon.update(kernel=1, stride=1, padding=0)
            if len(self.paths) == 6 and all(isinstance(p, int) for p in self.paths):
                canon["out_channels"] = self.channels_out
        else:
            canon["paths"] = ()
        if self.pool == "none":
            canon.update(pool_kernel=3, pool_stride=2, pool_padding=0)
        for key, value in canon.items():
            object.__setattr__(self, key, value)

    @property
    def channels_out(self) -> int:
        """Channels this block hands on (the concatenation for an Inception block)."""
        if self.kind == "inception":
            c1, _, c2b, _, c3b, c4 = self.paths
            return c1 + c2b + c3b + c4
        if self.kind == "nin" and self.extra_1x1_channels:
            return self.extra_1x1_channels[-1]
        return self.out_channels


@dataclass(frozen=True)
class NetSpec:
    """A whole network: input, blocks, head. Validated on construction."""

    name: str = "custom"
    in_channels: int = 1
    input_size: int = 224
    num_classes: int = 10
    blocks: tuple[BlockSpec, ...] = field(default_factory=tuple)
    head: str = "gap"
    fc_hidden: tuple[int, ...] = ()
    fc_dropout: float = 0.5
    # False drops the ReLU that ends the last block (a NiN or conv block): its last conv's output
    # is then the class maps, so logits can be negative and NiN's trap (every map 0, no
    # gradient) cannot close. Kept out of to_dict when True, so older stored specs stay equal.
    final_relu: bool = True

    def __post_init__(self):
        validate(self)

    # --- serialisation ---
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "blocks": [_block_to_dict(b) for b in self.blocks],
            "head": self.head,
            "fc_hidden": list(self.fc_hidden),
            "fc_dropout": self.fc_dropout,
            **({} if self.final_relu else {"final_relu": False}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d) -> "NetSpec":
        if not isinstance(d, dict):
            raise SpecError("A network spec must be a JSON object with keys such as 'blocks' and 'head'.")
        _reject_unknown(d, cls, "network")
        if "blocks" not in d:
            raise SpecError("The spec has no 'blocks' list; add at least one block.")
        raw_blocks = d["blocks"]
        if not isinstance(raw_blocks, list):
            raise SpecError("'blocks' must be a list of block objects.")
        if len(raw_blocks) > MAX_BLOCKS:
            raise SpecError(f"{len(raw_blocks)} blocks is too many; use at most {MAX_BLOCKS}.")
        blocks = tuple(_block_from_dict(b, i + 1) for i, b in enumerate(raw_blocks))
        kwargs = {k: v for k, v in d.items() if k != "blocks"}
        _check_types(kwargs, cls, "network")
        if "fc_hidden" in kwargs:
            kwargs["fc_hidden"] = tuple(_int_list(kwargs["fc_hidden"], "fc_hidden"))
        return cls(blocks=blocks, **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> "NetSpec":
        if len(text) > MAX_SPEC_JSON_BYTES:
            raise SpecError(f"That JSON file is too large to be a network spec (over "
                            f"{MAX_SPEC_JSON_BYTES // 1000} kB).")
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:  # '[[[...' nests too deep
            raise SpecError(f"That is not valid JSON ({e}).") from None
        return cls.from_dict(d)

    def replace(self, **changes) -> "NetSpec":
        return dataclasses.replace(self, **changes)

    def replace_block(self, index: int, **changes) -> "NetSpec":
        blocks = list(self.blocks)
        blocks[index] = dataclasses.replace(blocks[index], **changes)
        return dataclasses.replace(self, blocks=tuple(blocks))


def _block_to_dict(b: BlockSpec) -> dict:
    d = dataclasses.asdict(b)
    d["paths"] = list(b.paths)
    d["extra_1x1_channels"] = list(b.extra_1x1_channels)
    return d


def _block_from_dict(d, number: int) -> BlockSpec:
    if not isinstance(d, dict):
        raise SpecError(f"Block {number} must be a JSON object.")
    _reject_unknown(d, BlockSpec, f"block {number}")
    kwargs = dict(d)
    _check_types(kwargs, BlockSpec, f"block {number}")
    if "paths" in kwargs:
        kwargs["paths"] = tuple(_int_list(kwargs["paths"], f"block {number} paths"))
    if "extra_1x1_channels" in kwargs:
        kwargs["extra_1x1_channels"] = tuple(
            _int_list(kwargs["extra_1x1_channels"], f"block {number} extra_1x1_channels"))
    return BlockSpec(**kwargs)


def _reject_unknown(d: dict, cls, what: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(map(str, d)) - known)
    if unknown:
        raise SpecError(f"Unknown setting(s) in {what}: {', '.join(unknown[:5])}. "
                        f"Known: {', '.join(sorted(known))}.")


_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}


def _check_types(d: dict, cls, what: str) -> None:
    hints = {f.name: f.type for f in fields(cls)}
    for key, value in d.items():
        hint = str(hints[key])
        if hint.startswith("tuple"):
            continue
        expected = _TYPES.get(hint)
        if expected is None:
            continue
        ok = isinstance(value, expected) and not (hint != "bool" and isinstance(value, bool))
        if not ok:
            raise SpecError(f"{what}: '{key}' must be a {hint}, not {type(value).__name__} {value!r:.40}.")


def _int_list(value, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise SpecError(f"'{what}' must be a list of whole numbers.")
    if len(value) > 8:
        raise SpecError(f"'{what}' has {len(value)} entries; at most 8 are allowed.")
    return list(value)


# --- validation of single settings (sizes that depend on the input are checked by summary) ---

def validate(spec: NetSpec) -> None:
    """Raise SpecError for any setting that is wrong regardless of the input size."""
    if len(str(spec.name)) > MAX_TEXT_CHARS:
        raise SpecError(f"The network's name has {len(str(spec.name)):,} characters; use at most "
                        f"{MAX_TEXT_CHARS}.")
    _positive("input size", spec.input_size, MAX_INPUT_SIZE)
    _positive("input channels", spec.in_channels, 64)
    _positive("number of classes", spec.num_classes, MAX_CLASSES)
    if spec.num_classes < 2:
        raise SpecError("A classifier needs at least 2 classes.")
    if spec.head not in HEADS:
        raise SpecError(f"Head must be one of {', '.join(HEADS)}, not {spec.head!r}.")
    if not spec.blocks:
        raise SpecError("The network has no blocks; add at least one.")
    if len(spec.blocks) > MAX_BLOCKS:
        raise SpecError(f"{len(spec.blocks)} blocks is too many; use at most {MAX_BLOCKS}.")
    for i, b in enumerate(spec.blocks, start=1):
        _validate_block(b, i)
    if not 0 <= spec.fc_dropout < 1:
        raise SpecError("Head dropout must be at least 0 and below 1.")
    if len(spec.fc_hidden) > 4:
        raise SpecError("Use at most 4 hidden fully connected layers.")
    for w in spec.fc_hidden:
        _positive("a hidden fully connected width", w, MAX_FC_WIDTH)
    if spec.head != "fc" and spec.fc_hidden:
        raise SpecError("Hidden fully connected layers only exist with the 'fc' head; "
                        "clear them or choose head 'fc'.")
    if not spec.final_relu and spec.blocks[-1].kind == "inception":
        raise SpecError("An Inception last block ends in a concatenation, not one ReLU: keep "
                        "'final ReLU' on, or make the last block a NiN or conv block.")
    last = spec.blocks[-1].channels_out
    if spec.head == "gap" and last != spec.num_classes:
        raise SpecError(
            f"With the 'gap' head the last block must output one channel per class: it has {last} "
            f"channels but there are {spec.num_classes} classes. Set the last block's channels to "
            f"{spec.num_classes}, or choose head 'gap-linear' or 'fc'.")


def _positive(what: str, value: int, upper: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"The {what} must be a whole number, not {value!r:.40}.")
    if value < 1:
        raise SpecError(f"The {what} must be at least 1 (it is {value}).")
    if value > upper:
        raise SpecError(f"The {what} is {value:,}; the largest allowed is {upper:,}.")


def _validate_block(b: BlockSpec, i: int) -> None:
    where = f"Block {i}"
    if b.kind not in BLOCK_KINDS:
        raise SpecError(f"{where}: kind must be one of {', '.join(BLOCK_KINDS)}, not {b.kind!r}.")
    if b.kind == "inception":
        if len(b.paths) != 6:
            raise SpecError(f"{where}: an Inception block needs six path widths "
                            "(c1, c2a, c2b, c3a, c3b, c4).")
        for w in b.paths:
            _positive(f"{where.lower()} path width", w, MAX_CHANNELS)
    else:
        _positive(f"{where.lower()} channel count", b.out_channels, MAX_CHANNELS)
        _positive(f"{where.lower()} kernel size", b.kernel, MAX_KERNEL)
        _positive(f"{where.lower()} stride", b.stride, MAX_KERNEL)
        if not isinstance(b.padding, int) or b.padding < 0:
            raise SpecError(f"{where}: padding must be 0 or more (it is {b.padding!r:.20}).")
        if b.padding > b.kernel // 2 + 8:
            raise SpecError(f"{where}: padding {b.padding} is far larger than the kernel needs; "
                            f"use at most {b.kernel // 2 + 8}.")
    if not isinstance(b.n_extra_1x1, int) or not 0 <= b.n_extra_1x1 <= 3:
        raise SpecError(f"{where}: the number of extra 1x1 convs must be 0, 1, 2 or 3.")
    if b.extra_1x1_channels:
        if b.kind != "nin" or len(b.extra_1x1_channels) != b.n_extra_1x1:
            raise SpecError(f"{where}: give one width per extra 1x1 conv "
                            f"({b.n_extra_1x1}), or leave the widths empty.")
        for w in b.extra_1x1_channels:
            _positive(f"{where.lower()} 1x1 conv width", w, MAX_CHANNELS)
    if not isinstance(b.n_convs, int) or not 1 <= b.n_convs <= 4:
        raise SpecError(f"{where}: the number of convs must be between 1 and 4.")
    if b.pool not in POOLS:
        raise SpecError(f"{where}: pooling must be one of {', '.join(POOLS)}, not {b.pool!r}.")
    if b.pool != "none":
        _positive(f"{where.lower()} pool kernel", b.pool_kernel, MAX_KERNEL)
        _positive(f"{where.lower()} pool stride", b.pool_stride, MAX_KERNEL)
        if not isinstance(b.pool_padding, int) or not 0 <= b.pool_padding <= b.pool_kernel // 2:
            raise SpecError(f"{where}: pool padding must be between 0 and half the pool kernel "
                            f"({b.pool_kernel // 2}).")
    if not isinstance(b.dropout, (int, float)) or not 0 <= b.dropout < 1:
        raise SpecError(f"{where}: dropout must be at least 0 and below 1.")
