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

from nin_explorer.runs import checkpoint as checks
from nin_explorer.runs.checkpoint import MAX_UPLOAD_PARAMS  # noqa: F401 (pages read it from here)
from nin_explorer.net.build import build_model
from nin_explorer.base.files import atomic_save
from nin_explorer.learn.catalogue import DATASETS, FOLDER_PREFIX
from nin_explorer.learn.data import DataError, is_local
from nin_explorer.learn.images import ImageError, image_to_tensor  # pages catch ImageError from here
from nin_explorer.net.spec import NetSpec
from nin_explorer.net.summary import summarize
from nin_explorer.runs.checkpoint import CheckpointError  # noqa: F401 (pages catch it from here)
from nin_explorer.runs.checkpoint import load_checkpoint
from nin_explorer.learn.device_data import to_input  # the same scaling and resizing as in training

MAX_UPLOAD_BYTES = 16 * 2**20
ANALYSIS_MEMORY_BYTES = 256 * 2**20  # one batch of the test-set analysis, in the server process
MAX_ANALYSIS_BATCH = 500


@dataclass(frozen=True)
class Checkpoint:
    spec: NetSpec
    model: nn.Module          # eval mode, on the CPU
    classes: list[str]
    config: dict
    epoch: int


# --- loading ---

def open_checkpoint(source, max_params: int | None = None) -> Checkpoint:
    """A path or bytes of a checkpoint written by the trainer, with its model built and loaded
    (CheckpointError when the file or its weights cannot be used). Everything is checked
    before the real module is built (checkpoint.py); `max_params` caps the network's size.
    Top-level keys other than model, spec, classes, config and epoch (test_acc) are ignored."""
    state = load_checkpoint(source)
    spec = checks.read_spec(state["spec"])
    classes = checks.read_classes(state.get("classes"), spec.num_classes)
    config = checks.read_config(state.get("config"))
    epoch = checks.read_epoch(state.get("epoch"))
    if max_params is not None and (params := checks.count_params(spec)) > max_params:
        raise CheckpointError(f"That checkpoint's network has {params:,} parameters; uploads of "
                              f"up to {max_params:,} are opened here.")
    checks.check_weights(spec, state["model"])
    model = build_model(spec)
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0:3]
        raise CheckpointError("The weights do not fit the checkpoint's own spec (another "
                              f"architecture?): {' '.join(first)[:200]}") from None
    return Checkpoint(spec, model.eval(), classes, config, epoch)


def load_upload(data: bytes) -> Checkpoint:
    """An uploaded checkpoint: at most MAX_UPLOAD_BYTES and MAX_UPLOAD_PARAMS."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise CheckpointError(f"That file is {len(data) / 2**20:.1f} MB; checkpoints up to "
                              f"{MAX_UPLOAD_BYTES // 2**20} MB can be uploaded.")
    return open_checkpoint(data, max_params=MAX_UPLOAD_PARAMS)


def upload_dataset(name) -> str:
    """The data set an uploaded checkpoint names, if the server already has it: a catalogue
    name, downloaded or offline. Never a folder (that would read the server's files) and never
    a download; DataError, with a sentence that never repeats the name, otherwise."""
    own = "The upload's own images can still be used."
    if type(name) is not str or name not in DATASETS:
        if type(name) is str and name.startswith(FOLDER_PREFIX):
            raise DataError("The checkpoint was trained on a folder of images; folders are "
                            f"opened only for runs trained on this server. {own}")
        raise DataError(f"The checkpoint names a data set this server does not know. {own}")
    if not is_local(name):
        raise DataError(f"The checkpoint's data set {name} is not downloaded on this server "
                        f"(uploads never start a download). {own}")
    return name


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
    if spec.head == "fc":
        return _grad_cam(net, x)
    with torch.no_grad():
        logits, outputs = _forward(net, x)
    last = outputs[f"block{len(spec.blocks)}"]                      # (B, C, h, w)
    if spec.head == "gap":
        maps, kind = last, "gap"
    else:
        fc = net.head.fc
        maps = torch.einsum("kc,bchw->bkhw", fc.weight, last) + fc.bias[None, :, None, None]
        kind = "cam"
    return MapResult(logits, logits.softmax(1), maps, kind, outputs)


def _forward(net: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The net's forward pass child by child, keeping each block's output. No hooks: the page
    shares one loaded model between visitors, whose passes may run at the same time."""
    outputs = {}
    for name, child in net.named_children():
        x = child(x)
        if name != "head":
            outputs[name] = x
    return x, outputs


def _grad_cam(net: nn.Sequential, x: torch.Tensor) -> MapResult:
    """Grad-CAM: channel weights = mean gradient of each logit over the last conv maps."""
    with torch.enable_grad():
        logits, outputs = _forward(net, x)
        last = outputs[list(outputs)[-1]]                           # (B, C, h, w)
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


def analysis_batch_size(spec: NetSpec) -> int:
    """Images per batch so that one batch of the analysis needs at most ANALYSIS_MEMORY_BYTES
    (summary's estimate; at least one image). Per image it counts what a training step keeps
    (class_maps keeps every block's output, and Grad-CAM a whole graph) plus the live tensors."""
    m = summarize(spec, batch_size=1).memory
    per_image = m.saved_activations_bytes + m.workspace_bytes + m.infer_activations_bytes
    return max(1, min(MAX_ANALYSIS_BATCH, ANALYSIS_MEMORY_BYTES // per_image))


def analyse_test_set(ckpt: Checkpoint, images: torch.Tensor, labels: torch.Tensor,
                     batch_size: int | None = None, progress=None) -> TestSetAnalysis:
    """Class maps, confusion and accuracy over a test set, in batches of `batch_size` images
    (None: analysis_batch_size, which keeps a batch within the memory budget)."""
    batch_size = batch_size or analysis_batch_size(ckpt.spec)
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
    try:
        atomic_save({**analysis.to_dict(), "checkpoint_mtime_ns": stamp}, cache_path)
    except OSError:
        pass  # a read-only run folder only costs a recomputation next time
    return analysis
