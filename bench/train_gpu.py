"""Our training loop against the book's, on the book's network: d2l NiN at 224x224, batch 128.

The book's loop (d2l.ai 7.3): PIL resize 28 -> 224 and ToTensor on the CPU in a 4-worker
DataLoader, fp32, a `.item()` host sync every batch. Ours (nin_explorer.learn.train): uint8 images on
the device once, resized there per batch, metrics read a few times a second; also with bf16 +
channels-last, and with the speed options of TrainConfig (fused optimiser, torch.compile, CUDA
graphs, a larger evaluation batch). All train the same network on the same 28x28 images; the
table gives training examples/s of the second epoch (the first warms up cuDNN, the allocator
and compilation), evaluation examples/s, and the host time from calling train() to the first
step (its own 2-step run, before the timed run: cold compile caches for the first compiled row).

Needs only python3 + torch + torchvision (no streamlit or plotly). One command on a CUDA box:

    PYTHONPATH=. python3 bench/train_gpu.py          # book vs ours fp32 / bf16, ~2 minutes
    PYTHONPATH=. python3 bench/train_gpu.py --all    # + each speed option, 10 epochs; ~5-10 min
    PYTHONPATH=. python3 bench/train_gpu.py --smoke --all   # tiny sizes: does it run? (any CPU)

Targets (issue 7, d2l at 224 on one H100, bf16): at least 25,000 training examples/s, at least
4.5x the book's loop, 10 epochs of 60,000 images (with evaluation on 10,000) in under 40 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from nin_explorer.net.build import build_model, init_xavier  # noqa: E402
from nin_explorer.net.presets import get_preset  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402
from nin_explorer.learn.train import train  # noqa: E402


def load_images(n: int, source: str, train: bool = True):
    """(images uint8 (n, 1, 28, 28), labels, source) from a `shapes` split (60,000 training and
    10,000 test images), or random ones of the same shape."""
    if source == "shapes":
        try:
            from nin_explorer.learn.data import load_dataset
            data = load_dataset("shapes", train=train)
            if len(data.labels) < n:
                raise ValueError(f"the split has {len(data.labels):,} images, not {n:,}")
            return data.images[:n].clone(), data.labels[:n].clone(), "shapes"
        except Exception as e:  # any failure: fall back to random pixels of the same shape
            print(f"shapes unavailable ({type(e).__name__}: {e}); using random images",
                  file=sys.stderr)
    g = torch.Generator().manual_seed(0 if train else 1)
    return (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g), "random")


def split_data(n_train: int, n_test: int, source: str):
    """(train, test, source): the first n images of the training and of the test split."""
    images, labels, source = load_images(n_train, source, train=True)
    test_images, test_labels, _ = load_images(n_test, source, train=False)
    return as_dataset(images, labels), as_dataset(test_images, test_labels), source


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

# name -> (what the row is, TrainConfig fields); every variant trains the same network
VARIANTS = {
    "fp32": ("ours: uint8 on device, resize on device, time-based sync, channels-last, fused "
             "optimiser, cudnn.benchmark", dict(precision="fp32")),
    "bf16": ("ours + bf16 autocast", dict(precision="bf16")),
    "unfused": ("ours bf16, optimiser not fused (one kernel per tensor)",
                dict(precision="bf16", fused_optimizer=False)),
    "compile": ("ours bf16 + torch.compile (mode default)",
                dict(precision="bf16", compile="default")),
    "cuda-graphs": ("ours bf16 + torch.compile reduce-overhead (CUDA graphs)",
                    dict(precision="bf16", compile="reduce-overhead")),
    "eval-1024": ("ours bf16, evaluation batch 1024",
                  dict(precision="bf16", eval_batch_size=1024)),
}
DEFAULT_VARIANTS = ("fp32", "bf16")
NEEDS_CUDA = ("bf16", "unfused", "compile", "cuda-graphs")  # the same as fp32, or minutes, on a CPU


def as_dataset(images, labels):
    return SimpleNamespace(name="bench", images=images, labels=labels,
                           classes=[str(i) for i in range(10)])


def our_run(train_data, test_data, size, batch_size, epochs, device, eval_every=50,
            **fields) -> tuple[dict, list[dict], object]:
    """One train() call; (the start event, the epoch events, the TrainResult)."""
    torch.compiler.reset()  # each run compiles afresh (a new model would pile up guards)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, input_size=size, device=device.type,
                      eval_every=eval_every, **fields)
    events = []
    result = train(get_preset("d2l"), cfg, train_data, test_data, events.append, lambda: False)
    if result.status != "completed":
        raise RuntimeError(f"our loop ended {result.status}: {result.reason}")
    return events[0], [e for e in events if e["kind"] == "epoch"], result


def first_step_s(train_data, size, batch_size, device, **fields) -> float:
    """Host seconds from calling train() to the first training step (compilation included)."""
    few = as_dataset(train_data.images[:2 * batch_size], train_data.labels[:2 * batch_size])
    small_test = as_dataset(few.images[:batch_size], few.labels[:batch_size])
    events = []
    torch.compiler.reset()
    cfg = TrainConfig(epochs=1, batch_size=batch_size, input_size=size, device=device.type,
                      eval_every=1, **fields)
    train(get_preset("d2l"), cfg, few, small_test, events.append, lambda: False)
    return next(e["elapsed_s"] for e in events if e["kind"] == "step")


def measure(name, train_data, test_data, args, device) -> dict:
    label, fields = VARIANTS[name]
    ttfs = first_step_s(train_data, args.input_size, args.batch_size, device, **fields)
    start, epochs, result = our_run(train_data, test_data, args.input_size, args.batch_size, 2,
                                    device, **fields)
    last = epochs[-1]
    print(f"  {name}: {last['examples_per_sec']:,.0f} train ex/s", file=sys.stderr, flush=True)
    return {"variant": name, "loop": label, "precision": start["precision"],
            "train_examples_per_sec": last["examples_per_sec"],
            "eval_examples_per_sec": len(test_data.images) / last["eval_s"],
            "first_step_s": ttfs, "fields": fields}


def ten_epochs(fields: dict, args, device) -> dict:
    """The target run: 10 epochs of 60,000 images, evaluating on 10,000 after each (shapes,
    the offline stand-in for Fashion-MNIST's 28x28 split sizes). Runs in its own process
    (`--ten-epochs-with`), so the time from launch counts Python, torch, CUDA and data start-up."""
    n_train, n_test = (60_000, 10_000) if not args.smoke else (4 * args.batch_size,
                                                                 args.batch_size)
    train_data, test_data, _ = split_data(n_train, n_test, args.data)
    t0 = time.perf_counter()
    _, epochs, result = our_run(train_data, test_data, args.input_size, args.batch_size, 10,
                                device, **fields)
    return {"fields": fields, "train_examples": n_train, "test_examples": n_test,
            "train_s": time.perf_counter() - t0, "final_test_acc": result.final_test_acc,
            "train_examples_per_sec": epochs[-1]["examples_per_sec"]}


def ten_epochs_fresh(fields: dict, args) -> dict:
    """ten_epochs in a new process: wall time from launch to exit."""
    cmd = [sys.executable, __file__, "--ten-epochs-with", json.dumps(fields), "--device",
           args.device, "--batch-size", str(args.batch_size), "--input-size",
           str(args.input_size), "--data", args.data] + (["--smoke"] if args.smoke else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"the 10-epoch run failed:\n{done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall_s}


def compiler_missing() -> str | None:
    """torch.compile's Triton kernels need a C compiler (and Python's headers) the first time."""
    import shutil
    import sysconfig
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        return "no C compiler (cc, gcc or clang) on PATH"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "no Python.h (Python's development headers)"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device: does it run?")
    p.add_argument("--all", action="store_true",
                   help="every variant (%s) and the 10-epoch run" % ", ".join(VARIANTS))
    p.add_argument("--variants", help="comma-separated, from: " + ", ".join(VARIANTS))
    p.add_argument("--ten-epochs", action="store_true",
                   help="also time 10 epochs of 60,000 images with the fastest variant")
    p.add_argument("--steps", type=int, default=469,
                   help="training steps per epoch (469: a whole Fashion-MNIST epoch, as in d2l)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--test-examples", type=int, default=10_000,
                   help="images per evaluation (examples/s of evaluation)")
    p.add_argument("--workers", type=int, default=4, help="the book's DataLoader workers")
    p.add_argument("--data", choices=("shapes", "random"), default="shapes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", metavar="FILE", help="also write the rows here (after each row)")
    p.add_argument("--ten-epochs-with", metavar="FIELDS", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ten_epochs_with:  # the child process of ten_epochs_fresh (sizes come as flags)
        result = ten_epochs(json.loads(args.ten_epochs_with), args, torch.device(args.device))
        print(json.dumps(result))
        return 0
    if args.smoke:
        args.steps, args.batch_size, args.input_size, args.workers = 2, 8, 96, 2
        args.test_examples = 16
    device = torch.device(args.device)
    names = list(VARIANTS) if args.all else (args.variants.split(",") if args.variants
                                             else list(DEFAULT_VARIANTS))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    skipped = [n for n in names if n in NEEDS_CUDA and device.type != "cuda"]
    no_compiler = compiler_missing()
    if no_compiler:
        skipped += [n for n in names if VARIANTS[n][1].get("compile") and n not in skipped]
    names = [n for n in names if n not in skipped]
    # cold compile caches unless the caller chose a folder (set before anything compiles)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="nin-inductor-"))
    epochs = 2

    n_train = args.steps * args.batch_size
    train_data, test_data, source = split_data(n_train, args.test_examples, args.data)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    t0 = time.perf_counter()
    book, rows, failed, ten = None, [], [], None

    def save() -> None:  # after every row, so that a later failure loses nothing
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"device": name, "torch": torch.__version__, "input_size": args.input_size,
                 "batch_size": args.batch_size, "steps": args.steps, "data": source,
                 "book": book and book[-1], "rows": rows, "failed": failed, "ten_epochs": ten},
                indent=2))

    print("book loop ...", file=sys.stderr, flush=True)
    book = book_loop(train_data.images, train_data.labels, args.input_size, args.batch_size,
                     args.workers, epochs, device)
    save()
    for variant in names:
        try:
            rows.append(measure(variant, train_data, test_data, args, device))
        except Exception as e:  # one broken option must not cost the other rows
            failed.append({"variant": variant, "error": f"{type(e).__name__}: {e}"[:2000]})
            print(f"  {variant} FAILED: {failed[-1]['error']}", file=sys.stderr, flush=True)
        save()
    if rows and (args.all or args.ten_epochs):
        best = max(rows, key=lambda r: r["train_examples_per_sec"])
        eval_best = max(rows, key=lambda r: r["eval_examples_per_sec"])
        fields = {**best["fields"], "eval_batch_size": eval_best["fields"].get("eval_batch_size")}
        print(f"10 epochs with {best['variant']} ...", file=sys.stderr, flush=True)
        try:
            ten = {"variant": best["variant"], **ten_epochs_fresh(fields, args)}
        except Exception as e:
            failed.append({"variant": "ten-epochs", "error": f"{type(e).__name__}: {e}"[:2000]})
        save()
    total_s = time.perf_counter() - t0

    print(f"\nd2l NiN at {args.input_size}x{args.input_size}, batch {args.batch_size}, "
          f"{args.steps} steps per epoch, {source} 28x28 images; {name}, "
          f"torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; training examples/s of epoch {epochs}, evaluation on "
          f"{args.test_examples:,} images (bench took {total_s:.0f} s).\n")
    reference = book[-1]["wall"]
    print("| loop | precision | train examples/s | vs book | eval examples/s | "
          "first step (s) |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| book: PIL resize + ToTensor, DataLoader workers, .item() per batch | fp32 | "
          f"{reference:,.0f} | 1.00x | | |")
    print(f"| book, as d2l's Timer counts it (data loading not timed) | fp32 | "
          f"{book[-1]['timer']:,.0f} | {book[-1]['timer'] / reference:.2f}x | | |")
    for r in rows:
        print(f"| {r['loop']} | {r['precision']} | {r['train_examples_per_sec']:,.0f} | "
              f"{r['train_examples_per_sec'] / reference:.2f}x | "
              f"{r['eval_examples_per_sec']:,.0f} | {r['first_step_s']:.1f} |")
    for f in failed:
        print(f"| {f['variant']}: FAILED, {f['error'].splitlines()[0][:150]} | | | | | |")
    if skipped:
        why = ("they need CUDA, or take minutes to compile on a CPU" if device.type != "cuda"
               else no_compiler)
        print(f"\nSkipped on {device.type} ({why}): {', '.join(skipped)}.")
    if ten:
        print(f"\n10 epochs of {ten['train_examples']:,} images at {args.input_size}, evaluating "
              f"on {ten['test_examples']:,} after each, variant {ten['variant']} "
              f"({ten['fields']}), in a new process: {ten['wall_s']:.1f} s from launch to exit "
              f"(Python, torch, CUDA and data start-up included; the compile cache is the one "
              f"the rows above filled), {ten['train_s']:.1f} s in train(), "
              f"{ten['train_examples_per_sec']:,.0f} train ex/s in the last epoch, test "
              f"accuracy {ten['final_test_acc']:.3f}.")
    save()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
