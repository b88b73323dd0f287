"""What the app says to learners, in its own words: control help and explanations."""
from __future__ import annotations

from .summary import Summary

PRESET = ("Start from a known network. `d2l` is the book's NiN, `nin-paper` the 2013 paper's "
          "CIFAR-10 net, `tiny` trains in about a minute on a laptop CPU; AlexNet, VGG and "
          "GoogLeNet are there to compare with.")
INPUT_SIZE = ("Height and width of the image the network sees. The book resizes 28x28 "
              "Fashion-MNIST to 224x224 so that the AlexNet-sized first layer fits.")
IN_CHANNELS = "1 for grayscale (Fashion-MNIST, shapes), 3 for colour (CIFAR-10)."
CLASSES = ("How many classes the network tells apart. With a GAP head the last block must have "
           "exactly this many channels: one map per class.")
N_BLOCKS = "How many blocks. Extra blocks copy the defaults below; remove blocks from the end."
KIND = ("`nin`: a k x k conv followed by 1x1 convs (NiN). `conv`: plain k x k convs (AlexNet, "
        "VGG). `inception`: four parallel paths joined on channels (GoogLeNet).")
PATHS = ("Six widths: the 1x1 path (c1); the 1x1 reduction and 3x3 conv (c2a, c2b); the 1x1 "
         "reduction and 5x5 conv (c3a, c3b); the 1x1 after 3x3 max pooling (c4).")
OUT_CHANNELS = "Feature maps this block produces. Parameters grow with in x out channels."
KERNEL = "Size of the square window of the block's first conv."
STRIDE = "Step of the first conv's window: 2 halves the height and width, 4 quarters them."
PADDING = "Zeros added around the input; (kernel - 1) / 2 keeps the size at stride 1."
EXTRA_1X1 = ("A 1x1 conv is a small fully connected layer applied at every pixel across "
             "channels: it mixes channels without looking at neighbours. NiN uses two after "
             "each conv; the book's second exercise asks what happens with one.")
WIDTHS_1X1 = ("Widths of the extra 1x1 convs when they differ from the block's channels (the "
              "2013 paper's first block is 192-160-96), e.g. '160, 96'.")
N_CONVS = "Convs of the same size in a row (VGG stacks two 3x3 convs where AlexNet has one 5x5)."
BATCH_NORM = ("Normalises each channel over the batch after every conv. Not in the book's NiN; it "
              "makes training far less sensitive to learning rate and initialisation.")
POOL = "Max or average pooling after the block shrinks the maps; `none` keeps their size."
DROPOUT = "Randomly zeroes this share of activations while training (the book uses 0.5 before the last block)."
HEAD = ("`gap`: global average pooling of one map per class, no fully connected layer (NiN). "
        "`gap-linear`: average each map, then one linear layer (GoogLeNet). `fc`: flatten and "
        "fully connected layers (AlexNet, VGG), where most of their parameters live.")
BATCH = "Batch size for the memory estimate (activations grow linearly with it)."
PRECISION = "fp32, or bf16 autocast (activations in 2 bytes; weights stay fp32 plus bf16 copies)."
OPTIMIZER = "Optimiser state: SGD keeps none, momentum one copy of the weights, Adam two."
PARAMS = "Weights and biases of every conv, linear and BatchNorm layer, counted exactly."
FLOPS = ("Floating-point operations for one image's forward pass, counted as "
         "torch.utils.flop_counter does: 2 per multiply-add in conv and linear layers; biases, "
         "ReLU, BatchNorm and pooling not counted (see 'About the numbers').")
MACS = "Multiply-adds (MACs) in conv and linear layers: half the FLOPs."


def gap_saving(g: dict) -> str:
    c, h, w = g["map"]
    k = g["classes"]
    return (
        f"**Why GAP saves parameters.** The map that reaches the classifier is {c} x {h} x {w}. "
        f"Flattening it into a linear layer for {k} classes needs {c * h * w:,} x {k} = "
        f"**{g['flatten_linear_weights']:,}** weights; averaging each of the {c} maps first "
        f"(GAP) and then a {c} → {k} layer needs {c} x {k} = **{g['gap_linear_weights']:,}**, "
        f"{g['ratio']}x fewer (the book's example: 32 x 10 x 10 into 2 classes is 3,200 x 2 "
        f"against 32 x 2). NiN goes one step further: its last block already outputs one map "
        f"per class, so the mean of map c *is* the logit of class c and there is no fully "
        f"connected layer at all. Fewer parameters means less over-fitting, and any input size "
        f"works because averaging does not care how big the maps are.")


def about_numbers(s: Summary) -> str:
    other = s.flops + s.other_ops
    text = (
        f"**What is counted.** Parameters are every weight and bias: **{s.params:,}**. FLOPs are "
        f"what `torch.utils.flop_counter` reports for one image: 2 per multiply-add in convs "
        f"and linear layers, **{s.flops:,}** ({s.macs:,} multiply-adds). Bias additions, "
        f"ReLU, BatchNorm and pooling add another {s.other_ops:,} elementwise operations "
        f"({other:,} in all) that the counter ignores.")
    if s.spec.name == "d2l":
        text += (
            "\n\n**The '1.92 M / 1.55 G' figures that circulate.** The book's NiN has exactly "
            "1,992,166 parameters, about **1.99 M** (or 1.90 Mi if divided by 2^20), and "
            "1,524,594,704 FLOPs, about **1.52 G** (762 M multiply-adds). No way of counting "
            "that we know of gives 1.92 M: without biases it is 1,989,928; '1.92' looks like "
            "1.99 with digits swapped. Adding every bias, ReLU and pooling operation gives "
            f"{other / 1e9:.4f} G, still short of 1.55 G; that figure is best read as a loose "
            "rounding of 1.52-1.53 G. The exact numbers here are checked in the tests against "
            "the built PyTorch module and torch's own FLOP counter.")
    return text
