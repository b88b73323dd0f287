import pytest

from nin_explorer.net.controls import controls_to_spec, spec_to_controls
from nin_explorer.net.presets import D2L, PRESETS
from nin_explorer.net.spec import SpecError


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


# --- typed text: bounded in the widget and again where it is used ---

def test_every_text_input_on_the_pages_has_max_chars():
    import ast
    from pathlib import Path

    from conftest import ROOT
    calls = [(path.name, node.lineno) for path in sorted((ROOT / "pages").glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("text_input", "text_area", "chat_input")
             and not any(k.arg == "max_chars" for k in node.keywords)]
    assert calls == [], f"text inputs without max_chars: {calls}"


def test_overlong_text_is_refused_in_the_core():
    from nin_explorer.net.controls import MAX_TEXT_CHARS
    values = spec_to_controls(D2L) | {"b1.widths_1x1": "96, " * 6_000_000}   # 24 MB
    with pytest.raises(SpecError, match=f"type at most {MAX_TEXT_CHARS}"):
        controls_to_spec(values)
    with pytest.raises(SpecError, match="name has 25,000,000 characters"):
        controls_to_spec(spec_to_controls(D2L) | {"name": "x" * 25_000_000})


def test_every_preset_fits_the_build_pages_widgets():
    """controls.LIMITS holds the widgets' bounds (test_page_build checks the page reads them)."""
    from nin_explorer.net.controls import check_fits
    for spec in PRESETS.values():
        check_fits(spec_to_controls(spec))


def test_named_spec_and_the_gap_fix():
    from nin_explorer.net.controls import last_block_fix, named_spec
    values = spec_to_controls(D2L)
    assert named_spec(values, D2L).name == "d2l"
    changed = values | {"num_classes": 7}
    assert named_spec(changed | {"b4.out_channels": 7}, D2L).name == "custom (d2l)"
    assert last_block_fix(values) is None
    assert last_block_fix(changed) == {"b4.out_channels": 7, "b4.widths_1x1": ""}
