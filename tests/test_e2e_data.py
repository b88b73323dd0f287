"""Real browser: upload a zip of your own images, train a short run on it, open its GAP maps.

Its own server with an empty data directory; screenshots land in test-artifacts/data-*.png.
"""
import io
import os
import re
import zipfile

import pytest
from PIL import Image

from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app
from test_e2e import ARTIFACTS, LIVE_S, no_exception, screenshot, set_number

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)"),
]


def pets_zip(path) -> None:
    """pets/cat (red) and pets/dog (blue), 15 RGB 36x36 images each, wrapped in one folder."""
    with zipfile.ZipFile(path, "w") as z:
        for label, colour in (("cat", (220, 30, 30)), ("dog", (30, 30, 220))):
            for i in range(15):
                image = Image.new("RGB", (36, 36), colour)
                image.paste((i * 15,) * 3, (i, i, i + 9, i + 9))
                data = io.BytesIO()
                image.save(data, format="PNG")
                z.writestr(f"pets/{label}/{i:02d}.png", data.getvalue())


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        yield pg
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "data-last.png"), full_page=True)
        browser.close()


def test_upload_a_zip_train_on_it_and_open_its_gap_maps(tmp_path, page):
    from playwright.sync_api import expect
    pets_zip(tmp_path / "pets.zip")
    with streamlit_server(tmp_path, data=tmp_path / "data") as url:
        page.goto(f"{url}/train")
        wait_for_app(page)
        page.get_by_text("Upload your own images (.zip)").click()
        page.locator(".st-key-data-zip input[type='file']").set_input_files(str(tmp_path / "pets.zip"))
        wait_for_app(page)
        name = page.locator(".st-key-data-zip-name input")
        name.fill("pets")
        name.press("Enter")
        wait_for_app(page)
        page.locator(".st-key-data-zip-go button").click()
        wait_for_app(page)
        expect(page.locator(".st-key-t-dataset input")).to_have_value("folder:pets (your images)", timeout=30_000)
        expect(page.get_by_text("chosen here, and listed on every page")).to_be_visible()
        expect(page.get_by_text("so tiny is adapted")).to_be_visible()
        expect(page.get_by_text("2 classes, 3x32x32 colour, 24 + 6").first).to_be_visible()
        page.get_by_text("Preview of folder:pets: classes, counts and samples").click()
        expect(page.get_by_test_id("stImage")).to_have_count(2, timeout=30_000)  # a row per class
        expect(page.get_by_test_id("stImage").locator("img")).to_have_count(2 * 6)  # 6 samples each
        no_exception(page)
        screenshot(page, "data-train-folder")

        set_number(page, "t.epochs", 2)
        page.locator(".st-key-t-launch button").click()
        progress = page.get_by_test_id("stProgress").first
        expect(progress).to_contain_text("#1 completed", timeout=LIVE_S)
        no_exception(page)

        page.goto(f"{url}/maps?run=1")
        wait_for_app(page)
        expect(page.locator(".st-key-class_maps .main-svg").first).to_be_attached(timeout=60_000)
        expect(page.get_by_text(re.compile("trained 2 epoch.* on `?folder:pets"))).to_be_visible()
        page.locator(".st-key-maps_analyse button").click()
        wait_for_app(page)
        expect(page.locator(".st-key-confusion .main-svg").first).to_be_attached(timeout=60_000)
        expect(page.locator(".st-key-class_grid .main-svg").first).to_be_attached(timeout=30_000)
        expect(page.locator(".st-key-confusion")).to_contain_text("dog")
        no_exception(page)
        screenshot(page, "data-maps-folder")
