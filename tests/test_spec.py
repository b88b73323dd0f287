import dataclasses

import pytest

from nin_explorer.net.presets import D2L, PRESETS
from nin_explorer.net.spec import BlockSpec, NetSpec, SpecError


@pytest.mark.parametrize("name", PRESETS)
def test_presets_round_trip_through_json(name):
    spec = PRESETS[name]
    assert NetSpec.from_json(spec.to_json()) == spec
    assert hash(spec) == hash(NetSpec.from_dict(spec.to_dict()))


def test_spec_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        D2L.input_size = 28


# Break one field at a time, starting from the valid d2l preset.
@pytest.mark.parametrize("change, message", [
    (dict(input_size=0), "input size must be at least 1"),
    (dict(input_size=-5), "input size must be at least 1"),
    (dict(input_size=10**6), "largest allowed"),
    (dict(num_classes=1), "at least 2 classes"),
    (dict(num_classes=7), "one channel per class"),
    (dict(head="mlp"), "Head must be one of"),
    (dict(blocks=()), "no blocks"),
    (dict(fc_hidden=(100,)), "only exist with the 'fc' head"),
    (dict(fc_dropout=1.0), "dropout must be at least 0 and below 1"),
])
def test_net_field_errors(change, message):
    with pytest.raises(SpecError, match=message):
        D2L.replace(**change)


@pytest.mark.parametrize("change, message", [
    (dict(out_channels=0), "channel count must be at least 1"),
    (dict(kernel=0), "kernel size must be at least 1"),
    (dict(stride=0), "stride must be at least 1"),
    (dict(padding=-1), "padding must be 0 or more"),
    (dict(n_extra_1x1=4), "0, 1, 2 or 3"),
    (dict(pool="median"), "pooling must be one of"),
    (dict(pool_padding=5), "pool padding"),
    (dict(dropout=1.5), "dropout must be at least 0"),
    (dict(kind="lstm"), "kind must be one of"),
    (dict(kind="inception", paths=(1, 2)), "six path widths"),
    (dict(extra_1x1_channels=(5,)), "one width per extra 1x1 conv"),
])
def test_block_field_errors(change, message):
    with pytest.raises(SpecError, match=message):
        D2L.replace_block(0, **change)


@pytest.mark.parametrize("text, message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"blocks": "x"}', "'blocks' must be a list"),
    ('{"head": "gap"}', "no 'blocks' list"),
    ('{"blocks": [], "evil": 1}', "Unknown setting"),
    ('{"blocks": [{"out_channels": "96"}]}', "must be a int"),
    ('{"blocks": [{"out_channels": true}]}', "must be a int"),
    ('{"blocks": [{"paths": [1, "x"]}]}', "list of whole numbers"),
    ('{"blocks": [5]}', "Block 1 must be a JSON object"),
    ('{"blocks": [' + ",".join(["{}"] * 40) + "]}", "too many"),
    ("{" + " " * 300_000 + "}", "too large"),
])
def test_hostile_json_gives_clear_message(text, message):
    with pytest.raises(SpecError, match=message):
        NetSpec.from_json(text)


def test_custom_spec_from_dict():
    d = {"name": "mine", "in_channels": 3, "input_size": 32, "num_classes": 4, "head": "gap",
         "blocks": [{"out_channels": 8, "kernel": 3, "padding": 1, "pool": "max", "pool_kernel": 2},
                    {"out_channels": 4, "kernel": 1, "n_extra_1x1": 0}]}
    spec = NetSpec.from_dict(d)
    assert spec.blocks[0] == BlockSpec(8, kernel=3, padding=1, pool="max", pool_kernel=2)
    assert spec.blocks[1].channels_out == 4
