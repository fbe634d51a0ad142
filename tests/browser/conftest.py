"""Browser fixtures: Debian's Chromium under Playwright, and a real server with the sample mall on SQLite.

Without Chromium (or Playwright) these tests skip loudly; with MALLFENCE_REQUIRE_BROWSER=1 (set by .ci/run)
they fail instead, so CI cannot go green without running them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mallfence.config import Settings
from mallfence.server import BackgroundServer
from tests.browser.harness import Mall, chromium_path, launch, load_sample_mall

REQUIRE_BROWSER = os.environ.get("MALLFENCE_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"browser tests required (MALLFENCE_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"BROWSER TESTS NOT RUN: {reason} (apt-get install chromium; MALLFENCE_CHROMIUM=/path overrides)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync API is open its event loop counts as running in
    # this thread, and every later test that calls asyncio.run() (FCM, the stub shoppers) would fail.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium found (MALLFENCE_CHROMIUM, /usr/bin/chromium, PATH)")
    with sync_playwright() as playwright:
        chromium = launch(playwright, executable)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def mall(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Mall]:
    """A server on 127.0.0.1 (free port) with the sample mall, its beacons and QR codes."""
    db = tmp_path_factory.mktemp("browser") / "mallfence.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite:///{db}", presence_sweep_interval_s=3600)
    key = load_sample_mall(settings)
    with BackgroundServer(settings) as url:
        yield Mall(url=url, key=key, settings=settings)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (empty sessionStorage); a script error in the page fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"script errors in the console: {errors}"
