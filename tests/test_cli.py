import json
import subprocess
import sys
import time

from conftest import ROOT


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "nin_explorer", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_summary_table():
    out = run_cli("summary", "--preset", "d2l")
    assert out.returncode == 0, out.stderr
    assert "1,992,166" in out.stdout and "1,524,594,704" in out.stdout
    assert "block3.pool" in out.stdout and "384 x 5 x 5" in out.stdout


def test_summary_json(tmp_path):
    out = run_cli("summary", "--preset", "tiny", "--json", "--batch-size", "64")
    data = json.loads(out.stdout)
    assert data["totals"]["params"] == 27354
    assert data["layers"][0] == {"name": "block1.conv0", "type": "Conv2d",
                                 "output_shape": [16, 28, 28], "params": 416, "flops": 627200}
    assert set(data["totals"]) == {"params", "flops", "train_memory_bytes", "infer_memory_bytes"}


def test_summary_from_config_and_input_size(tmp_path):
    from nin_explorer.net.presets import D2L
    path = tmp_path / "v.json"
    path.write_text(D2L.to_json())
    out = run_cli("summary", "--config", str(path), "--input-size", "96", "--json")
    assert json.loads(out.stdout)["totals"]["params"] == 1_992_166


def test_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    cases = [("summary", "--preset", "d2l", "--input-size", "28"),
             ("summary", "--config", str(bad)),
             ("summary", "--config", str(tmp_path / "missing.json")),
             ("summary", "--preset", "nope"),
             ("summary", "--batch-size", "0"),
             ("summary", "--input-size", "abc")]
    for args in cases:
        out = run_cli(*args)
        assert out.returncode == 2, args
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_summary_of_every_neighbour_preset():
    expected = {"googlenet": 5_977_530, "vgg11-narrow": 2_018_346, "alexnet": 46_764_746}
    for preset, params in expected.items():
        data = json.loads(run_cli("summary", "--preset", preset, "--json").stdout)
        assert data["totals"]["params"] == params
    sub_rows = [l["name"] for l in json.loads(run_cli("summary", "--preset", "googlenet", "--json").stdout)["layers"]]
    assert "block4.p2.conv_b" in sub_rows and "block4.concat" in sub_rows


def test_config_not_utf8_exits_2_with_one_line(tmp_path):
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "réseau"}'.encode("latin-1"))
    for args in [("summary", "--config", str(latin1)), ("train", "--train-config", str(latin1))]:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.strip().splitlines() == [f"error: {latin1} is not UTF-8 text (byte 11 "
                                                   "is 0xe9); save it as UTF-8 JSON"]


def test_config_size_is_checked_before_the_file_is_read(tmp_path, capsys):
    import tracemalloc

    from nin_explorer.cli import main
    from nin_explorer.net.spec import MAX_SPEC_JSON_BYTES
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(64 * 2**20)                       # sparse: 64 MB of zeros, no disk used
    tracemalloc.start()
    try:
        code = main(["summary", "--config", str(big)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and f"over {MAX_SPEC_JSON_BYTES:,} bytes" in capsys.readouterr().err
    assert peak < 4 * 2**20                          # reading it would hold 64 MB or more


def test_summary_imports_no_torch_and_answers_within_a_second():
    """The summary is arithmetic: neither the CLI nor the modules behind it load torch."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "nin_explorer", "summary",
                          "--preset", "d2l", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["totals"]["params"] == 1_992_166
    modules = [line.split("|")[-1].strip() for line in out.stderr.splitlines()
               if line.startswith("import time:")]
    assert "nin_explorer.net.summary" in modules
    assert not [m for m in modules if m.split(".")[0] == "torch"]
    seconds = []
    for _ in range(3):          # the best of three: the machine is shared
        start = time.perf_counter()
        run_cli("summary", "--preset", "d2l", "--json")
        seconds.append(time.perf_counter() - start)
    assert min(seconds) < 1.0, seconds


def test_the_summary_path_and_the_run_store_import_no_torch():
    code = ("import sys\n"
            "import nin_explorer.cli, nin_explorer.net.layers, nin_explorer.net.presets, "
            "nin_explorer.net.render, nin_explorer.net.spec, nin_explorer.net.summary, nin_explorer.runs.store, "
            "nin_explorer.base.procs, nin_explorer.runs.provenance\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
