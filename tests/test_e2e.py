"""Real-browser tests: Debian's chromium driven by Playwright against `streamlit run app.py`.

One server per module (its own run store, the session's `shapes` data); the tests run in file
order and the later ones use what the earlier ones trained: Train -> GAP maps -> Compare.
Screenshots of every page land in test-artifacts/ (FAILED-<test>.png on a failure).
"""
import time
import os
import re

import pytest

from e2e_server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)"),
]
ARTIFACTS = ROOT / "test-artifacts"
LIVE_S = 120_000   # ms: a worker start plus a tiny run, with room for a loaded CI machine

# The page heading each url path shows (pages/common.py PAGES lists the paths).
HEADINGS = {"build": "Build a NiN variant", "train": "Train", "maps": "GAP feature maps",
            "ablation": "Ablations", "compare": "Compare runs"}
# Curve points drawn in the Train page's live chart (every trace of the plotly figure).
CURVE_POINTS = """() => {
  const plot = document.querySelector('.st-key-curves .js-plotly-plot');
  return plot && plot.data ? plot.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : -1;
}"""
state = {}   # what earlier tests made: {"run": id of the Train test's run}


def page_paths() -> list[str]:
    from pages.common import PAGES
    return [url for *_, url in PAGES]


@pytest.fixture(scope="module")
def server(tmp_path_factory, shapes_root):
    with streamlit_server(tmp_path_factory.mktemp("e2e"), data=shapes_root) as url:
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


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its own container, so `full_page` alone stops
    at the viewport; grow the viewport to the content's height for the picture."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(...['stMain', 'stAppViewContainer'].map(
        id => document.querySelector(`[data-testid='${id}']`)?.scrollHeight || 0))""")
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(height, 8000)})
        page.wait_for_timeout(500)   # let plotly redraw at the new size
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def no_exception(page) -> None:
    from playwright.sync_api import expect
    expect(page.get_by_test_id("stException")).to_have_count(0)


def set_number(page, key: str, value: int) -> None:
    """Type into a number_input (key with '.' as in the page, e.g. 't.subset') and commit it."""
    box = page.locator(f".st-key-{re.sub(r'[^A-Za-z0-9_-]', '-', key)} input")
    box.fill(str(value))
    box.press("Enter")
    wait_for_app(page)


@pytest.mark.parametrize("path", page_paths())
def test_every_page_loads_without_exception(server, page, path):
    from playwright.sync_api import expect
    page.goto(f"{server}/{path}")
    wait_for_app(page)
    heading = page.get_by_test_id("stMain").locator("h1").first
    expect(heading).to_be_visible(timeout=30_000)
    if path in HEADINGS:
        expect(heading).to_contain_text(HEADINGS[path])
    # app.py's frame is there (a fresh server's first deep link once skipped it)
    expect(page.get_by_test_id("stSidebar").get_by_text("NiN Explorer")).to_be_visible()
    no_exception(page)
    screenshot(page, f"page-{path}")


def test_a_fresh_servers_first_deep_link_gets_the_frame(tmp_path, shapes_root, page):
    """A server's very first request is /train (a bookmark, a teacher's link): Streamlit runs
    that page from pages/ without app.py; pages/common.py page_title draws the frame then, and
    the menu's links lead on to pages that draw it once."""
    from playwright.sync_api import expect
    with streamlit_server(tmp_path, data=shapes_root) as url:
        page.goto(f"{url}/train?run=1")
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").locator("h1").first).to_have_text(HEADINGS["train"],
                                                                                 timeout=30_000)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("NiN Explorer")).to_have_count(1)
        no_exception(page)
        sidebar.get_by_role("link", name="Compare").click()
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").locator("h1").first).to_have_text(HEADINGS["compare"],
                                                                                 timeout=30_000)
        expect(sidebar.get_by_text("NiN Explorer")).to_have_count(1)
        assert page.url.rstrip("/").endswith("/compare")
        no_exception(page)


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
    expect(page.get_by_text("input 1 x 232 x 232").first).to_be_visible()  # caption over the table
    page.get_by_role("tab", name="Diagram").click()     # drawn only once opened
    expect(page.locator(".st-key-diagram .main-svg").first).to_be_attached(timeout=30_000)
    block = page.get_by_test_id("stSidebar").get_by_text("Block 2: nin")
    block.click()                                       # its widgets are drawn once opened
    expect(page.locator(".st-key-w-b2-out_channels input[type='range']")).to_be_attached(timeout=30_000)
    no_exception(page)
    screenshot(page, "build-diagram")


def test_train_run_curve_grows_and_completes(server, page):
    """A `tiny` run on 3,000 `shapes` images for 2 epochs, watched live through the fragment."""
    from playwright.sync_api import expect
    page.goto(f"{server}/train")
    wait_for_app(page)
    set_number(page, "t.subset", 3000)
    set_number(page, "t.epochs", 2)
    batch = page.locator(".st-key-t-batch_size input[type='range']")
    batch.focus()
    batch.press("ArrowLeft")   # 128 -> 64 -> 32: more points on the live curve
    batch.press("ArrowLeft")
    wait_for_app(page)
    expect(page.locator(".st-key-t-batch_size")).to_contain_text("32")
    page.locator(".st-key-t-launch button").click()

    progress = page.get_by_test_id("stProgress").first
    expect(progress).to_contain_text(re.compile(r"#\d+ running · epoch"), timeout=LIVE_S)
    run_id = int(re.search(r"#(\d+)", progress.inner_text()).group(1))
    state["run"] = run_id
    assert f"run={run_id}" in page.url
    page.wait_for_function(f"({CURVE_POINTS})() > 0", timeout=30_000)
    while_running = page.evaluate(CURVE_POINTS)
    expect(progress).to_contain_text(f"#{run_id} completed", timeout=LIVE_S)
    page.wait_for_function(f"({CURVE_POINTS})() > {while_running}", timeout=30_000)  # it grew
    # the fragment's st.rerun() on finishing redraws the whole page: the Stop button goes.
    expect(page.locator(".st-key-t-stop")).to_have_count(0, timeout=30_000)
    # the run picker names the run without a status (Streamlit redraws a selectbox's text
    # only when its value changes, streamlit/streamlit PR #13788, so a status there went stale)
    picker = page.locator(".st-key-t-open input[role='combobox']")
    expect(picker).to_have_value(re.compile(rf"^#{run_id} "))
    assert "running" not in picker.input_value()
    best = page.get_by_test_id("stMetric").filter(has_text="Best test accuracy")
    expect(best.get_by_test_id("stMetricValue")).to_contain_text("%")
    no_exception(page)
    screenshot(page, "train-run-completed")


def test_gap_maps_of_that_run_render(server, page):
    from playwright.sync_api import expect
    run_id = state.get("run")
    if run_id is None:
        pytest.skip("needs the run trained by test_train_run_curve_grows_and_completes")
    page.goto(f"{server}/maps?run={run_id}")
    wait_for_app(page)
    expect(page.locator(".st-key-maps_run input")).to_have_value(re.compile(f"^#{run_id} "),
                                                              timeout=30_000)
    expect(page.locator(".st-key-class_maps .main-svg").first).to_be_attached(timeout=60_000)
    expect(page.locator(".st-key-logits .main-svg").first).to_be_attached(timeout=30_000)
    expect(page.get_by_text("predicted:")).to_be_visible()
    no_exception(page)
    screenshot(page, "maps-run")
    # a hostile run id in the link falls back to a run of the store
    page.goto(f"{server}/maps?run=..%2F..%2Fetc")
    wait_for_app(page)
    expect(page.locator(".st-key-class_maps .main-svg").first).to_be_attached(timeout=60_000)
    no_exception(page)


def test_two_variant_ablation_finishes(server, page):
    """Custom tab: 1 epoch on 512 images, '1x1 convs per block' in {0, 1}."""
    from playwright.sync_api import expect
    page.goto(f"{server}/ablation")
    wait_for_app(page)
    page.get_by_role("tab", name="Your own ablation").click()
    set_number(page, "a.epochs", 1)
    set_number(page, "a.subset", 512)
    values = page.locator(".st-key-a-values-n_extra_1x1")
    values.locator("button[aria-label='Remove 2']:visible").click()
    wait_for_app(page)
    expect(page.get_by_text("2 runs (cap")).to_be_visible(timeout=30_000)
    page.locator(".st-key-a-queue button").click()
    expect(page.get_by_test_id("stProgress").first).to_contain_text("2 of 2 runs finished",
                                                                     timeout=2 * LIVE_S)
    expect(page.locator(".st-key-ablation_curves .main-svg").first).to_be_attached(timeout=30_000)
    no_exception(page)
    screenshot(page, "ablation-finished")


def test_compare_overlays_the_runs(server, page):
    from playwright.sync_api import expect
    page.goto(f"{server}/compare")
    wait_for_app(page)
    expect(page.locator(".st-key-cmp_curves .main-svg").first).to_be_attached(timeout=30_000)
    no_exception(page)
    screenshot(page, "compare-runs")


def test_other_host_names_get_no_session_unless_allowed(server, browser, tmp_path):
    """DNS rebinding: a page of rebind.test that resolves to 127.0.0.1 reaches the server with
    Host: rebind.test. config.toml's allowedHosts refuses its websocket; the README's classroom
    flag `--server.allowedHosts '*'` lets it in."""
    from playwright.sync_api import expect

    rebinding = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        *CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])

    def visit(url: str, connects: bool) -> None:
        page = rebinding.new_page()
        refused = []   # every websocket the client opens (it retries), watched from its start
        page.on("websocket", lambda ws: ws.on("socketerror", lambda e: refused.append(e)))
        page.goto(f"http://rebind.test:{url.rsplit(':', 1)[1]}/")
        if connects:
            wait_for_app(page)
            expect(page.get_by_test_id("stMain").locator("h1")).to_have_text(
                HEADINGS["build"], timeout=30_000)
        else:
            deadline = time.monotonic() + 30
            while not refused and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert refused, "the websocket was not refused at its handshake"
            expect(page.get_by_test_id("stApp")).not_to_have_attribute(
                "data-test-connection-state", "CONNECTED")
            expect(page.get_by_test_id("stMain").locator("h1")).to_have_count(0)
        page.close()

    try:
        visit(server, connects=False)
        with streamlit_server(tmp_path, extra_args=("--server.allowedHosts", "*")) as url:
            visit(url, connects=True)
    finally:
        rebinding.close()


def test_unknown_paths_land_on_a_working_build_page(server, page):
    """An old link (/build, the first page's own name) or a typo (/nonsense) after `/` has been
    opened: Streamlit's modal "Page not found" once blocked every widget behind it."""
    from playwright.sync_api import expect
    page.goto(server)
    wait_for_app(page)
    for path, note in (("nonsense", "No page at /nonsense; here is Build."), ("build", None)):
        page.goto(f"{server}/{path}")
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").locator("h1")).to_have_text(HEADINGS["build"],
                                                                           timeout=30_000)
        if note:
            expect(page.get_by_text(note)).to_be_visible()
        expect(page.get_by_test_id("stDialog")).to_have_count(0)
        slider = page.locator(".st-key-w-input_size input[type='range']")
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        wait_for_app(page)
        expect(page.get_by_text("input 1 x 227 x 227").first).to_be_visible(timeout=30_000)
        no_exception(page)


def test_no_request_leaves_the_machine(server, page):
    """Every request of every page goes to this server: an offline classroom must work, and an
    online one must not tell a third party (icons were SVGs from fonts.gstatic.com)."""
    from urllib.parse import urlsplit
    from playwright.sync_api import expect
    elsewhere = []

    def record(request):
        url = urlsplit(request.url)
        if url.scheme not in ("data", "blob") and url.hostname not in ("127.0.0.1", "localhost"):
            elsewhere.append(request.url)

    page.on("request", record)
    for path in page_paths():
        page.goto(f"{server}/{path}")
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").locator("h1").first).to_be_visible(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Train").click()   # a page change in one session
    wait_for_app(page)
    page.wait_for_timeout(1000)   # favicons and fonts load after the script has finished
    assert not elsewhere, f"requests off the machine: {sorted(set(elsewhere))[:5]}"
