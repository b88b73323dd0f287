"""What the app says to learners, in its own words: control help and explanations."""
from __future__ import annotations

from nin_explorer.net.summary import Summary

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
POOL_KERNEL = "Window of the pooling: the book's NiN pools 3x3 windows."
POOL_STRIDE = "Step of the pooling window: 2 roughly halves the height and width."
POOL_PADDING = "Padding around the input of the pooling (at most half the window)."
FC_LAYERS = "Hidden fully connected layers before the output layer (AlexNet and VGG have two)."
FC_WIDTH = "Units in each hidden layer (4,096 in AlexNet and VGG: most of their parameters)."
DROPOUT = "Randomly zeroes this share of activations while training (the book uses 0.5 before the last block)."
HEAD = ("`gap`: global average pooling of one map per class, no fully connected layer (NiN). "
        "`gap-linear`: average each map, then one linear layer (GoogLeNet). `fc`: flatten and "
        "fully connected layers (AlexNet, VGG), where most of their parameters live.")
FINAL_RELU = ("On: the last block ends in a ReLU, as in the book, so every class map and logit "
              "is >= 0, and once all maps are 0 the loss sits at ln(classes) with no gradient "
              "(NiN's trap). Off: the last conv's output is the class maps, free to go negative.")
BATCH = "Batch size for the memory estimate (activations grow linearly with it)."
PRECISION = "fp32, or bf16 autocast (activations in 2 bytes; weights stay fp32 plus bf16 copies)."
OPTIMIZER = "Optimiser state: SGD keeps none, momentum one copy of the weights, Adam two."
PARAMS = "Weights and biases of every conv, linear and BatchNorm layer, counted exactly."
MACS = "Multiply-adds (MACs) in conv and linear layers: half the FLOPs."
FLOPS = ("Floating-point operations for one image's forward pass, counted as "
         "torch.utils.flop_counter does: 2 per multiply-add in conv and linear layers; biases, "
         "ReLU, BatchNorm and pooling not counted (see 'About the numbers').")
AT_ONCE = (
    "How many queued runs train side by side, for everyone using this server. A run alone "
    "always gets every CPU core; with several at once each gets an equal share. Measured on a "
    "2-core CPU: a queue of four `tiny` runs on `shapes` finished 1.6x sooner with two at once "
    "(one core each) than one after the other; with two at once fighting over both cores it "
    "gained nothing (docs/BENCHMARKS.md). Small variants do not fill a large GPU either, so "
    "several at once may pay off there too, but that is not measured yet; with one at a time a "
    "machine with several GPUs trains each run on all of them (torchrun).")


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


def measured_memory_text(run_id: int, device: str, batch: int, est_train: int, got_train: int,
                         est_infer: int, got_infer: int, on_gpu: bool) -> str:
    from nin_explorer.net.render import human_bytes
    ratio = lambda got, est: f"{got / est:.2f}x the estimate" if est else ""
    text = (f"**Measured** in run #{run_id} on {device} at batch {batch}: training peak "
            f"{human_bytes(got_train)} ({ratio(got_train, est_train)}, estimate "
            f"{human_bytes(est_train)}); prediction peak {human_bytes(got_infer)} "
            f"({ratio(got_infer, est_infer)}, estimate {human_bytes(est_infer)}).")
    if on_gpu:
        return text + " On a GPU this is `torch.cuda.max_memory_allocated`: the tensors alone."
    return text + (" On a CPU the figure is the process's peak resident memory, which also holds "
                   "the Python interpreter, the torch library (several hundred MB) and the whole "
                   "data set, so it sits well above the network's own share.")


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


# --- GAP maps page ---

GAP_INTRO = (
    "NiN has no fully connected layer. Its last block outputs **one map per class**, and global "
    "average pooling turns each map into one number: **the mean of map c is the logit of class "
    "c**. So the maps show *where* the network finds evidence for each class. Pick a trained "
    "run and an image.")

CLASS_GRID = (
    "**Mean maps over the test set.** Row: the images' true class; column: the class channel. "
    "Each cell is that channel's map averaged over all test images of that class, on one colour "
    "scale. A network that has learned the task lights up the diagonal: the channel of class c "
    "responds to images of class c and stays dark for the others.")

GAP_TEACHING = """
**Why GAP works.** A conv layer already knows *where* things are; a fully connected head throws
that away by flattening, then needs many weights to relearn it (AlexNet's head holds 43 of its
47 M parameters). Averaging each class map asks a simpler question: *how much evidence for class
c is there anywhere in the image?* It has no weights to over-fit, and the network can take any
input size, because an average does not care how big the map is.

**What the maps show.** Bright cells are places where the last block's filters respond to class
c. Because the logit is the mean of the map, a small bright patch and a large faint area can give
the same logit; the softmax then compares the means across classes.

**Squeezing 384 channels into 10 in one step (exercise 4).** The book's last block goes from
384 channels to 10 with a 3x3 conv and then two 1x1 convs at 10 channels. Without those 1x1
convs, one linear map per pixel must turn 384 features straight into 10 class scores, with
only a ReLU and an average after it: the class maps have less room to combine evidence. Run it
on the Ablations page (exercise 4, or the factor *Last block*) and compare accuracy and how
often runs fail to learn.
"""


def maps_caption(kind: str) -> str:
    if kind == "gap":
        return ("The last block's maps, one per class, on one shared colour scale. The number "
                "after each class name is the map's mean: exactly the logit.")
    if kind == "cam":
        return ("Class activation maps (CAM): this network averages its last block's channels "
                "and then applies one linear layer, so the map of class c is the weighted sum "
                "of the channels with that layer's weights for c, plus its bias. Its mean is "
                "again the logit.")
    return ("Grad-CAM: this network flattens into fully connected layers, so no map's mean is a "
            "logit. Each map weighs the last conv channels by the average gradient of the "
            "class's logit, a common stand-in that shows where evidence comes from.")


def identity_text(kind: str, classes: list[str], means: list[float], logits: list[float],
                  gap: float, pred: int) -> str:
    if kind == "grad-cam":
        return ("**No identity here.** With a fully connected head, every logit depends on "
                "every position of every channel through the FC weights, so there is no map "
                "whose mean equals a logit; that is exactly what NiN's GAP head buys.")
    c = pred
    return (f"**Mean of map c = logit c**, for the predicted class *{classes[c]}*: mean of its map "
            f"= {means[c]:.6f}, logit = {logits[c]:.6f}. Over all {len(classes)} classes the "
            f"largest difference is {gap:.1e} (floating-point rounding).")


# --- Train page ---

TRAIN_VARIANT = "The network to train: the one you built on the Build page, or a preset."
TRAIN_DATASET = ("`shapes` is built in and works offline; the torchvision data sets are "
                 "downloaded on first use into the data folder (NIN_EXPLORER_DATA).")
TRAIN_RECIPE = ("`book`: the book's settings (Xavier init, plain SGD, fp32, no BatchNorm). "
                "`modern`: BatchNorm, momentum, a one-cycle schedule, label smoothing, bf16 on a GPU. "
                "`course`: what the course notes use for each network (Adam for AlexNet, VGG and "
                "NiN; SGD 0.1 for GoogLeNet at 96x96).")
TRAIN_PRECISION = "bf16 autocast is used on CUDA GPUs only; on a CPU it is far slower, so runs use fp32."
TRAIN_INPUT_SIZE = ("Images are resized to this size on the device, bilinearly, as the book's "
                    "Resize does (28 -> 224 for the d2l preset).")


def slow_warning(spec, device: str, epoch_s: float) -> str:
    from nin_explorer.runs.plan import human_duration
    return (f"This will be slow: about {human_duration(epoch_s)} per epoch on the {device.upper()}. "
            f"{spec.name} at {spec.input_size}x{spec.input_size} is made for a GPU. For a quick "
            "run here, pick the `tiny` preset, a smaller input size (28 works for tiny), or train "
            "on a subset of the examples.")


def diverged_text(reason: str | None) -> str:
    return (
        f"**The run diverged** ({reason or 'the loss stopped improving'}). The loss went back to "
        "about ln(10) = 2.303, the loss of guessing every class with probability 1/10. This is "
        "the collapse learners meet in the book at batch 256 or a learning rate that is a little "
        "too high: one large step pushes many ReLUs into the region where they output 0 for "
        "every input; they get no gradient and never recover ('dead ReLUs'), the class maps "
        "become constant and so do the logits. What to try: a lower learning rate (0.05), "
        "BatchNorm (the `modern` recipe), a warm-up, or a smaller batch at the same learning rate.")
