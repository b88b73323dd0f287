"""A run as it trains, shared by every session that watches it (the Train page's live view).

Twenty browsers refreshing one run every second used to read all its metric rows and build its
figure twenty times a second. A `LiveRun` reads only the rows written since its last look, at
most once per `min_interval_s` whoever asks, and updates its one figure in place only when rows
arrived; all sessions get the same objects (read-only to them). Thread-safe: each session's
script runs in its own thread, and draws the figure while holding the run's lock.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from nin_explorer.look import charts


@dataclass(frozen=True)
class LiveView:
    """What the live view draws: the run's row, its last step (None before the first), its
    epoch rows and the curves figure (a plotly Figure that the next refresh updates in place:
    draw it inside LiveRun.viewing(), and do not modify it)."""
    run: dict
    last_step: dict | None
    epochs: list[dict]
    figure: object


class LiveRun:
    """One run's metric rows, read incrementally from `store` (raw rows kept; the figure shows
    a downsampled copy, charts._downsample). The figure is one object, updated in place when
    rows arrive (a fifth of the cost of building it again): draw it inside `viewing()`."""

    def __init__(self, store, run_id: int, min_interval_s: float = 0.5, clock=time.monotonic):
        self.store, self.run_id, self.min_interval_s, self.clock = store, run_id, min_interval_s, clock
        self._lock = threading.Lock()
        self._steps: list[dict] = []
        self._epochs: list[dict] = []
        self._view: LiveView | None = None
        self._looked = float("-inf")

    @contextmanager
    def viewing(self):
        """The run now (at most `min_interval_s` old), held for this block: hand its figure to
        the chart inside it, as the next refresh updates that figure in place. KeyError if the
        run is not in the store."""
        with self._lock:
            if self._view is None or self.clock() - self._looked >= self.min_interval_s:
                self._view = self._refresh()
                self._looked = self.clock()
            yield self._view

    def view(self) -> LiveView:
        """The run now, for what does not draw the figure (and for tests)."""
        with self.viewing() as shown:
            return shown

    def _refresh(self) -> LiveView:
        run = self.store.get_run(self.run_id)
        if run is None:
            raise KeyError(f"no run #{self.run_id}")
        steps = self.store.metrics(self.run_id, "step", after_id=_last_id(self._steps))
        epochs = self.store.metrics(self.run_id, "epoch", after_id=_last_id(self._epochs))
        self._steps += steps
        self._epochs = self._epochs + epochs   # a new list: views handed out stay as they were
        figure = self._view.figure if self._view else None
        if figure is None or ((steps or epochs)
                              and not charts.update_curves(figure, self._steps, self._epochs)):
            figure = charts.curves_figure(self._steps, self._epochs)
        return LiveView(run, self._steps[-1] if self._steps else None, self._epochs, figure)


def _last_id(rows: list[dict]) -> int:
    return rows[-1]["id"] if rows else 0
