"""Maps across training: per-epoch maps of a fixed probe set, kept by the worker (issue 17)."""
import json
import shutil

import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from nin_explorer.learn.config import TrainConfig
from nin_explorer.learn.data import load_dataset
from nin_explorer.look.epochs import (DIR, PER_CLASS, epoch_path, load_epoch_maps,
                                      probe_indices)
from nin_explorer.look.maps import class_maps, open_checkpoint
from nin_explorer.net.presets import TINY
from nin_explorer.runs import worker
from nin_explorer.runs.store import RunStore


def test_per_epoch_maps_equal_maps_recomputed_from_that_epoch_s_weights(
        tmp_path, shapes_root, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(shapes_root))
    kept = {}
    save = worker.save_checkpoint

    def save_and_keep(state, path):        # keep each epoch's weights (the run overwrites them)
        save(state, path)
        kept[state["epoch"]] = tmp_path / f"weights_{state['epoch']}.pt"
        shutil.copy(path, kept[state["epoch"]])

    monkeypatch.setattr(worker, "save_checkpoint", save_and_keep)
    store = RunStore(tmp_path / "home")
    cfg = TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 3,
                                 "batch_size": 128, "max_train_examples": 1024,
                                 "max_test_examples": 256})
    run_id = store.create_run(TINY.to_dict(), cfg.to_dict(), status="running")
    worker.execute_run(store, run_id)
    em = load_epoch_maps(store.run_dir(run_id))
    assert em.epochs == [1, 2, 3] and sorted(kept) == [1, 2, 3]
    test = load_dataset("shapes", train=False)
    assert em.indices == probe_indices(test.labels, 10) and len(em.indices) == 10 * PER_CLASS
    assert em.labels.tolist() == sorted(em.labels.tolist())
    for i, epoch in enumerate(em.epochs):
        r = class_maps(open_checkpoint(kept[epoch]), test.images[em.indices])
        assert torch.allclose(em.maps[i], r.class_maps, atol=1e-6, rtol=0)
        assert torch.allclose(em.logits[i], r.logits, atol=1e-6, rtol=0)
    assert not torch.equal(em.maps[0], em.maps[-1])            # the maps did change
    size = epoch_path(store.run_dir(run_id), 1).stat().st_size
    assert size < 90_000, size              # 83 KB an epoch for tiny: 40 x 10 x 7 x 7 float32
    avg = em.class_average(10)
    assert avg.shape == (3, 10, 10, *em.maps.shape[-2:])
    assert torch.allclose(avg[0, 3], em.maps[0][em.labels == 3].mean(0))
    # a torn file is left out, the others still load
    (store.run_dir(run_id) / DIR / "epoch_0009.pt").write_bytes(b"PK\x03\x04 torn")
    assert load_epoch_maps(store.run_dir(run_id)).epochs == [1, 2, 3]


def test_the_maps_page_scrubs_through_the_epochs(use_trained_home):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/maps.py")
    at.run()
    assert not at.exception, at.exception
    assert "Across training" in [h.value for h in at.subheader]
    figs = {json.loads(c.proto.spec).get("layout", {}).get("sliders", [{}])[0].get("currentvalue", {}).get("prefix"):
            json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    fig = figs["epoch "]
    assert [f["name"] for f in fig["frames"]] == ["1", "2"]          # the fixture trains 2 epochs
    assert [s["label"] for s in fig["layout"]["sliders"][0]["steps"]] == ["1", "2"]
    assert fig["layout"]["updatemenus"][0]["buttons"][0]["label"] == "▶ Play"
