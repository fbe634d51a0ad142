"""Schemathesis over the whole OpenAPI schema, against a real server on 127.0.0.1: no input makes a 500, and
every answer (4xx included) matches what the schema says.

Bounded: ``MALLFENCE_FUZZ_EXAMPLES`` examples per operation (default 12; CI keeps the default). Calls carry
real credentials (a platform key; the device's own token on device routes; the venue's app key where one is
asked for) and the sample venue's slug, so the fuzzer gets past authentication into the handlers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import shapely
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from websockets.sync.client import connect

from mallfence.config import Settings
from mallfence.main import create_app
from tests.auth import bearer, operator_key
from tests.conftest import UNLIMITED
from tests.factories import create_venue, create_zone

EXAMPLES = int(os.environ.get("MALLFENCE_FUZZ_EXAMPLES", "12"))
CHECKS = (checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance)
# Operations whose real slug would undo the run (deleting the venue); they are fuzzed with the generated slug.
NO_REAL_SLUG = {("DELETE", "/v1/venues/{slug}"), ("POST", "/v1/venues/{slug}/app-key")}


@schemathesis.serializer("application/zip")
def _zip(_ctx: Any, value: Any) -> bytes:
    """An IMDF archive upload: whatever was generated, as bytes (the importer must refuse it cleanly)."""
    return value if isinstance(value, bytes) else repr(value).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    target = tmp_path_factory.mktemp("fuzz") / "mallfence.db"
    shutil.copy(sqlite_template, target)
    url = f"sqlite:///{target}"
    config = uvicorn.Config(create_app(Settings(database_url=url, presence_sweep_interval_s=3600, **UNLIMITED)),
                            host="127.0.0.1", port=_free_port(), log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    key = operator_key(url)
    with httpx.Client(base_url=base, headers=bearer(key)) as http:
        create_venue(http)  # type: ignore[arg-type]
        create_zone(http, "mall", shapely.box(0, 0, 20, 20), name="Books", store={"name": "Books"})  # type: ignore[arg-type]
        app_key = http.get("/v1/venues/mall/app-key").json()["app_key"]
        key_id = http.get("/v1/me").json()["id"]
        device = http.post("/v1/devices", json={"venue": "mall", "platform": "stub"},
                           headers={"X-App-Key": app_key, "Authorization": ""}).json()
    yield {"base": base, "port": config.port, "key": key, "key_id": key_id, "app_key": app_key,
           "device": device["device_id"], "token": device["token"]}
    server.should_exit = True
    thread.join(timeout=10)


def _prepare(case: Any, server: dict[str, Any]) -> None:
    """Real credentials and the real venue, so the generated input reaches the handlers."""
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    if "slug" in params and (case.method.upper(), path) not in NO_REAL_SLUG:
        params["slug"] = "mall"
    if params.get("key_id") == server["key_id"]:  # revoking the fuzzer's own key would end the run
        params["key_id"] = server["key_id"] + 1
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "x-app-key")}
    if (case.method.upper(), path) == ("POST", "/v1/devices/{device_id}/token"):
        pass  # rotating the fuzzer's own device token would lock it out for the rest of the run
    elif path.startswith("/v1/devices/{device_id}"):
        params["device_id"] = server["device"]
        headers["Authorization"] = f"Bearer {server['token']}"
    elif (case.method.upper(), path) == ("POST", "/v1/devices"):
        headers["X-App-Key"] = server["app_key"]
    else:
        headers["Authorization"] = f"Bearer {server['key']}"
    case.headers = headers


@pytest.mark.timeout(300 + 20 * EXAMPLES)  # ~120 operations x EXAMPLES requests; a loaded CI box is slow
def test_no_input_makes_a_server_error_and_answers_match_the_schema(server: dict[str, Any]) -> None:
    # schemathesis's pytest plugin does not run under pytest 9 yet: each operation's strategy is driven by
    # Hypothesis here instead, and every failure is collected so one run shows them all.
    schema = schemathesis.openapi.from_url(f"{server['base']}/openapi.json")
    failures: list[str] = []
    operations = 0
    answered: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def run(case: Any) -> None:
            _prepare(case, server)
            response = case.call(base_url=server["base"])
            answered.setdefault(case.operation.label, set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)
    # the run reached the handlers: most operations answered something other than "who are you?"
    assert operations > 100
    past_auth = [op for op, codes in answered.items() if codes - {401, 403}]
    assert len(past_auth) > 0.9 * operations, sorted(set(answered) - set(past_auth))
    assert sum(1 for codes in answered.values() if any(200 <= c < 300 for c in codes)) > operations / 3


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_tokens_in_urls_never_reach_the_server_log(server: dict[str, Any]) -> None:
    """Apps pass their token in the websocket URL (browsers cannot set headers there); the server logs URLs."""
    lines = _Lines()
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addHandler(lines)
    try:
        url = f"ws://127.0.0.1:{server['port']}/v1/devices/{server['device']}/stream?token={server['token']}"
        with connect(url) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        httpx.get(f"{server['base']}/v1/me", params={"token": server["key"]})
        time.sleep(0.2)  # the access line is written after the response
    finally:
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeHandler(lines)
    text = "\n".join(lines.lines)
    assert server["device"] in text and "token=[redacted]" in text  # the lines are there...
    assert server["token"] not in text and server["key"] not in text  # ...without the secrets
