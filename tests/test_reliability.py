"""Bad input, tried: each case gets a clear message, the app keeps serving, and nothing recorded
before (runs, metrics, checkpoints) is lost or corrupted. docs/RELIABILITY.md lists every case
with its test, here or in the other test files.
"""
import base64
import errno
import hashlib
import io
import random
import re
import shutil
import sqlite3
import tomllib
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from pages.build_views import VIEW_KEY
from nin_explorer.learn import shapes
from nin_explorer.learn.data import DataError, load_dataset
from nin_explorer.net.export import from_query
from nin_explorer.net.presets import TINY
from nin_explorer.net.spec import BlockSpec, NetSpec, SpecError
from nin_explorer.runs.store import RunStore
from nin_explorer.learn.config import TrainConfig
from nin_explorer.runs.worker import execute_run

HOSTILE_RUN_IDS = ["../../etc", "99999", "abc", "²", "9" * 5000, "1 OR 1=1", "-1", ""]


# --- helpers: what "nothing earlier was lost" means ---

def snapshot(home: Path) -> dict:
    """Every run row, every metric row and the bytes' hash of every file under checkpoints/."""
    con = sqlite3.connect(home / "runs.sqlite")
    try:
        runs = [tuple(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
        metrics = [tuple(r) for r in con.execute("SELECT * FROM metrics ORDER BY id")]
    finally:
        con.close()
    files = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((home / "checkpoints").rglob("*.pt"))}
    return {"runs": runs, "metrics": metrics, "files": files}


def assert_intact(home: Path, before: dict) -> None:
    """The database passes integrity_check and everything in `before` is still there, unchanged."""
    con = sqlite3.connect(home / "runs.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()
    after = snapshot(home)
    ids = {r[0] for r in before["runs"]}
    assert [r for r in after["runs"] if r[0] in ids] == before["runs"]
    assert after["metrics"][:len(before["metrics"])] == before["metrics"]
    assert {k: v for k, v in after["files"].items() if k in before["files"]} == before["files"]


@pytest.fixture
def earlier(tmp_path, trained_home, shapes_root, monkeypatch):
    """A private copy of the session's trained store (one completed run with a checkpoint)."""
    home = tmp_path / "earlier"
    # the checkpoint files as they are; the database through SQLite's backup, because job
    # managers left by earlier page tests may be reading it (its -wal file comes and goes)
    shutil.copytree(trained_home / "checkpoints", home / "checkpoints",
                    ignore=shutil.ignore_patterns("*.log", "*.tmp*"))
    source = sqlite3.connect(trained_home / "runs.sqlite")
    copy = sqlite3.connect(home / "runs.sqlite")
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(home))
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    return home, snapshot(home)


def app_page(path: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(path)
    if query:
        at.query_params.update(query)
    return at.run()


def config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 2,
                                  "batch_size": 64, "max_train_examples": 256,
                                  "max_test_examples": 256, "eval_every": 2, **changes})


def encoded(text: str) -> str:
    return base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode()


# --- safe defaults ---

def test_config_toml_has_safe_defaults():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server, client = cfg["server"], cfg["client"]
    assert server["address"] == "127.0.0.1"                  # local only
    assert server["enableXsrfProtection"] is True
    assert server["enableCORS"] is True
    assert 0 < server["maxUploadSize"] <= 16                 # MB
    assert set(server["allowedHosts"]) <= {"localhost", "127.0.0.1", "::1"}  # DNS rebinding
    assert server.get("enableStaticServing", False) is False
    assert server.get("enableAgentApi", False) is False
    assert cfg["browser"]["gatherUsageStats"] is False
    assert client["toolbarMode"] == "viewer"                 # no "Clear caches" menu
    assert client["showErrorDetails"] in ("type", "none")    # no tracebacks for visitors


def python_sources() -> list[Path]:
    files = [ROOT / "app.py"]
    for folder in ("nin_explorer", "pages", "bench", "tools"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def call_arguments(text: str, start: int) -> str:
    """The text of a call's arguments from just after its "(" to its matching ")"."""
    depth = 1
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end]
    raise AssertionError("unbalanced call")


def test_nothing_is_unpickled_untrusted_and_nothing_runs_text_as_code():
    loads = 0
    for path in python_sources():
        text = path.read_text()
        for call in re.finditer(r"torch\.load\(", text):
            args = call_arguments(text, call.end())
            assert "weights_only=True" in args, f"{path.name}: torch.load without weights_only=True"
            loads += 1
        for banned in (r"pickle\.loads?\(", r"Unpickler", r"(?<![\w.])eval\(", r"(?<![\w.])exec\(",
                       r"yaml\.load\(", r"marshal\.loads?\(", r"shell=True"):
            assert not re.search(banned, text), f"{path.name} uses {banned}"
    assert loads >= 3   # checkpoints (store, maps), the analysis cache, the shapes cache


# --- hostile query strings and JSON ---

@pytest.mark.parametrize("path", ["pages/train.py", "pages/maps.py"])
def test_hostile_run_ids_in_the_link_fall_back_to_a_run(earlier, path):
    home, before = earlier
    for value in HOSTILE_RUN_IDS:
        at = app_page(path, {"run": value})
        assert not at.exception, (value[:20], at.exception)
        assert at.query_params["run"] in (["1"], "1")          # rewritten to the store's run
    assert_intact(home, before)


def test_deeply_nested_json_is_refused_not_a_crash():
    deep = "[" * 100_000
    with pytest.raises(SpecError, match="damaged"):
        from_query({"spec": encoded(deep)})
    with pytest.raises(SpecError, match="not valid JSON"):
        NetSpec.from_json(deep)


def test_cli_refuses_deeply_nested_json_in_one_line(tmp_path, capsys):
    from nin_explorer.cli import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    for args in (["summary", "--config", str(deep)],
                 ["train", "--train-config", str(deep), "--home", str(tmp_path / "home")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "not valid JSON" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "home" / "runs.sqlite").exists()


def test_build_page_survives_nested_and_absurd_links_and_uploads():
    at = app_page("pages/build.py", {"spec": encoded("[" * 100_000)})
    assert not at.exception and "damaged" in at.warning[0].value
    at.session_state[VIEW_KEY] = "Export"   # the view with the uploader (only it is drawn)
    at.run()
    at.file_uploader(key="up_json").upload("deep.json", b"[" * 150_000, "application/json").run()
    assert not at.exception and any("not a usable spec" in e.value for e in at.error)

    # valid specs beyond the sliders' ranges: refused with a message, not a widget exception
    wide = TINY.replace_block(0, out_channels=8192).to_json()
    at.file_uploader(key="up_json").upload("wide.json", wide.encode(), "application/json").run()
    assert not at.exception
    assert any("Block 1's out channels is 8192" in e.value for e in at.error)
    assert at.metric[0].value == "1,992,166"                     # nothing changed
    at = app_page("pages/build.py", {"spec": encoded(TINY.replace(input_size=1024).to_json())})
    assert not at.exception
    assert "input size is 1024" in at.warning[0].value and "d2l preset" in at.warning[0].value

    # absurd within the sliders: refused before anything is allocated
    huge = NetSpec(input_size=512, num_classes=10, head="fc", fc_hidden=(16384,) * 4,
                   blocks=(BlockSpec(1024, kernel=1, n_extra_1x1=0, pool="none"),))
    at = app_page("pages/build.py", {"spec": encoded(huge.to_json())})
    assert not at.exception
    assert "more than the limit" in at.error[0].value


# --- uploads and user folders ---

def png_bytes(size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def test_folder_with_a_bomb_or_truncated_image_is_refused(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "set" / cls / f"{i}.png").write_bytes(png_bytes())
    bomb = tmp_path / "set" / "b" / "bomb.png"
    bomb.write_bytes(png_bytes((6_000, 6_000), "1"))             # 36 M pixels in 5 kB
    with pytest.raises(DataError, match="Cannot read bomb.png: That image is 6000x6000 pixels, too large"):
        load_dataset("folder:set", root=tmp_path)
    bomb.write_bytes(png_bytes((20_000, 20_000), "1"))           # past Pillow's own limit
    with pytest.raises(DataError, match="Cannot read bomb.png: That image declares too many pixels"):
        load_dataset("folder:set", root=tmp_path)
    bomb.unlink()
    noise = io.BytesIO()
    Image.frombytes("RGB", (64, 64), random.Random(0).randbytes(64 * 64 * 3)).save(noise, "PNG")
    (tmp_path / "set" / "b" / "cut.png").write_bytes(noise.getvalue()[:400])  # cut mid-pixels
    with pytest.raises(DataError, match="Cannot read cut.png"):
        load_dataset("folder:set", root=tmp_path)


# --- checkpoints on disk ---

class Evil:
    """Unpickling this would run code (print, standing in for os.system)."""

    def __reduce__(self):
        return (print, ("this ran while loading a checkpoint",))


@pytest.mark.parametrize("damage", ["truncated", "other architecture", "pickled code"])
def test_damaged_checkpoint_of_a_run_is_refused_on_the_maps_page(earlier, damage):
    home, before = earlier
    path = home / "checkpoints" / "1" / "checkpoint.pt"
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 3])
        message = "not a complete PyTorch checkpoint"
    elif damage == "other architecture":
        state = torch.load(io.BytesIO(good), weights_only=True)
        state["spec"] = TINY.replace_block(0, out_channels=8).to_dict()
        torch.save(state, path)
        message = "do not fit"
    else:
        torch.save({"model": {}, "spec": {}, "evil": Evil()}, path)
        message = "refused unread"
    at = app_page("pages/maps.py")
    assert not at.exception
    assert message in at.error[0].value
    assert not app_page("pages/train.py").exception              # the rest still serves
    path.write_bytes(good)
    assert_intact(home, before)


# --- data sets that cannot be had ---

def test_data_set_missing_offline_fails_the_run_with_a_data_error(earlier, monkeypatch):
    import torchvision.datasets as tvd

    home, before = earlier
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])  # refuses at once
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(home / "empty-data"))
    store = RunStore(home)
    run_id = store.create_run(TINY.to_dict(), config(dataset="fashion-mnist").to_dict(),
                              status="running")
    with pytest.raises(DataError):
        execute_run(store, run_id)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("Downloading Fashion-MNIST failed (no network?)")
    assert "'shapes'" in run["error"]
    assert_intact(home, before)


def test_maps_page_without_the_test_set_offers_an_upload(earlier, monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    home, before = earlier
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(tmp_path / "empty-data"))
    state = torch.load(home / "checkpoints" / "1" / "checkpoint.pt", weights_only=True)
    state["config"]["dataset"] = "fashion-mnist"                 # a checkpoint from elsewhere
    buf = io.BytesIO()
    torch.save(state, buf)
    at = app_page("pages/maps.py")
    at.radio(key="maps_source").set_value("Upload a checkpoint").run()
    upload = at.file_uploader(key="maps_ckpt")
    upload.upload("fm.pt", buf.getvalue(), "application/octet-stream").run()
    assert not at.exception
    # an upload never starts a download (finding 5): it says so and offers its own images
    assert "fashion-mnist is not downloaded on this server" in at.warning[0].value
    assert "own images can still be used" in at.warning[0].value
    assert at.radio(key="maps_mode").options == ["Upload an image"]
    assert_intact(home, before)


def test_unwritable_data_directory_gives_a_data_error(earlier, tmp_path, monkeypatch):
    home, before = earlier
    blocker = tmp_path / "a-file"
    blocker.write_text("the data directory cannot be created under a file")
    unwritable = blocker / "data"          # fails for root too, unlike chmod
    monkeypatch.setattr(shapes, "make_shapes", small_shapes)   # no need for 70,000 here
    with pytest.raises(DataError, match="Cannot write to the data directory .*NIN_EXPLORER_DATA"):
        load_dataset("shapes", root=unwritable)
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(unwritable))
    store = RunStore(home)
    run_id = store.create_run(TINY.to_dict(), config().to_dict(), status="running")
    with pytest.raises(DataError):
        execute_run(store, run_id)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "Cannot write to the data directory" in run["error"]
    assert_intact(home, before)


def test_unusable_run_store_folder_is_said_on_every_page(tmp_path, monkeypatch):
    from pages.common import PAGES

    blocker = tmp_path / "a-file"
    blocker.write_text("the run store cannot be created under a file")
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(blocker / "home"))
    for path, *_ in PAGES:
        at = app_page(path)
        assert not at.exception, (path, at.exception)
        if path == "pages/build.py":                        # needs no store
            assert at.metric[0].value == "1,992,166"
        elif path == "pages/data.py":                       # image folders: no store either
            assert not at.error and at.title[0].value == "Your data"
        else:
            assert "Cannot keep runs in" in at.error[0].value, path
            assert "NIN_EXPLORER_HOME" in at.error[0].value


def small_shapes(n, seed, hard=False):
    from nin_explorer.learn.shapes import _DIFFICULTY, _draw_shapes
    return _draw_shapes(min(n, 200), seed, _DIFFICULTY["shapes"])


# --- a full disk while a checkpoint is written ---

def test_full_disk_during_a_checkpoint_keeps_the_previous_one(earlier, monkeypatch):
    home, before = earlier
    store = RunStore(home)
    run_id = store.create_run(TINY.to_dict(), config(epochs=3).to_dict(), status="running")
    real_save, saves = torch.save, []

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        if not (isinstance(obj, dict) and "model" in obj):        # the epoch maps' own files
            return real_save(obj, f, *args, **kwargs)
        saves.append(obj.get("epoch"))
        if len(saves) == 2:                                       # the second epoch's checkpoint
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    with pytest.raises(OSError):
        execute_run(store, run_id)
    monkeypatch.setattr(torch, "save", real_save)

    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "disk is full" in run["error"] and "previous checkpoint" in run["error"]
    assert [m["epoch"] for m in store.metrics(run_id, "epoch")] == [1, 2]   # metrics kept
    folder = store.run_dir(run_id)
    assert [p.name for p in folder.iterdir() if p.name.endswith(".pt") or ".tmp" in p.name] \
        == ["checkpoint.pt"]                                      # no half-written temp file
    from nin_explorer.look.maps import open_checkpoint
    ckpt = open_checkpoint(folder / "checkpoint.pt")             # the epoch-1 checkpoint, whole
    assert ckpt.epoch == 1
    assert not app_page("pages/train.py", {"run": str(run_id)}).exception
    assert_intact(home, before)


# --- memory fit against this machine ---

def test_train_page_refuses_a_run_larger_than_the_free_memory(monkeypatch):
    from nin_explorer.runs import plan
    monkeypatch.setattr(plan, "available_memory_bytes", lambda device="cpu": 300 * 2**20)
    at = app_page("pages/train.py")
    assert not at.exception
    assert any("would not fit" in e.value and "300 MiB free" in e.value for e in at.error)
    assert at.button(key="t.launch").disabled
    monkeypatch.setattr(plan, "available_memory_bytes", lambda device="cpu": 64 * 2**30)
    at.run()
    assert not at.error and not at.button(key="t.launch").disabled
