import pytest

from nin_explorer.controls import controls_to_spec, spec_to_controls
from nin_explorer.presets import D2L, PRESETS
from nin_explorer.spec import SpecError


@pytest.mark.parametrize("name", PRESETS)
def test_controls_round_trip(name):
    assert controls_to_spec(spec_to_controls(PRESETS[name])) == PRESETS[name]


def test_added_block_uses_defaults():
    values = spec_to_controls(D2L) | {"n_blocks": 5, "head": "gap-linear"}
    spec = controls_to_spec(values)
    assert len(spec.blocks) == 5 and spec.blocks[4].kind == "nin"


@pytest.mark.parametrize("key, value, message", [
    ("b1.widths_1x1", "160, abc", "whole numbers separated by commas"),
    ("b1.n_extra_1x1", 1, "one width per extra 1x1 conv"),
])
def test_bad_controls_give_clear_messages(key, value, message):
    values = spec_to_controls(PRESETS["nin-paper"]) | {key: value}
    with pytest.raises(SpecError, match=message):
        controls_to_spec(values)
