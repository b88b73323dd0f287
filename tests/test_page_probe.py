"""AppTest of the GAP maps page's probe on a collapsed run (issue 17)."""
import shutil

import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.base.files import atomic_save
from nin_explorer.runs.store import RunStore


def dead_home(trained_home, tmp_path, monkeypatch):
    """A copy of the trained store whose run collapsed: status diverged, last block all 0."""
    home = tmp_path / "dead"
    shutil.copytree(trained_home, home)
    store = RunStore(home)
    run = store.list_runs()[0]
    store.set_status(run["id"], "diverged", reason="collapsed (test)")
    path = store.checkpoint_path(run["id"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k, v in state["model"].items():
        if k.startswith("block4."):
            state["model"][k] = torch.zeros_like(v)
    atomic_save(state, path)
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(home))
    return store, run["id"]


def test_a_collapsed_run_shows_the_probe_and_queues_its_fixes(use_trained_home, tmp_path,
                                                              monkeypatch):
    from nin_explorer.runs import jobs
    monkeypatch.setattr(jobs.JobManager, "_start_queued", lambda self: None)  # queue, not train
    store, run_id = dead_home(use_trained_home, tmp_path, monkeypatch)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/maps.py")
    at.run()
    assert not at.exception, at.exception
    trap = [e.value for e in at.error if e.value.startswith("NiN's trap")]
    assert trap and "2.303" in trap[0] and "cannot recover" in trap[0]
    fixes = " ".join(m.value for m in at.markdown)
    assert "no final ReLU: the last block's last conv gives the class maps" in fixes
    assert "it has BatchNorm already" in fixes
    at.button(key="probe_fix").click().run()
    assert not at.exception, at.exception
    queued = store.list_runs(("queued",))
    assert len(queued) == 4 and all(r["config"]["seed"] == 0 for r in queued)
    assert {r["config"]["ablation_setting"] for r in queued} == {     # modern recipe: BatchNorm on
        "fix = as it was", "fix = lower lr", "fix = warm-up", "fix = no final ReLU"}
    assert [r["spec"].get("final_relu", True) for r in sorted(queued, key=lambda r: r["id"])] == [
        True, True, True, False]
    assert "Queued" in at.success[0].value


def test_a_live_run_offers_the_probe(use_trained_home):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/maps.py")
    at.run()
    assert not at.exception
    assert not [e for e in at.error if e.value.startswith("NiN's trap")]
    at.toggle(key="probe_on").set_value(True).run()
    assert not at.exception, at.exception
    assert not [e for e in at.error if e.value.startswith("NiN's trap")]
    assert "No layer has half its units dead." in " ".join(m.value for m in at.markdown)
