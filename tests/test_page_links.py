"""AppTest: every page's state lives in the address, so a link opens what the teacher showed, and
the presentation mode (issue 17). Widgets bound to the address (bind="query-params") write it
from the browser, which AppTest has not: tests/test_e2e_links.py checks that direction."""
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from test_page_noise import GROUP, synthetic_store


def opened(path: str, **params) -> AppTest:
    """A fresh session (a new browser tab) opening `path` with these query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(params)
    at.switch_page(path)
    return at.run()


def test_a_link_opens_the_build_view_and_the_choice_goes_into_the_address():
    at = opened("pages/build.py", **{"build.view": "Diagram"})
    assert not at.exception, at.exception
    assert [c.proto.id for c in at.get("plotly_chart")] and "diagram" in str(at.get("plotly_chart")[0].proto.id)
    assert at.query_params["build.view"] == "Diagram"


def test_a_link_opens_the_ablation_its_axis_and_the_exercise_card(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path))
    synthetic_store(tmp_path)
    at = opened("pages/ablation.py", **{"a.group": GROUP, "a.axis": "seconds"})
    assert not at.exception, at.exception
    assert at.selectbox(key="a.group").value == GROUP
    assert at.radio(key="a.axis").value == "seconds"
    # (a bound widget's own changes reach the address through the browser: test_e2e_links)


def test_a_link_opens_the_compared_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path))
    ids = sorted(r["id"] for r in synthetic_store(tmp_path).list_runs())
    at = opened("pages/compare.py", runs=f"{ids[4]},{ids[0]},999,x")
    assert not at.exception, at.exception
    assert at.multiselect(key="cmp_runs").value == [ids[4], ids[0]]     # unknown ids dropped
    at.multiselect(key="cmp_runs").set_value(ids[:3]).run()
    assert at.query_params["runs"] == ",".join(map(str, ids[:3]))


def test_a_link_opens_the_image_and_epoch_on_the_maps_page(use_trained_home):
    from nin_explorer.runs.store import RunStore
    run_id = RunStore(use_trained_home).list_runs()[0]["id"]
    at = opened("pages/maps.py", run=str(run_id), maps_mode="By class", maps_class="triangle",
                maps_example="3", epoch="1")
    assert not at.exception, at.exception
    assert at.selectbox(key="maps_class").value == 2 and at.slider(key="maps_example").value == 3
    assert "true: **triangle**" in " ".join(m.value for m in at.markdown)
    assert at.select_slider(key="epoch").value == 1
    at = opened("pages/maps.py", run=str(run_id), maps_mode="Random", image="17")
    assert not at.exception, at.exception
    assert at.session_state["maps_random_index"] == 17 and at.query_params["image"] == "17"


def test_a_link_opens_lineage_settings():
    at = opened("pages/lineage.py", lin_epochs="3")
    assert not at.exception, at.exception
    assert at.number_input(key="lin_epochs").value == 3
    assert "with 3 epoch(s)" in at.info[0].value


def test_presentation_mode_from_the_address_and_back():
    at = opened("pages/build.py", present="true", **{"build.view": "Memory"})
    assert not at.exception, at.exception
    assert at.toggle(key="present").value is True
    styles = [h.proto.body for h in at.get("html")]
    assert any("font-size: 24px" in s and "stSidebar" in s for s in styles)
    at.button(key="present_exit").click().run()
    assert not at.exception
    assert at.toggle(key="present").value is False
    assert "present" not in at.query_params
    assert not [b for b in at.button if b.key == "present_exit"]


def test_presentation_of_an_ablation_shows_only_its_exercise(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path))
    synthetic_store(tmp_path)
    at = opened("pages/ablation.py", present="true", **{"a.group": GROUP})
    assert not at.exception, at.exception
    assert not [b for b in at.button if (b.key or "").startswith("a.ex.")]     # no Start buttons
    texts = " ".join(m.value for m in at.markdown)
    assert "Exercise 2: why two 1x1 convs per block?" in texts and "Exercise 1" not in texts
    assert any(i.value.startswith("**Result** (" + GROUP) for i in at.info)


def test_hostile_values_in_a_link_are_ignored(use_trained_home):
    from nin_explorer.runs.store import RunStore
    run_id = RunStore(use_trained_home).list_runs()[0]["id"]
    bad = {"maps_mode": "<script>", "maps_class": "../../etc/passwd", "maps_example": "²",
           "epoch": "99999", "image": "1 OR 1=1", "present": "maybe", "maps_source": ""}
    at = opened("pages/maps.py", run=str(run_id), **bad)
    assert not at.exception, at.exception
    assert at.radio(key="maps_mode").value == "By class" and at.toggle(key="present").value is False
    at = opened("pages/maps.py", run=str(run_id), maps_mode="Random", image="²")
    assert not at.exception and 0 <= at.session_state["maps_random_index"] < 10_000   # a fresh draw
    for path, params in [("pages/build.py", {"build.view": "../x", "w.batch": "7", "w.precision": "fp64"}),
                         ("pages/compare.py", {"runs": "²,1 OR 1=1," + "9" * 5000}),
                         ("pages/ablation.py", {"a.group": "<b>x</b>", "a.tab": "nope", "a.axis": "1e999"}),
                         ("pages/lineage.py", {"lin_epochs": "-5", "lin_data": "folder:../../etc"})]:
        at = opened(path, **params)
        assert not at.exception, (path, at.exception)
