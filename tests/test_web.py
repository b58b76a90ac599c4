"""The web page at / in headless Debian Chromium (Selenium + chromium-driver), against a real server.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``apt-get install chromium
chromium-driver``) and the ``selenium`` package (a dev extra); skips with the reason otherwise.
No browser is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_api import Q, chunker, make_app, store  # noqa: F401  (fixtures)

from koqa.api.server import serve_in_thread
from koqa.pipeline.fakes import FakeReader

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("KOQA_CHROMIUM", "/usr/bin/chromium"))
DRIVER = Path(os.environ.get("KOQA_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver"))
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1200,1000")


@pytest.fixture
def browser(monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    if not CHROMIUM.exists() or not DRIVER.exists():
        pytest.skip(f"needs Debian chromium and chromium-driver ({CHROMIUM}, {DRIVER}): "
                    "apt-get install chromium chromium-driver")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to fetch anything
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, predicate, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d))


def test_ask_in_the_page_highlights_the_answer_in_its_passage(make_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    with serve_in_thread(make_app(FakeReader({Q: "세종대왕"}))) as url:
        browser.get(url + "/?collection=history")
        wait(browser, lambda d: d.find_element(By.ID, "collection").get_attribute("value") == "history")
        browser.find_element(By.ID, "question").send_keys(Q)
        browser.find_element(By.ID, "ask").click()
        answers = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#answers li.answer"))
        best = answers[0]
        assert best.find_element(By.CLASS_NAME, "answer-text").text == "세종대왕"
        marks = best.find_elements(By.TAG_NAME, "mark")
        assert [m.text for m in marks] == ["세종대왕"]
        passage = best.find_element(By.CLASS_NAME, "passage").text
        assert "세종대왕" in passage and len(passage) > 100  # the whole source passage, not a snippet
        assert "신뢰도" in best.find_element(By.CLASS_NAME, "meta").text
        assert "답" in browser.find_element(By.ID, "status").text
        browser.save_screenshot(str(tmp_path / "page.png"))


def test_page_shows_errors_and_uses_the_api_key(make_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with serve_in_thread(make_app(FakeReader({Q: "세종대왕"}), api_key="s3cret")) as url:
        browser.get(url + "/")
        status = browser.find_element(By.ID, "status")
        wait(browser, lambda d: "API key" in status.text)  # /collections refused without the key
        assert status.get_attribute("class") == "error"
        browser.find_element(By.TAG_NAME, "summary").click()
        key = browser.find_element(By.ID, "api-key")
        key.send_keys("s3cret")
        browser.find_element(By.ID, "question").click()  # blur → change → collections reload
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option[value=history]"))
        Select(browser.find_element(By.ID, "collection")).select_by_value("history")
        browser.find_element(By.ID, "question").send_keys(Q)
        browser.find_element(By.ID, "ask").click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#answers li.answer"))
