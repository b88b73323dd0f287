"""The live view's shared follower of a training run (look/live.py)."""
import threading

import pytest

from nin_explorer.look.live import LiveRun
from nin_explorer.net.presets import TINY
from nin_explorer.learn.config import TrainConfig
from nin_explorer.runs.store import RunStore


class CountingStore(RunStore):
    """A real store that counts what it is asked and how many rows it hands back."""
    def __init__(self, home):
        super().__init__(home)
        self.reads, self.rows_read = 0, 0

    def metrics(self, run_id, kind="epoch", after_id=0):
        rows = super().metrics(run_id, kind, after_id)
        self.reads += 1
        self.rows_read += len(rows)
        return rows


def step(i):
    return {"kind": "step", "step": i, "epoch": i / 10, "train_loss": 2.3 - i / 100,
            "train_acc": i / 100, "lr": 0.1, "examples_per_sec": 100.0, "elapsed_s": i}


@pytest.fixture
def running(tmp_path):
    store = CountingStore(tmp_path)
    run_id = store.create_run(TINY.to_dict(), TrainConfig(dataset="shapes").to_dict(),
                              status="running")
    return store, run_id


def test_reads_only_new_rows_and_keeps_them_all(running):
    store, run_id = running
    now = [0.0]
    live = LiveRun(store, run_id, min_interval_s=0.5, clock=lambda: now[0])
    store.add_metrics(run_id, [step(i) for i in range(100)])
    first = live.view()
    assert first.last_step["step"] == 99 and store.rows_read == 100
    store.add_metrics(run_id, [step(i) for i in range(100, 110)])
    now[0] = 1.0
    second = live.view()
    assert second.last_step["step"] == 109
    assert store.rows_read == 110            # the 10 new rows only, not 210
    assert len(live._steps) == 110           # raw rows kept; the figure is downsampled
    x = second.figure.data[0].x
    assert len(x) <= 401 and x[-1] == pytest.approx(10.9)


def test_many_sessions_at_once_read_once_per_interval(running):
    """20 sessions asking within one interval cost one read of each kind, and share the view."""
    store, run_id = running
    store.add_metrics(run_id, [step(i) for i in range(50)])
    live = LiveRun(store, run_id, min_interval_s=60)
    views = []
    threads = [threading.Thread(target=lambda: views.append(live.view())) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.reads == 2 and len({id(v) for v in views}) == 1


def test_the_figure_is_built_once_and_updated_in_place(running, monkeypatch):
    """New rows go into the one figure (charts.update_curves); it is built again only when it
    needs other traces (the first test loss); its curves equal a figure built from scratch."""
    from nin_explorer.look import charts, live as live_module
    store, run_id = running
    built = []
    real = charts.curves_figure
    monkeypatch.setattr(live_module.charts, "curves_figure",
                        lambda *a, **k: built.append(1) or real(*a, **k))
    now = [0.0]
    live = LiveRun(store, run_id, min_interval_s=0.5, clock=lambda: now[0])
    store.add_metrics(run_id, [step(0)])
    a = live.view().figure
    now[0] = 1.0
    assert live.view().figure is a and len(built) == 1      # nothing new
    store.update_run(run_id, reason="still going")
    now[0] = 2.0
    assert live.view().run["reason"] == "still going"   # the run's row is read each interval
    store.add_metrics(run_id, [step(i) for i in range(1, 900)] +
                      [{"kind": "epoch", "epoch": 1.0, "train_loss": 1.0, "train_acc": 0.5,
                        "test_acc": 0.4}])
    now[0] = 3.0
    fig = live.view().figure
    assert fig is a and len(built) == 1                      # updated in place
    fresh = real(live._steps, live._epochs)
    assert [(t.name, list(t.x), list(t.y)) for t in fig.data] == \
        [(t.name, list(t.x), list(t.y)) for t in fresh.data]
    store.add_metrics(run_id, [{"kind": "epoch", "epoch": 2.0, "train_loss": 0.9,
                                "train_acc": 0.6, "test_loss": 1.1, "test_acc": 0.5}])
    now[0] = 4.0
    assert len(live.view().figure.data) == 6 and len(built) == 2   # a test-loss trace: rebuilt


def test_a_missing_run_is_a_key_error(tmp_path):
    with pytest.raises(KeyError):
        LiveRun(RunStore(tmp_path), 42).view()
