"""Maps across training: each run keeps, per epoch, the class maps of a fixed probe set of test
images, so the GAP maps page can scrub through training and watch the diagonal light up.

The probe set is the first PER_CLASS test images of each class (at most MAX_IMAGES), the same
for every run on a data set. At each epoch end the worker opens the checkpoint it just wrote and
saves the set's class maps and logits (float32) to <run dir>/epoch_maps/epoch_NNNN.pt: images x
classes x h x w x 4 bytes, 83 KB an epoch on disk for `tiny` on `shapes` (40 x 10 x 7 x 7), about
42 KB for `d2l` at 224 (40 x 10 x 5 x 5). Only GAP heads (gap, gap-linear) keep them: their maps cost one
forward pass, where an `fc` head's Grad-CAM costs a backward pass per class.
"""
from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

PER_CLASS = 4
MAX_IMAGES = 40
DIR = "epoch_maps"
HEADS = ("gap", "gap-linear")


def probe_indices(labels: torch.Tensor, num_classes: int) -> list[int]:
    """The fixed probe set: the first PER_CLASS test images of each class, in class order."""
    out: list[int] = []
    for c in range(num_classes):
        out += (labels == c).nonzero().flatten()[:PER_CLASS].tolist()
        if len(out) >= MAX_IMAGES:
            break
    return out[:MAX_IMAGES]


def epoch_path(run_dir, epoch: int) -> Path:
    return Path(run_dir) / DIR / f"epoch_{int(epoch):04d}.pt"


class EpochMapWriter:
    """What the worker calls after each checkpoint: the probe set's maps for that epoch."""

    def __init__(self, test_data, num_classes: int):
        self.indices = probe_indices(test_data.labels, num_classes)
        self.images = test_data.images[self.indices].clone()       # (N, C, H, W) uint8
        self.labels = test_data.labels[self.indices].clone()

    def write(self, checkpoint_path, run_dir) -> Path | None:
        """Save this epoch's maps from the checkpoint just written; None (and a line on stderr)
        when they cannot be made: the run goes on without them."""
        from nin_explorer.base.files import atomic_save
        from nin_explorer.look.maps import CheckpointError, class_maps, open_checkpoint
        try:
            ckpt = open_checkpoint(checkpoint_path)
            if ckpt.spec.head not in HEADS or not self.indices:
                return None
            r = class_maps(ckpt, self.images)
            path = epoch_path(run_dir, ckpt.epoch)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save({"epoch": ckpt.epoch, "indices": torch.tensor(self.indices),
                         "labels": self.labels, "maps": r.class_maps.float().contiguous(),
                         "logits": r.logits.float().contiguous(), "kind": r.kind}, path)
            return path
        except (OSError, CheckpointError, RuntimeError) as e:
            print(f"per-epoch maps not saved: {e}", file=sys.stderr)
            return None


@dataclass
class EpochMaps:
    epochs: list[int]
    indices: list[int]             # test-set indices of the probe images
    labels: torch.Tensor           # (N,)
    maps: torch.Tensor             # (E, N, K, h, w)
    logits: torch.Tensor           # (E, N, K)
    kind: str

    def class_average(self, num_classes: int) -> torch.Tensor:
        """(E, K true classes, K maps, h, w): each true class's mean maps over its probe images."""
        e, _, k, h, w = self.maps.shape
        sums = torch.zeros(e, num_classes, k, h, w).index_add_(1, self.labels, self.maps)
        counts = torch.bincount(self.labels, minlength=num_classes).clamp(min=1)
        return sums / counts[None, :, None, None, None]


def load_epoch_maps(run_dir) -> EpochMaps | None:
    """The run's per-epoch maps in epoch order (a torn or foreign file is left out), or None."""
    saved = []
    for path in sorted((Path(run_dir) / DIR).glob("epoch_*.pt")):
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            saved.append((int(d["epoch"]), d))
        except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError,
                pickle.UnpicklingError):
            continue
    if not saved:
        return None
    first = saved[0][1]
    same = [(e, d) for e, d in sorted(saved, key=lambda t: t[0])
            if torch.equal(d["indices"], first["indices"]) and d["maps"].shape == first["maps"].shape]
    return EpochMaps([e for e, _ in same], first["indices"].tolist(), first["labels"],
                     torch.stack([d["maps"] for _, d in same]),
                     torch.stack([d["logits"] for _, d in same]), first["kind"])


def epochs_figure(frames: torch.Tensor, epochs: list[int], titles, cols: int,
                  cell_px: int = 110, row_labels: list[str] | None = None, start: int = -1):
    """An animated grid: frames (E, N, h, w), one per epoch, with a shared colour scale, an
    epoch slider and a play button (plotly animates in the browser; no rerun per frame).
    `titles(e)` gives the N tile titles of frame e; it opens at frame `start` (the last)."""
    import plotly.graph_objects as go
    from nin_explorer.look.charts import maps_grid_figure
    lo, hi = float(frames.min()), float(frames.max())
    figs = [maps_grid_figure(frames[i], titles(i), cols, zmin=lo, zmax=hi, cell_px=cell_px,
                             row_labels=row_labels) for i in range(len(epochs))]
    start = range(len(epochs))[start]
    fig = go.Figure(figs[start])
    fig.frames = [go.Frame(data=[f.data[0]], layout=go.Layout(annotations=f.layout.annotations),
                           name=str(e)) for f, e in zip(figs, epochs)]
    step = dict(mode="immediate", frame=dict(duration=600, redraw=True), transition=dict(duration=0))
    fig.update_layout(
        height=fig.layout.height + 90, margin=dict(b=80),
        sliders=[dict(active=start, currentvalue=dict(prefix="epoch "), pad=dict(t=30),
                      steps=[dict(label=str(e), method="animate", args=[[str(e)], step])
                             for e in epochs])],
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="right",
                          yanchor="top", pad=dict(t=30, r=10), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, {**step, "fromcurrent": False}]),
                                   dict(label="❚❚", method="animate",
                                        args=[[None], {**step, "mode": "immediate"}])])])
    return fig
