"""`python -m nin_explorer data list|check|import`: facts, warnings, bad files; exit 2 with one line."""
import io
import json
import subprocess
import sys
import zipfile

from PIL import Image

from conftest import ROOT
from nin_explorer.cli import main


def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (20, 20), value).save(out, format="PNG")
    return out.getvalue()


def pets_zip(path, extra=None):
    with zipfile.ZipFile(path, "w") as z:
        for c, n in (("cat", 4), ("dog", 15)):
            for i in range(n):
                z.writestr(f"pets/{c}/{i}.png", png(i * 10))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def test_import_then_list_then_check(tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["data", "import", str(pets_zip(tmp_path / "p.zip")), "pets", "--root", str(root)]) == 0
    assert "Imported folder:pets; train on it with --dataset folder:pets" in capsys.readouterr().out
    noise = io.BytesIO()
    Image.effect_noise((64, 64), 60).save(noise, format="PNG")
    (root / "pets" / "dog" / "cut.png").write_bytes(noise.getvalue()[:2000])  # truncated, header intact
    assert main(["data", "list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pets: your images (every fifth image held out), 2 classes, 1x28x28 grayscale")
    assert main(["data", "check", "pets", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "  cat: 4 train, 0 test" in out and "  dog: 12 train, 3 test" in out
    assert "warning: Class imbalance: dog has 12" in out and "warning: No test images for cat" in out
    assert "bad file: dog/cut.png: That image is damaged or truncated" in out
    assert main(["data", "check", "folder:pets", "--root", str(root), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["counts"] == {"cat": [4, 0], "dog": [12, 3]} and list(facts["bad_files"]) == ["dog/cut.png"]
    assert facts["sizes"] == {"20x20": 19} and facts["modes"] == {"L": 19}


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    root = str(tmp_path / "data")
    cases = [
        (["data", "check", "nothing", "--root", root], "No folder 'nothing'"),
        (["data", "import", str(tmp_path / "none.zip"), "x", "--root", root], "Cannot read the zip"),
        (["data", "import", str(pets_zip(tmp_path / "p.zip")), "../up", "--root", root], "name must be"),
        (["data", "import", str(pets_zip(tmp_path / "e.zip", {"pets/../../x.png": png(1)})), "e", "--root", root],
         "leading out of its folder"),
    ]
    for argv, words in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert not (tmp_path / "data").exists() or list((tmp_path / "data").iterdir()) == []


def test_the_module_entry_point_lists_and_refuses(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nin_explorer", "data", "list", "--root", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "No image folders" in done.stdout
    done = subprocess.run([sys.executable, "-m", "nin_explorer", "data", "import"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
