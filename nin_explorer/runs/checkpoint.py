"""Checkpoint files: written atomically, read weights-only, and checked before anything
expensive: the zip archive and its pickle before torch.load; the metadata, the parameter count
and every weight's shape (arithmetic and the meta device) before a real module is built.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import unicodedata
import zipfile
from pathlib import Path

import torch

from nin_explorer.net.build import build_model
from nin_explorer.base.files import atomic_save, remove_stale_tmp
from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.runs.store import StoreError
from nin_explorer.net.summary import summarize
from nin_explorer.learn.config import ConfigError, TrainConfig

MAX_UPLOAD_PARAMS = 50_000_000   # an upload's network, counted from its spec before building
MAX_PICKLE_BYTES = 256 * 2**10   # the object table: 3 kB for d2l, 38 kB for GoogLeNet with BN
MAX_PICKLE_NODES = 200_000       # objects with shared references expanded, as repr/hash walk them
MAX_PICKLE_DEPTH = 32            # nesting; a trainer's checkpoint nests 6 deep
MAX_ARCHIVE_ENTRIES = 4096       # one per tensor, plus a few
MAX_NAME_CHARS = 100             # a class or network name (folder names become class names)
MAX_EPOCH = 1000                 # TrainConfig allows at most 1,000 epochs
_MARKDOWN_ACTIVE = set("[]<>`\\$")  # links, images, HTML, code, LaTeX: names are shown as Markdown


class CheckpointError(StoreError):
    """A checkpoint that cannot be used; the message says why."""


# --- reading and writing ---

def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Save `state` so that readers only ever see a complete file; leftovers of earlier saves
    killed midway are removed first."""
    path = Path(path)
    if path.parent.is_dir():
        remove_stale_tmp(path.parent, path.name)
    atomic_save(state, path)


def load_checkpoint(source) -> dict:
    """A checkpoint's dict (tensors on the CPU) from a path or bytes, loaded weights-only (no
    unpickling of code) after its archive and object table are checked; CheckpointError, with
    a sentence, when it is missing or unusable."""
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        if data[:4] != b"PK\x03\x04":  # torch.save writes a zip archive
            raise CheckpointError("That file is not a complete PyTorch checkpoint (it is "
                                  "empty, truncated, or another kind of file).")
        check_archive(data)
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError("The checkpoint file is missing (the run may not have finished "
                              "an epoch).") from None
    except pickle.UnpicklingError as e:  # weights_only refuses anything but tensors and values
        if "Weights only load failed" not in str(e):
            raise CheckpointError("That file is not a complete PyTorch checkpoint (it is "
                                  "corrupted).") from None
        raise CheckpointError("That checkpoint holds objects other than tensors and plain "
                              "values, so it is refused unread (only weights-only checkpoints "
                              "are loaded).") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError("That file is not a complete PyTorch checkpoint "
                              f"(it may be truncated or corrupted: {str(e)[:80]}).") from None
    if not isinstance(state, dict) or "model" not in state or "spec" not in state:
        raise CheckpointError("That file is a PyTorch file but not a NiN Explorer checkpoint "
                              "(it needs 'model' weights and a 'spec').")
    return state


# --- before torch.load: the archive ---

def check_archive(data: bytes) -> None:
    """Refuse a zip whose entries are compressed, overlap or hold an oversized or unusual pickle,
    reading only its directory and its small object table (CheckpointError says why)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ARCHIVE_ENTRIES:
                raise CheckpointError(f"That archive has {len(entries):,} entries; a checkpoint "
                                      f"has one per tensor (at most {MAX_ARCHIVE_ENTRIES:,} here).")
            if any(e.compress_type != zipfile.ZIP_STORED or e.compress_size != e.file_size
                   for e in entries):
                raise CheckpointError("That checkpoint has compressed entries; torch.save stores "
                                      "them uncompressed, so it is refused unread (a compressed "
                                      "entry can unpack to far more than the file's size).")
            if sum(e.file_size for e in entries) > len(data):
                raise CheckpointError("That checkpoint's entries add up to more than the file "
                                      "(overlapping entries); it is refused unread.")
            tables = [e for e in entries
                      if e.filename.endswith("/data.pkl") and e.filename.count("/") == 1]
            if len(tables) != 1:
                raise CheckpointError("That zip file is not a PyTorch checkpoint (it needs one "
                                      "data.pkl).")
            if tables[0].file_size > MAX_PICKLE_BYTES:
                raise CheckpointError(f"That checkpoint's object table is {tables[0].file_size:,} "
                                      f"bytes; at most {MAX_PICKLE_BYTES:,} are read (a trainer's "
                                      "checkpoint has 3,000 to 40,000).")
            table = archive.read(tables[0])
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError):
        raise CheckpointError("That file is not a complete PyTorch checkpoint (it may be "
                              "truncated or corrupted).") from None
    check_pickle(table)


# --- before torch.load: the pickle, simulated on sizes only ---

class _Node:
    """One object of the pickle: its size with shared references expanded, and its depth."""
    __slots__ = ("size", "depth", "shared")

    def __init__(self, size: int = 1, depth: int = 0):
        self.size, self.depth, self.shared = size, depth, False


_SCALAR = _Node()  # every immutable leaf (number, text, None, global, ()): never filled
_SCALARS = {"NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "BININT", "BININT1", "BININT2",
            "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING", "LONG1", "GLOBAL"}
_EMPTIES = {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"}
_FILLS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def check_pickle(table: bytes) -> None:
    """Walk the opcodes torch's weights-only unpickler accepts, tracking each object's expanded
    size and depth (never the values): refuse a table that would build a structure which
    hashing or printing walks exponentially (shared references nested deep), one nested too
    deep, or one that changes an object after sharing it (which would hide such growth)."""
    stack: list[_Node] = []
    marks: list[list[_Node]] = []
    memo: dict[int, _Node] = {}
    try:
        for op, arg, _ in pickletools.genops(table):
            name = op.name
            if name in _SCALARS:
                stack.append(_SCALAR)
            elif name in _EMPTIES:
                stack.append(_Node())
            elif name == "MARK":
                marks.append(stack)
                stack = []
            elif name == "TUPLE":
                items, stack = stack, marks.pop()
                stack.append(_container(items))
            elif name in _TUPLES:
                items = _pop(stack, _TUPLES[name])
                stack.append(_container(items))
            elif name in ("APPENDS", "SETITEMS"):
                items, stack = stack, marks.pop()
                _fill(stack[-1], items)
            elif name in _FILLS:
                items = _pop(stack, _FILLS[name])
                _fill(stack[-1], items)
            elif name in ("REDUCE", "NEWOBJ"):    # f args -> f(*args); cls args -> a new cls
                args = stack.pop()
                stack[-1] = _container([args])
            elif name == "BINPERSID":             # a storage record: a leaf
                stack[-1] = _SCALAR
            elif name in ("BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET"):
                node = memo[arg]
                node.shared = True
                stack.append(node)
            elif name == "STOP":
                break
            elif name != "PROTO":
                raise CheckpointError(f"That checkpoint uses the pickle instruction {name}, "
                                      "which weights-only loading does not accept; refused unread.")
    except CheckpointError:
        raise
    except (IndexError, KeyError, ValueError):
        raise CheckpointError("That file is not a complete PyTorch checkpoint (its object table "
                              "is corrupted).") from None


def _pop(stack: list[_Node], n: int) -> list[_Node]:
    if len(stack) < n:
        raise IndexError
    items = stack[-n:]
    del stack[-n:]
    return items


def _container(children: list[_Node]) -> _Node:
    return _checked(_Node(1 + sum(c.size for c in children),
                          1 + max((c.depth for c in children), default=0)))


def _fill(target: _Node, items: list[_Node]) -> None:
    if target is _SCALAR:
        raise ValueError("only containers are filled")
    if target.shared:
        raise CheckpointError("That checkpoint changes an object after sharing it (not something "
                              "torch.save writes); it is refused unread.")
    grown = _container(items)
    target.size += grown.size - 1
    target.depth = max(target.depth, grown.depth)
    _checked(target)


def _checked(node: _Node) -> _Node:
    if node.size > MAX_PICKLE_NODES or node.depth > MAX_PICKLE_DEPTH:
        raise CheckpointError(
            "That checkpoint holds a structure nested too deep or repeating shared parts (over "
            f"{MAX_PICKLE_NODES:,} objects once expanded, or {MAX_PICKLE_DEPTH} levels); it is "
            "refused unread.")
    return node


# --- after torch.load: what the dict claims ---

def plain_name(value, what: str) -> str:
    """`value` if it is a short, printable str without Markdown links or HTML, else CheckpointError
    (the message never formats `value`: it is untrusted)."""
    if type(value) is not str:
        raise CheckpointError(f"{what} must be text, not {type(value).__name__}.")
    if not value or len(value) > MAX_NAME_CHARS:
        raise CheckpointError(f"{what} must be 1 to {MAX_NAME_CHARS} characters long "
                              f"(it has {len(value):,}).")
    if any(c in _MARKDOWN_ACTIVE or unicodedata.category(c)[0] == "C" for c in value):
        raise CheckpointError(f"{what} may not hold control characters or any of "
                              f"{''.join(sorted(_MARKDOWN_ACTIVE))}.")
    return value


def read_classes(value, num_classes: int) -> list[str]:
    """The class names: a list or tuple of exactly `num_classes` plain names (None: numbers)."""
    if value is None:
        return [str(i) for i in range(num_classes)]
    if type(value) not in (list, tuple):
        raise CheckpointError(f"The checkpoint's classes must be a list of names, not "
                              f"{type(value).__name__}.")
    if len(value) != num_classes:
        raise CheckpointError(f"The checkpoint names {len(value):,} classes but its network has "
                              f"{num_classes}.")
    return [plain_name(v, f"Class name {i + 1}") for i, v in enumerate(value)]


def read_epoch(value) -> int:
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_EPOCH:
        raise CheckpointError(f"The checkpoint's epoch must be a whole number from 0 to "
                              f"{MAX_EPOCH:,}.")
    return value


def read_config(value) -> dict:
    """The training config through TrainConfig.from_dict (normalised); {} when there is none."""
    if value is None or value == {}:
        return {}
    try:
        return TrainConfig.from_dict(value).to_dict()
    except ConfigError as e:
        raise CheckpointError(f"The checkpoint's training config is not valid: {e}") from None


def read_spec(value) -> NetSpec:
    """The NetSpec, its name checked as plain text first (it is shown as Markdown)."""
    if isinstance(value, dict) and "name" in value:
        plain_name(value["name"], "The network's name")
    try:
        return NetSpec.from_dict(value)
    except SpecError as e:
        raise CheckpointError(f"The checkpoint's spec is not valid: {e}") from None


def count_params(spec: NetSpec) -> int:
    """Parameters of `spec`, by arithmetic (summary), CheckpointError when sizes do not work."""
    try:
        return summarize(spec, batch_size=1).params
    except SpecError as e:
        raise CheckpointError(f"The checkpoint's spec is not valid: {e}") from None


def check_weights(spec: NetSpec, weights) -> None:
    """Every tensor the spec's network has, with its exact shape, and nothing else; worked out
    on the meta device, which allocates nothing."""
    if not isinstance(weights, dict):
        raise CheckpointError("The checkpoint's 'model' must be a dict of tensors.")
    with torch.device("meta"):
        expected = build_model(spec).state_dict()
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + \
                ([f"{len(extra):,} tensor(s) the spec does not have"] if extra else [])
        raise CheckpointError("The weights do not fit the checkpoint's own spec (another "
                              f"architecture?): {'; '.join(parts)[:200]}.")
    for name, want in expected.items():
        got = weights[name]
        if not isinstance(got, torch.Tensor) or got.layout != torch.strided:
            raise CheckpointError(f"The checkpoint's weight {name} is not a plain tensor.")
        if got.shape != want.shape or got.dtype.is_floating_point != want.dtype.is_floating_point:
            raise CheckpointError(
                "The weights do not fit the checkpoint's own spec (another architecture?): "
                f"{name} is {tuple(got.shape)} {got.dtype}, the spec needs {tuple(want.shape)}.")
