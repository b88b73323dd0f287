"""Real-browser smoke tests: Debian's chromium driven by Playwright against `streamlit run`."""
import os
import re
from pathlib import Path

import pytest

from e2e_server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)"),
]
ARTIFACTS = ROOT / "test-artifacts"
PAGES = [("build", "Build a NiN variant")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("e2e")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    failed = getattr(request.node, "rep_call", None) and request.node.rep_call.failed
    if failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    ctx.close()


@pytest.mark.parametrize("path, heading", PAGES)
def test_every_page_loads_without_exception(server, page, path, heading):
    from playwright.sync_api import expect
    page.goto(f"{server}/{path}")
    wait_for_app(page)
    expect(page.get_by_text(heading).first).to_be_visible(timeout=30_000)
    # app.py's frame is there (a fresh server's first deep link once skipped it)
    expect(page.get_by_test_id("stSidebar").get_by_text("NiN Explorer")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{path}.png"), full_page=True)


def test_build_slider_updates_table_and_url(server, page):
    from playwright.sync_api import expect
    page.goto(server)
    wait_for_app(page)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("1,992,166", timeout=30_000)
    assert "preset=d2l" in page.url
    # Move the input-size slider with the keyboard: each ArrowRight adds 1 pixel.
    slider = page.locator(".st-key-w-input_size input[type='range']")
    slider.focus()
    for _ in range(8):
        slider.press("ArrowRight")
    wait_for_app(page)
    expect(page).to_have_url(re.compile(r"spec="), timeout=30_000)
    expect(page.get_by_test_id("stSlider").first).to_contain_text("232")
    page.get_by_role("tab", name="Diagram").click()
    expect(page.locator(".st-key-diagram .main-svg").first).to_be_attached(timeout=30_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "build-diagram.png"), full_page=True)
