"""Run the API in a background thread on 127.0.0.1 (demo, scenario tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from mallfence.config import Settings
from mallfence.main import create_app


class BackgroundServer:
    """``with BackgroundServer(settings) as url:`` serves the app until the block ends."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0):
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning",
                                ws_max_size=1 << 20, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mallfence-server", daemon=True)
        self.url = ""

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mallfence server did not start (see the log above)")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
