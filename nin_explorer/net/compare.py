"""How the current variant compares: AlexNet, VGG-11, and itself with a fully connected head."""
from __future__ import annotations

from nin_explorer.net.presets import ALEXNET, VGG11
from nin_explorer.net.spec import NetSpec
from nin_explorer.net.summary import Summary, TooLargeError, summarize


def fc_variant(spec: NetSpec, hidden: tuple[int, ...] = (4096, 4096)) -> NetSpec:
    """The same convs with AlexNet's head: flatten, hidden FC layers with dropout, classes.

    With a `gap` head the last block exists only to make one map per class, so it is dropped
    and the head reads the block before it (for d2l: 384 x 5 x 5, as AlexNet reads 256 x 5 x 5).
    """
    blocks = spec.blocks[:-1] if spec.head == "gap" and len(spec.blocks) > 1 else spec.blocks
    return spec.replace(name=f"{spec.name} + FC head", blocks=blocks, head="fc",
                        fc_hidden=hidden, fc_dropout=0.5)


def _row(label: str, s: Summary) -> dict:
    return {"network": label, "params": s.params, "fc_params": s.fc_params, "flops": s.flops,
            "train_memory_bytes": s.memory.train_bytes, "infer_memory_bytes": s.memory.infer_bytes,
            "input": "x".join(map(str, s.input_shape))}


def compare_rows(spec: NetSpec, batch_size: int = 128, precision: str = "fp32",
                 optimizer: str = "sgd") -> list[dict]:
    """Totals for the variant, its FC-head twin, AlexNet and VGG-11 (each at its own input)."""
    args = (batch_size, precision, optimizer)
    rows = [_row(f"this variant ({spec.name})", summarize(spec, *args))]
    if spec.head != "fc":
        label = "same convs, FC head 4096-4096"
        try:
            rows.append(_row(label, summarize(fc_variant(spec), *args)))
        except TooLargeError as e:   # e.g. one block, no pool, 512 px: a 16 x 512 x 512 flatten
            rows.append({"network": f"{label}: too large to compare ({e.params:.2g} parameters)",
                         "params": e.params, "fc_params": e.fc_params, "flops": None,
                         "train_memory_bytes": None, "infer_memory_bytes": None, "input": None})
    rows += [_row("AlexNet", summarize(ALEXNET, *args)), _row("VGG-11", summarize(VGG11, *args))]
    return rows


def gap_example(summary: Summary) -> dict:
    """The book's 3,200 x 2 vs 32 x 2 example, on the map that reaches the classifier.

    For a `gap` head that is the input of the last block (the block that makes class maps).
    """
    spec = summary.spec
    if spec.head == "gap" and len(summary.blocks) > 2:
        c, h, w = summary.blocks[-3].output_shape
    else:
        c, h, w = [b for b in summary.blocks if b.block != "head"][-1].output_shape
    k = spec.num_classes
    return {"map": (c, h, w), "classes": k, "flatten_linear_weights": c * h * w * k,
            "gap_linear_weights": c * k, "ratio": h * w}
