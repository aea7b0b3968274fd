"""Screenshot pages of a running site with Debian's Chromium (no browser download).

.venv/bin/python scripts/screenshot.py http://127.0.0.1:8000/ out.png [more URL PNG pairs]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium_page  # noqa: E402

CHROMIUM = os.getenv("CHROMIUM", "/usr/bin/chromium")


def main(pairs: list[str]) -> None:
    with chromium_page(CHROMIUM) as page:
        page.set_viewport_size({"width": 1440, "height": 900})
        for url, out in zip(pairs[::2], pairs[1::2], strict=True):
            page.goto(url, wait_until="networkidle")
            page.wait_for_timeout(500)
            page.screenshot(path=out, full_page=True)
            print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1:])
