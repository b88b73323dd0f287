"""Real browser: what a teacher shows goes into the address (a bound widget writes it from the
browser, which AppTest has not), the link opens exactly that in another tab, and presentation
mode hides the sidebar and the controls until it is left."""
import os
import re

import pytest

from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed"),
]


def test_a_shown_view_and_presentation_mode_travel_in_the_link(tmp_path):
    from playwright.sync_api import expect, sync_playwright
    with streamlit_server(tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/")
        wait_for_app(page)
        main, sidebar = page.get_by_test_id("stMain"), page.get_by_test_id("stSidebar")
        main.get_by_role("tab", name="Memory").click()
        expect(page).to_have_url(re.compile(r"build\.view=Memory"))
        sidebar.get_by_text("Presentation mode").click()
        expect(page).to_have_url(re.compile(r"present=true"))
        expect(sidebar).to_be_hidden()
        expect(main.get_by_role("tab", name="Memory")).to_be_hidden()        # the tab strip
        expect(page.get_by_role("button", name="Leave presentation")).to_be_visible()
        link = page.url
        assert "preset=d2l" in link, link                  # and the variant

        shown = browser.new_page(viewport={"width": 1400, "height": 900})   # the link, elsewhere
        shown.goto(link)
        wait_for_app(shown)
        expect(shown.get_by_role("button", name="Leave presentation")).to_be_visible()
        expect(shown.get_by_test_id("stSidebar")).to_be_hidden()
        expect(shown.get_by_test_id("stMain").get_by_text("Memory at batch size").first).to_be_visible()
        expect(shown.get_by_test_id("stPlotlyChart").first).to_be_visible()    # the memory chart
        shown.get_by_role("button", name="Leave presentation").click()
        expect(shown.get_by_test_id("stSidebar")).to_be_visible()
        expect(shown).not_to_have_url(re.compile(r"present="))
        expect(shown.get_by_test_id("stMain").get_by_role("tab", name="Memory")).to_have_attribute(
            "aria-selected", "true")
        page.reload()                            # the first tab's session is its own
        wait_for_app(page)
        expect(page.get_by_role("button", name="Leave presentation")).to_be_visible()
        expect(page.get_by_test_id("stSidebar")).to_be_hidden()
        browser.close()
