"""What each class channel finds: GAP maps, class activation maps, block feature maps.

For the `gap` head the last block outputs one map per class and logit c = mean of map c.
For `gap-linear` the class activation map (CAM) of class c is sum_k w[c, k] * A_k + b[c],
whose mean is again logit c. For `fc` there is no such identity; Grad-CAM stands in.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .build import build_model
from .images import ImageError, image_to_tensor  # pages catch ImageError from here
from .spec import NetSpec, SpecError
from .store import CheckpointError  # noqa: F401 (pages catch it from here)
from .store import load_checkpoint as read_checkpoint
from .train import to_input  # the same scaling and resizing as in training

MAX_UPLOAD_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Checkpoint:
    spec: NetSpec
    model: nn.Module          # eval mode, on the CPU
    classes: list[str]
    config: dict
    epoch: int


# --- loading ---

def load_checkpoint(source) -> Checkpoint:
    """A path or bytes of a checkpoint written by the trainer, with its model built and loaded
    (CheckpointError when the file or its weights cannot be used)."""
    state = read_checkpoint(source)
    try:
        spec = NetSpec.from_dict(state["spec"])
        model = build_model(spec)
    except SpecError as e:
        raise CheckpointError(f"The checkpoint's spec is not valid: {e}") from None
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0:3]
        raise CheckpointError("The weights do not fit the checkpoint's own spec (another "
                              f"architecture?): {' '.join(first)[:200]}") from None
    classes = state.get("classes") or [str(i) for i in range(spec.num_classes)]
    return Checkpoint(spec, model.eval(), list(classes), dict(state.get("config") or {}),
                      int(state.get("epoch") or 0))


def image_from_upload(data: bytes, channels: int, size: int) -> torch.Tensor:
    """An uploaded image as a uint8 (C, size, size) tensor, or ImageError saying why not."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"That file is {len(data) / 2**20:.1f} MB; images up to "
                         f"{MAX_UPLOAD_BYTES // 2**20} MB are accepted.")
    return image_to_tensor(bytes(data), channels, size)


# --- one batch: maps, logits, identity ---

@dataclass
class MapResult:
    logits: torch.Tensor           # (B, K)
    probs: torch.Tensor            # (B, K)
    class_maps: torch.Tensor       # (B, K, h, w): GAP maps, CAMs or Grad-CAMs
    kind: str                      # "gap", "cam" or "grad-cam"
    block_outputs: dict[str, torch.Tensor]   # block name -> (B, C, h, w)


def class_maps(ckpt: Checkpoint, images: torch.Tensor) -> MapResult:
    """Run uint8 images (B, C, H, W) through the net and return its class evidence maps."""
    spec, net = ckpt.spec, ckpt.model
    x = to_input(images, spec.input_size)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: outputs.__setitem__(name, o))
             for name, m in net.named_children() if name != "head"]
    try:
        if spec.head == "fc":
            return _grad_cam(net, x, outputs)
        with torch.no_grad():
            logits = net(x)
    finally:
        for h in hooks:
            h.remove()
    last = outputs[f"block{len(spec.blocks)}"]                      # (B, C, h, w)
    if spec.head == "gap":
        maps, kind = last, "gap"
    else:
        fc = net.head.fc
        maps = torch.einsum("kc,bchw->bkhw", fc.weight, last) + fc.bias[None, :, None, None]
        kind = "cam"
    return MapResult(logits, logits.softmax(1), maps, kind, {k: v.detach() for k, v in outputs.items()})


def _grad_cam(net: nn.Module, x: torch.Tensor, outputs: dict) -> MapResult:
    """Grad-CAM: channel weights = mean gradient of each logit over the last conv maps."""
    x = x.requires_grad_(False)
    with torch.enable_grad():
        logits = net(x)
        last_name = [k for k in outputs][-1]
        last = outputs[last_name]                                   # (B, C, h, w)
        maps = []
        for c in range(logits.shape[1]):
            (g,) = torch.autograd.grad(logits[:, c].sum(), last, retain_graph=True)
            weights = g.mean((2, 3), keepdim=True)                  # (B, C, 1, 1)
            maps.append(F.relu((weights * last).sum(1)))            # (B, h, w)
    logits = logits.detach()
    return MapResult(logits, logits.softmax(1), torch.stack(maps, 1).detach(), "grad-cam",
                     {k: v.detach() for k, v in outputs.items()})


def identity_gap(result: MapResult) -> torch.Tensor:
    """max |mean(map c) - logit c| over the batch: 0 (to rounding) for `gap` and `cam`."""
    return (result.class_maps.mean((2, 3)) - result.logits).abs().max()


def channel_order(feature_maps: torch.Tensor) -> list[int]:
    """Channels of one image's (C, h, w) maps, highest mean activation first."""
    return feature_maps.mean((1, 2)).argsort(descending=True).tolist()


# --- the whole test set ---

@dataclass
class TestSetAnalysis:
    mean_maps: torch.Tensor        # (K true classes, K channels, h, w)
    confusion: torch.Tensor        # (K, K) counts, rows = true class
    per_class_accuracy: list[float]
    accuracy: float
    predictions: torch.Tensor      # (N,)
    confidence: torch.Tensor       # (N,) softmax probability of the prediction
    labels: torch.Tensor           # (N,)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def analyse_test_set(ckpt: Checkpoint, images: torch.Tensor, labels: torch.Tensor,
                     batch_size: int = 500, progress=None) -> TestSetAnalysis:
    k = ckpt.spec.num_classes
    sums, counts = None, torch.zeros(k)
    preds, confs = [], []
    for start in range(0, len(images), batch_size):
        r = class_maps(ckpt, images[start:start + batch_size])
        y = labels[start:start + batch_size]
        if sums is None:
            sums = torch.zeros(k, *r.class_maps.shape[1:])
        sums.index_add_(0, y, r.class_maps)
        counts += torch.bincount(y, minlength=k)
        p, c = r.probs.max(1)
        preds.append(c)
        confs.append(p)
        if progress:
            progress(min(1.0, (start + batch_size) / len(images)))
    pred, conf = torch.cat(preds), torch.cat(confs)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1)).tolist()
    return TestSetAnalysis(sums / counts.clamp(min=1)[:, None, None, None], confusion, per_class,
                           float((pred == labels).float().mean()), pred, conf, labels)


def most_confident_mistakes(a: TestSetAnalysis, n: int = 16) -> list[int]:
    wrong = (a.predictions != a.labels).nonzero().flatten()
    order = a.confidence[wrong].argsort(descending=True)
    return wrong[order][:n].tolist()


# --- cache of the test-set analysis, beside the run's checkpoint ---

def cached_analysis(cache_path, checkpoint_path, compute) -> TestSetAnalysis:
    """Load the analysis saved for this exact checkpoint file, or compute and save it."""
    from pathlib import Path

    cache_path, stamp = Path(cache_path), Path(checkpoint_path).stat().st_mtime_ns
    try:
        saved = torch.load(cache_path, map_location="cpu", weights_only=True)
        if saved.pop("checkpoint_mtime_ns") == stamp:
            return TestSetAnalysis(**saved)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError):
        pass
    analysis = compute()
    tmp = cache_path.with_name(cache_path.name + ".tmp")
    try:
        torch.save({**analysis.to_dict(), "checkpoint_mtime_ns": stamp}, tmp)
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only run folder only costs a recomputation next time
    return analysis
