"""Screenshot pages of a running site with Debian's Chromium (no browser download).

.venv/bin/python scripts/screenshot.py http://127.0.0.1:8000/ out.png [more URL PNG pairs]
"""

import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.getenv("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(pairs: list[str]) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for url, out in zip(pairs[::2], pairs[1::2], strict=True):
            page.goto(url, wait_until="networkidle")
            page.wait_for_timeout(500)
            page.screenshot(path=out, full_page=True)
            print("wrote", out)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
