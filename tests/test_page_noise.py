"""AppTest: the Ablations and Compare pages judge differences over seeds (issue 17)."""
import dataclasses
import json

from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.learn.config import TrainConfig
from nin_explorer.net.presets import TINY
from nin_explorer.net.summary import summarize
from nin_explorer.runs.store import RunStore

GROUP = "Exercise 2 · 12:00:00"


def synthetic_store(home) -> RunStore:
    """Exercise 2's runs, finished: 2 extra 1x1 convs clearly above 0, 1 within noise of 2."""
    store = RunStore(home)
    results = {0: [0.60, 0.62], 1: [0.78, 0.82], 2: [0.80, 0.82]}
    for n, accs in results.items():
        spec = TINY.replace(blocks=tuple(dataclasses.replace(b, n_extra_1x1=n)
                                         if b.kind == "nin" else b for b in TINY.blocks))
        for seed, acc in enumerate(accs):
            setting = f"1x1 convs per block = {n}"
            cfg = TrainConfig.from_dict({"seed": seed, "epochs": 2, "batch_size": 64,
                                         "ablation_setting": setting})
            rid = store.create_run(spec.to_dict(), cfg.to_dict(), name=f"{setting} · seed {seed}",
                                   group=GROUP, status="running")
            store.add_metrics(rid, [{"kind": "epoch", "epoch": e, "step": 10 * e,
                                     "elapsed_s": 2.0 * e, "test_acc": acc} for e in (1, 2)])
            store.set_status(rid, "completed", final_test_acc=acc, best_test_acc=acc,
                             examples_per_sec=1000.0 + 100 * n, wall_s=5.0)
    return store


def page(path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(path)
    return at.run()


def test_ablation_table_card_and_axes(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path))
    synthetic_store(tmp_path)
    at = page("pages/ablation.py")
    assert not at.exception, at.exception
    card = next(i.value for i in at.info if i.value.startswith("**Result**"))
    assert "1x1 convs per block = 2: " not in card            # 2 vs 1 is within noise
    assert ("The runs do not settle it: 1x1 convs per block = 2 leads 1x1 convs per block = 1 by "
            "1.0 points, within the seed spread of ± 2.8 over 2 seeds") in card
    table = at.dataframe[0].value
    verdict = dict(zip(table["setting"], table["vs best"]))
    assert verdict["1x1 convs per block = 0"] == "-20.0 pts (beyond noise)"
    assert sorted(verdict.values())[-1] == "within noise"
    at.radio(key="a.axis").set_value("FLOPs").run()
    assert not at.exception
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    flops = summarize(TINY.replace(blocks=tuple(dataclasses.replace(b, n_extra_1x1=0)
                                                if b.kind == "nin" else b for b in TINY.blocks)), 1).flops
    xs = [d["x"] for d in fig["data"]]
    assert [10 * 64 * 3 * flops, 20 * 64 * 3 * flops] in xs
    assert fig["layout"]["xaxis"]["title"]["text"] == "training FLOPs"


def test_compare_groups_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_HOME", str(tmp_path))
    store = synthetic_store(tmp_path)
    at = page("pages/compare.py")
    at.multiselect(key="cmp_runs").set_value([r["id"] for r in store.list_runs()]).run()
    assert not at.exception, at.exception
    seeds = next(d.value for d in at.dataframe if "vs best" in d.value.columns)
    assert sorted(seeds["runs"]) == [2, 2, 2]
    assert "within noise" in list(seeds["vs best"]) and "best" in list(seeds["vs best"])
    at.radio(key="cmp_axis").set_value("seconds").run()
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["data"][0]["x"] == [2.0, 4.0]
