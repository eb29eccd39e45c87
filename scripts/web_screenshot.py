"""Save a screenshot of the web page for the README: both services started as processes,
the bundled sample photo uploaded in headless Chromium, a blue background, the before/after
slider half way.

    .venv/bin/python scripts/web_screenshot.py [--out docs/img/web.png]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evaluation.browser import choose_colour, chrome, wait_done
from evaluation.services import REPO_ROOT, running_services


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img" / "web.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, running_services() as urls:
        driver = chrome(Path(tmp), width=1100, height=1250)
        try:
            driver.get(urls.matting + "/")
            choose_colour(driver, "#1e90ff")
            driver.find_element("id", "photo").send_keys(str(REPO_ROOT / "samples" / "astronaut.jpg"))
            wait_done(driver)
            time.sleep(0.5)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
