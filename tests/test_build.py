"""Spec -> nn.Module (nin_explorer/net/build.py): the built module is the network the summary
describes, name for name, parameter for parameter, shape for shape."""
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nin_explorer.net.build import InceptionBlock, build_model, init_xavier
from nin_explorer.net.presets import GOOGLENET, PRESETS, TINY
from nin_explorer.net.spec import BlockSpec, NetSpec, SpecError
from nin_explorer.net.summary import summarize

BIG = ("vgg11", "alexnet")   # built on the meta device: real shapes and counts, no memory


def device_for(name: str) -> str:
    return "meta" if name in BIG else "cpu"


def oracle(spec: NetSpec, device="cpu"):
    """Shapes of every leaf module from a forward pass, parameters, and torch's FLOP count."""
    with torch.device(device):
        net = build_model(spec).eval()
        x = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    shapes = {}
    for name, module in net.named_modules():
        if not list(module.children()):
            module.register_forward_hook(
                lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    return shapes, sum(p.numel() for p in net.parameters()), counter.get_total_flops()


def assert_matches_oracle(spec, device="cpu"):
    s = summarize(spec)
    shapes, params, flops = oracle(spec, device)
    rows = {r.name: r.output_shape for r in s.rows if r.type != "Concat"}
    assert rows == shapes
    assert s.params == params
    assert s.flops == flops
    assert s.macs * 2 == s.flops


@pytest.mark.parametrize("name", PRESETS)
def test_presets_match_built_module(name):
    assert_matches_oracle(PRESETS[name], device=device_for(name))


@pytest.mark.parametrize("name", PRESETS)
def test_module_names_are_the_summary_rows_in_order(name):
    spec = PRESETS[name]
    with torch.device(device_for(name)):
        net = build_model(spec)
    leaves = [n for n, m in net.named_modules() if not list(m.children())]
    assert leaves == [r.name for r in summarize(spec).rows if r.type != "Concat"]
    per_row = {r.name: r.params for r in summarize(spec).rows}
    for leaf, module in net.named_modules():     # each row's parameters are its module's own
        if leaf in per_row:
            assert sum(p.numel() for p in module.parameters()) == per_row[leaf], leaf


@pytest.mark.parametrize("name", PRESETS)
def test_forward_pass_gives_the_summary_output_shape(name):
    spec = PRESETS[name]
    with torch.device(device_for(name)):
        net = build_model(spec).eval()
        x = torch.zeros(3, spec.in_channels, spec.input_size, spec.input_size)
    with torch.no_grad():
        out = net(x)
    assert tuple(out.shape) == (3, *summarize(spec).output_shape) == (3, spec.num_classes)


def test_tiny_logits_are_the_means_of_its_class_maps():
    net = build_model(TINY).eval()                 # the gap head: logit c = mean of map c
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = net[:-1](x)
        logits = net(x)
    assert maps.shape == (2, 10, 7, 7)
    torch.testing.assert_close(logits, maps.mean((2, 3)))


def test_inception_blocks_concatenate_their_paths():
    net = build_model(GOOGLENET)
    inceptions = [m for m in net if isinstance(m, InceptionBlock)]
    assert len(inceptions) == sum(b.kind == "inception" for b in GOOGLENET.blocks) == 9
    out = inceptions[0](torch.zeros(1, 192, 12, 12))   # paths 64, (96, 128), (16, 32), 32
    assert out.shape == (1, 64 + 128 + 32 + 32, 12, 12)


def test_too_large_network_refused_before_any_layer_is_made(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a layer was allocated")
    monkeypatch.setattr(nn, "Linear", refuse)
    monkeypatch.setattr(nn, "Conv2d", refuse)
    huge = NetSpec(input_size=512, num_classes=10, head="fc", fc_hidden=(16384, 16384),
                   blocks=(BlockSpec(8192, kernel=1, n_extra_1x1=0),))
    with pytest.raises(SpecError, match="parameters, more than the limit"):
        build_model(huge)


def test_xavier_init_redraws_conv_and_linear_weights_only():
    net = build_model(TINY.replace(head="fc", fc_hidden=(32,)))
    before = {n: p.clone() for n, p in net.named_parameters()}
    torch.manual_seed(0)
    init_xavier(net)
    drawn = set()
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight   # (out, in, k, k) or (out, in): fan_in = in k², fan_out = out k²
            fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert 0.9 * bound < w.abs().max() <= bound, name     # uniform over +-bound
            drawn.add(f"{name}.weight")
    assert {"head.fc1.weight", "head.out.weight"} <= drawn and len(drawn) == 12
    for n, p in net.named_parameters():
        assert torch.equal(p, before[n]) != (n in drawn), n    # biases, BatchNorm untouched
