"""The networks the app starts from, each with the facts it must reproduce beside it.

Counts in comments are exact (weights + biases; FLOPs as torch.utils.flop_counter counts
one image's forward pass) and are asserted by tests/test_summary.py.
"""
from __future__ import annotations

from nin_explorer.net.spec import BlockSpec, NetSpec

MAX3 = dict(pool="max", pool_kernel=3, pool_stride=2)
MAX2 = dict(pool="max", pool_kernel=2, pool_stride=2)

# d2l.ai 7.3, Fashion-MNIST resized to 224: 1,992,166 parameters, 1,524,594,704 FLOPs.
D2L = NetSpec(
    name="d2l", in_channels=1, input_size=224, num_classes=10, head="gap",
    blocks=(
        BlockSpec(96, kernel=11, stride=4, padding=0, **MAX3),
        BlockSpec(256, kernel=5, stride=1, padding=2, **MAX3),
        BlockSpec(384, kernel=3, stride=1, padding=1, **MAX3, dropout=0.5),
        BlockSpec(10, kernel=3, stride=1, padding=1),
    ),
)

# Lin, Chen & Yan (2013), CIFAR-10: mlpconv 192-160-96 (5x5), 192-192-192 (5x5),
# 192-192-10 (3x3); Caffe's ceil-mode 3/2 pooling reproduced with padding 1 (32 -> 16 -> 8).
NIN_PAPER = NetSpec(
    name="nin-paper", in_channels=3, input_size=32, num_classes=10, head="gap",
    blocks=(
        BlockSpec(192, kernel=5, padding=2, extra_1x1_channels=(160, 96),
                  pool="max", pool_kernel=3, pool_stride=2, pool_padding=1, dropout=0.5),
        BlockSpec(192, kernel=5, padding=2,
                  pool="avg", pool_kernel=3, pool_stride=2, pool_padding=1, dropout=0.5),
        BlockSpec(192, kernel=3, padding=1, extra_1x1_channels=(192, 10)),
    ),
)

# A NiN for 28x28 that trains to 90% on `shapes` in well under a minute on a 2-core CPU:
# BatchNorm, widths 16-32-48, 2x2 pools, a 1x1 block to one 7x7 map per class, GAP.
TINY = NetSpec(
    name="tiny", in_channels=1, input_size=28, num_classes=10, head="gap",
    blocks=(
        BlockSpec(16, kernel=5, padding=2, batch_norm=True, **MAX2),
        BlockSpec(32, kernel=3, padding=1, batch_norm=True, **MAX2),
        BlockSpec(48, kernel=3, padding=1, batch_norm=True),
        BlockSpec(10, kernel=1, n_extra_1x1=0),
    ),
)

# d2l.ai 7.1, Fashion-MNIST at 224: 46,764,746 parameters, 1,876,292,352 FLOPs.
ALEXNET = NetSpec(
    name="alexnet", in_channels=1, input_size=224, num_classes=10, head="fc",
    fc_hidden=(4096, 4096), fc_dropout=0.5,
    blocks=(
        BlockSpec(96, kernel=11, stride=4, padding=1, kind="conv", **MAX3),
        BlockSpec(256, kernel=5, padding=2, kind="conv", **MAX3),
        BlockSpec(384, kernel=3, padding=1, kind="conv"),
        BlockSpec(384, kernel=3, padding=1, kind="conv"),
        BlockSpec(256, kernel=3, padding=1, kind="conv", **MAX3),
    ),
)


def _vgg11(name: str, divisor: int) -> NetSpec:
    convs = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    return NetSpec(
        name=name, in_channels=1, input_size=224, num_classes=10, head="fc",
        fc_hidden=(4096 // divisor, 4096 // divisor), fc_dropout=0.5,
        blocks=tuple(BlockSpec(c // divisor, kernel=3, padding=1, kind="conv", n_convs=n, **MAX2)
                     for n, c in convs),
    )


# d2l.ai 7.2 at 224: 128,806,154 parameters, 15,094,464,512 FLOPs.
VGG11 = _vgg11("vgg11", 1)
# The course notes' trainable VGG-11, every width / 8: 2,018,346 parameters, 242,182,144 FLOPs.
VGG11_NARROW = _vgg11("vgg11-narrow", 8)


def _inception(c1, c2, c3, c4, **pool) -> BlockSpec:
    return BlockSpec(kind="inception", paths=(c1, *c2, *c3, c4), **pool)


MAX3P = dict(pool="max", pool_kernel=3, pool_stride=2, pool_padding=1)

# d2l.ai 7.4, Fashion-MNIST at 96: 5,977,530 parameters, 552,132,608 FLOPs.
GOOGLENET = NetSpec(
    name="googlenet", in_channels=1, input_size=96, num_classes=10, head="gap-linear",
    blocks=(
        BlockSpec(64, kernel=7, stride=2, padding=3, kind="conv", **MAX3P),   # b1
        BlockSpec(64, kernel=1, kind="conv"),                                   # b2
        BlockSpec(192, kernel=3, padding=1, kind="conv", **MAX3P),
        _inception(64, (96, 128), (16, 32), 32),                                # b3
        _inception(128, (128, 192), (32, 96), 64, **MAX3P),
        _inception(192, (96, 208), (16, 48), 64),                               # b4
        _inception(160, (112, 224), (24, 64), 64),
        _inception(128, (128, 256), (24, 64), 64),
        _inception(112, (144, 288), (32, 64), 64),
        _inception(256, (160, 320), (32, 128), 128, **MAX3P),
        _inception(256, (160, 320), (32, 128), 128),                            # b5
        _inception(384, (192, 384), (48, 128), 128),
    ),
)

PRESETS: dict[str, NetSpec] = {
    s.name: s for s in (D2L, NIN_PAPER, TINY, ALEXNET, VGG11, VGG11_NARROW, GOOGLENET)
}

# Published counts (the sources named beside each preset) the summary must reproduce (None: none).
REFERENCE_COUNTS: dict[str, tuple[int, int | None]] = {
    "d2l": (1_992_166, 1_524_594_704),
    "alexnet": (46_764_746, 1_876_292_352),
    "vgg11": (128_806_154, 15_094_464_512),
    "vgg11-narrow": (2_018_346, 242_182_144),
    "googlenet": (5_977_530, 552_132_608),
}

DESCRIPTIONS = {
    "d2l": "The book's NiN (d2l.ai 7.3): Fashion-MNIST resized to 224x224.",
    "nin-paper": "The 2013 paper's CIFAR-10 NiN (3x32x32).",
    "tiny": "A small NiN with BatchNorm for 28x28 images; trains in about a minute on a laptop CPU.",
    "alexnet": "AlexNet as the book trains it on Fashion-MNIST (for comparison: big FC head).",
    "vgg11": "VGG-11 at 224x224 (for comparison: even bigger FC head).",
    "vgg11-narrow": "VGG-11 with every width divided by 8, as the course notes train it.",
    "googlenet": "GoogLeNet (Fashion-MNIST edition, 96x96): Inception blocks, GAP, one linear layer.",
}


def get_preset(name: str) -> NetSpec:
    try:
        return PRESETS[name]
    except KeyError:
        from nin_explorer.net.spec import SpecError
        raise SpecError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None
