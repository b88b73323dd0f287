"""NiN among its neighbours: AlexNet and VGG before it, GoogLeNet after it.

Static figures come from the summaries; measured ones from runs in the store that trained
these networks on the same data for the same number of epochs.
"""
from __future__ import annotations

from nin_explorer.net.presets import ALEXNET, D2L, GOOGLENET, VGG11
from nin_explorer.net.summary import summarize

LINEAGE = (("AlexNet (2012)", ALEXNET), ("VGG-11 (2014)", VGG11), ("NiN (2013)", D2L),
           ("GoogLeNet (2014)", GOOGLENET))

STORY = """
**AlexNet → VGG.** Both end in two 4,096-wide fully connected layers; VGG replaces AlexNet's
large kernels with stacks of 3x3 convs in repeated blocks. Their FC heads hold most of the
parameters: 92% of AlexNet's and 93% of VGG-11's.

**NiN.** Replaces the FC head with global average pooling of one map per class, and adds 1x1
convs after each conv: a small multilayer perceptron at every pixel. Parameters fall to 2 M
(from 47 M for AlexNet) at a similar cost in FLOPs.

**GoogLeNet.** Carries both ideas on. Inception blocks use 1x1 convs to cut channels before the
expensive 3x3 and 5x5 convs (watch the sub-rows on the Build page), and the head is GAP followed
by a single small linear layer. At 96x96 it needs 6 M parameters and a third of NiN's FLOPs.
"""


def lineage_rows(batch_size: int = 128, precision: str = "fp32") -> list[dict]:
    rows = []
    for label, spec in LINEAGE:
        s = summarize(spec, batch_size, precision)
        rows.append({"network": label, "preset": spec.name,
                     "input": f"{spec.in_channels}x{spec.input_size}x{spec.input_size}",
                     "params": s.params, "fc_params": s.fc_params,
                     "fc_share": s.fc_params / s.params, "flops": s.flops,
                     "train_memory_bytes": s.memory.train_bytes,
                     "infer_memory_bytes": s.memory.infer_bytes})
    return rows
