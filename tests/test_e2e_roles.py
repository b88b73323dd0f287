"""Real browser: a classroom server keeps who you are in the URL across the sidebar's links
and reloads (AppTest cannot click st.page_link)."""
import os
import re

import pytest

from e2e_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed"),
]
TOKEN = "teacher-token-for-the-browser-test"


def visitor_id(url: str) -> str | None:
    found = re.search(r"[?&]v=([A-Za-z0-9_-]+)", url)
    return found.group(1) if found else None


def test_identity_survives_sidebar_links_and_reloads(tmp_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright
    monkeypatch.setenv("NIN_EXPLORER_TEACHER_TOKEN", TOKEN)
    with streamlit_server(tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        sidebar = page.get_by_test_id("stSidebar")
        page.goto(f"{url}/train")
        wait_for_app(page)
        expect(sidebar.get_by_text("You are a visitor")).to_be_visible()
        first = visitor_id(page.url)
        assert first, page.url
        sidebar.get_by_text("Ablations", exact=True).click()
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").locator("h1").first).to_contain_text("Ablations")
        assert visitor_id(page.url) == first, page.url
        page.reload()
        wait_for_app(page)
        assert visitor_id(page.url) == first
        expect(sidebar.get_by_text("You are a visitor")).to_be_visible()

        teacher = browser.new_page()                       # the teacher link, another tab
        teacher_bar = teacher.get_by_test_id("stSidebar")
        teacher.goto(f"{url}/?teacher={TOKEN}")
        wait_for_app(teacher)
        expect(teacher_bar.get_by_text("You are the teacher")).to_be_visible()
        teacher_bar.get_by_text("Train", exact=True).click()
        wait_for_app(teacher)
        assert f"teacher={TOKEN}" in teacher.url, teacher.url
        expect(teacher_bar.get_by_text("You are the teacher")).to_be_visible()
        browser.close()
