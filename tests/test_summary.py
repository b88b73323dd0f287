"""The summary against independent oracles: the built module and torch's FLOP counter."""
import random

import pytest

from nin_explorer.net.presets import D2L, PRESETS, REFERENCE_COUNTS, TINY
from nin_explorer.net.spec import BlockSpec, NetSpec, SpecError
from nin_explorer.net.summary import MAX_PARAMS, ShapeError, summarize
from test_build import assert_matches_oracle  # the built module is the summary's oracle

# The output shapes d2l.ai 7.3 prints for its NiN at 224: (layer, output shape) of the d2l preset.
D2L_SHAPES = {
    "block1.relu2": (96, 54, 54), "block1.pool": (96, 26, 26),
    "block2.relu2": (256, 26, 26), "block2.pool": (256, 12, 12),
    "block3.relu2": (384, 12, 12), "block3.pool": (384, 5, 5), "block3.dropout": (384, 5, 5),
    "block4.relu2": (10, 5, 5), "head.gap": (10, 1, 1), "head.flatten": (10,),
}


def test_d2l_matches_the_book():
    s = summarize(D2L)
    rows = {r.name: r.output_shape for r in s.rows}
    for name, shape in D2L_SHAPES.items():
        assert rows[name] == shape, name
    assert s.params == 1_992_166
    assert s.flops == 1_524_594_704
    assert s.macs == 762_297_352


@pytest.mark.parametrize("name", REFERENCE_COUNTS)
def test_reference_counts(name):
    params, flops = REFERENCE_COUNTS[name]
    s = summarize(PRESETS[name])
    assert (s.params, s.flops) == (params, flops)


def random_spec(rng: random.Random) -> NetSpec:
    n_blocks = rng.randint(1, 4)
    classes = rng.randint(2, 12)
    head = rng.choice(["gap", "gap-linear", "fc"])
    blocks = []
    for i in range(n_blocks):
        kind = rng.choice(["nin", "nin", "conv", "inception"])
        k = rng.choice([1, 2, 3, 5])
        pool = rng.choice(["max", "avg", "none"])
        pk = rng.choice([2, 3])
        common = dict(batch_norm=rng.random() < 0.3, pool=pool, pool_kernel=pk,
                      pool_stride=rng.choice([1, 2]), pool_padding=rng.choice([0, pk // 2]),
                      dropout=rng.choice([0.0, 0.0, 0.3]))
        if kind == "inception":
            blocks.append(BlockSpec(kind="inception",
                                    paths=tuple(rng.randint(1, 8) for _ in range(6)), **common))
        else:
            n_extra = rng.randint(0, 3)
            widths = tuple(rng.randint(1, 16) for _ in range(n_extra)) if rng.random() < 0.2 else ()
            blocks.append(BlockSpec(
                rng.randint(1, 24), kernel=k, stride=rng.choice([1, 1, 2]),
                padding=rng.randint(0, k // 2 + 1), kind=kind, n_extra_1x1=n_extra if kind == "nin" else 0,
                extra_1x1_channels=widths if kind == "nin" else (), n_convs=rng.randint(1, 2),
                **common))
    if head == "gap":
        last = blocks[-1]
        blocks[-1] = BlockSpec(classes, kernel=last.kernel if last.kind != "inception" else 1,
                               padding=last.padding if last.kind != "inception" else 0,
                               n_extra_1x1=rng.randint(0, 2))
    return NetSpec(name="random", in_channels=rng.choice([1, 3]), input_size=rng.randint(8, 48),
                   num_classes=classes, blocks=tuple(blocks), head=head,
                   fc_hidden=tuple(rng.randint(4, 32) for _ in range(rng.randint(0, 2)))
                   if head == "fc" else ())


def test_200_random_specs_match_built_module():
    rng = random.Random(0)
    checked = collapsed = 0
    while checked < 200:
        spec = random_spec(rng)
        try:
            summarize(spec)
        except ShapeError:
            collapsed += 1
            continue
        assert_matches_oracle(spec)
        checked += 1
    assert collapsed > 0  # the generator does reach the shape errors too


def test_rows_sum_to_block_and_net_totals():
    rng = random.Random(1)
    for _ in range(50):
        try:
            s = summarize(random_spec(rng))
        except ShapeError:
            continue
        assert sum(b.params for b in s.blocks) == s.params == sum(r.params for r in s.rows)
        assert sum(b.flops for b in s.blocks) == s.flops
        # each row's output feeds the next within a sequential block
        for r in s.rows:
            if r.type in ("ReLU", "BatchNorm2d", "Dropout") and r.layer.source >= 0:
                assert r.output_shape == s.rows[r.layer.source].output_shape


def test_collapse_names_layer_size_and_smallest_working_input():
    with pytest.raises(ShapeError) as e:
        summarize(D2L.replace(input_size=28))
    err = e.value
    assert err.layer == "block2.pool"
    assert err.received == (256, 2, 2)
    assert "block2.pool" in str(err) and "2x2" in str(err)
    assert [r.name for r in err.rows][-1] == "block2.relu2"
    # the suggested size works and the one below it does not
    summarize(D2L.replace(input_size=err.min_input_size))
    with pytest.raises(ShapeError):
        summarize(D2L.replace(input_size=err.min_input_size - 1))
    assert f"{err.min_input_size}x{err.min_input_size}" in str(err)


def test_kernel_larger_than_padded_input_is_refused():
    spec = NetSpec(input_size=4, num_classes=2, blocks=(BlockSpec(2, kernel=7, n_extra_1x1=0),))
    with pytest.raises(ShapeError, match="smaller than its 7x7 kernel"):
        summarize(spec)


def test_absurd_networks_refused_before_allocation():
    huge = NetSpec(input_size=512, num_classes=10, head="fc", fc_hidden=(16384, 16384),
                   blocks=(BlockSpec(8192, kernel=1, n_extra_1x1=0),))
    with pytest.raises(SpecError, match="parameters, more than the limit"):
        summarize(huge)
    def fc(hidden):  # one channel at 248x248 into `hidden` units: 12 + hidden * (248² + 11)
        return NetSpec(input_size=248, num_classes=10, head="fc", fc_hidden=(hidden,),
                       blocks=(BlockSpec(1, kernel=1, n_extra_1x1=0),))
    most = (MAX_PARAMS - 12) // (248**2 + 11)       # the limit itself is allowed, one unit more not
    assert MAX_PARAMS - 248**2 < summarize(fc(most)).params <= MAX_PARAMS
    with pytest.raises(SpecError, match="more than the limit of 1,000,000,000"):
        summarize(fc(most + 1))
    wide = NetSpec(input_size=512, num_classes=10, head="gap",
                   blocks=(BlockSpec(1024, kernel=3, padding=1, n_extra_1x1=3),
                           BlockSpec(10, kernel=1, n_extra_1x1=0)))
    # no fixed memory limit: plan.check_fits weighs it against this machine (test_plan.py)
    assert summarize(wide, batch_size=1024).memory.train_bytes > 64 * 2**30


def test_memory_grows_with_batch_and_optimizer():
    small = summarize(TINY, 32).memory
    big = summarize(TINY, 64).memory
    assert big.saved_activations_bytes == 2 * small.saved_activations_bytes
    adam = summarize(TINY, 32, "fp32", "adam").memory
    assert adam.optimizer_bytes == 2 * adam.weights_bytes
    bf16 = summarize(TINY, 32, "bf16").memory
    assert bf16.saved_activations_bytes < small.saved_activations_bytes
    assert small.train_bytes > small.infer_bytes > small.weights_bytes


def test_d2l_training_memory_is_plausible():
    # The measured peak is bench/memory_gpu.py's (it needs a GPU); here: the order of magnitude.
    m = summarize(D2L, 128).memory
    assert 0.5 * 2**30 < m.train_bytes < 3 * 2**30
