"""How long a summary takes once warm (the Build page recomputes it on every slider move).

Run: .venv/bin/python bench/summary_speed.py   Results go to docs/BENCHMARKS.md.
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nin_explorer.look import charts  # noqa: E402
from nin_explorer.net.presets import PRESETS  # noqa: E402
from nin_explorer.net.summary import summarize  # noqa: E402


def timed_ms(fn, repeats=200) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), max(samples)


def main():
    print("| preset | summary median ms | summary max ms | + all Build-page figures median ms |")
    print("|---|---:|---:|---:|")
    for name, spec in PRESETS.items():
        def cold_summary():
            summarize.cache_clear()  # measure the arithmetic, not the cache
            return summarize(spec)

        def with_figures():
            s = cold_summary()
            charts.block_bars_figure(s), charts.diagram_figure(s), charts.memory_figure(s)

        med, worst = timed_ms(cold_summary)
        fig_med, _ = timed_ms(with_figures, repeats=20)
        print(f"| {name} | {med:.2f} | {worst:.2f} | {fig_med:.1f} |")


if __name__ == "__main__":
    main()
