"""A zip of an ImageFolder into the data root: both layouts, a wrapping folder, hostile zips refused
leaving nothing behind."""
import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from nin_explorer.learn import zip_import
from nin_explorer.learn.data import DataError, dataset_info, load_dataset
from nin_explorer.learn.zip_import import import_zip


def png(colour=(200, 10, 10), size=(24, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def classes(prefix="", n=5) -> dict[str, bytes]:
    return {f"{prefix}{c}/{i}.png": png((i * 40, 0, 0)) for c in ("cat", "dog") for i in range(n)}


def left_behind(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.parametrize("entries", [
    classes(),                                                  # cat/, dog/
    classes("pets/"),                                           # wrapped in one folder
    {**classes("train/"), **classes("test/", 2)},               # train/ and test/
    {**classes("pets/train/"), **classes("pets/test/", 2), "__MACOSX/._x": b"junk", "pets/.DS_Store": b""},
])
def test_both_layouts_with_or_without_a_wrapping_folder(tmp_path, entries):
    root = tmp_path / "data"
    messages = []
    name = import_zip(make_zip(tmp_path / "in.zip", entries), "my-pets", root,
                      progress=lambda f, m: messages.append((f, m)))
    assert name == "folder:my-pets" and left_behind(root) == ["my-pets"]
    info = dataset_info(name, root)
    assert info.classes == ("cat", "dog")
    assert (info.n_train, info.n_test) in ((8, 2), (10, 4))
    assert messages[-1] == (1.0, "Imported my-pets") and len(load_dataset(name, root).labels) == info.n_train


def hostile(tmp_path) -> dict[str, Path]:
    zips = {
        "a path leading out": make_zip(tmp_path / "dots.zip", {**classes(), "cat/../../evil.png": png()}),
        "an absolute path": make_zip(tmp_path / "abs.zip", {**classes(), "/tmp/evil.png": png()}),
        "not an image;": make_zip(tmp_path / "txt.zip", {**classes(), "cat/readme.txt": b"hello"}),
        "not an image in an accepted format": make_zip(tmp_path / "eps.zip",
                                                       {**classes(), "cat/x.png": b"%!PS-Adobe-3.0"}),
        "too large to decode": make_zip(tmp_path / "big.zip",
                                        {**classes(), "dog/huge.png": png(size=(5000, 4000))}),
        "one subfolder per class": make_zip(tmp_path / "one.zip", {"cat/1.png": png()}),
        "holds no images": make_zip(tmp_path / "empty.zip", {"notes/": b""}),
        "twice": make_zip(tmp_path / "dup.zip", {**classes(), "cat\\0.png": png()}),
    }
    link = zipfile.ZipInfo("cat/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as z:
        for n, d in classes().items():
            z.writestr(n, d)
        z.writestr(link, "/etc/passwd")
    zips["symbolic link"] = tmp_path / "link.zip"
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 not really")
    zips["not a zip"] = tmp_path / "not.zip"
    return zips


def test_hostile_zips_are_refused_and_leave_nothing(tmp_path):
    root = tmp_path / "data"
    for words, path in hostile(tmp_path).items():
        with pytest.raises(DataError, match=words):
            import_zip(path, "pets", root)
        assert left_behind(root) == [], words
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()


def test_caps_on_entries_and_unpacked_size_are_checked_before_unpacking(tmp_path, monkeypatch):
    root, path = tmp_path / "data", make_zip(tmp_path / "in.zip", classes())
    monkeypatch.setattr(zip_import, "MAX_ZIP_ENTRIES", 9)
    with pytest.raises(DataError, match="10 entries; at most 9"):
        import_zip(path, "pets", root)
    monkeypatch.setattr(zip_import, "MAX_ZIP_ENTRIES", 100)
    monkeypatch.setattr(zip_import, "MAX_UNPACKED_BYTES", 100)
    with pytest.raises(DataError, match="unpacks to"):
        import_zip(path, "pets", root)
    monkeypatch.setattr(zip_import, "MAX_ZIP_BYTES", 100)
    with pytest.raises(DataError, match="That zip is"):
        import_zip(io.BytesIO(path.read_bytes()), "pets", root)
    assert left_behind(root) == []


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x" * 65, "spaces here", "folder:x"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(DataError, match="A data set's name must be"):
        import_zip(make_zip(tmp_path / "in.zip", classes()), name, tmp_path / "data")


def test_an_existing_name_is_never_overwritten(tmp_path):
    root = tmp_path / "data"
    import_zip(make_zip(tmp_path / "in.zip", classes()), "pets", root)
    with pytest.raises(DataError, match="already has 'pets'"):
        import_zip(tmp_path / "in.zip", "pets", root)
    assert left_behind(root) == ["pets"]
