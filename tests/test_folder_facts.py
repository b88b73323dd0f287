"""Folders under the data root: facts, warnings, bad files (named, skipped or refused), the read cache."""
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from nin_explorer.learn import folder_read
from nin_explorer.learn.data import DataError, dataset_info, load_dataset
from nin_explorer.learn.folder_facts import folder_facts, list_folders, sample_images


def write_images(directory: Path, count: int, mode: str = "RGB", size=(40, 30)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        colour = (i * 20 % 256, 100, 200) if mode == "RGB" else i * 20 % 256
        Image.new(mode, size, color=colour).save(directory / f"{i:03d}.png")


def truncated_png(path: Path) -> None:
    Image.new("RGB", (64, 64), (9, 9, 9)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def mixed(tmp_path):
    """pets/: 3 cats (one of them grayscale 20x20), 20 dogs, one non-image and one truncated PNG."""
    write_images(tmp_path / "pets" / "cat", 2)
    write_images(tmp_path / "pets" / "dog", 20)
    Image.new("L", (20, 20), 7).save(tmp_path / "pets" / "cat" / "gray.png")
    (tmp_path / "pets" / "cat" / "notes.png").write_bytes(b"%!PS-Adobe-3.0 EPSF")  # not a PNG inside
    truncated_png(tmp_path / "pets" / "dog" / "zz-cut.png")
    return tmp_path


def test_facts_count_classes_sizes_modes_and_warn(mixed):
    facts = folder_facts("folder:pets", mixed)
    assert facts.info.classes == ("cat", "dog") and facts.info.channels == 3
    assert facts.counts == {"cat": (3, 0), "dog": (17, 4)}  # the cut PNG's header still reads
    assert facts.sizes == {(40, 30): 22, (20, 20): 1, (64, 64): 1}
    assert facts.modes == {"RGB": 23, "L": 1}
    assert list(facts.bad_files) == [os.path.join("cat", "notes.png")]
    text = " ".join(facts.warnings)
    for words in ("Class imbalance: dog has 17", "Tiny classes", "cat", "No test images for cat",
                  "Mixed sizes", "Mixed modes: RGB (23), L (1)", "1 bad file cannot be used: skip or fix it."):
        assert words in text


def test_a_full_check_names_truncated_files_too(mixed):
    facts = folder_facts("folder:pets", mixed, decode=True)
    assert set(facts.bad_files) == {os.path.join("cat", "notes.png"), os.path.join("dog", "zz-cut.png")}
    assert "truncated" in facts.bad_files[os.path.join("dog", "zz-cut.png")]
    assert "not an image" in facts.bad_files[os.path.join("cat", "notes.png")]


def test_bad_files_refuse_names_them_or_skip_counts_them(mixed):
    with pytest.raises(DataError, match=r"Cannot read notes.png: .*not an image.* \(in cat/\)\. Remove or replace it"):
        load_dataset("folder:pets", root=mixed)
    os.remove(mixed / "pets" / "cat" / "notes.png")
    with pytest.raises(DataError, match=r"Cannot read zz-cut.png: .*truncated.*\(in dog/\)"):
        load_dataset("folder:pets", root=mixed)
    assert len(load_dataset("folder:pets", root=mixed, train=False).labels) == 4  # no bad file there
    (mixed / "pets" / "cat" / "notes.png").write_bytes(b"GIF89a broken")
    messages = []
    train = load_dataset("folder:pets", root=mixed, bad_files="skip", progress=lambda f, m: messages.append(m))
    assert train.labels.tolist() == [0] * 3 + [1] * 16
    assert messages[-1] == "Read 19 images; skipped 2 bad files"
    with pytest.raises(DataError, match="bad_files must be one of refuse, skip"):
        load_dataset("folder:pets", root=mixed, bad_files="ignore")


def test_many_bad_files_are_named_then_counted(tmp_path):
    write_images(tmp_path / "set" / "a", 3)
    write_images(tmp_path / "set" / "b", 3)
    for i in range(8):
        (tmp_path / "set" / "b" / f"bad{i}.jpg").write_bytes(b"\xff\xd8 no jpeg")
    with pytest.raises(DataError, match=r"Cannot read bad0.jpg: .*; 7 more: b/bad2.jpg, b/bad3.jpg, b/bad4.jpg, "
                                         r"b/bad5.jpg, b/bad7.jpg and 2 more: That file is not an image"):
        load_dataset("folder:set", root=tmp_path)


def test_list_folders_shows_usable_and_unusable_folders_only_under_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_images(root / "pets" / "train" / "cat", 2)
    write_images(root / "pets" / "train" / "dog", 2)
    write_images(root / "pets" / "test" / "cat", 1)
    write_images(root / "one" / "only", 2)
    (root / "FashionMNIST" / "raw").mkdir(parents=True)  # a download, not an image folder
    write_images(outside / "a", 2)
    write_images(outside / "b", 2)
    (root / "escape").symlink_to(outside)
    facts = {f.name: f for f in list_folders(root)}
    assert list(facts) == ["folder:one", "folder:pets"]
    assert facts["folder:pets"].layout == "train/ and test/"
    assert facts["folder:pets"].counts == {"cat": (2, 1), "dog": (2, 0)}
    assert "one subfolder per class" in facts["folder:one"].error
    assert "not usable" in facts["folder:one"].summary and "4 + 1" in facts["folder:pets"].summary


def test_sample_images_per_class_at_the_training_size(mixed):
    rows = sample_images("folder:pets", mixed, per_class=2)
    assert [(name, len(images)) for name, images in rows] == [("cat", 2), ("dog", 2)]
    assert rows[0][1][0].shape == (3, 32, 32) and rows[0][1][0].dtype == torch.uint8


def test_second_read_comes_from_the_cache_and_a_change_is_read_again(tmp_path, monkeypatch):
    write_images(tmp_path / "set" / "a", 6)
    write_images(tmp_path / "set" / "b", 6)
    first = load_dataset("folder:set", root=tmp_path)
    calls = []
    real = folder_read.run_files
    monkeypatch.setattr("nin_explorer.learn.folders.run_files", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(folder_read, "run_files", lambda *a: calls.append(a) or real(*a))
    again = load_dataset("folder:set", root=tmp_path)
    assert calls == [] and torch.equal(first.images, again.images)
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "set" / "a" / "000.png")  # new content
    changed = load_dataset("folder:set", root=tmp_path)
    assert {task["kind"] for task, _ in calls} == {"probe", "decode"}
    assert changed.images[0, :, 0, 0].tolist() == [1, 2, 3]
    assert len(list((tmp_path / folder_read.CACHE_DIR).glob("*"))) == 2  # headers and the train split; older reads dropped
    assert dataset_info("folder:set", root=tmp_path).n_train == 10


def test_many_files_are_read_by_worker_processes_with_the_same_result(tmp_path, monkeypatch):
    write_images(tmp_path / "set" / "a", 12)
    write_images(tmp_path / "set" / "b", 12, mode="L")
    (tmp_path / "set" / "b" / "x.png").write_bytes(b"junk")
    serial = load_dataset("folder:set", root=tmp_path, bad_files="skip")
    monkeypatch.setattr(folder_read, "PARALLEL_FROM", 4)
    monkeypatch.setattr(folder_read, "CACHE_DIR", ".other-cache")
    popen = []
    real = folder_read.subprocess.Popen
    monkeypatch.setattr(folder_read.subprocess, "Popen",
                        lambda *a, **k: popen.append(a) or real(*a, **k))
    parallel = load_dataset("folder:set", root=tmp_path, bad_files="skip")
    assert len(popen) >= 2 and torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)


def test_the_read_bench_runs_and_prints_its_table():
    import subprocess
    import sys
    from conftest import ROOT
    done = subprocess.run([sys.executable, "bench/read_folder.py", "--n", "60"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| first (headers + decode, worker processes) | 60 |" in done.stdout
    assert "| second (content cache) | 60 |" in done.stdout
