"""AppTest of the Build page (the default page of app.py)."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from classroom import ALICE, classroom, open_page  # noqa: F401 (a fixture)
from conftest import ROOT
from nin_explorer.net.presets import D2L
from nin_explorer.net.spec import NetSpec
from pages.build_views import VIEW_KEY
from pages.widgets import OPEN_BLOCK_KEY


def app(query=None, view: str | None = None, open_blocks=()) -> AppTest:
    """The Build page; `view`: the tab to open (only the open one is drawn); `open_blocks`:
    the blocks whose expanders to open (only an open block draws its widgets)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if query:
        at.query_params.update(query)
    if view:
        at.session_state[VIEW_KEY] = view
    for i in open_blocks:
        at.session_state[OPEN_BLOCK_KEY.format(i=i)] = True
    return at.run()


def metrics(at):
    return {m.label: m.value for m in at.metric}


def table(at, key="layer_table"):
    return [el for el in at.get("arrow_data_frame")]


def test_default_is_d2l_with_exact_totals():
    at = app()
    assert not at.exception
    m = metrics(at)
    assert m["Parameters"] == "1,992,166"
    assert m["FLOPs per image"] == "1.52 G"
    assert at.query_params["preset"] == ["d2l"] or at.query_params["preset"] == "d2l"


def test_switching_preset_changes_totals_and_url():
    at = app()
    at.sidebar.selectbox(key="w.preset").set_value("tiny").run()
    assert metrics(at)["Parameters"] == "27,354"
    at.sidebar.selectbox(key="w.preset").set_value("alexnet").run()
    assert metrics(at)["Parameters"] == "46,764,746"
    assert not at.exception


def test_slider_change_updates_table_and_link():
    at = app()
    df_before = at.dataframe[0].value
    at.sidebar.slider(key="w.input_size").set_value(96).run()
    df_after = at.dataframe[0].value
    assert list(df_before["output"]) != list(df_after["output"])
    assert "96 x 96" not in list(df_before["output"])[0]
    assert "spec" in at.query_params
    assert metrics(at)["Parameters"] == "1,992,166"  # GAP: same parameters at any input size


def test_collapsing_input_shows_message_and_rows_not_exception():
    at = app()
    at.sidebar.slider(key="w.input_size").set_value(28).run()
    assert not at.exception
    assert "block2.pool" in at.error[0].value and "67x67" in at.error[0].value
    assert len(at.dataframe[0].value) == 13  # the rows up to the failing layer


def test_gap_mismatch_offers_a_fix():
    at = app()
    at.sidebar.number_input(key="w.num_classes").set_value(7).run()
    assert not at.exception
    assert "one channel per class" in at.error[0].value
    at.button[0].click().run()
    assert not at.error
    assert metrics(at)["Parameters"] != "1,992,166"


@pytest.mark.parametrize("query", [{"spec": "garbage!!"}, {"preset": "<script>"},
                                   {"spec": "A" * 9000}])
def test_hostile_link_falls_back_to_preset(query):
    at = app(query)
    assert not at.exception
    assert at.warning and "preset" in at.warning[0].value
    assert metrics(at)["Parameters"] == "1,992,166"


def test_share_link_restores_variant():
    from nin_explorer.net.export import to_query
    variant = D2L.replace(input_size=160, name="custom (d2l)")
    at = app(to_query(variant))
    assert at.sidebar.slider(key="w.input_size").value == 160
    assert not at.warning


def test_json_upload_loads_and_bad_json_is_refused():
    at = app(view="Export")
    from nin_explorer.net.presets import TINY
    at.file_uploader(key="up_json").upload("tiny.json", TINY.to_json().encode(), "application/json").run()
    assert metrics(at)["Parameters"] == "27,354"
    at.file_uploader(key="up_json").upload("bad.json", b'{"blocks": 3}', "application/json").run()
    assert not at.exception
    assert any("not a usable spec" in e.value for e in at.error)
    assert metrics(at)["Parameters"] == "27,354"  # nothing changed


def test_export_snippet_and_json_are_offered(monkeypatch):
    offered = {}   # what each download button would hand the browser, by label
    real = st.download_button

    def record(label, data, *args, **kwargs):
        offered[label] = data
        return real(label, data, *args, **kwargs)
    monkeypatch.setattr(st, "download_button", record)
    at = app(view="Export")
    codes = [c.value for c in at.code]
    assert any("def nin_block" in c for c in codes)
    assert NetSpec.from_json(offered["Download JSON"]) == D2L      # the page's network, reloadable
    assert "def nin_block" in offered["Download PyTorch code"]


def settle(values: dict, view: str | None = None) -> AppTest:
    """The Build page after setting widget values (keys without the page's 'w.' prefix)."""
    at = app(view=view)
    for key, value in values.items():
        at.session_state["w." + key] = value
    return at.run()


def test_a_huge_fc_twin_is_reported_not_raised():
    """Reachable with the sliders: the Compare tab's FC twin of this variant reads a 16 x 512 x
    512 map, 1.7e10 parameters; it once ended the page in an exception box."""
    at = settle({"head": "gap-linear", "n_blocks": 1, "b1.out_channels": 16, "b1.pool": "none",
                 "b1.kernel": 3, "b1.stride": 1, "b1.padding": 1, "input_size": 512},
                view="Compare")
    assert not at.exception
    assert metrics(at)["Parameters"] == "874"   # the variant itself is small
    rows = next(d.value for d in at.dataframe if "network" in d.value.columns)
    twin = rows[rows["network"].str.contains("FC head")].iloc[0]
    assert "too large to compare" in twin["network"] and twin["params"] > 1.7e10


@pytest.mark.parametrize("values", [
    {"input_size": 512, "n_blocks": 12, "batch": 1024},                         # max sliders
    {"input_size": 512, "b1.out_channels": 1024, "b1.n_extra_1x1": 3, "b1.pool": "none",
     "b2.pool": "none", "b3.pool": "none", "batch": 1024, "optimizer": "adam"},
    {"input_size": 8},                                                          # min input
    {"head": "fc", "fc_layers": 4, "fc_width": 16384, "input_size": 512},
    {"head": "gap-linear", "n_blocks": 1, "b1.out_channels": 1024, "b1.pool": "none",
     "b1.kernel": 1, "input_size": 512, "batch": 1024},
    {"b1.kind": "inception", "b1.paths": "1024, 1024, 1024, 1024, 1024, 1024", "input_size": 512},
])
def test_extreme_settings_give_messages_not_exceptions(values):
    at = settle(values)
    assert not at.exception and bool(at.error) != ("Parameters" in metrics(at)), values  # or totals
    for view in at.tabs:                  # each view is drawn only when open: open each one
        at.session_state[VIEW_KEY] = view.label
        assert not at.run().exception, (view.label, values)


def test_every_build_widget_reads_its_bounds_and_choices_from_the_core():
    """Each numeric widget's min and max are controls.LIMITS' (a nin, a conv and an fc head
    open every widget); the choice lists are the spec's and controls' own."""
    from nin_explorer.net import controls
    from nin_explorer.net.spec import BLOCK_KINDS, HEADS, POOLS
    at = app(open_blocks=(1, 2))
    at.sidebar.radio(key="w.head").set_value("fc").run()
    at.sidebar.selectbox(key="w.b2.kind").set_value("conv").run()
    assert not at.exception
    seen = set()
    for widget in [*at.sidebar.slider, *at.sidebar.number_input]:
        name = widget.key.rpartition(".")[2]
        if name in controls.LIMITS:
            assert (widget.min, widget.max) == controls.LIMITS[name], widget.key
            seen.add(name)
    assert seen == set(controls.LIMITS)
    assert at.sidebar.selectbox(key="w.b1.kind").options == list(BLOCK_KINDS)
    assert at.sidebar.selectbox(key="w.b1.pool").options == list(POOLS)
    assert at.sidebar.radio(key="w.head").options == list(HEADS)
    assert at.sidebar.select_slider(key="w.batch").options == [str(b) for b in controls.MEMORY_BATCH_SIZES]


def test_only_the_open_view_is_computed_and_sent():
    """Seven views, one drawn: the default (Layers) sends no figure; opening Diagram sends its
    one. Before, every rerun built and sent all four figures and three tables."""
    at = app()
    assert not at.get("plotly_chart") and len(at.dataframe) == 1
    at.session_state[VIEW_KEY] = "Diagram"
    at.run()
    assert len(at.get("plotly_chart")) == 1 and not at.dataframe


def test_a_closed_blocks_settings_are_kept():
    """A block's widgets are drawn only while its expander is open; what was set there stays."""
    at = app(open_blocks=(2,))
    at.sidebar.slider(key="w.b2.out_channels").set_value(128).run()
    params = metrics(at)["Parameters"]
    assert params != "1,992,166"
    at.session_state[OPEN_BLOCK_KEY.format(i=2)] = False
    at.run()
    at.sidebar.slider(key="w.input_size").set_value(200).run()   # other reruns in between
    assert not at.sidebar.get("slider") or all(s.key != "w.b2.out_channels" for s in at.sidebar.slider)
    assert metrics(at)["Parameters"] == params
    assert any(e.label == "Block 2: nin → 128 ch" for e in at.sidebar.expander)


def test_the_address_keeps_who_you_are(classroom):
    """A visitor's `v` stays in the address through the Build page's reruns (it used to be
    dropped by each rerun's share link, so a reload made a new visitor)."""
    at = open_page("pages/build.py", v=ALICE)
    at.sidebar.slider(key="w.input_size").set_value(200).run()
    assert at.query_params["v"] in (ALICE, [ALICE]) and "spec" in at.query_params
