"""/metrics after real traffic, who may scrape it, and the structured (JSON) log lines with request ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import shapely
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from mallfence import logs
from mallfence.config import Settings
from mallfence.delivery.dispatcher import Dispatcher
from mallfence.delivery.fcm import InMemorySender
from mallfence.main import create_app
from tests.auth import bearer
from tests.factories import create_venue, create_zone, fix, register

METRICS_TOKEN = "scrape-me-0123456789"
STORE = shapely.box(0, 0, 20, 20)


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
def fcm() -> InMemorySender:
    return InMemorySender()


@pytest.fixture
def client(settings: Settings, fcm: InMemorySender, platform_key: str) -> Iterator[TestClient]:
    settings.dispatcher_enabled = False  # the test runs the dispatcher's passes itself
    settings.metrics_token = SecretStr(METRICS_TOKEN)
    with TestClient(create_app(settings, fcm_sender=fcm), headers=bearer(platform_key)) as c:
        yield c


def test_metrics_count_what_the_traffic_did(client: TestClient, fcm: InMemorySender) -> None:
    create_venue(client)
    create_zone(client, "mall", STORE, name="Books")
    device, auth = register(client)
    other, other_auth = register(client)
    for d, a, token in ((device, auth, "fcm-token-one-0000000001"), (other, other_auth, "fcm-token-two-000000002")):
        r = client.put(f"/v1/devices/{d}/push-tokens", json={"token": token, "platform": "android"}, headers=a)
        assert r.status_code == 200, r.text
    fcm.answer("fcm-token-two-000000002", "failed", "SENDER_ID_MISMATCH")
    before = scrape(client)

    # four GPS fixes: enter, dwell, exit; then a batch with one stale fix
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [
        fix(-10, 10, 0), fix(10, 10, 10), fix(10, 12, 45), fix(30, 10, 60)]})
    assert [e["kind"] for e in r.json()["events"]] == ["enter", "dwell", "exit"]
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(30, 10, 5), fix(31, 10, 70)]})
    assert r.json()["dropped"] == [{"index": 0, "reason": "stale"}]
    # one fix over the websocket (parse stage), and the socket shows in the gauge while open
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"
        open_ = scrape(client)
        ws.send_json({"type": "fix", **fix(32, 10, 80)})
        assert ws.receive_json()["type"] == "receipt"
    # two notifications through FCM: one sent, one refused with an error code
    r = client.post("/v1/venues/mall/notifications",
                    json={"title": "Hi", "body": "Coffee", "device_ids": [device, other]})
    assert r.status_code == 202, r.text
    rt = client.app.state.runtime
    assert Dispatcher(rt.sessions, is_connected=lambda _d: False, push_ws=rt.hub.publish, sender=fcm).run_once() == 2
    after = scrape(client)

    assert delta(before, open_, "mallfence_websocket_connections", channel="device") == 1
    assert delta(before, after, "mallfence_websocket_connections", channel="device") == 0
    assert delta(before, after, "mallfence_fixes_total", source="gps") == 4 + 2 + 1  # the stale one counted too
    assert delta(before, after, "mallfence_fixes_dropped_total", reason="stale") == 1
    assert delta(before, after, "mallfence_events_total", kind="enter") == 1
    assert delta(before, after, "mallfence_events_total", kind="dwell") == 1
    assert delta(before, after, "mallfence_events_total", kind="exit") == 1
    assert delta(before, after, "mallfence_notifications_created_total") == 2
    assert delta(before, after, "mallfence_notification_attempts_total", channel="fcm", outcome="sent") == 1
    assert delta(before, after, "mallfence_notification_attempts_total", channel="fcm", outcome="failed") == 1
    assert delta(before, after, "mallfence_fcm_errors_total", code="SENDER_ID_MISMATCH") == 1
    # per-stage histograms: one observation per batch (3 ingest calls), per message, per transaction, per FCM call
    assert delta(before, after, "mallfence_stage_seconds_count", stage="validate") == 3
    assert delta(before, after, "mallfence_stage_seconds_count", stage="match") == 3
    assert delta(before, after, "mallfence_stage_seconds_count", stage="presence") == 3
    assert delta(before, after, "mallfence_stage_seconds_count", stage="parse") == 1
    assert delta(before, after, "mallfence_stage_seconds_count", stage="outbox") == 2
    assert delta(before, after, "mallfence_stage_seconds_count", stage="send") == 1
    assert delta(before, after, "mallfence_stage_seconds_count", stage="store") >= 1
    assert delta(before, after, "mallfence_stage_seconds_count", stage="decision") >= 1
    assert delta(before, after, "mallfence_stage_seconds_sum", stage="match") > 0
    assert delta(before, after, "mallfence_http_request_seconds_count",
                 route="/v1/devices/{device_id}/positions", method="POST", status="2xx") == 2
    # bounded labels: no device id anywhere in the exposition
    assert not [k for k in after if device in str(k) or other in str(k)]


def test_flagged_and_rate_limited_requests_are_counted(settings: Settings, platform_key: str) -> None:
    settings.metrics_token = SecretStr(METRICS_TOKEN)
    settings.device_rate_per_s, settings.device_burst = 0.001, 2
    with TestClient(create_app(settings), headers=bearer(platform_key)) as client:
        create_venue(client)
        device, auth = register(client)
        before = scrape(client)
        r = client.post(f"/v1/devices/{device}/positions", headers=auth,
                        json={"fixes": [{**fix(0, 0, 0), "mocked": True}]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        codes = [client.post(f"/v1/devices/{device}/positions", headers=auth,
                             json={"fixes": [fix(1, 0, 10 + i)]}).status_code for i in range(3)]
        after = scrape(client)
    assert codes.count(429) == 2
    assert delta(before, after, "mallfence_rate_limited_total", kind="device") == 2
    assert delta(before, after, "mallfence_fixes_flagged_total", reason="mock_location") == 1
    # the same flag is in the venue's ingest stats (which keep the per-venue view /metrics leaves out)


def test_metrics_need_the_token_when_one_is_set(client: TestClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_without_a_token_metrics_answer_loopback_clients_only(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app, client=("203.0.113.9", 50000)) as far:
        assert far.get("/metrics").status_code == 403
    with TestClient(app, client=("127.0.0.1", 50000)) as near:
        r = near.get("/metrics")
        assert r.status_code == 200 and "mallfence_fixes_total" in r.text


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logs.JsonFormatter())
        self.addFilter(logs.ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_json_log_lines_carry_the_request_and_device_ids(settings: Settings, platform_key: str) -> None:
    settings.log_format = "json"
    lines = _Lines()
    access = logging.getLogger("mallfence.access")
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    try:
        with TestClient(create_app(settings), headers=bearer(platform_key)) as client:
            create_venue(client)
            device, auth = register(client)
            r = client.post(f"/v1/devices/{device}/positions", json={"fixes": [fix(0, 0, 0)]},
                            headers={**auth, "X-Request-Id": "req-from-the-app-42"})
            assert r.headers["x-request-id"] == "req-from-the-app-42"
            mine = client.get("/v1/me")
            bad = client.get("/v1/me", headers={"X-Request-Id": "no spaces or\nnewlines"})
    finally:
        access.removeHandler(lines)
    parsed = [json.loads(line) for line in lines.lines]
    post = next(p for p in parsed if p.get("request_id") == "req-from-the-app-42")
    assert post["device_id"] == device and post["status"] == 200 and post["level"] == "info"
    assert post["route"] == "/v1/devices/{device_id}/positions" and post["logger"] == "mallfence.access"
    assert auth["Authorization"].split()[-1] not in json.dumps(parsed)  # the device token is in no line
    # a request id is made when none (or a malformed one) is given, and differs per request
    made = {p["request_id"] for p in parsed if p.get("route") == "/v1/me"}
    assert made == {mine.headers["x-request-id"], bad.headers["x-request-id"]} and len(made) == 2
    assert "\n" not in bad.headers["x-request-id"]


def test_json_lines_redact_tokens_in_messages() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "GET %s" %d',
                               ("127.0.0.1:5", "/v1/devices/d1/stream?token=secret-value", 101), None)
    line = json.loads(logs.JsonFormatter().format(record))
    assert "secret-value" not in line["msg"] and "token=[redacted]" in line["msg"]
