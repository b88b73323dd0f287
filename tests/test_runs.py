from nin_explorer.presets import TINY
from nin_explorer.runs import differing_settings, settings


def test_differing_settings_lists_only_what_differs():
    a = {"id": 1, "spec": TINY.to_dict(), "config": {"lr": 0.1, "epochs": 3}}
    b = {"id": 2, "spec": TINY.replace_block(0, n_extra_1x1=1).to_dict(),
         "config": {"lr": 0.05, "epochs": 3}}
    rows = {r["setting"]: r for r in differing_settings([a, b])}
    assert set(rows) == {"config.lr", "spec.blocks[1].n_extra_1x1"}
    assert rows["config.lr"] == {"setting": "config.lr", "#1": "0.1", "#2": "0.05"}
    assert settings(a)["spec.blocks[4].out_channels"] == 10


def test_settings_added_later_do_not_count_as_differences():
    old = {"id": 1, "spec": TINY.to_dict(), "config": {"lr": 0.1}}
    new = {"id": 2, "spec": TINY.to_dict(), "config": {"lr": 0.1, "compile": "off"}}
    assert differing_settings([old, new]) == []
