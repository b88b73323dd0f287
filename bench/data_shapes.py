"""How fast is `shapes` made, and is it hard enough? Prints a markdown table.

    python bench/data_shapes.py          # generation time + logistic regression, both difficulties
    python bench/data_shapes.py --nin    # also: seconds of training until a small NiN reaches 90%

Targets: 60,000 + 10,000 images in under 5 s; logistic regression on raw pixels below 70%;
a small NiN with BatchNorm at 90% within ~40 s of training on `shapes`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nin_explorer.learn.shapes import SHAPES_SEED, make_shapes  # noqa: E402


def generation_seconds(hard: bool, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make_shapes(60_000, SHAPES_SEED, hard)
        make_shapes(10_000, SHAPES_SEED + 1, hard)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255).sub_(0.5)


def logistic_regression_accuracy(train, test, steps: int = 4000, batch: int = 256) -> float:
    torch.manual_seed(0)
    x, y = as_float(train.images).flatten(1), train.labels
    model = nn.Linear(x.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = torch.randint(0, len(x), (batch,))
        loss = nn.functional.cross_entropy(model(x[pick]), y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (model(as_float(test.images).flatten(1)).argmax(1) == test.labels).float().mean().item()


def small_nin() -> nn.Sequential:
    def block(in_ch, out_ch, kernel):
        layers = []
        for i, k in enumerate((kernel, 1, 1)):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, k, padding=k // 2, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU()]
        return layers

    return nn.Sequential(
        *block(1, 16, 5), nn.MaxPool2d(2),
        *block(16, 32, 3), nn.MaxPool2d(2),
        *block(32, 48, 3),
        nn.Conv2d(48, 10, 1), nn.ReLU(),  # (B, 10, 7, 7): one map per class
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # GAP: (B, 10, 7, 7) -> (B, 10)
    )


def nin_time_to(train, test, centers, radii, target: float, epochs: int, eval_every: int = 50):
    """Train the small NiN; return (steps to `target` test accuracy, median step seconds, final accuracy,
    map hit rate). Steps x median step time is the training time to the target, robust to other
    processes stealing the CPU now and then (which slows 2-thread torch ops by 10x or more)."""
    torch.manual_seed(0)
    model = small_nin().to(memory_format=torch.channels_last)
    batch = 128
    steps = epochs * (len(train.labels) // batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=steps)
    x_test = as_float(test.images).contiguous(memory_format=torch.channels_last)

    def evaluate():
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)])
        model.train()
        return (logits.argmax(1) == test.labels).float().mean().item()

    step_s, reached_steps, accuracy = [], None, 0.0
    for step in range(steps):
        start = time.perf_counter()
        pick = torch.randint(0, len(train.labels), (batch,))
        x = as_float(train.images[pick]).contiguous(memory_format=torch.channels_last)
        loss = nn.functional.cross_entropy(model(x), train.labels[pick], label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        step_s.append(time.perf_counter() - start)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            accuracy = evaluate()  # not counted as training time
            print(f"  step {step + 1:5d}  {sum(step_s):6.1f} s  test {accuracy:.3f}", file=sys.stderr)
            if reached_steps is None and accuracy >= target:
                reached_steps = step + 1

    # --- do the GAP maps find the shape? the true class's map should peak near the shape's centre ---
    model.eval()
    with torch.no_grad():
        maps = torch.cat([model[:-2](x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)])  # (N, 10, 7, 7)
    true_maps = maps[torch.arange(len(maps)), test.labels].flatten(1)  # (N, 49)
    peak = true_maps.argmax(1)
    cell_px = 28 / 7
    peak_xy = torch.stack([peak % 7, peak // 7], dim=1).float() * cell_px + (cell_px - 1) / 2
    hit_rate = ((peak_xy - centers).norm(dim=1) <= radii).float().mean().item()
    return reached_steps, statistics.median(step_s), accuracy, hit_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nin", action="store_true", help="also train the small NiN (a few minutes)")
    parser.add_argument("--epochs", type=int, default=2, help="one-cycle length for --nin")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name, hard in (("shapes", False), ("shapes-hard", True)):
        gen_s = generation_seconds(hard)
        train, test = make_shapes(60_000, SHAPES_SEED, hard), make_shapes(10_000, SHAPES_SEED + 1, hard)
        row = [name, f"{gen_s:.2f}", f"{logistic_regression_accuracy(train, test):.1%}"]
        if args.nin:
            reached, median_step_s, final, hits = nin_time_to(train, test, test.centers, test.radii, 0.9, args.epochs)
            to_90 = "never" if reached is None else f"{reached} steps, {reached * median_step_s:.0f} s"
            row += [to_90, f"{128 / median_step_s:,.0f}", f"{final:.1%}", f"{hits:.0%}"]
        rows.append(row)
        print(f"{name} done", file=sys.stderr)

    header = ["data set", "generate 60k+10k (s, median of 3)", "logistic regression (test)"]
    if args.nin:
        header += [f"NiN to 90% test ({args.epochs}-epoch one-cycle)", "NiN train img/s (median step)",
                   "NiN final (test)", "true-class map peaks on the shape"]
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
