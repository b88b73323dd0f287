import pytest

from nin_explorer.runs.plan import adapt_spec, estimate, human_duration
from nin_explorer.net.presets import D2L, GOOGLENET, NIN_PAPER, TINY
from nin_explorer.net.summary import summarize


def test_adapt_spec_to_a_data_set():
    rgb = adapt_spec(TINY, channels=3, num_classes=100)
    assert rgb.in_channels == 3 and rgb.blocks[-1].out_channels == 100
    summarize(rgb)
    paper = adapt_spec(NIN_PAPER, channels=1, num_classes=5)
    assert paper.blocks[-1].extra_1x1_channels == (192, 5)
    summarize(paper)
    g = adapt_spec(GOOGLENET, channels=3, num_classes=100)  # gap-linear: only the head changes
    assert g.blocks == GOOGLENET.blocks and summarize(g).output_shape == (100,)


def test_estimate_warns_for_d2l_on_a_cpu_and_uses_measurements():
    slow = estimate(D2L, 128, 60_000, 10_000, "cpu")
    assert slow["slow"] and slow["epoch_s"] > 600
    fast = estimate(TINY, 128, 60_000, 10_000, "cpu")
    assert not fast["slow"] and fast["epoch_s"] < 120
    measured = estimate(TINY, 128, 60_000, 10_000, "cpu", measured_examples_per_s=3000)
    assert measured["epoch_s"] == 60_000 / 3000 + 10_000 / 9000
    assert "measured" in measured["basis"]
    assert human_duration(30) == "30 s" and human_duration(600) == "10 min" and human_duration(7200) == "2.0 h"


# --- memory fit against this machine ---

def test_a_run_that_needs_more_than_the_free_memory_is_refused():
    from nin_explorer.runs.plan import FitError, check_fits
    from nin_explorer.learn.config import TrainConfig
    cfg = TrainConfig(batch_size=128)
    fit = check_fits(TINY, cfg, available_bytes=2**40, device="cpu")
    assert fit.fits and fit.total_bytes < 2 * 2**30
    with pytest.raises(FitError, match=r"needs about .* of RAM .*; 500 MiB free"):
        check_fits(TINY, cfg, available_bytes=500 * 2**20, device="cpu")
    with pytest.raises(FitError, match="of GPU memory"):
        check_fits(TINY, cfg, available_bytes=500 * 2**20, device="cuda")
    # a fixed 64 GiB limit would let this through: d2l at 512 px and batch 1024 needs ~54 GiB
    big = TrainConfig(dataset="fashion-mnist", input_size=512, batch_size=1024)
    with pytest.raises(FitError, match="16 GiB free"):
        check_fits(D2L, big, available_bytes=16 * 2**30, device="cpu")


def test_optimiser_precision_and_eval_batch_move_the_estimate():
    from nin_explorer.runs.plan import run_memory
    from nin_explorer.learn.config import TrainConfig
    base = TrainConfig(batch_size=64)

    def need(device="cpu", **changes):
        return run_memory(D2L, base.replace(**changes), device).total_bytes

    sgd, params = need(), summarize(D2L).params
    assert need(optimizer="sgd-momentum") == sgd + 4 * params        # one momentum buffer
    assert need(optimizer="adam") == need(optimizer="adamw") == sgd + 8 * params  # two moments
    assert need(eval_batch_size=4096) > sgd                           # evaluation now dominates
    assert need(precision="bf16") == sgd                              # bf16 is CUDA only
    assert need("cuda", precision="bf16") < need("cuda")


def test_a_launch_that_does_not_fit_is_refused_before_queueing(tmp_path, monkeypatch):
    from nin_explorer.runs import plan
    from nin_explorer.runs.jobs import JobManager
    from nin_explorer.learn.config import TrainConfig
    monkeypatch.setattr(plan, "available_memory_bytes", lambda device="cpu": 100 * 2**20)
    jobs = JobManager(tmp_path, max_concurrent=1)
    try:
        with pytest.raises(plan.FitError, match="100 MiB free"):
            jobs.submit(TINY, TrainConfig(device="cpu"))
        assert jobs.store.list_runs() == []
    finally:
        jobs.close()


def test_free_memory_is_read_from_this_machine():
    from nin_explorer.runs.plan import available_memory_bytes
    free = available_memory_bytes("cpu")
    assert free is None or 2**20 < free < 2**50


def test_an_ablation_is_checked_whole_before_any_run_is_queued():
    from nin_explorer.runs.plan import FitError, check_fits_together
    from nin_explorer.learn.config import TrainConfig
    small, big = TrainConfig(batch_size=16), TrainConfig(batch_size=16, input_size=512)
    one = check_fits_together([(TINY, small)], available_bytes=2**40, device="cpu")[0]
    free = int(one.total_bytes * 1.5)      # room for one small run, not for two side by side
    assert len(check_fits_together([(TINY, small)] * 2, 1, free, "cpu")) == 2
    with pytest.raises(FitError, match="2 at once would need"):
        check_fits_together([(TINY, small)] * 2, 2, free, "cpu")
    with pytest.raises(FitError, match=r"Run 2 of 2 \(tiny\)"):   # a later run too large
        check_fits_together([(TINY, small), (TINY, big)], 1, free, "cpu")
