"""Measured peak memory against the Build page's estimate (issue 5), on a CUDA GPU.

Run on a machine with CUDA:  PYTHONPATH=. python3 bench/memory_gpu.py
(needs only torch; no streamlit or plotly). Prints a markdown table for docs/BENCHMARKS.md.
Without CUDA it prints the estimates only, so the script can be checked anywhere.

The step is set up as nin_explorer.learn.train sets up a CUDA run (channels-last model and input,
cudnn.benchmark on), so its peaks are what the app records for a run, less the run's uint8
data set kept on the GPU (47 MB for 60,000 28x28 images).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nin_explorer.net.build import build_model, init_xavier  # noqa: E402
from nin_explorer.net.presets import PRESETS  # noqa: E402
from nin_explorer.net.summary import summarize  # noqa: E402

# fused, as train() builds them on CUDA
OPTIMIZERS = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, fused=True),
              "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, fused=True),
              "adam": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True)}


def measure(spec, batch: int, precision: str, optimizer: str) -> tuple[int, int]:
    """(peak bytes of a training step after warm-up, peak bytes of a no-grad forward)."""
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True            # as train() does on CUDA
    model = build_model(spec)
    init_xavier(model)
    model = model.to(dev, memory_format=torch.channels_last)
    opt = OPTIMIZERS[optimizer](model.parameters())
    x = torch.rand(batch, spec.in_channels, spec.input_size, spec.input_size, device=dev)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, spec.num_classes, (batch,), device=dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):  # optimiser state and autocast caches exist after the first steps
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    train_peak = torch.cuda.max_memory_allocated()
    del opt
    model.eval()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), autocast:
        model(x)
    torch.cuda.synchronize()
    return train_peak, torch.cuda.max_memory_allocated()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", default="d2l,tiny,googlenet,vgg11-narrow")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else "no CUDA: estimates only"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}\n")
    print("| preset | precision | optimiser | train estimate MiB | train measured MiB | ratio | "
          "predict estimate MiB | predict measured MiB | ratio |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    mib = 2**20
    for preset in args.presets.split(","):
        spec = PRESETS[preset]
        for precision, optimizer in (("fp32", "sgd"), ("fp32", "adam"), ("bf16", "sgd-momentum")):
            m = summarize(spec, args.batch, precision, optimizer).memory
            if cuda:
                train, infer = measure(spec, args.batch, precision, optimizer)
                got = (f"{train / mib:,.0f} | {train / m.train_bytes:.2f} | {m.infer_bytes / mib:,.0f} | "
                       f"{infer / mib:,.0f} | {infer / m.infer_bytes:.2f}")
            else:
                got = f"- | - | {m.infer_bytes / mib:,.0f} | - | -"
            print(f"| {preset} | {precision} | {optimizer} | {m.train_bytes / mib:,.0f} | {got} |")


if __name__ == "__main__":
    main()
