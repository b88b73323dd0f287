"""Plain-value renderings of a Summary: table rows, text table, JSON, human units."""
from __future__ import annotations

from nin_explorer.net.summary import Summary


def human_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g}"


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} B"


def shape_text(shape: tuple) -> str:
    return " x ".join(str(d) for d in shape)


def table_rows(summary: Summary, include_relu: bool = True) -> list[dict]:
    """One dict per layer, ready for a dataframe or a CSV."""
    return [
        {"#": r.index, "block": r.block, "layer": r.name, "type": r.type,
         "settings": r.settings, "output": shape_text(r.output_shape), "params": r.params,
         "MACs": r.macs, "FLOPs": r.flops, "activations": r.activations}
        for r in summary.rows if include_relu or r.type != "ReLU"
    ]


def block_rows(summary: Summary) -> list[dict]:
    return [{"block": b.block, "output": shape_text(b.output_shape), "params": b.params,
             "MACs": b.macs, "FLOPs": b.flops, "activations": b.activations}
            for b in summary.blocks]


def summary_json(summary: Summary) -> dict:
    m = summary.memory
    return {
        "layers": [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape),
                    "params": r.params, "flops": r.flops} for r in summary.rows],
        "totals": {"params": summary.params, "flops": summary.flops,
                   "train_memory_bytes": m.train_bytes, "infer_memory_bytes": m.infer_bytes},
    }


def summary_text(summary: Summary) -> str:
    head = ("#", "layer", "type", "settings", "output", "params", "FLOPs")
    body = [(str(r.index), r.name, r.type, r.settings, shape_text(r.output_shape),
             f"{r.params:,}", f"{r.flops:,}") for r in summary.rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = lambda cells: "  ".join(c.rjust(w) if i >= 5 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    m = summary.memory
    out = [line(head), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line(b) for b in body]
    out += [
        "",
        f"input {shape_text(summary.input_shape)}; parameters {summary.params:,}; "
        f"FLOPs per image {summary.flops:,} ({summary.macs:,} multiply-adds)",
        f"memory at batch {m.batch_size} ({m.precision}, {m.optimizer}): training "
        f"{human_bytes(m.train_bytes)}, prediction {human_bytes(m.infer_bytes)}",
    ]
    return "\n".join(out)
