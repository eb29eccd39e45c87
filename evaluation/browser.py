"""A real browser for the web page's tests and screenshot: headless Chromium (Debian's
``chromium`` and ``chromium-driver``) driven by Selenium, and the page's own waits."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT = 120


def chrome(tmp_path: Path, width=1200, height=1000):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_script_timeout(WAIT)
    return driver


def wait_for(driver, condition_js: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return " + condition_js):
            return
        time.sleep(0.2)
    status, error = driver.execute_script(
        "return [document.getElementById('status').textContent, "
        "document.getElementById('error').textContent]")
    raise AssertionError(f"timed out waiting for: {condition_js}; status: {status}; error: {error}")


def wait_done(driver, previous: str | None = None):
    wait_for(driver, "document.body.dataset.state === 'done' || document.body.dataset.state === 'error'")
    if previous is not None:
        wait_for(driver, f"document.getElementById('download').href !== {json.dumps(previous)} "
                         "&& document.body.dataset.state === 'done'")


def choose_colour(driver, hex_colour: str):
    driver.execute_script("""
        const c = document.getElementById('colour'); c.value = arguments[0];
        c.dispatchEvent(new Event('change', {bubbles: true}));""", hex_colour)
