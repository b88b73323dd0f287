"""Classroom speed (issue 15), every figure in one run; prints markdown tables for
docs/BENCHMARKS.md and docs/RELIABILITY.md.

1. **build**: the Build page against bench/floor_app.py (one slider, five metrics), moved
   alternately in one headless Chromium, --moves key presses each on the input-size slider:
   key press -> the new size and numbers drawn, the server's CPU time per rerun (from /proc),
   its time on the wire, and Chromium's CPU per move.
2. **visitors**: --sessions Build pages (the first the teacher's) move that slider while a
   `tiny` run trains (bench/load_build.py's phases): rerun times and the run's examples/s
   against the same run alone; once moving as fast as the pages answer, once with a random
   pause (--pause-s on average) between a session's moves, as students would.
3. **switch**: sidebar link -> the next page drawn, for every page, with an empty store, with
   200 runs and with --big-runs runs holding a million metric rows.
4. **live**: the Train page watching a `tiny` run, no session, one, then --sessions: server
   CPU per refresh of the live view, and the run's examples/s over --train-s seconds once every
   page is drawn, against the same run unwatched.

    .venv/bin/python bench/classroom_speed.py                   # everything (about 10 minutes)
    .venv/bin/python bench/classroom_speed.py --only build,switch

Localhost only, bounded by timeouts; run it on an otherwise idle machine (it prints the load).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import load_build  # noqa: E402  the load phases and their helpers
from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402
from nin_explorer.learn.data import default_root, load_dataset  # noqa: E402
from nin_explorer.net.presets import D2L, TINY  # noqa: E402
from nin_explorer.net.render import human_bytes, human_count  # noqa: E402
from nin_explorer.net.summary import summarize  # noqa: E402
from nin_explorer.runs.jobs import JobManager  # noqa: E402
from nin_explorer.runs.store import RunStore  # noqa: E402
from nin_explorer.runs.tables import METRIC_COLUMNS  # noqa: E402
from pages.common import PAGES  # noqa: E402

TEACHER = f"?teacher={load_build.TEACHER_TOKEN}"
# The page's numbers for a size: its caption, then the metric cards drawn after it.
DRAWN = """([size, values]) => {
    const cap = Array.from(document.querySelectorAll("[data-testid='stCaptionContainer']"))
        .some(e => e.textContent.includes(`input 1 x ${size} x ${size}`));
    const shown = Array.from(document.querySelectorAll("[data-testid='stMetricValue']"))
        .map(e => e.textContent.trim());
    return cap && values.every(v => shown.includes(v));
}"""
IDLE = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return app && app.dataset.testScriptState === "notRunning"
        && !document.querySelector("[data-testid='stSkeleton']");
}"""


def build_numbers(size: int) -> list[str]:
    """The Build page's FLOPs and training-memory cards for `d2l` at this input size."""
    s = summarize(replace(D2L, input_size=size), 128, "fp32", "sgd")
    return [human_count(s.flops), human_bytes(s.memory.train_bytes)]


def floor_numbers(size: int) -> list[str]:
    return [f"{size * size * (i + 1):,}" for i in range(5)]


def server_cpu(marker: bytes) -> float:
    """CPU seconds used so far by the processes whose command line holds `marker` (from
    /proc/PID/stat, which keeps the time of finished threads, such as each rerun's script
    thread, but counts in 10 ms ticks: compare sums over many reruns, not single ones)."""
    tick, used = os.sysconf("SC_CLK_TCK"), 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                fields = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
                used += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return used


def mean_ms(values: list[float]) -> str:
    return f"{sum(values) / max(1, len(values)) * 1000:,.1f}"


def ms(values: list[float]) -> str:
    """median / 95th percentile in ms"""
    if not values:
        return "-"
    return (f"{statistics.median(values) * 1000:,.0f} / "
            f"{load_build.percentile(values, 95) * 1000:,.0f}")


async def open_page(context, url: str, timeout_ms: float):
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function(IDLE, polling=50, timeout=timeout_ms)
    return page


# --- 1. the Build page against the floor ---------------------------------------------------
async def build_vs_floor(app_url: str, floor_url: str, moves: int, timeout_s: float,
                         view: str | None = None) -> dict:
    from playwright.async_api import async_playwright
    targets = {"build": (app_url + "/" + TEACHER, b"streamlit\x00run\x00app.py", build_numbers),
               "floor": (floor_url, b"streamlit\x00run\x00bench/floor_app.py", floor_numbers)}
    out = {k: {"drawn": [], "cpu": [], "wire": [], "chromium": []} for k in targets}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        pages, wire = {}, {k: [] for k in targets}
        for k, (url, _, _) in targets.items():
            pages[k] = await context.new_page()
            load_build.watch_the_wire(pages[k], wire[k], {"on": True})
            await pages[k].goto(url)
            await pages[k].wait_for_function(IDLE, polling=50, timeout=timeout_s * 1000)
        if view:                                   # another of the Build page's tabs
            await pages["build"].get_by_role("tab", name=view).click()
            await asyncio.sleep(1)
            await pages["build"].wait_for_function(IDLE, polling=50, timeout=timeout_s * 1000)
        size = 224
        for i in range(moves + 2):   # the first two moves of each warm up (not counted)
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for k in order:
                url, marker, numbers = targets[k]
                page = pages[k]
                await page.bring_to_front()
                slider = page.locator(".st-key-w-input_size input[type='range']")
                await slider.focus()
                await asyncio.sleep(0.3)            # the machine settles between moves
                cpu0, t0, n0 = server_cpu(marker), time.perf_counter(), len(wire[k])
                chromium0 = server_cpu(b"chromium")
                await slider.press("ArrowRight")
                await page.wait_for_function(DRAWN, arg=[size + 1, numbers(size + 1)],
                                             polling="raf", timeout=timeout_s * 1000)
                drawn = time.perf_counter() - t0
                await page.wait_for_function(IDLE, polling=50, timeout=timeout_s * 1000)
                await asyncio.sleep(0.15)            # the last messages go out
                if i >= 2:
                    out[k]["drawn"].append(drawn)
                    out[k]["cpu"].append(server_cpu(marker) - cpu0)
                    out[k]["chromium"].append(server_cpu(b"chromium") - chromium0)
                    out[k]["wire"] += wire[k][n0:]
                # the other page moves to the same size next
            size += 1
        await browser.close()
    return out


# --- 3. page switches ------------------------------------------------------------------------
def fill_store(home: Path, n_runs: int, metrics_per_run: int, seed: int = 0) -> None:
    """`n_runs` finished runs with `metrics_per_run` metric rows each (one in ten an epoch row),
    a tenth of them in ablation groups of 4, written straight into the store's tables."""
    RunStore(home)   # the schema
    rng = random.Random(seed)
    spec, cfg = json.dumps(TINY.to_dict()), TrainConfig(dataset="shapes")
    con = sqlite3.connect(home / "runs.sqlite")
    now = time.time()
    with con:
        for start in range(0, n_runs, 1000):
            runs, metrics = [], []
            for i in range(start, min(n_runs, start + 1000)):
                acc = rng.uniform(0.5, 0.95)
                group = f"ablation-{i // 4}" if i % 40 < 4 else None
                config = json.dumps({**cfg.to_dict(), "seed": i % 3})
                runs.append((i + 1, now - (n_runs - i) * 60, f"bench run {i}", spec, config,
                             "completed", now - (n_runs - i) * 60 + 50, acc, acc - 0.01, 0.4,
                             1000.0, 50.0, "cpu", group))
                for j in range(metrics_per_run):
                    epoch_row = j % 10 == 9
                    metrics.append((i + 1, "epoch" if epoch_row else "step", j * 10,
                                    j / 10, 2.3 * 0.98 ** j, 0.1 + 0.8 * j / metrics_per_run,
                                    *((2.0 * 0.98 ** j, acc * j / metrics_per_run)
                                      if epoch_row else (None, None)),
                                    0.1, 1000.0, j * 0.5, None, None))
            con.executemany(
                "INSERT INTO runs (id, created, name, spec, config, status, ended, best_test_acc,"
                " final_test_acc, train_loss, examples_per_sec, wall_s, device, group_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
            con.executemany(
                f"INSERT INTO metrics (run_id, kind, {', '.join(METRIC_COLUMNS)}) VALUES "
                f"(?, ?, {', '.join('?' * len(METRIC_COLUMNS))})", metrics)
    con.close()


async def page_switches(url: str, rounds: int, timeout_s: float) -> dict[str, list[float]]:
    """Click each page's sidebar link in turn, `rounds` times: link -> its heading drawn and
    the script finished."""
    from playwright.async_api import async_playwright
    times: dict[str, list[float]] = {title: [] for _, title, _, _ in PAGES}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await open_page(context, url + "/" + TEACHER, timeout_s * 1000)
        for r in range(rounds + 1):               # the first round warms up
            for _, title, _, _ in PAGES[1:] + PAGES[:1]:
                heading = await page.locator("h1").first.text_content()
                link = page.locator("[data-testid='stSidebar'] a", has_text=title).first
                t0 = time.perf_counter()
                await link.click()
                await page.wait_for_function(
                    """old => { const h = document.querySelector('h1');
                                return h && h.textContent !== old; }""",
                    arg=heading, polling="raf", timeout=timeout_s * 1000)
                await page.wait_for_function(IDLE, polling="raf", timeout=timeout_s * 1000)
                if r:
                    times[title].append(time.perf_counter() - t0)
        await browser.close()
    return times


# --- 4. the Train page's live view -----------------------------------------------------------
def examples_done(store, run_id: int) -> float:
    """Training examples seen so far by a run on all of `shapes` (its latest step row)."""
    steps = store.metrics(run_id, "step")
    return steps[-1]["epoch"] * SHAPES_TRAIN if steps else 0.0


SHAPES_TRAIN = 60_000


async def watch_live(url: str, home: Path, sessions: int, window_s: float,
                     timeout_s: float) -> dict:
    """`sessions` Train pages (0: none) open on one `tiny` run while it trains. Once they are all
    drawn, a window of `window_s`: the run's examples/s in it (from its step rows), refreshes
    counted on the wire (a fragment rerun sent -> finished), server CPU from /proc."""
    from playwright.async_api import async_playwright
    jm = JobManager(home, poll_s=0.2)
    cfg = TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 50,
                                 "time_budget_s": 600, "max_test_examples": 2000})
    refreshes: list[float] = []      # each refresh's server time, as the browsers see it
    wire = {"on": True}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            run_id = jm.submit(TINY, cfg, name=f"live bench, {sessions} watching")
            deadline = time.monotonic() + timeout_s
            while not examples_done(jm.store, run_id) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)        # running, its data loaded, a first step done
            pages = []
            for i in range(sessions):
                page = await context.new_page()
                load_build.watch_the_wire(page, refreshes, wire)
                await page.goto(f"{url}/train?run={run_id}" + ("&" + TEACHER[1:] if i == 0 else ""))
                pages.append(page)
            for page in pages:
                await page.get_by_test_id("stProgress").first.wait_for(timeout=timeout_s * 1000)
            await asyncio.sleep(3)
            n0, cpu0, t0 = len(refreshes), server_cpu(b"streamlit\x00run\x00app.py"), time.perf_counter()
            chromium0 = server_cpu(b"chromium")
            done0 = examples_done(jm.store, run_id)
            await asyncio.sleep(window_s)
            cpu, wall = server_cpu(b"streamlit\x00run\x00app.py") - cpu0, time.perf_counter() - t0
            rate = (examples_done(jm.store, run_id) - done0) / wall
            chromium = server_cpu(b"chromium") - chromium0
            n, times = len(refreshes) - n0, refreshes[n0:]
            errors = [i for i, pg in enumerate(pages)
                      if await pg.get_by_test_id("stException").count()]
        finally:
            jm.stop(run_id)
            jm.close(stop_runs=True)
            await browser.close()
    return {"sessions": sessions, "refreshes": n, "cpu": cpu, "wall": wall, "errors": errors,
            "rate": rate, "times": times, "chromium": chromium}


def section(title: str) -> None:
    print(f"\n### {title}\n")


def report_build(r: dict) -> None:
    section("Build page against the floor (one Chromium, alternate moves)")
    print("| page | moves | key press -> numbers drawn, ms (median / p95) "
          "| server CPU per rerun, ms (mean) | rerun sent -> script finished, ms (median / p95) "
          "| Chromium CPU per move, ms (mean) |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, label in (("floor", "bench/floor_app.py: one slider, five metrics"),
                     ("build", "Build page (`d2l`)")):
        print(f"| {label} | {len(r[k]['drawn'])} | {ms(r[k]['drawn'])} | {mean_ms(r[k]['cpu'])} "
              f"| {ms(r[k]['wire'])} | {mean_ms(r[k]['chromium'])} |")
    ratio = statistics.median(r["build"]["drawn"]) / statistics.median(r["floor"]["drawn"])
    cpu = statistics.mean(r["build"]["cpu"]) * 1000
    print(f"\nBuild / floor (medians): **{ratio:.2f}x** (target 1.5x: "
          f"{'met' if ratio <= 1.5 else 'missed'}); server CPU per rerun {cpu:.0f} ms, mean "
          f"(target 25 ms: {'met' if cpu <= 25 else 'missed'}).")


def report_visitors(sessions: int, alone: float, phases: list) -> None:
    section(f"{sessions} visitors move the Build page's slider while `tiny` trains")
    print("| between a session's moves | reruns | server time per rerun, ms (median / p95) "
          "| key press -> drawn, ms (median / p95) | failed renders | CPU s per rerun: server / "
          "Chromium | run examples/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pause, r in phases:
        n, rate = max(1, len(r["server"])), r["run"]["examples_per_sec"]
        print(f"| {'no pause' if not pause else f'random, {pause:g} s on average'} "
              f"| {len(r['server'])} | {ms(r['server'])} | {ms(r['drawn'])} | {len(r['problems'])} "
              f"| {r['cpu']['server'] / n:.3f} / {r['cpu']['chromium'] / n:.3f} "
              f"| {rate:,.0f} ({rate / alone * 100:.0f}% of {alone:,.0f} alone) |")


def report_switch(results: dict[str, dict[str, list[float]]]) -> None:
    section("Page switch: sidebar link -> page drawn and idle, ms (median / p95)")
    names = list(results)
    print("| page | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    worst = {}
    for _, title, _, _ in PAGES:
        cells = []
        for n in names:
            t = results[n][title]
            cells.append(ms(t))
            worst[n] = max(worst.get(n, 0), statistics.median(t))
        print(f"| {title} | " + " | ".join(cells) + " |")
    print("\nSlowest median: " + "; ".join(f"{n} {v * 1000:,.0f} ms" for n, v in worst.items())
          + " (targets: 600 ms with an empty store and 200 runs; 1 s with 10,000 runs).")


def report_live(alone: float, watched: list[dict]) -> None:
    section("Train page: the live view while a `tiny` run trains")
    print("| watching sessions | refreshes | server CPU per refresh, ms (mean) | refresh sent -> "
          "finished, ms (median / p95) | CPU s per s: server / Chromium | run examples/s "
          "| slower than unwatched | pages with an error |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| 0 | - | - | - | - | {alone:,.0f} | - | - |")
    for w in watched:
        per = w["cpu"] / max(1, w["refreshes"]) * 1000
        print(f"| {w['sessions']} | {w['refreshes']} | {per:.1f} | {ms(w['times'])} "
              f"| {w['cpu'] / w['wall']:.2f} / {w['chromium'] / w['wall']:.2f} | {w['rate']:,.0f} "
              f"| {(1 - w['rate'] / alone) * 100:.0f}% | {len(w['errors'])} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="build,visitors,switch,live")
    p.add_argument("--moves", type=int, default=20, help="moves per page in 'build'")
    p.add_argument("--view", help="the Build page's tab open in 'build' (default: Layers)")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--train-s", type=float, default=30.0)
    p.add_argument("--pause-s", type=float, default=3.0,
                   help="'visitors' runs twice: moves at once, then this long apart on average")
    p.add_argument("--rounds", type=int, default=3, help="switches to each page")
    p.add_argument("--big-runs", type=int, default=10_000)
    p.add_argument("--timeout-s", type=float, default=120.0)
    args = p.parse_args()
    only = set(args.only.split(","))
    if not os.path.exists(CHROMIUM):
        print(f"needs Debian's chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    data = default_root()
    load_dataset("shapes", root=data)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    print(f"## Classroom speed ({platform.processor() or platform.machine()}, {os.cpu_count()} "
          f"cores; {time.strftime('%Y-%m-%d %H:%M')})")
    ok = True
    with tempfile.TemporaryDirectory(prefix="nin-classroom-") as tmp:
        tmp = Path(tmp)
        homes = {"empty store": tmp / "empty", "200 runs": tmp / "200",
                 f"{args.big_runs:,} runs, {args.big_runs * 100:,} metric rows": tmp / "big"}
        work = tmp / "work"   # the runs the phases below train
        for h in (work, *homes.values()):
            h.mkdir()
        with streamlit_server(work, data=data) as url:
            if "build" in only:
                with streamlit_server(tmp, data=data, script="bench/floor_app.py") as floor:
                    report_build(asyncio.run(build_vs_floor(url, floor, args.moves, args.timeout_s,
                                                             args.view)))
            if "visitors" in only:
                alone = load_build.train_run(work, args.train_s)["examples_per_sec"]
                phases = [(pause, asyncio.run(load_build.drive(
                    url, work, args.sessions, 100, args.train_s, args.timeout_s, pause)))
                    for pause in (0.0, args.pause_s)]
                report_visitors(args.sessions, alone, phases)
                ok &= not any(loaded["problems"] for _, loaded in phases)
            if "live" in only:
                watched = [asyncio.run(watch_live(url, work, n, args.train_s, args.timeout_s))
                           for n in (0, 1, args.sessions)]
                report_live(watched[0]["rate"], watched[1:])
                ok &= not any(w["errors"] for w in watched)
        if "switch" in only:
            results = {}
            for (name, home), (runs, rows) in zip(homes.items(), ((0, 0), (200, 100),
                                                                    (args.big_runs, 100))):
                if runs:
                    fill_store(home, runs, rows)
                with streamlit_server(home, data=data) as url:
                    results[name] = asyncio.run(page_switches(url, args.rounds, args.timeout_s))
            report_switch(results)
    print(f"\n{time.perf_counter() - t0:.0f} s in all; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
