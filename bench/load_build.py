"""Does the app stay usable for a class? N sessions move the Build page's input-size slider while a
`tiny` run trains; prints markdown tables (docs/RELIABILITY.md keeps the last ones).

1. Starts `streamlit run app.py` on a free localhost port (tests/e2e_server.py), its run store in
   a temporary folder and the data in NIN_EXPLORER_DATA (or the usual cache folder).
2. Baseline: one session moves the slider 10 times with nothing training.
3. Trains `tiny` on `shapes` alone for --train-s seconds: examples/s without load.
4. Opens --sessions Build pages in one headless Chromium (each page is its own Streamlit
   session; the server has a teacher token, the first page opens the teacher link and the
   others are visitors, as in a classroom), starts the same run again and, until it ends, every session presses ArrowRight on
   the slider and waits for the caption above the table to show the new size (it is written in
   the same script run as the table), --max-moves times at most. Each rerun is timed on the
   wire (`rerun_script` sent -> `script_finished` received: server time, no rendering) and in
   the page (key press -> new size drawn); CPU seconds of the server and of Chromium are read
   from /proc.
5. Checks every page for an exception box and that its last size was drawn.

    .venv/bin/python bench/load_build.py                     # 20 sessions, 40 s of training
    .venv/bin/python bench/load_build.py --sessions 5 --train-s 20

Localhost only; bounded by --max-moves, --train-s and --timeout-s. Run it on an otherwise idle
machine: it prints the load average before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from nin_explorer.learn.data import default_root, load_dataset  # noqa: E402
from nin_explorer.runs.jobs import JobManager  # noqa: E402
from nin_explorer.net.presets import TINY  # noqa: E402
from nin_explorer.runs.tables import ACTIVE  # noqa: E402
from nin_explorer.learn.config import TrainConfig  # noqa: E402

# A classroom server: a teacher token is set, so every page but the first is a visitor's.
TEACHER_TOKEN = secrets.token_urlsafe(16)
os.environ["NIN_EXPLORER_TEACHER_TOKEN"] = TEACHER_TOKEN

CAPTION_HAS = """size => Array.from(document.querySelectorAll("[data-testid='stCaptionContainer']"))
    .some(e => e.textContent.includes(`input 1 x ${size} x ${size}`))"""


def watch_the_wire(page, server_times: list[float], measuring: dict) -> None:
    """Server time per rerun as the browser's websocket sees it: from the `rerun_script`
    message sent to the `script_finished` message received (no rendering in it)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    sent_at: list[float] = []

    def kind(message_type, payload) -> str | None:
        if not isinstance(payload, (bytes, bytearray)):
            return None
        try:
            return message_type.FromString(bytes(payload)).WhichOneof("type")
        except Exception:  # noqa: BLE001  not one of Streamlit's messages
            return None

    def on_sent(payload) -> None:
        if measuring["on"] and kind(BackMsg, payload) == "rerun_script":
            sent_at.append(time.perf_counter())

    def on_received(payload) -> None:
        if sent_at and kind(ForwardMsg, payload) == "script_finished":
            server_times.append(time.perf_counter() - sent_at.pop(0))

    def on_websocket(ws) -> None:
        ws.on("framesent", on_sent)
        ws.on("framereceived", on_received)

    page.on("websocket", on_websocket)


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the Streamlit server and by Chromium (all its processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"server": 0.0, "chromium": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes()
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        who = ("server" if b"streamlit\x00run\x00app.py" in cmdline else
               "chromium" if b"chromium" in cmdline else None)
        if who:
            used[who] += (int(fields[11]) + int(fields[12])) / tick   # utime + stime
    return used


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def train_run(home: Path, seconds: float) -> dict:
    """One `tiny` run on all of `shapes`, ended by its time budget; the finished run's row."""
    cfg = TrainConfig.from_dict({"dataset": "shapes", "recipe": "modern", "epochs": 50,
                                 "time_budget_s": seconds, "max_test_examples": 2000})
    jm = JobManager(home, poll_s=0.2)
    try:
        run_id = jm.submit(TINY, cfg, name=f"load bench {seconds:g} s")
        deadline = time.monotonic() + seconds + 120
        while jm.store.get_run(run_id)["status"] in ACTIVE:
            if time.monotonic() > deadline:
                jm.stop(run_id)
                raise RuntimeError("the training run did not finish in time")
            time.sleep(0.5)
        return jm.store.get_run(run_id)
    finally:
        jm.close(stop_runs=True)


async def session(page, moves: int, done: asyncio.Event, timeout_ms: float,
                  pause_s: float = 0.0) -> dict:
    """Move the slider one pixel at a time while training runs, `pause_s` between moves (0: at
    once, as fast as the page answers); the latency of each rerun."""
    slider = page.locator(".st-key-w-input_size input[type='range']")
    size, times, failures = 224, [], []
    for i in range(moves):
        if done.is_set():
            break
        if pause_s:   # students do not all move at the same instant: start at random offsets
            await asyncio.sleep(random.uniform(0, 2 * pause_s) if i else random.uniform(0, pause_s))
        try:
            await slider.focus(timeout=timeout_ms)
            start = time.perf_counter()
            await slider.press("ArrowRight", timeout=timeout_ms)
            await page.wait_for_function(CAPTION_HAS, arg=size + 1, polling=50, timeout=timeout_ms)
        except Exception as e:  # noqa: BLE001  a render that never came counts as a failure
            failures.append(f"size {size + 1}: {type(e).__name__}: {str(e).splitlines()[0]}")
            break
        times.append(time.perf_counter() - start)
        size += 1
    return {"times": times, "failures": failures, "size": size}


async def drive(url: str, home: Path, sessions: int, moves: int, train_s: float | None,
                timeout_s: float, pause_s: float = 0.0) -> dict:
    """Open `sessions` Build pages, then move their sliders (while a run trains, if train_s)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                          headless=True)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        pages, server_times, measuring = [], [], {"on": False}
        for i in range(sessions):               # one at a time: 20 first renders at once
            page = await context.new_page()     # would only measure the start-up
            watch_the_wire(page, server_times, measuring)
            await page.goto(f"{url}/?teacher={TEACHER_TOKEN}" if i == 0 else url)
            await page.wait_for_function(CAPTION_HAS, arg=224, timeout=timeout_s * 1000)
            pages.append(page)

        measuring["on"] = True
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        done, run = asyncio.Event(), None
        if train_s:
            print(f"{sessions} sessions open; training under load for {train_s:g} s ...",
                  file=sys.stderr)
            loop = asyncio.get_running_loop()
            training = loop.run_in_executor(None, train_run, home, train_s)
            training.add_done_callback(lambda _: loop.call_soon_threadsafe(done.set))
        results = await asyncio.gather(*(session(pg, moves, done, timeout_s * 1000, pause_s)
                                         for pg in pages))
        measuring["on"] = False
        cpu = {k: v - cpu_before[k] for k, v in cpu_seconds().items()}
        cpu["wall"] = time.perf_counter() - wall_before
        if train_s:
            run = await training

        problems = []
        for i, (page, r) in enumerate(zip(pages, results)):
            problems += [f"session {i}, {f}" for f in r["failures"]]
            if await page.get_by_test_id("stException").count():
                problems.append(f"session {i}: exception box")
            if not await page.evaluate(f"({CAPTION_HAS})({r['size']})"):
                problems.append(f"session {i}: last size {r['size']} not drawn")
        await browser.close()
    return {"sessions": sessions, "training": bool(train_s), "server": server_times,
            "drawn": [t for r in results for t in r["times"]], "problems": problems, "run": run,
            "cpu": cpu}


def ms(values: list[float]) -> str:
    if not values:
        return "–"
    return " / ".join(f"{v * 1000:,.0f}" for v in (statistics.median(values),
                                                    percentile(values, 95), max(values)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--max-moves", type=int, default=100, help="slider moves per session, at most")
    p.add_argument("--train-s", type=float, default=40.0, help="each training run's time budget")
    p.add_argument("--timeout-s", type=float, default=120.0, help="longest wait for one render")
    args = p.parse_args()
    if not os.path.exists(CHROMIUM):
        print(f"needs Debian's chromium at {CHROMIUM}", file=sys.stderr)
        return 2

    data = default_root()
    load_dataset("shapes", root=data)  # generated once, before anything is timed
    load_before = os.getloadavg()[0]   # other work on the machine skews every number here
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nin-load-") as tmp:
        home = Path(tmp)
        with streamlit_server(home, data=data) as url:
            print(f"server at {url}; one session, no training ...", file=sys.stderr)
            quiet = asyncio.run(drive(url, home, 1, 10, None, args.timeout_s))
            print(f"training alone for {args.train_s:g} s ...", file=sys.stderr)
            alone = train_run(home, args.train_s)
            loaded = asyncio.run(drive(url, home, args.sessions, args.max_moves, args.train_s,
                                       args.timeout_s))
    wall = time.perf_counter() - t0

    cpu = platform.processor() or platform.machine()
    print(f"\nBuild page under load: sessions in one headless Chromium move the input-size "
          f"slider one pixel at a time ({cpu}, {os.cpu_count()} cores, {wall:.0f} s in all; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; the first "
          "session is the teacher, the others visitors). "
          "Times in ms: median / 95th percentile / max.\n")
    print("| sessions | a `tiny` run training | reruns | server time per rerun "
          "(rerun sent -> script finished) | key press -> new size drawn | failed renders "
          "| CPU s per rerun: server / Chromium |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for phase in (quiet, loaded):
        n = max(1, len(phase["server"]))
        print(f"| {phase['sessions']} | {'yes' if phase['training'] else 'no'} | "
              f"{len(phase['server'])} | {ms(phase['server'])} | {ms(phase['drawn'])} | "
              f"{len(phase['problems'])} | {phase['cpu']['server'] / n:.2f} / "
              f"{phase['cpu']['chromium'] / n:.2f} |")
    rate_alone, rate_loaded = alone["examples_per_sec"], loaded["run"]["examples_per_sec"]
    print(f"\n| `tiny` on `shapes`, {args.train_s:g} s budget | examples/s |")
    print("|---|---:|")
    print(f"| alone (server idle) | {rate_alone:,.0f} |")
    print(f"| with {args.sessions} sessions moving sliders | {rate_loaded:,.0f} "
          f"({rate_alone / rate_loaded:.1f}x slower) |")
    for line in quiet["problems"] + loaded["problems"]:
        print(f"- {line}")
    ok = not quiet["problems"] and not loaded["problems"] and loaded["run"]["status"] == "completed"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
