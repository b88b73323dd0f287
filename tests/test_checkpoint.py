"""Checkpoint files: saved atomically, read whole or refused with a sentence, and hostile
ones refused before anything expensive.

Every hostile file is generated here; without the check it names, each test would hang,
allocate gigabytes or build a real module from the hostile file.
"""
import dataclasses
import io
import os
import subprocess
import sys
import threading
import time
import zipfile

import pytest
import torch

from conftest import ROOT
from nin_explorer.look import maps
from nin_explorer.net.build import build_model
from nin_explorer.runs.checkpoint import (MAX_NAME_CHARS, MAX_PICKLE_NODES, MAX_UPLOAD_PARAMS,
                                          check_pickle, check_weights, load_checkpoint,
                                          save_checkpoint)
from nin_explorer.learn.data import DataError
from nin_explorer.look.maps import (ANALYSIS_MEMORY_BYTES, CheckpointError, analyse_test_set,
                                    analysis_batch_size, load_upload, open_checkpoint,
                                    upload_dataset)
from nin_explorer.net.presets import D2L, PRESETS, TINY
from nin_explorer.net.spec import BlockSpec, NetSpec
from nin_explorer.runs.store import RunStore, StoreError
from nin_explorer.net.summary import summarize


def checkpoint_bytes(net=TINY, **fields) -> bytes:
    """What the trainer writes, with `fields` replaced (None removes one)."""
    torch.manual_seed(0)
    state = {"model": build_model(net).state_dict(), "spec": net.to_dict(),
             "config": {"dataset": "shapes"}, "epoch": 1,
             "classes": [f"c{i}" for i in range(net.num_classes)], **fields}
    buf = io.BytesIO()
    torch.save({k: v for k, v in state.items() if v is not None}, buf)
    return buf.getvalue()


def repack(data: bytes, compression=zipfile.ZIP_STORED, table: bytes | None = None) -> bytes:
    """The same archive re-zipped with `compression`, its data.pkl replaced by `table`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            body = table if table is not None and info.filename.endswith("/data.pkl") else src.read(info)
            dst.writestr(info.filename, body)
    return out.getvalue()


def nested_shared(depth: int):
    """(t, t) of (t, t) of ... `depth` levels: 2**depth leaves from `depth` tuples."""
    t = ("leaf",)
    for _ in range(depth):
        t = (t, t)
    return t


def within(seconds: float, fn):
    """fn()'s exception (or None) if it finishes in time; fails the test (not hangs) otherwise."""
    box = {}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return box.get("error"), time.perf_counter() - start


def no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was reached")
    monkeypatch.setattr(torch, "load", refuse)


# --- metadata against a schema, never formatted or hashed ---

def test_nested_shared_classes_refused_within_a_second(monkeypatch):
    data = checkpoint_bytes(classes=nested_shared(25))
    assert len(data) < 200_000  # a small file that expands to 33 million objects
    no_torch_load(monkeypatch)
    error, _ = within(1.0, lambda: open_checkpoint(data))
    assert isinstance(error, CheckpointError), error
    assert "nested too deep or repeating shared parts" in str(error)


def hashed_key_table(depth: int) -> bytes:
    """A pickle of {"model": {}, "spec": {}, "x": {nested: 1}}, written by hand: building that
    dict here would hash the key, which is the slow part (2**depth steps)."""
    ops = [b"\x80\x02", b"}", b"(", b"X\x05\x00\x00\x00model}", b"X\x04\x00\x00\x00spec}",
           b"X\x01\x00\x00\x00x}", b"X\x04\x00\x00\x00leaf\x85q\x00"]
    for level in range(1, depth + 1):
        ops.append(b"h" + bytes([level - 1]) + b"\x86q" + bytes([level]))  # (t, t): t, get t
    ops += [b"K\x01s", b"u", b"."]
    return b"".join(ops)


def test_hashed_shared_key_refused_before_unpickling():
    # torch.load itself would hash the key: about 4 s at depth 28, doubling per level.
    table = hashed_key_table(28)
    data = repack(checkpoint_bytes(), table=table)
    error, _ = within(1.0, lambda: open_checkpoint(data))
    assert isinstance(error, CheckpointError), error
    assert "refused unread" in str(error)
    small = repack(checkpoint_bytes(), table=hashed_key_table(3))   # the same shape, small
    with pytest.raises(CheckpointError, match="spec is not valid"):   # past torch.load
        open_checkpoint(small)


def test_deep_nesting_and_shared_mutation_refused():
    deep = [0]
    for _ in range(100):
        deep = [deep]
    with pytest.raises(CheckpointError, match="nested too deep"):
        open_checkpoint(checkpoint_bytes(extra=deep))
    # a list shared first and filled afterwards would hide how large it grows
    check_pickle(b"\x80\x02]q\x00h\x00h\x00\x86.")  # ([], []) sharing a finished list is fine
    filled_after = b"\x80\x02]q\x00h\x00K\x01a."   # [] shared, then appended to via the share
    with pytest.raises(CheckpointError, match="after sharing"):
        check_pickle(filled_after)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_preset_passes_the_table_check(name, batch_norm):
    """No false alarm: each preset's state dict (tensors on the meta device: the same table)."""
    spec = PRESETS[name]
    spec = spec.replace(blocks=tuple(dataclasses.replace(b, batch_norm=batch_norm) for b in spec.blocks))
    with torch.device("meta"):
        weights = build_model(spec).state_dict()
    buf = io.BytesIO()
    torch.save({"model": weights, "spec": spec.to_dict(), "config": {}, "epoch": 3,
                "classes": [str(i) for i in range(spec.num_classes)], "test_acc": 0.9}, buf)
    with zipfile.ZipFile(buf) as archive:
        check_pickle(archive.read("archive/data.pkl"))
    check_weights(spec, weights)


def test_a_table_of_many_objects_is_refused():
    row = [0] * 1000
    wide = [row] * (MAX_PICKLE_NODES // 1000 + 1)    # one row, shared: a 4 kB table
    with pytest.raises(CheckpointError, match="refused unread"):
        open_checkpoint(checkpoint_bytes(extra=wide))


@pytest.mark.parametrize("fields, message", [
    ({"classes": ["a", "b"]}, "names 2 classes but its network has 10"),
    ({"classes": [("c",)] * 10}, "Class name 1 must be text, not tuple"),
    ({"classes": ["x" * (MAX_NAME_CHARS + 1)] + ["c"] * 9}, f"1 to {MAX_NAME_CHARS} characters"),
    ({"classes": ["![x](http://example.com/t.png)"] + ["c"] * 9}, "control characters or any of"),
    ({"classes": ["a\x00b"] + ["c"] * 9}, "control characters"),
    ({"classes": {"c0": 1}}, "must be a list of names, not dict"),
    ({"epoch": "1"}, "epoch must be a whole number"),
    ({"epoch": True}, "epoch must be a whole number"),
    ({"epoch": 10**9}, "epoch must be a whole number from 0 to 1,000"),
    ({"config": {"epochs": -1}}, "training config is not valid"),
    ({"config": {"nonsense": 1}}, "training config is not valid: Unknown training setting"),
    ({"config": {"dataset": "x" * 5000}}, "training config is not valid: Choose a data set"),
    ({"config": [1, 2]}, "training config is not valid"),
    ({"spec": {**TINY.to_dict(), "name": "x" * 5000}}, "network's name must be 1 to"),
])
def test_metadata_schema(fields, message):
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace("[", r"\[")):
        open_checkpoint(checkpoint_bytes(**fields))


def test_good_metadata_is_kept_and_unknown_keys_are_ignored():
    ckpt = open_checkpoint(checkpoint_bytes(test_acc=0.5, anything_else={"a": [1, 2]}))
    assert ckpt.classes == [f"c{i}" for i in range(10)] and ckpt.epoch == 1
    assert ckpt.config["dataset"] == "shapes" and ckpt.config["epochs"] == 10  # normalised
    bare = open_checkpoint(checkpoint_bytes(classes=None, config=None, epoch=None))
    assert bare.classes == [str(i) for i in range(10)] and bare.config == {} and bare.epoch == 0


# --- a zip bomb ---

def test_compressed_entries_refused_before_loading(monkeypatch):
    padding = torch.zeros(8 * 2**20)                                 # 32 MB of zeros
    bomb = repack(checkpoint_bytes(padding=padding), zipfile.ZIP_DEFLATED)
    assert len(bomb) < 2**20                                         # deflates to about 0.1%
    no_torch_load(monkeypatch)                                       # nothing is unpacked
    with pytest.raises(CheckpointError, match="compressed entries; torch.save stores them"):
        open_checkpoint(bomb)
    with pytest.raises(CheckpointError, match="compressed entries"):
        load_upload(bomb)


def test_an_oversized_object_table_is_refused(monkeypatch):
    table = b"\x80\x02" + b"N" * (2**20 + 1) + b"."
    no_torch_load(monkeypatch)
    with pytest.raises(CheckpointError, match="object table is 1,048,580 bytes"):
        open_checkpoint(repack(checkpoint_bytes(), table=table))


def test_stored_checkpoints_still_load(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(torch.load(io.BytesIO(checkpoint_bytes()), weights_only=True), path)
    assert open_checkpoint(path).spec == TINY


# --- shapes checked arithmetically, a parameter cap for uploads ---

HUGE = NetSpec(name="huge", in_channels=1, input_size=28, num_classes=10, head="gap-linear",
               blocks=(BlockSpec(out_channels=8192, kernel=3, padding=1),
                       BlockSpec(out_channels=8192, kernel=3, padding=1)))


def huge_checkpoint() -> bytes:
    """1.8 kB naming two 8,192-channel blocks (740 M parameters), with TINY's small weights."""
    state = torch.load(io.BytesIO(checkpoint_bytes()), weights_only=True)
    buf = io.BytesIO()
    torch.save({**state, "model": {"0.weight": torch.zeros(1)}, "spec": HUGE.to_dict()}, buf)
    return buf.getvalue()


@pytest.fixture
def no_real_build(monkeypatch):
    def refuse(spec):
        raise AssertionError("a real module was built")
    monkeypatch.setattr(maps, "build_model", refuse)


def test_huge_upload_refused_by_the_parameter_cap_without_building(no_real_build):
    data = huge_checkpoint()
    assert len(data) < 4000
    error, seconds = within(1.0, lambda: load_upload(data))
    assert isinstance(error, CheckpointError), error
    assert f"uploads of up to {MAX_UPLOAD_PARAMS:,} are opened" in str(error)
    assert summarize(HUGE, 1).params > MAX_UPLOAD_PARAMS
    assert seconds < 1.0


def test_weights_checked_against_the_spec_before_building(no_real_build):
    error, seconds = within(1.0, lambda: open_checkpoint(huge_checkpoint()))
    assert isinstance(error, CheckpointError), error
    assert "do not fit the checkpoint's own spec" in str(error) and seconds < 1.0
    wrong_shape = torch.load(io.BytesIO(checkpoint_bytes()), weights_only=True)["model"]
    wrong_shape["block1.conv0.weight"] = torch.zeros(3, 1, 5, 5)
    with pytest.raises(CheckpointError, match=r"conv0.weight is \(3, 1, 5, 5\).*needs \(16, 1, 5, 5\)"):
        open_checkpoint(checkpoint_bytes(model=wrong_shape))


# --- the test-set analysis batch from the memory estimate ---

def test_analysis_batch_fits_the_memory_budget():
    small, big = analysis_batch_size(TINY), analysis_batch_size(D2L)
    assert 1 <= big < small <= 500
    for spec in (TINY, D2L, TINY.replace(input_size=224)):
        m = summarize(spec, batch_size=1).memory
        per_image = m.saved_activations_bytes + m.workspace_bytes + m.infer_activations_bytes
        assert analysis_batch_size(spec) * per_image <= ANALYSIS_MEMORY_BYTES


def test_analysis_uses_the_smaller_batch(monkeypatch):
    spec = TINY.replace(input_size=224)
    ckpt = open_checkpoint(checkpoint_bytes(spec))
    seen = []
    real = maps.class_maps
    monkeypatch.setattr(maps, "class_maps", lambda c, x: seen.append(len(x)) or real(c, x))
    batch = analysis_batch_size(spec)
    x = torch.randint(0, 256, (batch + 3, 1, 28, 28), dtype=torch.uint8)
    analyse_test_set(ckpt, x, torch.arange(len(x)) % 10)
    assert seen == [batch, 3] and batch < 500


# --- an upload's data set only if it is in the catalogue and already here ---

@pytest.mark.parametrize("name, message", [
    ("folder:a\x00b", "trained on a folder of images"),
    ("folder:../../etc", "trained on a folder of images"),
    ("folder:" + "x" * 5000, "trained on a folder of images"),
    ("x" * 5000, "names a data set this server does not know"),
    ("shapes\x00", "names a data set this server does not know"),
    (["shapes"], "names a data set this server does not know"),
    ("mnist", "mnist is not downloaded on this server"),
])
def test_upload_dataset_refusals(name, message, monkeypatch):
    import nin_explorer.learn.downloads as downloads
    monkeypatch.setattr(downloads, "load_torchvision", lambda *a: pytest.fail("download started"))
    with pytest.raises(DataError, match=message) as info:
        upload_dataset(name)
    assert "The upload's own images can still be used." in str(info.value)
    assert len(str(info.value)) < 200


def test_upload_dataset_of_a_local_catalogue_set():
    assert upload_dataset("shapes") == "shapes"        # offline by design
    ckpt = load_upload(checkpoint_bytes(config={"dataset": "folder:a\x00b"}))
    with pytest.raises(DataError, match="folder"):
        upload_dataset(ckpt.config["dataset"])


# --- saving and reading a run's checkpoint file ---

@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def test_checkpoints_are_atomic_and_readable(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    state = {"model": {"w": torch.ones(2, 3)}, "spec": {"name": "tiny"}, "epoch": 1,
             "classes": ["a", "b"]}
    save_checkpoint(state, path)
    assert list(path.parent.iterdir()) == [path]               # no temporary file left
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 1

    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match="not a complete PyTorch checkpoint"):
        load_checkpoint(torn)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(StoreError, match="not a complete PyTorch checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(StoreError, match="missing"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(StoreError, match="not a NiN Explorer checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# --- a save killed midway leaves no tmp file behind for good ---

SAVE_THEN_HANG = """
import os, sys, time, torch
from nin_explorer.runs import checkpoint
def hang(fd):
    print("saving", flush=True)
    time.sleep(60)
os.fsync = hang                      # the save stops after writing, before the rename
checkpoint.save_checkpoint({"model": {"w": torch.zeros(1000)}, "spec": {}}, sys.argv[1])
"""


def killed_save(path) -> int:
    """Run save_checkpoint(path) in a process and SIGKILL it midway; returns its pid."""
    proc = subprocess.Popen([sys.executable, "-c", SAVE_THEN_HANG, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    proc.kill()
    proc.wait(10)
    return proc.pid


def test_tmp_files_of_a_killed_save_are_removed_by_the_next_save_or_open(store):
    path = store.checkpoint_path(7)
    pid = killed_save(path)
    [leftover] = path.parent.glob(f"checkpoint.pt.tmp-*-{pid}")   # <thread>-<pid>
    assert not path.exists()
    RunStore(store.home)                                       # the store opened again
    assert not leftover.exists()

    leftover.write_bytes(b"half a checkpoint")                # as if killed again
    save_checkpoint({"model": {}, "spec": {}}, path)           # the run's next save
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_a_live_save_keeps_its_tmp_file_unless_it_went_silent(store):
    folder = store.run_dir(3)
    folder.mkdir(parents=True)
    live = folder / f"checkpoint.pt.tmp-{os.getpid()}"         # this process: alive
    live.write_bytes(b"half a checkpoint")
    RunStore(store.home)
    assert live.exists()
    old = time.time() - 3600
    os.utime(live, (old, old))                                 # no write for an hour
    RunStore(store.home)
    assert not live.exists()
