"""Start `streamlit run app.py` on a free localhost port for browser tests and screenshots."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(home: Path, timeout_s: float = 90, data: Path | None = None,
                     extra_args: tuple[str, ...] = (), script: str = "app.py"):
    """Serve the app (or another `script`, relative to the repository) with its run store in
    `home` (and data in `data`, else home/data); `extra_args` go to `streamlit run` after ours
    (e.g. ("--server.allowedHosts", "*"))."""
    port = free_port()
    env = {**os.environ, "NIN_EXPLORER_HOME": str(home),
           "NIN_EXPLORER_DATA": str(data or home / "data")}
    log = open(home / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
         *extra_args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {home / 'streamlit.log'}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """As Streamlit's own e2e tests do: connected, then not running; then assert on content."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']",
                           state="attached", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           state="attached", timeout=timeout_ms)
    page.wait_for_timeout(300)
    # a rerun right after the first (see pages/common.py) can leave skeletons for a moment
    page.wait_for_function("!document.querySelector(\"[data-testid='stSkeleton']\")",
                           timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           state="attached", timeout=timeout_ms)
