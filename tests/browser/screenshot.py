"""docs/console.png: the console on the sample mall with shoppers walking, taken in headless Chromium.

    scripts/screenshot [docs/console.png]

Same setup as the browser tests (tests/browser/harness.py): a server on a fresh SQLite file with the sample
mall, its beacons and QR codes; mobile_stub shoppers on GPS and beacons; the console signed in, ground floor.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub import run_shoppers
from tests.browser.harness import SLUG, chromium_path, launch, load_sample_mall, sign_in

SHOPPERS = 24
WALK_S = 16.0  # wall seconds of walking before the picture: most shoppers still on the ground floor


def main(out: Path) -> int:
    executable = chromium_path()
    if executable is None:
        print("no chromium: apt-get install chromium (or set MALLFENCE_CHROMIUM)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/screenshot.db", presence_sweep_interval_s=3600)
        key = load_sample_mall(settings)
        with BackgroundServer(settings) as url, sync_playwright() as playwright:
            browser = launch(playwright, executable)
            page = browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
            sign_in(page, url, key)
            walkers = threading.Thread(target=lambda: asyncio.run(run_shoppers(
                url, SLUG, api_key=key, shoppers=SHOPPERS, speedup=25, seed=5, locator="mixed",
                max_duration_s=WALK_S + 5)), daemon=True)
            walkers.start()
            time.sleep(WALK_S)
            # a store picked, as an operator would before renaming or redrawing it
            store = page.locator("#plan .kind-store", has=page.locator("title", has_text="Voltline")).first
            box = store.bounding_box()
            if box:
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.3)
            dots = page.locator("#plan .dot").count()
            events = page.locator("#events li").count()
            page.wait_for_timeout(900)  # let the dots finish their last move
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
            walkers.join(timeout=15)
    print(f"wrote {out}: {dots} shoppers on the plan, {events} zone events listed")
    return 0 if dots and events else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png")))
