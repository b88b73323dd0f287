"""Our training loop against the book's, on the book's network: d2l NiN at 224x224, batch 128.

The book's loop (d2l.ai 7.3): PIL resize 28 -> 224 and ToTensor on the CPU in a 4-worker
DataLoader, fp32, a `.item()` host sync every batch. Ours (nin_explorer.train): uint8 images on
the device once, resized there per batch, metrics read a few times a second; also with bf16 +
channels-last. Both train the same network on the same 28x28 images; the table gives training
examples/s of the second epoch (the first warms up cuDNN and the allocator).

Needs only python3 + torch + torchvision (no streamlit or plotly). One command on a CUDA box:

    python3 bench/train_gpu.py                 # ~2 minutes on one GPU
    python3 bench/train_gpu.py --smoke         # tiny sizes; checks it runs (CPU is fine)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from nin_explorer.build import build_model, init_xavier  # noqa: E402
from nin_explorer.presets import get_preset  # noqa: E402
from nin_explorer.train import TrainConfig, train  # noqa: E402


def load_images(n: int, source: str):
    """(images uint8 (N, 1, 28, 28), labels) from `shapes`, or random ones of the same shape."""
    if source == "shapes":
        try:
            from nin_explorer.data import load_dataset
            data = load_dataset("shapes")
            return data.images[:n].clone(), data.labels[:n].clone(), "shapes"
        except Exception as e:  # any failure: fall back to random pixels of the same shape
            print(f"shapes unavailable ({type(e).__name__}: {e}); using random images",
                  file=sys.stderr)
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g), "random")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# --- the book's loop ---

class PilImages(torch.utils.data.Dataset):
    """Fashion-MNIST as torchvision serves it: a PIL image per item, resized and ToTensor'd."""

    def __init__(self, images, labels, size: int):
        from torchvision import transforms
        self.images, self.labels = images.numpy(), labels.numpy()
        self.transform = transforms.Compose([transforms.Resize(size), transforms.ToTensor()])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i, 0])), int(self.labels[i])


def book_loop(images, labels, size, batch_size, workers, epochs, device) -> list[dict]:
    net = build_model(get_preset("d2l").replace(input_size=size))
    init_xavier(net)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(PilImages(images, labels, size), batch_size=batch_size,
                                         shuffle=True, num_workers=workers)
    out = []
    for _ in range(epochs):
        net.train()
        sync(device)
        t0, compute_s, n = time.perf_counter(), 0.0, 0
        for X, y in loader:
            t_batch = time.perf_counter()        # d2l's Timer measures from here ...
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            y_hat = net(X)
            loss = loss_fn(y_hat, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():                # ... metric.add(l * n, accuracy(...), n)
                loss_sum = loss.item() * X.shape[0]
                correct = (y_hat.argmax(1) == y).sum().item()
            compute_s += time.perf_counter() - t_batch  # ... to here (data loading not timed)
            n += X.shape[0]
        wall_s = time.perf_counter() - t0
        out.append({"wall": n / wall_s, "timer": n / compute_s,
                    "loss": loss_sum / X.shape[0], "correct": correct})
    return out


# --- ours ---

def our_loop(images, labels, size, batch_size, epochs, precision, device) -> list[float]:
    data = SimpleNamespace(name="bench", images=images, labels=labels,
                           classes=[str(i) for i in range(10)])
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, input_size=size, precision=precision,
                      device=device.type, max_test_examples=min(len(images), 4 * batch_size),
                      eval_every=50)
    events = []
    result = train(get_preset("d2l"), cfg, data, data, events.append, lambda: False)
    if result.status != "completed":
        raise SystemExit(f"our loop ended {result.status}: {result.reason}")
    return [e["examples_per_sec"] for e in events if e["kind"] == "epoch"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device: does it run?")
    p.add_argument("--steps", type=int, default=150, help="training steps per epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=4, help="the book's DataLoader workers")
    p.add_argument("--data", choices=("shapes", "random"), default="shapes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.input_size, args.workers = 2, 8, 96, 2
    device = torch.device(args.device)
    epochs = 2

    images, labels, source = load_images(args.steps * args.batch_size, args.data)
    t0 = time.perf_counter()
    book = book_loop(images, labels, args.input_size, args.batch_size, args.workers, epochs, device)
    ours = {precision: our_loop(images, labels, args.input_size, args.batch_size, epochs,
                                precision, device)
            for precision in (("fp32", "bf16") if device.type == "cuda" else ("fp32",))}
    total_s = time.perf_counter() - t0

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nd2l NiN at {args.input_size}x{args.input_size}, batch {args.batch_size}, "
          f"{args.steps} steps per epoch, {source} 28x28 images; {name}, "
          f"torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; training examples/s of epoch {epochs} (bench took "
          f"{total_s:.0f} s).\n")
    reference = book[-1]["wall"]
    rows = [
        ("book: PIL resize + ToTensor, DataLoader workers, .item() per batch", "fp32",
         reference),
        ("book, as d2l's Timer counts it (data loading not timed)", "fp32", book[-1]["timer"]),
        ("ours: uint8 on device, resize on device, time-based sync",
         "fp32" if device.type == "cuda" else "fp32 (bf16 needs CUDA)", ours["fp32"][-1]),
    ]
    if device.type == "cuda":
        rows.append(("ours + bf16 autocast + channels-last", "bf16", ours["bf16"][-1]))
    print("| loop | precision | examples/s | vs book |")
    print("|---|---|---:|---:|")
    for label, precision, speed in rows:
        print(f"| {label} | {precision} | {speed:,.0f} | {speed / reference:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
