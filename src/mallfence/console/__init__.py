"""The operator console: a static web app under ``/console`` that talks to the public API like any client.

Only the shell is served here (HTML, JS modules, CSS shipped in the package, no CDN, no build step); every
piece of data comes from the API with the operator key the user types in, so the console can do nothing the
key could not do with curl. The shell needs no auth: it holds no data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PATH = "/console"


def mount(app: FastAPI) -> None:
    """Serve the console at ``/console/`` (``/console`` redirects there); not part of the OpenAPI schema."""
    app.mount(PATH, StaticFiles(directory=STATIC, html=True), name="console")
