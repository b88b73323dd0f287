"""The probe of a checkpoint: why a run died (issue 17)."""
import dataclasses
import math

import pytest
import torch

from nin_explorer.learn.config import TrainConfig
from nin_explorer.look.maps import Checkpoint
from nin_explorer.look.probe import findings, fix_runs, probe, rows
from nin_explorer.net.build import build_model
from nin_explorer.net.presets import TINY

CLASSES = [str(i) for i in range(10)]


def _ckpt(dead: bool) -> Checkpoint:
    torch.manual_seed(0)
    net = build_model(TINY).eval()
    if dead:  # the collapsed state: the whole last block is 0
        for p in net.block4.parameters():
            torch.nn.init.zeros_(p)
    return Checkpoint(TINY, net, CLASSES, {}, 3)


def _batch(n=32):
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


def test_a_dead_network_is_named_as_nin_s_trap():
    images, labels = _batch()
    p = probe(_ckpt(dead=True), images, labels)
    last = p.layers[-1]
    assert last.name == "block4.relu0" and last.dead_fraction == 1.0
    assert p.loss == pytest.approx(math.log(10), abs=1e-6)
    assert p.logit_range == (0.0, 0.0) and all(r == (0.0, 0.0) for r in p.map_ranges)
    assert p.grad_norm == 0.0 and p.trap
    text = findings(p, "gap")
    assert text[0].startswith("NiN's trap") and "2.303" in text[0] and "cannot recover" in text[0]
    assert rows(p)[-1]["dead %"] == 100.0


def test_a_live_network_is_not():
    images, labels = _batch()
    p = probe(_ckpt(dead=False), images, labels)
    assert not p.trap and p.layers[-1].dead_fraction < 1.0
    assert p.logit_range[1] > 0 and p.grad_norm > 0
    assert p.loss != pytest.approx(math.log(10), abs=1e-6)
    assert not findings(p, "gap")[0].startswith("NiN's trap")
    assert p.layers[0].name == "block1.relu0" and len(p.layers) == 10


def test_the_fixes_are_an_ablation_at_the_dead_run_s_seed():
    cfg = TrainConfig.from_dict({"recipe": "book", "lr": 0.1, "epochs": 3, "seed": 7})
    spec = TINY.replace(blocks=tuple(dataclasses.replace(b, batch_norm=False) for b in TINY.blocks))
    runs = {r.setting["fix"]: r for r in fix_runs(spec, cfg)}
    assert set(runs) == {"as it was", "lower lr", "warm-up", "BatchNorm", "no final ReLU"}
    assert all(r.seed == 7 and r.config.seed == 7 for r in runs.values())
    assert runs["lower lr"].config.lr == pytest.approx(0.01)
    assert runs["warm-up"].config.warmup_epochs == 1.0
    assert all(b.batch_norm for b in runs["BatchNorm"].spec.blocks)
    assert not any(b.batch_norm for b in runs["as it was"].spec.blocks)
    assert not runs["no final ReLU"].spec.final_relu and runs["as it was"].spec.final_relu
    assert runs["no final ReLU"].spec.replace(final_relu=True) == spec      # nothing else changed
    modern = TrainConfig.from_dict({"recipe": "modern", "seed": 7})          # BatchNorm already
    assert "BatchNorm" not in {r.setting["fix"] for r in fix_runs(TINY, modern)}


def test_the_probe_in_batches_equals_the_probe_in_one():
    images, labels = _batch(30)
    for dead in (True, False):
        one, parts = (probe(_ckpt(dead), images, labels, batch_size=b) for b in (None, 7))
        assert [lp.dead for lp in one.layers] == [lp.dead for lp in parts.layers]
        assert one.loss == pytest.approx(parts.loss, abs=1e-5)
        assert one.grad_norm == pytest.approx(parts.grad_norm, rel=1e-4, abs=1e-9)
        assert one.logit_range == pytest.approx(parts.logit_range, abs=1e-5)
        assert sum(one.map_ranges, ()) == pytest.approx(sum(parts.map_ranges, ()), abs=1e-5)
        assert one.trap == parts.trap
