"""Why a run died: a probe of one checkpoint over a batch of test images.

Per ReLU it counts dead units (channels whose output is 0 at every position of every probe
image), it gives the range of the logits and of each class map, the loss and the gradient
norm on the batch, and it names NiN's own trap when it applies: with a `gap` head the last
block ends in a ReLU, so every class map and logit is >= 0; once every class map is 0 the
logits are all 0, the loss is ln(classes) and no gradient passes the dead ReLUs, so the run
cannot recover. The fixes come back as an ablation against the dead run with the same seed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nin_explorer.learn.device_data import to_input

PROBE_IMAGES = 256          # test images a probe runs (the first ones: the same for every run)
MIN_BATCH = 64              # a network whose batch within budget is smaller gets one batch
DEAD_SHARE = 0.5            # a layer with at least this share of dead units is named


@dataclass
class LayerProbe:
    name: str          # module path, e.g. "block4.relu0"
    units: int         # channels (or features of a fully connected layer)
    dead: int          # units that output 0 for every probe image

    @property
    def dead_fraction(self) -> float:
        return self.dead / self.units if self.units else 0.0


@dataclass
class Probe:
    layers: list[LayerProbe]
    logit_range: tuple[float, float]
    map_ranges: list[tuple[float, float]]   # per class: (min, max) of its map over the batch
    loss: float | None                      # mean cross-entropy on the probe batch (with labels)
    grad_norm: float | None                 # norm of the loss's gradient over all weights
    chance_loss: float                      # ln(classes)
    trap: bool                              # NiN's trap: a gap head whose class maps are all 0
    images: int


def _hooked_copy(net: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A private copy of the net whose ReLUs leave their last output in the dict (the page
    shares its model between visitors, so hooks go on a copy)."""
    net = copy.deepcopy(net).eval()
    outs: dict[str, torch.Tensor] = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda _m, _i, o, name=name: outs.__setitem__(name, o.detach()))
    return net, outs


def probe(ckpt, images: torch.Tensor, labels: torch.Tensor | None = None,
          batch_size: int | None = None) -> Probe:
    """Probe a Checkpoint (look.maps) on uint8 images (B, C, H, W) and their labels, in
    batches of `batch_size` (None: all at once); the loss and gradient are the whole set's."""
    from nin_explorer.look.maps import class_maps
    net, outs = _hooked_copy(ckpt.model)
    params = [p for p in net.parameters() if p.requires_grad]
    n, batch_size = len(images), batch_size or len(images)
    unit_max: dict[str, torch.Tensor] = {}
    grads = [torch.zeros_like(p) for p in params]
    loss_sum, lo, hi, map_lo, map_hi = 0.0, math.inf, -math.inf, None, None
    for s in range(0, n, batch_size):
        chunk = images[s:s + batch_size]
        with torch.enable_grad():
            logits = net(to_input(chunk, ckpt.spec.input_size))
            if labels is not None:
                loss = F.cross_entropy(logits, labels[s:s + batch_size], reduction="sum")
                for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                    if d is not None:
                        g += d
                loss_sum += float(loss.detach())
        for name, o in outs.items():
            m = o.abs().amax(dim=[d for d in range(o.dim()) if d != 1])       # (C,)
            unit_max[name] = torch.maximum(unit_max[name], m) if name in unit_max else m
        logits = logits.detach()
        lo, hi = min(lo, float(logits.min())), max(hi, float(logits.max()))
        maps = class_maps(ckpt, chunk).class_maps                            # (b, K, h, w)
        cl, ch = maps.amin(dim=(0, 2, 3)), maps.amax(dim=(0, 2, 3))
        map_lo = cl if map_lo is None else torch.minimum(map_lo, cl)
        map_hi = ch if map_hi is None else torch.maximum(map_hi, ch)
    layers = [LayerProbe(k, len(m), int((m == 0).sum())) for k, m in unit_max.items()]
    ranges = list(zip(map_lo.tolist(), map_hi.tolist()))
    trap = ckpt.spec.head == "gap" and ckpt.spec.final_relu and max(map_hi.abs().max(), map_lo.abs().max()) == 0
    grad = math.sqrt(sum(float((g / n).pow(2).sum()) for g in grads)) if labels is not None else None
    return Probe(layers, (lo, hi), ranges, loss_sum / n if labels is not None else None, grad,
                 math.log(ckpt.spec.num_classes), bool(trap), n)


def probe_test_set(ckpt, images: torch.Tensor, labels: torch.Tensor) -> Probe:
    """The probe on the first PROBE_IMAGES test images, in batches within the analysis's memory
    budget (maps.analysis_batch_size). A network whose batch holds under MIN_BATCH images (d2l
    at 224: 11) is probed on one batch only: on a CPU more would take tens of seconds."""
    from nin_explorer.look.maps import analysis_batch_size
    batch = max(1, analysis_batch_size(ckpt.spec) // 2)      # the probe also keeps a graph
    n = min(len(images), PROBE_IMAGES if batch >= MIN_BATCH else batch)
    return probe(ckpt, images[:n], labels[:n], batch_size=batch)


def findings(p: Probe, head: str, final_relu: bool = True) -> list[str]:
    """What the probe says, in sentences (the first one names the trap when it applies)."""
    out = []
    if p.trap:
        out.append(
            f"NiN's trap: every class map is 0 on all {p.images} probe images, so every logit is "
            f"0 and the loss is ln({len(p.map_ranges)}) = {p.chance_loss:.3f}"
            + (f" (measured {p.loss:.3f})" if p.loss is not None else "")
            + ". The last block ends in a ReLU, so logits are never negative, and a ReLU that "
            "outputs 0 passes no gradient" + (f" (gradient norm {p.grad_norm:.2g})"
                                              if p.grad_norm is not None else "")
            + ": the run cannot recover by itself.")
    elif head == "gap" and final_relu and p.logit_range[0] >= 0:
        out.append(f"Logits range from {p.logit_range[0]:.3g} to {p.logit_range[1]:.3g}: never "
                   "negative, as the last block ends in a ReLU.")
    else:
        out.append(f"Logits range from {p.logit_range[0]:.3g} to {p.logit_range[1]:.3g}.")
    dead_maps = sum(hi == 0 for _lo, hi in p.map_ranges)
    if dead_maps and not p.trap:
        out.append(f"{dead_maps} of {len(p.map_ranges)} class maps are 0 on every probe image: "
                   "those classes are never predicted.")
    worst = [lp for lp in p.layers if lp.dead_fraction >= DEAD_SHARE]
    if worst:
        out.append("Mostly dead layers: " + ", ".join(
            f"{lp.name} {lp.dead_fraction:.0%} of {lp.units}" for lp in worst) + ".")
    else:
        out.append("No layer has half its units dead.")
    return out


def rows(p: Probe) -> list[dict]:
    """The per-layer table."""
    return [{"layer": lp.name, "units": lp.units, "dead": lp.dead,
             "dead %": round(100 * lp.dead_fraction, 1)} for lp in p.layers]


# --- the fixes, as an ablation against the dead run ---

def fix_runs(spec, cfg) -> list:
    """PlannedRuns (runs.ablation) that retry a dead run with each fix, at its own seed: the
    learning rate / 10, one epoch of linear warm-up, BatchNorm after every conv (unless it had
    it), no ReLU at the end of the last block (unless it had none, or the spec refuses that:
    an Inception last block); plus the run as it was, for comparison."""
    from nin_explorer.net.spec import SpecError
    from nin_explorer.runs.ablation import PlannedRun, apply_factor, setting_label
    tries = [("as it was", spec, cfg),
             ("lower lr", spec, cfg.replace(lr=cfg.lr / 10)),
             ("warm-up", spec, cfg.replace(warmup_epochs=min(1.0, float(cfg.epochs)))),
             ("BatchNorm", *apply_factor(spec, cfg, "batch_norm", True))]
    out = []
    from nin_explorer.learn.config import apply_recipe
    if all(b.batch_norm for b in apply_recipe(spec, cfg)[0].blocks):
        tries.pop()                    # it had BatchNorm already (its own or its recipe's)
    if spec.final_relu:
        try:
            tries.append(("no final ReLU", spec.replace(final_relu=False), cfg))
        except SpecError:
            pass                       # NetSpec.validate says which last blocks cannot
    for label, s, c in tries:
        setting = {"fix": label}
        out.append(PlannedRun(setting, cfg.seed, s, c.replace(ablation_setting=setting_label(setting))))
    return out
