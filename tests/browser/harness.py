"""What the browser tests and scripts/screenshot share: Debian's Chromium under Playwright, a server with the
sample mall, and signing in to the console.

Playwright drives the system's ``chromium`` (``apt-get install chromium``); its own browser downloads
(``playwright install``) are never used.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mallfence.cli import import_beacons_file, import_file, import_qr_file
from mallfence.config import Settings
from tests.auth import operator_key

ZONES = Path(__file__).parents[2] / "zones"
MALL = ZONES / "harbourside-mall.geojson"
SLUG = "harbourside"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Mall:
    """A running server with the sample mall."""

    url: str
    key: str  # a platform admin's operator key
    settings: Settings


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``MALLFENCE_CHROMIUM`` when set, else Debian's, else ``chromium`` on PATH."""
    override = os.environ.get("MALLFENCE_CHROMIUM")
    candidates = [override] if override else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def launch(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


def load_sample_mall(settings: Settings) -> str:
    """The sample mall with its beacons and QR codes, and a platform admin key: the key."""
    import_file(settings, MALL, None)
    import_beacons_file(settings, ZONES / f"{SLUG}-beacons.geojson", SLUG)
    import_qr_file(settings, ZONES / f"{SLUG}-qr.json", SLUG)
    return operator_key(settings.database_url, name="console")


def sign_in(page: Any, base_url: str, key: str, *, level: str = "0") -> None:
    """Open the console, sign in, wait until the venue's plan and the live view are there."""
    page.goto(f"{base_url}/console/")
    page.fill("#key", key)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#who:not([hidden])")
    page.wait_for_selector("#plan [data-zone-id]")
    if page.input_value("#level") != level:
        page.select_option("#level", level)
    page.wait_for_selector("#live-status.on")


def screen_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where on the screen the plan shows the local point (x east, y north) in metres."""
    return page.evaluate("""([x, y]) => {
        const svg = document.querySelector('#plan');
        const p = new DOMPoint(x, -y).matrixTransform(svg.getScreenCTM());
        return [p.x, p.y];
    }""", [x, y])
