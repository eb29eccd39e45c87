"""The web page in a real browser: headless Chromium driven by Selenium, against the real
services (Debian's ``chromium`` and ``chromium-driver``; ``scripts/test.sh`` installs them).

Upload the sample photo, wait for the result, check its pixels (the person kept, the
background the chosen colour), switch a person off and on, download and compare with
``/matte``'s own output, see the plain-words error for a text file, ask for an API key when
the service has keys, fit a phone-sized screen, label every control.
"""
from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from core.images import decode_image
from evaluation.browser import CHROMIUM, DRIVER, WAIT, choose_colour, chrome, wait_done, wait_for
from evaluation.services import running_services
from tests.conftest import SAMPLES

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian's chromium and chromium-driver are not installed "
                                       "(scripts/test.sh installs them as root)")
GROUP = Path(__file__).resolve().parent / "data" / "group_at_frame_edge.jpg"
GROUP_SHAPE = (512, 1152)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chrome(tmp_path_factory.mktemp("browser"))
    yield driver
    driver.quit()


def result_bytes(driver) -> bytes:
    data = driver.execute_async_script("""
        const done = arguments[0];
        fetch(document.getElementById('download').href).then(r => r.arrayBuffer()).then(b => {
          let s = ''; const a = new Uint8Array(b);
          for (let i = 0; i < a.length; i += 8192) {
            s += String.fromCharCode.apply(null, a.subarray(i, i + 8192));
          }
          done(btoa(s));
        });""")
    return base64.b64decode(data)


def test_photo_colour_background_and_download(browser, services):
    browser.get(services.matting + "/")
    choose_colour(browser, "#3366ff")
    browser.find_element("id", "photo").send_keys(str(SAMPLES / "astronaut.jpg"))
    wait_done(browser)
    assert browser.execute_script("return document.body.dataset.state") == "done"
    assert "Done in" in browser.find_element("id", "status").text
    out = decode_image(result_bytes(browser))
    astronaut = decode_image((SAMPLES / "astronaut.jpg").read_bytes())
    assert out.shape == astronaut.shape
    assert np.array_equal(out[5, 5], [0x33, 0x66, 0xFF])                     # background
    assert np.abs(out[200, 250].astype(int) - astronaut[200, 250]).max() <= 2  # her face
    # The download is exactly what /matte gives for the same request.
    direct = requests.post(services.matting + "/matte", timeout=WAIT,
                           files={"image": ("astronaut.jpg", (SAMPLES / "astronaut.jpg").read_bytes())},
                           data={"background": "#3366ff", "output": "composite", "format": "png",
                                 "fit": "cover"})
    assert result_bytes(browser) == direct.content
    link = browser.find_element("id", "download")
    assert link.get_attribute("download") == "astronaut_composite.png"


def test_switch_a_person_off_and_on(browser, services):
    browser.get(services.matting + "/")
    browser.execute_script("""
        const o = document.getElementById('output'); o.value = 'alpha';
        o.dispatchEvent(new Event('change', {bubbles: true}));""")
    browser.find_element("id", "photo").send_keys(str(GROUP))
    wait_done(browser)
    boxes = browser.find_elements("css selector", "#people-list input")
    assert len(boxes) >= 3 and all(b.is_selected() for b in boxes)
    people = json.loads(requests.post(services.matting + "/matte", timeout=WAIT,
                                      files={"image": GROUP.read_bytes()}).headers["X-People"])
    # Switch off the person with the most of their box to themselves (boxes overlap).
    shape = GROUP_SHAPE

    def own_region(index):
        region = np.zeros(shape, bool)
        x0, y0, x1, y1 = people[index]["box"]
        region[y0:y1, x0:x1] = True
        for j, other in enumerate(people):
            if j != index:
                ox0, oy0, ox1, oy1 = other["box"]
                region[oy0:oy1, ox0:ox1] = False
        return region

    target = max(range(1, len(people)), key=lambda i: own_region(i).sum())
    region = own_region(target)

    def shown(alpha):  # share of the person's own part of their box in the matte
        return float((alpha[..., 0][region] > 127).mean())

    before = decode_image(result_bytes(browser))
    href = browser.find_element("id", "download").get_attribute("href")
    boxes[target].click()                                          # that person off
    wait_done(browser, href)
    off = decode_image(result_bytes(browser))
    assert shown(before) > 0.2 and shown(off) < 0.02
    # The largest person stays (matting the band again moves a few edge pixels only).
    largest = own_region(0)
    kept_before = (before[..., 0][largest] > 127).mean()
    assert abs((off[..., 0][largest] > 127).mean() - kept_before) < 0.02 * kept_before
    href = browser.find_element("id", "download").get_attribute("href")
    browser.find_elements("css selector", "#people-list input")[target].click()  # on again
    wait_done(browser, href)
    again = decode_image(result_bytes(browser))
    assert shown(again) > 0.95 * shown(before)


def test_errors_in_plain_words(browser, services, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a photo")
    browser.get(services.matting + "/")
    browser.find_element("id", "photo").send_keys(str(text))
    wait_for(browser, "document.body.dataset.state === 'error'")
    error = browser.find_element("id", "error")
    assert error.is_displayed() and "not a photo" in error.text


def test_every_control_is_labelled_and_a_phone_screen_fits(services, tmp_path):
    driver = chrome(tmp_path, width=390, height=844)
    try:
        driver.get(services.matting + "/")
        wait_for(driver, "document.readyState === 'complete'")
        unlabelled = driver.execute_script("""
            return [...document.querySelectorAll('input, select, button, progress')]
              .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length)
                           && !e.getAttribute('aria-label') && !e.textContent.trim())
              .map(e => e.id || e.name || e.type);""")
        assert unlabelled == []
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1")
        # Keyboard: the first Tab stops on a control, visibly.
        from selenium.webdriver.common.keys import Keys

        driver.find_element("tag name", "body").send_keys(Keys.TAB)
        assert driver.execute_script("return document.activeElement.tagName") in ("INPUT", "A",
                                                                                   "SELECT", "BUTTON")
    finally:
        driver.quit()


def test_the_video_hint_points_to_a_readme_section_that_exists(browser, services):
    """Without a job queue the page says how to start one, and the README section it
    names is a real heading."""
    browser.get(services.matting + "/")
    wait_for(browser, "Object.keys(state.health).length > 0")  # the page asked /health
    hint = browser.find_element("id", "video-off")
    if not hint.is_displayed():
        pytest.skip("a job queue with workers answers here: the hint is not shown")
    assert "bash scripts/worker.sh" in hint.text
    section = re.search(r'README: "([^"]+)"', hint.text).group(1)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.search(rf"^#+ {re.escape(section)}$", readme, re.MULTILINE), section


def test_the_page_asks_for_an_api_key(tmp_path):
    env = {"API_KEYS": "page-key", "SEGMENTATION_API_KEY": "page-key",
           "SEGMENTATION_WORKERS": "1", "MATTING_WORKERS": "1"}
    with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"], env=env,
                          log_dir=tmp_path) as urls:
        driver = chrome(tmp_path)
        try:
            driver.get(urls.matting + "/")
            wait_for(driver, "!document.getElementById('key-form').hidden")
            driver.find_element("id", "key").send_keys("page-key")
            driver.find_element("css selector", "#key-form button").click()
            driver.find_element("id", "photo").send_keys(str(SAMPLES / "astronaut.jpg"))
            wait_done(driver)
            assert driver.execute_script("return document.body.dataset.state") == "done"
            assert driver.execute_script("return sessionStorage.getItem('apiKey')") == "page-key"
        finally:
            driver.quit()


def test_a_video_through_the_job_queue(tmp_path):
    """Upload a short clip in the page, follow the job's progress bar, get the result."""
    import av

    from evaluation.services import (
        free_port,
        redis_server_binary,
        start_redis,
        start_worker,
        stop,
        stop_worker,
    )

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it as root)")
    clip = tmp_path / "short.mp4"
    with av.open(str(SAMPLES / "video" / "person.mp4")) as source, av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 240, 160, "yuv420p"
        for i, frame in enumerate(source.decode(video=0)):
            if i == 24:
                break
            image = frame.to_ndarray(format="rgb24")[::2, ::2][:160, :240]
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            new.pts = i
            out.mux(stream.encode(new))
        out.mux(stream.encode(None))
    port = free_port()
    redis = start_redis(port, tmp_path / "redis")
    env = {"JOBS_REDIS_URL": f"redis://127.0.0.1:{port}/0", "JOBS_DIR": str(tmp_path / "jobs"),
           "SEGMENTATION_WORKERS": "1", "MATTING_WORKERS": "1", "JOBS_CONCURRENCY": "1"}
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"],
                              env=env, log_dir=tmp_path) as urls:
            deadline = time.monotonic() + WAIT
            while not requests.get(urls.matting + "/health", timeout=10).json()["jobs"].get("workers"):
                assert time.monotonic() < deadline, "no job worker came up"
                time.sleep(0.5)
            driver = chrome(tmp_path)
            try:
                driver.get(urls.matting + "/")
                wait_for(driver, "!document.getElementById('video-on').hidden")
                choose_colour(driver, "#ff0000")
                driver.find_element("id", "video").send_keys(str(clip))
                wait_for(driver, "!document.getElementById('video-download').hidden", WAIT * 2)
                assert driver.execute_script(
                    "return document.getElementById('video-progress').value") == 100
                data = driver.execute_async_script("""
                    const done = arguments[0];
                    fetch(document.getElementById('video-download').href)
                      .then(r => r.arrayBuffer()).then(b => done(b.byteLength));""")
                assert data > 1000
            finally:
                driver.quit()
    finally:
        stop_worker(worker)
        stop(redis)
