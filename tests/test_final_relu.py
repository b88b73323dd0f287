"""The last block without its ReLU (NetSpec.final_relu = False): the fix for NiN's trap."""
import pytest
import torch

from nin_explorer.look.maps import Checkpoint, class_maps
from nin_explorer.look.probe import probe
from nin_explorer.net import controls
from nin_explorer.net.build import build_model
from nin_explorer.net.export import from_query, pytorch_snippet, to_query
from nin_explorer.net.presets import ALEXNET, D2L, GOOGLENET, TINY
from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.net.summary import summarize
from nin_explorer.runs.ablation import apply_factor
from nin_explorer.learn.config import TrainConfig

OPEN = TINY.replace(final_relu=False)


def test_it_is_kept_in_the_spec_and_left_out_of_older_specs_dicts():
    assert "final_relu" not in TINY.to_dict()            # stored runs' specs stay equal
    assert OPEN.to_dict()["final_relu"] is False
    assert NetSpec.from_dict(OPEN.to_dict()) == OPEN and NetSpec.from_dict(TINY.to_dict()) == TINY
    assert from_query(to_query(OPEN)) == OPEN
    assert controls.controls_to_spec(controls.spec_to_controls(OPEN)) == OPEN
    with pytest.raises(SpecError, match="Inception last block"):
        GOOGLENET.replace(final_relu=False)
    with pytest.raises(SpecError, match="must be a bool"):
        NetSpec.from_dict({**TINY.to_dict(), "final_relu": "no"})


@pytest.mark.parametrize("spec", [TINY, D2L, ALEXNET], ids=lambda s: s.name)
def test_only_the_last_blocks_last_relu_goes(spec):
    with_relu, without = summarize(spec), summarize(spec.replace(final_relu=False))
    names = [r.layer.name for r in with_relu.rows]
    gone = [n for n in names if n not in {r.layer.name for r in without.rows}]
    last = f"block{len(spec.blocks)}."
    assert len(gone) == 1 and gone[0].startswith(last + "relu")
    assert max(n for n in names if n.startswith(last + "relu")) == gone[0]
    assert without.params == with_relu.params and without.output_shape == with_relu.output_shape


def test_class_maps_and_logits_can_be_negative_and_the_trap_is_not_named():
    torch.manual_seed(0)
    net = build_model(OPEN).eval()
    assert not isinstance(list(net.block4.children())[-1], torch.nn.ReLU)
    torch.nn.init.zeros_(net.block4.conv0.weight)
    torch.nn.init.constant_(net.block4.conv0.bias, -1.0)
    ckpt = Checkpoint(OPEN, net, [str(i) for i in range(10)], {}, 1)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    r = class_maps(ckpt, images)
    assert torch.allclose(r.logits, torch.full((8, 10), -1.0)) and float(r.class_maps.max()) == -1.0
    torch.nn.init.zeros_(net.block4.conv0.bias)                   # every map 0, as in the trap
    p = probe(ckpt, images, torch.zeros(8, dtype=torch.long))
    assert not p.trap and p.grad_norm > 0                         # gradient still flows


def test_the_snippet_builds_the_same_network():
    ns: dict = {}
    exec(compile(pytorch_snippet(OPEN), "<snippet>", "exec"), ns)
    torch.manual_seed(0)
    ours = build_model(OPEN).eval()
    theirs = ns["net"].eval()
    assert [p.shape for p in theirs.parameters()] == [p.shape for p in ours.parameters()]
    with torch.no_grad():
        for a, b in zip(theirs.parameters(), ours.parameters()):
            a.copy_(b)
        for a, b in zip(theirs.buffers(), ours.buffers()):
            a.copy_(b)
        x = torch.randn(4, 1, 28, 28)
        assert torch.allclose(theirs(x), ours(x), atol=1e-6)


def test_it_is_an_ablation_factor():
    spec, cfg = apply_factor(TINY, TrainConfig(), "final_relu", False)
    assert spec == OPEN and cfg == TrainConfig()


def test_the_build_page_switch_and_share_link():
    pytest.importorskip("streamlit")          # `make test-core` runs this file where it is not
    from streamlit.testing.v1 import AppTest
    from conftest import ROOT
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["show_relu"] = True
    at.run()
    at.sidebar.selectbox(key="w.preset").set_value("tiny").run()
    layers = lambda: list(at.dataframe[0].value["layer"])
    assert "block4.relu0" in layers() and at.sidebar.toggle(key="w.final_relu").value is True
    at.sidebar.toggle(key="w.final_relu").set_value(False).run()
    assert not at.exception, at.exception
    assert "block4.relu0" not in layers() and "block3.relu2" in layers()
    assert from_query(dict(at.query_params)).final_relu is False        # the share link keeps it
