"""Screenshot pages in headless Chromium: `python tools/screenshots.py [OUT_DIR] [PATH ...]`.

SHOT_HOME / SHOT_DATA: a run store and data folder to serve (default: empty temp folders).

Used to look at the UI and to refresh the README's images in assets/.
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app  # noqa: E402


def main(out: Path, paths: list[str]) -> None:
    from playwright.sync_api import sync_playwright
    out.mkdir(parents=True, exist_ok=True)
    import os
    home = Path(os.environ.get("SHOT_HOME") or tempfile.mkdtemp())
    data = Path(os.environ["SHOT_DATA"]) if os.environ.get("SHOT_DATA") else None
    with streamlit_server(home, data=data) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for path in paths:
            page.goto(f"{url}/{path}")
            wait_for_app(page)
            page.wait_for_timeout(1500)  # plotly draws after the script finishes
            name = path.split("?")[0] or "home"
            page.screenshot(path=str(out / f"{name}.png"), full_page=False)
            print(out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("test-artifacts")
    main(out, sys.argv[2:] or ["build"])
