"""Plotly figures built from plain values (summaries, metric rows). No streamlit here."""
from __future__ import annotations

import plotly.graph_objects as go

from nin_explorer.net.render import human_bytes, human_count, shape_text
from nin_explorer.net.spec import NetSpec
from nin_explorer.net.summary import Summary

PALETTE = {"nin": "#4C78A8", "conv": "#F58518", "inception": "#54A24B", "pool": "#B8B8B8",
           "dropout": "#E0E0E0", "head": "#E45756"}


def block_bars_figure(summary: Summary) -> go.Figure:
    """Parameters and FLOPs per block, side by side on two axes."""
    names = [b.block for b in summary.blocks]
    fig = go.Figure()
    fig.add_bar(x=names, y=[b.params for b in summary.blocks], name="parameters",
                marker_color="#4C78A8", offsetgroup=0,
                hovertemplate="%{x}: %{y:,} parameters<extra></extra>")
    fig.add_bar(x=names, y=[b.flops for b in summary.blocks], name="FLOPs per image",
                marker_color="#F58518", offsetgroup=1, yaxis="y2",
                hovertemplate="%{x}: %{y:,} FLOPs<extra></extra>")
    fig.update_layout(
        barmode="group", height=340, margin=dict(l=10, r=10, t=30, b=10),
        yaxis=dict(title="parameters"), yaxis2=dict(title="FLOPs", overlaying="y", side="right"),
        legend=dict(orientation="h", y=1.12), title=None)
    return fig


def _block_label(spec: NetSpec, index: int) -> tuple[str, str]:
    b = spec.blocks[index]
    if b.kind == "nin":
        widths = b.extra_1x1_channels or (b.out_channels,) * b.n_extra_1x1
        inner = [f"Conv {b.kernel}x{b.kernel} s{b.stride} p{b.padding}, {b.out_channels}"]
        inner += [f"Conv 1x1, {w}" for w in widths]
        title = "NiN block"
    elif b.kind == "conv":
        inner = [f"{b.n_convs} x Conv {b.kernel}x{b.kernel}"
                 + (f" s{b.stride}" if b.stride > 1 else "") + f" p{b.padding}, {b.out_channels}"]
        title = "Conv block"
    else:
        c1, c2a, c2b, c3a, c3b, c4 = b.paths
        inner = [f"1x1 {c1}", f"1x1 {c2a} → 3x3 {c2b}", f"1x1 {c3a} → 5x5 {c3b}",
                 f"3x3 pool → 1x1 {c4}"]
        title = "Inception"
    if b.batch_norm:
        inner.append("BatchNorm after each conv")
    return title, "<br>".join(inner)


def diagram_figure(summary: Summary) -> go.Figure:
    """The network as a column of boxes, each labelled with its output shape."""
    spec = summary.spec
    items: list[tuple[str, str, str, str]] = []   # (title, detail, shape, colour)
    items.append(("Input", "", shape_text(summary.input_shape), "#FFFFFF"))
    for i, bt in enumerate(b for b in summary.blocks if b.block != "head"):
        b = spec.blocks[i]
        rows = [r for r in summary.rows if r.block == bt.block]
        conv_end = next((r for r in reversed(rows) if r.type in ("ReLU", "Concat")
                         and not (r.layer.path and r.type == "ReLU")), rows[0])
        title, detail = _block_label(spec, i)
        items.append((title, detail, shape_text(conv_end.output_shape), PALETTE[b.kind]))
        for r in rows:
            if r.layer.path:  # inside an Inception block's paths
                continue
            if r.name.endswith(".pool"):
                items.append((f"{'Max' if r.type == 'MaxPool2d' else 'Avg'} pool", r.settings,
                              shape_text(r.output_shape), PALETTE["pool"]))
            elif r.type == "Dropout":
                items.append(("Dropout", r.settings, shape_text(r.output_shape), PALETTE["dropout"]))
    head_rows = [r for r in summary.rows if r.block == "head"]
    if spec.head == "fc":
        detail = " → ".join(str(w) for w in (*spec.fc_hidden, spec.num_classes))
        items.append(("Flatten + fully connected", f"{detail} (dropout {spec.fc_dropout:g})",
                      shape_text(head_rows[-1].output_shape), PALETTE["head"]))
    else:
        detail = "mean of each map = logit" if spec.head == "gap" else "then Linear → classes"
        items.append(("Global average pool", detail, shape_text(head_rows[-1].output_shape),
                      PALETTE["head"]))

    # Shapes and annotations as plain dicts in one layout update: add_shape/add_annotation
    # validate one by one and cost ~10 ms each.
    step, shapes, notes = 1.0, [], []
    for k, (title, detail, shape, colour) in enumerate(items):
        y = -k * step
        shapes.append(dict(type="rect", x0=0, x1=6, y0=y - 0.38, y1=y + 0.38, fillcolor=colour,
                           opacity=0.9, line=dict(color="#333", width=1), layer="below"))
        dark = colour in (PALETTE["nin"], PALETTE["conv"], PALETTE["inception"], PALETTE["head"])
        if title == "Inception":  # the four paths side by side, joined below
            notes.append(dict(x=3, y=y + 0.27, text="<b>Inception</b> (paths joined on channels)",
                              showarrow=False, font=dict(size=11, color="white")))
            for j, path in enumerate(detail.split("<br>")[:4]):
                x0 = 0.1 + j * 1.475
                shapes.append(dict(type="rect", x0=x0, x1=x0 + 1.375, y0=y - 0.33, y1=y + 0.15,
                                   fillcolor="white", opacity=0.9, line=dict(width=0), layer="below"))
                notes.append(dict(x=x0 + 0.69, y=y - 0.09, text=path.replace(" → ", "<br>"),
                                  showarrow=False, font=dict(size=10, color="#222")))
        else:
            text = f"<b>{title}</b>" + (f"<br><span style='font-size:11px'>{detail}</span>" if detail else "")
            notes.append(dict(x=3, y=y, text=text, showarrow=False,
                              font=dict(size=12, color="white" if dark else "#222")))
        notes.append(dict(x=6.2, y=y, text=shape, showarrow=False, xanchor="left",
                          font=dict(size=12, family="monospace")))
        if k:
            notes.append(dict(x=3, y=y + 0.38, ax=3, ay=y + step - 0.38, xref="x", yref="y",
                              axref="x", ayref="y", showarrow=True, arrowhead=2, text=""))
    height = max(300, 88 * len(items))
    fig = go.Figure(layout=dict(
        shapes=shapes, annotations=notes, height=height, margin=dict(l=5, r=5, t=5, b=5),
        showlegend=False, plot_bgcolor="rgba(0,0,0,0)",
        xaxis=dict(visible=False, range=[-0.2, 8.2]),
        yaxis=dict(visible=False, range=[-(len(items) - 1) * step - 0.6, 0.6])))
    return fig


def compare_figure(rows: list[dict]) -> go.Figure:
    """Parameters (split into FC and the rest) for several networks, log scale."""
    names = [r["network"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=names, y=[r["params"] - r["fc_params"] for r in rows], name="conv layers",
                marker_color="#4C78A8", hovertemplate="%{x}: %{y:,}<extra>conv</extra>")
    fig.add_bar(x=names, y=[r["fc_params"] for r in rows], name="fully connected layers",
                marker_color="#E45756", hovertemplate="%{x}: %{y:,}<extra>FC</extra>")
    fig.update_layout(barmode="stack", height=340, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(title="parameters"), legend=dict(orientation="h", y=1.12))
    return fig


def memory_figure(summary: Summary) -> go.Figure:
    m = summary.memory
    parts = [("weights", m.weights_bytes), ("gradients", m.gradients_bytes),
             ("optimiser state", m.optimizer_bytes), ("bf16 weight copies", m.weight_copies_bytes),
             ("saved activations", m.saved_activations_bytes), ("workspace", m.workspace_bytes)]
    fig = go.Figure()
    for name, value in parts:
        if value:
            fig.add_bar(y=["training"], x=[value], name=name, orientation="h",
                        hovertemplate=f"{name}: {human_bytes(value)}<extra></extra>")
    for name, value in (("weights", m.weights_bytes + m.weight_copies_bytes),
                        ("live activations", m.infer_activations_bytes)):
        fig.add_bar(y=["prediction"], x=[value], name=f"{name} (prediction)", orientation="h",
                    hovertemplate=f"{name}: {human_bytes(value)}<extra></extra>")
    fig.update_layout(barmode="stack", height=260, margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(title="bytes"), legend=dict(orientation="h", y=-0.35))
    return fig


__all__ = ["block_bars_figure", "diagram_figure", "compare_figure", "memory_figure", "human_count"]


# --- GAP maps page ---

def _gutter(h: int) -> int:
    """Rows left empty above each map for its title (about a sixth of the map, at least 1)."""
    return max(1, round(h / 5))


def tile(maps, cols: int, gap: int = 1):
    """(N, h, w) maps -> one 2-D list with empty gutters, `cols` maps per row (one heatmap
    draws fast where a hundred subplots would not). Each map has a title gutter above it."""
    n, h, w = maps.shape
    rows, top = -(-n // cols), _gutter(h)
    grid = [[None] * (cols * (w + gap) - gap) for _ in range(rows * (h + top))]
    values = maps.tolist()
    for i in range(n):
        r0, c0 = (i // cols) * (h + top) + top, (i % cols) * (w + gap)
        for y in range(h):
            grid[r0 + y][c0:c0 + w] = values[i][y]
    return grid


def maps_grid_figure(maps, titles: list[str], cols: int, zmin: float | None = None,
                     zmax: float | None = None, colorscale: str = "Viridis",
                     cell_px: int = 110, overlay=None, row_labels: list[str] | None = None) -> go.Figure:
    """Maps (N, h, w) side by side with one shared colour scale; optional input underneath."""
    n, h, w = maps.shape
    rows = -(-n // cols)
    fig = go.Figure()
    if overlay is not None:  # the input upsampled to map resolution, drawn in grey below
        fig.add_heatmap(z=tile(overlay, cols), colorscale="Greys", reversescale=True,
                        showscale=False, hoverinfo="skip")
    fig.add_heatmap(z=tile(maps, cols), colorscale=colorscale, zmin=zmin, zmax=zmax,
                    opacity=0.55 if overlay is not None else 1.0,
                    colorbar=dict(thickness=12), hovertemplate="%{z:.3f}<extra></extra>")
    top = _gutter(h)
    notes = [dict(x=(i % cols) * (w + 1) + (w - 1) / 2, y=(i // cols) * (h + top) + top - 0.5,
                  text=titles[i], showarrow=False, yanchor="bottom", font=dict(size=11))
             for i in range(n) if titles[i]]
    for r, label in enumerate(row_labels or []):
        notes.append(dict(x=-0.7, y=r * (h + top) + top + (h - 1) / 2, text=label, showarrow=False,
                          xanchor="right", font=dict(size=11)))
    fig.update_layout(
        annotations=notes, height=rows * cell_px + 50,
        margin=dict(l=90 if row_labels else 5, r=5, t=30, b=5),
        xaxis=dict(visible=False, constrain="domain"),
        yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return fig


def image_figure(image, size_px: int = 220) -> go.Figure:
    """A (C, H, W) uint8 image, grey or colour."""
    if image.shape[0] == 1:
        fig = go.Figure(go.Heatmap(z=image[0].tolist(), colorscale="Greys", reversescale=True,
                                   showscale=False, hoverinfo="skip"))
    else:
        fig = go.Figure(go.Image(z=image.permute(1, 2, 0).tolist()))
    fig.update_layout(height=size_px, width=size_px, margin=dict(l=0, r=0, t=0, b=0),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed",
                                                            scaleanchor="x"))
    return fig


def logits_figure(logits: list[float], probs: list[float], classes: list[str]) -> go.Figure:
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, subplot_titles=("GAP value = logit", "softmax probability"))
    best = max(range(len(probs)), key=probs.__getitem__)
    colours = ["#E45756" if i == best else "#4C78A8" for i in range(len(classes))]
    fig.add_bar(x=classes, y=logits, marker_color=colours, row=1, col=1,
                hovertemplate="%{x}: %{y:.4f}<extra></extra>")
    fig.add_bar(x=classes, y=probs, marker_color=colours, row=1, col=2,
                hovertemplate="%{x}: %{y:.3f}<extra></extra>")
    fig.update_layout(height=300, showlegend=False, margin=dict(l=5, r=5, t=30, b=5))
    return fig


def confusion_figure(confusion, classes: list[str]) -> go.Figure:
    z = confusion.tolist()
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, colorscale="Blues", text=z,
                               texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=420, margin=dict(l=5, r=5, t=10, b=5), xaxis_title="predicted",
                      yaxis=dict(title="true", autorange="reversed"))
    return fig


def per_class_figure(accuracy: list[float], classes: list[str]) -> go.Figure:
    fig = go.Figure(go.Bar(x=classes, y=accuracy, marker_color="#54A24B",
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(height=280, margin=dict(l=5, r=5, t=10, b=5),
                      yaxis=dict(title="test accuracy", tickformat=".0%", range=[0, 1]))
    return fig


# --- training curves ---

def _downsample(rows: list[dict], limit: int = 400) -> list[dict]:
    """Keep at most `limit` points (every k-th, plus the last) so a live chart stays light."""
    if len(rows) <= limit:
        return rows
    k = -(-len(rows) // limit)
    return rows[::k] + ([rows[-1]] if (len(rows) - 1) % k else [])


def curves_figure(step_rows: list[dict], epoch_rows: list[dict], title: str = "") -> go.Figure:
    """Loss and accuracy against epochs: step-level points as lines, epoch ends as markers."""
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    steps = _downsample(step_rows)
    x = [r["epoch"] for r in steps]
    fig.add_scatter(x=x, y=[r["train_loss"] for r in steps], name="train loss (steps)",
                    line=dict(color="#4C78A8", width=1), row=1, col=1)
    fig.add_scatter(x=x, y=[r["train_acc"] for r in steps], name="train acc (steps)",
                    line=dict(color="#4C78A8", width=1), row=1, col=2)
    ex = [r["epoch"] for r in epoch_rows]
    fig.add_scatter(x=ex, y=[r["train_loss"] for r in epoch_rows], name="train loss (epoch)",
                    mode="lines+markers", line=dict(color="#1F3F66", width=2), row=1, col=1)
    if any(r.get("test_loss") is not None for r in epoch_rows):
        fig.add_scatter(x=ex, y=[r.get("test_loss") for r in epoch_rows], name="test loss",
                        mode="lines+markers", line=dict(color="#E45756", width=2), row=1, col=1)
    fig.add_scatter(x=ex, y=[r["train_acc"] for r in epoch_rows], name="train acc (epoch)",
                    mode="lines+markers", line=dict(color="#1F3F66", width=2), row=1, col=2)
    fig.add_scatter(x=ex, y=[r.get("test_acc") for r in epoch_rows], name="test acc",
                    mode="lines+markers", line=dict(color="#E45756", width=2), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=5, r=5, t=40, b=5), title=title or None,
                      legend=dict(orientation="h", y=-0.25), uirevision="keep")
    return fig


def update_curves(fig: go.Figure, step_rows: list[dict], epoch_rows: list[dict]) -> bool:
    """Put new rows into a curves_figure in place (a fifth of the time of building it again);
    False, and `fig` unchanged, if it needs another set of traces (then build it again)."""
    has_test_loss = any(r.get("test_loss") is not None for r in epoch_rows)
    if len(fig.data) != (6 if has_test_loss else 5):   # curves_figure's traces
        return False
    steps = _downsample(step_rows)
    x, ex = [r["epoch"] for r in steps], [r["epoch"] for r in epoch_rows]
    columns = [(x, [r["train_loss"] for r in steps]), (x, [r["train_acc"] for r in steps]),
               (ex, [r["train_loss"] for r in epoch_rows])]
    if has_test_loss:
        columns.append((ex, [r.get("test_loss") for r in epoch_rows]))
    columns += [(ex, [r["train_acc"] for r in epoch_rows]), (ex, [r.get("test_acc") for r in epoch_rows])]
    with fig.batch_update():
        for trace, (xs, ys) in zip(fig.data, columns):
            trace.x, trace.y = xs, ys
    return True


def overlay_figure(series: list[tuple[str, list[dict]]], metric: str = "test_acc",
                   colours: list[str] | None = None, x_title: str = "epoch") -> go.Figure:
    """One metric of several runs against epochs, or against the rows' "x" (noise.with_x)
    when they have one (Compare and Ablation pages)."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(series):
        fig.add_scatter(x=[r.get("x", r["epoch"]) for r in rows], y=[r.get(metric) for r in rows], name=name,
                        mode="lines+markers",
                        line=dict(color=colours[i]) if colours else None)
    fig.update_layout(height=360, margin=dict(l=5, r=5, t=10, b=5), xaxis_title=x_title,
                      yaxis_title=metric.replace("_", " "), legend=dict(orientation="h", y=-0.2),
                      uirevision="keep")
    if metric.endswith("acc"):
        fig.update_yaxes(tickformat=".0%")
    return fig
