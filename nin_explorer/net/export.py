"""Take a variant away: a self-contained PyTorch snippet, and a share link's query string."""
from __future__ import annotations

import base64
import binascii
import json
import zlib

from nin_explorer.net.presets import PRESETS
from nin_explorer.net.spec import BlockSpec, NetSpec, SpecError

MAX_QUERY_CHARS = 4000
MAX_INFLATED_BYTES = 100_000

_HELPERS = {
    "nin": '''
def nin_block(in_channels, out_channels, kernel_size, stride, padding, widths_1x1, batch_norm=False):
    """A k x k conv, then 1x1 convs ("a small MLP at every pixel"), each followed by ReLU."""
    layers, c = [], in_channels
    for width, k, s, p in [(out_channels, kernel_size, stride, padding)] + [(w, 1, 1, 0) for w in widths_1x1]:
        layers.append(nn.Conv2d(c, width, k, s, p))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU())
        c = width
    return nn.Sequential(*layers)
''',
    "conv": '''
def conv_block(in_channels, out_channels, kernel_size, stride, padding, n_convs, batch_norm=False):
    """n_convs k x k convs (stride on the first), each followed by ReLU, as in AlexNet/VGG."""
    layers, c = [], in_channels
    for i in range(n_convs):
        layers.append(nn.Conv2d(c, out_channels, kernel_size, stride if i == 0 else 1, padding))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        c = out_channels
    return nn.Sequential(*layers)
''',
    "inception": '''
class Inception(nn.Module):
    """GoogLeNet's block: four parallel paths concatenated on channels."""

    def __init__(self, in_channels, c1, c2a, c2b, c3a, c3b, c4, batch_norm=False):
        super().__init__()

        def conv(i, o, k, p=0):
            bn = [nn.BatchNorm2d(o)] if batch_norm else []
            return [nn.Conv2d(i, o, k, padding=p), *bn, nn.ReLU()]

        self.p1 = nn.Sequential(*conv(in_channels, c1, 1))
        self.p2 = nn.Sequential(*conv(in_channels, c2a, 1), *conv(c2a, c2b, 3, 1))
        self.p3 = nn.Sequential(*conv(in_channels, c3a, 1), *conv(c3a, c3b, 5, 2))
        self.p4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv(in_channels, c4, 1))

    def forward(self, x):
        return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], dim=1)
''',
}


def _block_lines(b: BlockSpec, in_channels: int) -> list[str]:
    bn = ", batch_norm=True" if b.batch_norm else ""
    if b.kind == "nin":
        widths = tuple(b.extra_1x1_channels or (b.out_channels,) * b.n_extra_1x1)
        lines = [f"nin_block({in_channels}, {b.out_channels}, kernel_size={b.kernel}, "
                 f"stride={b.stride}, padding={b.padding}, widths_1x1={widths!r}{bn}),"]
    elif b.kind == "conv":
        lines = [f"conv_block({in_channels}, {b.out_channels}, kernel_size={b.kernel}, "
                 f"stride={b.stride}, padding={b.padding}, n_convs={b.n_convs}{bn}),"]
    else:
        lines = [f"Inception({in_channels}, {', '.join(map(str, b.paths))}{bn}),"]
    if b.pool != "none":
        cls = "MaxPool2d" if b.pool == "max" else "AvgPool2d"
        lines.append(f"nn.{cls}({b.pool_kernel}, stride={b.pool_stride}, padding={b.pool_padding}),")
    if b.dropout > 0:
        lines.append(f"nn.Dropout({b.dropout:g}),")
    return lines


def pytorch_snippet(spec: NetSpec) -> str:
    """Code that builds a module with the same shapes and parameter count as `spec`."""
    from nin_explorer.net.summary import summarize

    summary = summarize(spec)
    kinds = sorted({b.kind for b in spec.blocks}, key=list(_HELPERS).index)
    body: list[str] = []
    c = spec.in_channels
    for i, b in enumerate(spec.blocks, start=1):
        body.append(f"# block {i}")
        lines = _block_lines(b, c)
        if i == len(spec.blocks) and not spec.final_relu:   # the block's modules, less its ReLU
            lines[0] = f"*{lines[0][:-1]}[:-1],  # without its final ReLU: logits may be negative"
        body += lines
        c = b.channels_out
    body.append("# head")
    if spec.head in ("gap", "gap-linear"):
        body += ["nn.AdaptiveAvgPool2d(1),  # global average pooling", "nn.Flatten(),"]
        if spec.head == "gap-linear":
            body.append(f"nn.Linear({c}, {spec.num_classes}),")
    else:
        features = next(r for r in summary.rows if r.type == "Flatten").output_shape[0]
        body.append("nn.Flatten(),")
        for w in spec.fc_hidden:
            body.append(f"nn.Linear({features}, {w}), nn.ReLU(),"
                        + (f" nn.Dropout({spec.fc_dropout:g})," if spec.fc_dropout > 0 else ""))
            features = w
        body.append(f"nn.Linear({features}, {spec.num_classes}),")
    shape = ", ".join(map(str, summary.input_shape))
    return "\n".join([
        f'"""{spec.name}: {summary.params:,} parameters, {summary.flops:,} FLOPs per image.',
        "",
        'Exported from NiN Explorer."""',
        "import torch",
        "from torch import nn",
        *[_HELPERS[k] for k in kinds],
        "",
        "net = nn.Sequential(",
        *[f"    {line}" for line in body],
        ")",
        "",
        'if __name__ == "__main__":',
        f"    x = torch.zeros(1, {shape})",
        "    print(net(x).shape, sum(p.numel() for p in net.parameters()))",
        "",
    ])


# --- share links: ?preset=NAME when unchanged, else ?spec=<urlsafe base64 of deflated JSON> ---

def to_query(spec: NetSpec) -> dict[str, str]:
    if PRESETS.get(spec.name) == spec:
        return {"preset": spec.name}
    raw = zlib.compress(json.dumps(spec.to_dict(), separators=(",", ":")).encode(), 9)
    return {"spec": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def from_query(params: dict) -> NetSpec | None:
    """The spec a share link names, None if it names none; SpecError if it is malformed."""
    if "spec" in params:
        text = str(params["spec"])
        if len(text) > MAX_QUERY_CHARS:
            raise SpecError("The link's spec is too long to be a network; showing the preset instead.")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            inflater = zlib.decompressobj()
            data = inflater.decompress(raw, MAX_INFLATED_BYTES)
            if inflater.unconsumed_tail:
                raise SpecError("The link's spec unpacks to too much data; showing the preset instead.")
            d = json.loads(data)
        except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError, RecursionError) as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError("The link's spec is damaged (it does not decode); "
                            "showing the preset instead.") from None
        return NetSpec.from_dict(d)
    if "preset" in params:
        name = str(params["preset"])
        if name not in PRESETS:
            raise SpecError(f"The link names an unknown preset {name[:40]!r}; "
                            f"known: {', '.join(PRESETS)}.")
        return PRESETS[name]
    return None
