import base64
import json
import zlib

import pytest
import torch

from nin_explorer.net.export import from_query, pytorch_snippet, to_query
from nin_explorer.net.presets import D2L, PRESETS, TINY
from nin_explorer.net.spec import SpecError
from nin_explorer.net.summary import summarize


@pytest.mark.parametrize("name", PRESETS)
def test_snippet_builds_same_shapes_and_params(name):
    spec = PRESETS[name]
    code = pytorch_snippet(spec)
    ns: dict = {}
    with torch.device("meta"):  # the real module code, without allocating VGG's 0.5 GB
        exec(compile(code, "<snippet>", "exec"), ns)
        net = ns["net"]
        out = net(torch.empty(1, spec.in_channels, spec.input_size, spec.input_size))
    s = summarize(spec)
    assert sum(p.numel() for p in net.parameters()) == s.params
    assert tuple(out.shape[1:]) == s.output_shape


def test_snippet_runs_as_a_script(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "nin.py"
    path.write_text(pytorch_snippet(TINY))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([1, 10]) 27354" in out.stdout


@pytest.mark.parametrize("name", PRESETS)
def test_query_round_trip(name):
    spec = PRESETS[name]
    assert to_query(spec) == {"preset": name}
    assert from_query(to_query(spec)) == spec
    changed = spec.replace(input_size=spec.input_size + 32, name="custom")
    q = to_query(changed)
    assert set(q) == {"spec"} and len(q["spec"]) < 1000
    assert from_query(q) == changed


def _encode(obj) -> str:
    raw = zlib.compress(json.dumps(obj).encode() if not isinstance(obj, bytes) else obj)
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize("params, message", [
    ({"spec": "!!!not base64!!!"}, "damaged"),
    ({"spec": base64.urlsafe_b64encode(b"plain text").decode()}, "damaged"),
    ({"spec": _encode(b"not json")}, "damaged"),
    ({"spec": _encode([1, 2, 3])}, "JSON object"),
    ({"spec": _encode({"blocks": [], "__class__": "os.system"})}, "Unknown setting"),
    ({"spec": _encode(b"{" + b" " * 500_000 + b"}")}, "too much data"),
    ({"spec": "A" * 10_000}, "too long"),
    ({"preset": "../../etc/passwd"}, "unknown preset"),
    ({"spec": _encode({**D2L.to_dict(), "input_size": -1})}, "at least 1"),
])
def test_hostile_query_strings_are_refused_clearly(params, message):
    with pytest.raises(SpecError, match=message):
        from_query(params)


def test_no_query_means_no_spec():
    assert from_query({}) is None
    assert from_query({"other": "x"}) is None
