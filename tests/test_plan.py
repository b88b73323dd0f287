from nin_explorer.plan import adapt_spec, estimate, human_duration
from nin_explorer.presets import D2L, GOOGLENET, NIN_PAPER, TINY
from nin_explorer.summary import summarize


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
