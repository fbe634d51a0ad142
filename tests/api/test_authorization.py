"""The authorization matrix: every route of the OpenAPI schema, called by every kind of caller, is allowed or
denied exactly as its policy says. A route without an entry in ROUTES fails the test: new endpoints must say
who may call them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from mallfence.config import Settings
from mallfence.devices.models import Device
from mallfence.main import create_app
from tests.auth import app_key, bearer, operator_key, staff_session
from tests.factories import create_venue, create_zone, register

# Who may call: the identities of each policy (the others must be refused).
OPERATORS_A = {"platform", "admin_A", "analyst_A"}
POLICIES: dict[str, set[str]] = {
    "public": {"none", "platform", "admin_A", "analyst_A", "admin_B", "staff_A", "device_A", "device_other",
               "app_A", "app_B"},
    "platform": {"platform"},
    "operator": {"platform", "admin_A", "analyst_A", "admin_B"},
    "caller": {"platform", "admin_A", "analyst_A", "admin_B", "staff_A"},
    "venue_read": OPERATORS_A,
    "venue_write": {"platform", "admin_A"},
    "venue_admin": {"platform", "admin_A"},
    "venue_admin_or_create": {"platform", "admin_A"},
    "campaign_read": OPERATORS_A,
    "app_or_read": OPERATORS_A | {"app_A"},
    "app": {"app_A"},
    "device": {"device_A"},
    "staff": {"staff_A"},
    "shopper": {"platform", "admin_A", "device_A"},  # the venue's admins, the shopper's own app (not analysts)
    "signed": set(),  # HMAC-signed by the commerce system: no bearer of any kind opens them
}

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("POST", "/v1/campaigns/{campaign_id}/simulate"): "campaign_read",
    ("POST", "/v1/devices"): "app",
    ("POST", "/v1/devices/{device_id}/beacon-scans"): "device",
    ("PUT", "/v1/devices/{device_id}/consent"): "device",
    ("POST", "/v1/devices/{device_id}/token"): "device",
    ("GET", "/v1/devices/{device_id}/decisions"): "device",
    ("GET", "/v1/devices/{device_id}/events"): "device",
    ("POST", "/v1/devices/{device_id}/identity-codes"): "device",
    ("GET", "/v1/devices/{device_id}/notifications"): "device",
    ("POST", "/v1/devices/{device_id}/notifications/{notification_id}/opened"): "device",
    ("POST", "/v1/devices/{device_id}/positions"): "device",
    ("PUT", "/v1/devices/{device_id}/preferences"): "device",
    ("PUT", "/v1/devices/{device_id}/push-tokens"): "device",
    ("GET", "/v1/devices/{device_id}/push-tokens"): "device",
    ("DELETE", "/v1/devices/{device_id}/push-tokens/{token_id}"): "device",
    ("POST", "/v1/devices/{device_id}/qr-scans"): "device",
    ("GET", "/v1/devices/{device_id}/wishlist"): "device",
    ("PUT", "/v1/devices/{device_id}/wishlist/{sku}"): "device",
    ("DELETE", "/v1/devices/{device_id}/wishlist/{sku}"): "device",
    ("GET", "/v1/me"): "caller",
    ("GET", "/v1/shoppers/{shopper_id}/export"): "shopper",
    ("DELETE", "/v1/shoppers/{shopper_id}"): "shopper",
    ("POST", "/v1/operator-keys"): "platform",
    ("GET", "/v1/operator-keys"): "platform",
    ("DELETE", "/v1/operator-keys/{key_id}"): "platform",
    ("POST", "/v1/staff/login"): "public",
    ("GET", "/v1/staff/me"): "staff",
    ("POST", "/v1/staff/orders/{order_id}/collect"): "staff",
    ("POST", "/v1/staff/scans"): "staff",
    ("GET", "/v1/staff/scans"): "staff",
    ("POST", "/v1/venues"): "platform",
    ("GET", "/v1/venues"): "operator",
    ("GET", "/v1/venues/{slug}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}"): "platform",
    ("GET", "/v1/venues/{slug}/analytics/campaigns/{campaign_id}/funnel"): "venue_read",
    ("GET", "/v1/venues/{slug}/analytics/dwell"): "venue_read",
    ("GET", "/v1/venues/{slug}/analytics/footfall"): "venue_read",
    ("GET", "/v1/venues/{slug}/analytics/peak-hours"): "venue_read",
    ("GET", "/v1/venues/{slug}/analytics/transitions"): "venue_read",
    ("GET", "/v1/venues/{slug}/app-key"): "venue_admin",
    ("POST", "/v1/venues/{slug}/app-key"): "venue_admin",
    ("GET", "/v1/venues/{slug}/audit"): "venue_admin",
    ("POST", "/v1/venues/{slug}/beacons"): "venue_write",
    ("GET", "/v1/venues/{slug}/beacons"): "venue_read",
    ("GET", "/v1/venues/{slug}/beacons/export"): "venue_read",
    ("POST", "/v1/venues/{slug}/beacons/import"): "venue_write",
    ("GET", "/v1/venues/{slug}/beacons/unknown"): "venue_read",
    ("GET", "/v1/venues/{slug}/ingest-stats"): "venue_read",
    ("GET", "/v1/venues/{slug}/beacons/{beacon_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/beacons/{beacon_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/beacons/{beacon_id}"): "venue_write",
    ("POST", "/v1/venues/{slug}/campaigns"): "venue_write",
    ("GET", "/v1/venues/{slug}/campaigns"): "venue_read",
    ("GET", "/v1/venues/{slug}/campaigns/{campaign_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/campaigns/{campaign_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/campaigns/{campaign_id}"): "venue_write",
    ("GET", "/v1/venues/{slug}/decisions"): "venue_read",
    ("GET", "/v1/venues/{slug}/export"): "venue_read",
    ("POST", "/v1/venues/{slug}/import"): "venue_write",
    ("POST", "/v1/venues/{slug}/import/imdf"): "venue_admin_or_create",
    ("POST", "/v1/venues/{slug}/inbound/inventory"): "signed",
    ("POST", "/v1/venues/{slug}/inbound/orders"): "signed",
    ("POST", "/v1/venues/{slug}/inbound/purchases"): "signed",
    ("POST", "/v1/venues/{slug}/levels"): "venue_write",
    ("GET", "/v1/venues/{slug}/levels"): "venue_read",
    ("PUT", "/v1/venues/{slug}/levels/{ordinal}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/levels/{ordinal}"): "venue_write",
    ("POST", "/v1/venues/{slug}/notifications"): "venue_write",
    ("GET", "/v1/venues/{slug}/notifications"): "venue_read",
    ("GET", "/v1/venues/{slug}/notifications/{notification_id}"): "venue_read",
    ("POST", "/v1/venues/{slug}/orders"): "venue_write",
    ("GET", "/v1/venues/{slug}/orders"): "venue_read",
    ("GET", "/v1/venues/{slug}/orders/{order_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/orders/{order_id}"): "venue_write",
    ("GET", "/v1/venues/{slug}/products"): "venue_read",
    ("PUT", "/v1/venues/{slug}/products/{sku}"): "venue_write",
    ("GET", "/v1/venues/{slug}/products/{sku}"): "venue_read",
    ("DELETE", "/v1/venues/{slug}/products/{sku}"): "venue_write",
    ("GET", "/v1/venues/{slug}/push-policy"): "venue_read",
    ("PUT", "/v1/venues/{slug}/push-policy"): "venue_write",
    ("POST", "/v1/venues/{slug}/qr-codes"): "venue_write",
    ("GET", "/v1/venues/{slug}/qr-codes"): "venue_read",
    ("POST", "/v1/venues/{slug}/qr-codes/import"): "venue_write",
    ("GET", "/v1/venues/{slug}/qr-codes/{code}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/qr-codes/{code}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/qr-codes/{code}"): "venue_write",
    ("GET", "/v1/venues/{slug}/qr-codes/{code}/image"): "venue_read",
    ("GET", "/v1/venues/{slug}/segments"): "venue_read",
    ("PUT", "/v1/venues/{slug}/shoppers/link"): "venue_write",
    ("GET", "/v1/venues/{slug}/shoppers/{shopper_id}"): "venue_read",
    ("GET", "/v1/venues/{slug}/shoppers/{shopper_id}/purchases"): "venue_read",
    ("GET", "/v1/venues/{slug}/shoppers/{shopper_id}/segment"): "venue_read",
    ("GET", "/v1/venues/{slug}/signing-keys"): "venue_read",
    ("POST", "/v1/venues/{slug}/signing-keys/{purpose}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/signing-keys/{purpose}/{kid}"): "venue_write",
    ("POST", "/v1/venues/{slug}/staff"): "venue_write",
    ("GET", "/v1/venues/{slug}/staff"): "venue_read",
    ("GET", "/v1/venues/{slug}/staff/{staff_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/staff/{staff_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/staff/{staff_id}"): "venue_write",
    ("POST", "/v1/venues/{slug}/staff/{staff_id}/token"): "venue_write",
    ("GET", "/v1/venues/{slug}/stock"): "app_or_read",
    ("POST", "/v1/venues/{slug}/stock/import"): "venue_write",
    ("POST", "/v1/venues/{slug}/stores"): "venue_write",
    ("GET", "/v1/venues/{slug}/stores"): "venue_read",
    ("GET", "/v1/venues/{slug}/stores/{store_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/stores/{store_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/stores/{store_id}"): "venue_write",
    ("GET", "/v1/venues/{slug}/stores/{store_id}/stock"): "venue_read",
    ("PUT", "/v1/venues/{slug}/stores/{store_id}/stock/{sku}"): "venue_write",
    ("POST", "/v1/venues/{slug}/webhooks"): "venue_write",
    ("GET", "/v1/venues/{slug}/webhooks"): "venue_read",
    ("GET", "/v1/venues/{slug}/webhooks/{endpoint_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/webhooks/{endpoint_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/webhooks/{endpoint_id}"): "venue_write",
    ("GET", "/v1/venues/{slug}/webhooks/{endpoint_id}/deliveries"): "venue_read",
    ("POST", "/v1/venues/{slug}/webhooks/{endpoint_id}/test"): "venue_write",
    ("POST", "/v1/venues/{slug}/zones"): "venue_write",
    ("GET", "/v1/venues/{slug}/zones"): "venue_read",
    ("GET", "/v1/venues/{slug}/zones/{zone_id}"): "venue_read",
    ("PATCH", "/v1/venues/{slug}/zones/{zone_id}"): "venue_write",
    ("DELETE", "/v1/venues/{slug}/zones/{zone_id}"): "venue_write",
}
# Allowed calls that change something for good run last, on things made for them.
LAST = [("POST", "/v1/venues/{slug}/app-key"), ("POST", "/v1/devices/{device_id}/token"),
        ("DELETE", "/v1/shoppers/{shopper_id}"), ("DELETE", "/v1/venues/{slug}")]
MISSING_ID = "999999"


@pytest.fixture
def database_url(sqlite_template, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """SQLite only: the matrix is about routing and credentials, the same on either database."""
    import shutil

    target = tmp_path / "mallfence.db"
    shutil.copy(sqlite_template, target)
    yield f"sqlite:///{target}"


@pytest.fixture
def world(client: TestClient, settings: Settings) -> dict[str, Any]:
    """Venue A (a store, a staff member, a device, a campaign) and venue B, and a credential of every kind."""
    create_venue(client, "venue-a")
    create_venue(client, "venue-b")
    create_venue(client, "gone")  # deleted by the one platform call allowed to delete a venue
    zone = create_zone(client, "venue-a", shapely.box(0, 0, 20, 20), store={"name": "Books"})
    member = client.post("/v1/venues/venue-a/staff", json={"store_id": zone["store"]["id"], "name": "Ana"}).json()
    device, device_auth = register(client, "venue-a")
    _other, other_auth = register(client, "venue-a")
    campaign = client.post("/v1/venues/venue-a/campaigns", json={
        "name": "c", "trigger": "enter", "targets": {"zone_ids": [zone["id"]]},
        "content": {"title": "t", "body": "b"}}).json()
    ids = client.get("/v1/venues", params={}).json()
    venue_ids = {v["slug"]: i + 1 for i, v in enumerate(sorted(ids, key=lambda v: v["created_at"]))}
    url = settings.database_url
    who: dict[str, dict[str, str]] = {
        "none": {"Authorization": ""},
        "platform": dict(client.headers),
        "admin_A": bearer(operator_key(url, venue_ids=[venue_ids["venue-a"]])),
        "analyst_A": bearer(operator_key(url, role="analyst", venue_ids=[venue_ids["venue-a"]])),
        "admin_B": bearer(operator_key(url, venue_ids=[venue_ids["venue-b"]])),
        "staff_A": staff_session(client, member["token"]),
        "device_A": {**device_auth, "X-Device-Id": device},
        "device_other": {**other_auth, "X-Device-Id": _other},
        "app_A": {"Authorization": "", **app_key(client, "venue-a")},
        "app_B": {"Authorization": "", **app_key(client, "venue-b")},
    }
    with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
        shopper = session.get(Device, device).shopper_id
    return {"who": who, "device": device, "campaign": campaign["id"], "shopper": shopper}


def _request(method: str, template: str, world: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    slug = "gone" if (method, template) == ("DELETE", "/v1/venues/{slug}") else "venue-a"
    path = template.replace("{slug}", slug).replace("{device_id}", world["device"]) \
        .replace("{campaign_id}", str(world["campaign"])).replace("{purpose}", "nope") \
        .replace("{shopper_id}", world["shopper"])
    while "{" in path:  # any other id: one that does not exist (allowed callers then get a 404 or 422)
        start = path.index("{")
        path = path[:start] + MISSING_ID + path[path.index("}") + 1:]
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {"venue": "venue-a", "platform": "stub"} if path == "/v1/devices" else {}
    if template.endswith("/stock") and method == "GET":
        kwargs["params"] = {"sku": "SKU-1"}
    return path, kwargs


def test_every_route_has_a_policy(client: TestClient) -> None:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes - ROUTES.keys() == set(), "routes without an entry in ROUTES: say who may call them"
    assert ROUTES.keys() - routes == set(), "entries for routes that no longer exist"
    assert set(ROUTES.values()) <= POLICIES.keys()


def test_every_caller_is_allowed_or_refused_as_the_policy_says(client: TestClient, world: dict[str, Any]) -> None:
    wrong: list[str] = []
    order = [r for r in ROUTES if r not in LAST] + LAST
    for method, template in order:
        allowed = POLICIES[ROUTES[(method, template)]]
        for identity, headers in world["who"].items():
            path, kwargs = _request(method, template, world)
            r = client.request(method, path, headers=headers, **kwargs)
            # a campaign or shopper of another venue is "not found" rather than "forbidden": nothing leaks
            hidden = "campaign" in template or template.startswith("/v1/shoppers")
            denied = r.status_code in (401, 403) or (r.status_code == 404 and hidden and identity not in allowed)
            if (identity in allowed) == denied or r.status_code >= 500:
                wrong.append(f"{method} {template} as {identity}: {r.status_code} {r.text[:120]}")
            if template.endswith("/token") and identity == "device_A" and r.status_code == 200:
                headers["Authorization"] = f"Bearer {r.json()['token']}"  # rotated: the old one is dead
    assert wrong == [], "\n".join(wrong)


def test_websockets_check_their_callers(client: TestClient, world: dict[str, Any]) -> None:
    who, device = world["who"], world["device"]

    def closes(url: str, headers: dict[str, str]) -> int | None:
        try:
            with client.websocket_connect(url, headers=headers) as ws:
                ws.receive_json()
                return None
        except WebSocketDisconnect as exc:
            return exc.code

    assert closes(f"/v1/devices/{device}/stream", who["device_A"]) is None
    assert closes(f"/v1/devices/{device}/stream", who["device_other"]) == 4401
    assert closes(f"/v1/devices/{device}/stream", who["platform"]) == 4401
    assert closes("/v1/staff/stream", who["staff_A"]) is None
    assert closes("/v1/staff/stream", who["platform"]) == 4401
    assert closes("/v1/venues/venue-a/live", who["analyst_A"]) is None
    assert closes("/v1/venues/venue-a/live", who["admin_B"]) == 4403
    assert closes("/v1/venues/venue-a/live", who["staff_A"]) == 4403
    assert closes("/v1/venues/venue-a/live", who["none"]) == 4401


def test_a_revoked_key_stops_at_once(client: TestClient, settings: Settings) -> None:
    create_venue(client, "venue-a")
    made = client.post("/v1/operator-keys", json={"name": "temp", "role": "analyst", "venues": ["venue-a"]}).json()
    assert made["key"].startswith("mfk_") and made["venues"] == ["venue-a"]
    assert client.get("/v1/venues/venue-a", headers=bearer(made["key"])).status_code == 200
    assert client.get("/v1/me", headers=bearer(made["key"])).json()["role"] == "analyst"
    assert client.delete(f"/v1/operator-keys/{made['id']}").json()["revoked_at"] is not None
    r = client.get("/v1/venues/venue-a", headers=bearer(made["key"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert all("key" not in k for k in client.get("/v1/operator-keys").json())  # secrets never listed


def test_an_app_key_rotation_keeps_the_previous_one_for_a_while(client: TestClient) -> None:
    create_venue(client, "venue-a")
    first = client.get("/v1/venues/venue-a/app-key").json()["app_key"]
    second = client.post("/v1/venues/venue-a/app-key").json()
    assert second["previous"] == first and second["app_key"] != first
    body = {"venue": "venue-a", "platform": "stub"}
    assert client.post("/v1/devices", json=body, headers={"X-App-Key": first}).status_code == 201
    client.post("/v1/venues/venue-a/app-key")
    r = client.post("/v1/devices", json=body, headers={"X-App-Key": first})
    assert r.status_code == 401 and "not valid for venue" in r.text
    assert client.post("/v1/devices", json=body).status_code == 401


def test_operator_actions_are_audited(client: TestClient, settings: Settings) -> None:
    create_venue(client, "venue-a")
    analyst = bearer(operator_key(settings.database_url, role="analyst", venue_ids=[1], name="eve"))
    create_zone(client, "venue-a", shapely.box(0, 0, 10, 10))
    assert client.post("/v1/venues/venue-a/levels", json={"ordinal": 9, "name": "x"}, headers=analyst
                       ).status_code == 403
    log = client.get("/v1/venues/venue-a/audit").json()
    actions = [(a["actor"].split(" ")[1], a["action"], a["status"]) for a in log]
    assert ("eve", "POST /v1/venues/{slug}/levels", 403) in actions  # refusals are recorded too
    assert ("tests", "POST /v1/venues/{slug}/zones", 201) in actions
    assert all(a["actor"].startswith("key:") for a in log)


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="MALLFENCE_SECRET_KEY"):
        Settings(environment="production")
    assert Settings(environment="production", secret_key="x" * 40).environment == "production"


def test_security_headers_and_body_limit(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    r = client.post("/v1/venues", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_trusted_hosts_and_cors_are_settings(settings: Settings, platform_key: str) -> None:
    strict = settings.model_copy(update={"trusted_hosts": ["mall.example"], "cors_origins": ["https://app.example"]})
    with TestClient(create_app(strict), headers=bearer(platform_key)) as c:
        assert c.get("/healthz").status_code == 400  # the test client says Host: testserver
        ok = c.get("/healthz", headers={"Host": "mall.example", "Origin": "https://app.example"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"


def test_rate_limits_answer_429_with_retry_after(settings: Settings, platform_key: str) -> None:
    tight = settings.model_copy(update={"device_rate_per_s": 1.0, "device_burst": 3.0, "operator_rate_per_s": 1.0,
                                        "operator_burst": 5.0, "public_rate_per_min": 60.0})
    with TestClient(create_app(tight), headers=bearer(platform_key)) as c:
        create_venue(c, "venue-a")  # a venue and a level: 2 of the key's 5
        device, auth = register(c, "venue-a")  # app-key read: 3
        codes = [c.get(f"/v1/devices/{device}/events", headers=auth).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get(f"/v1/devices/{device}/events", headers=auth)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 2 and "device" in r.json()["detail"]
        with c.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
            assert ws.receive_json()["type"] == "hello"
            ws.send_json({"type": "fix", **fix_at(0)})
            limited = ws.receive_json()  # the bucket is empty: an error, the socket stays open
            assert limited["code"] == "rate_limited" and limited["retry_after_s"] > 0
            ws.send_json({"type": "ping"})
            assert ws.receive_json()["type"] == "pong"
        statuses = [c.get("/v1/venues").status_code for _ in range(4)]
        assert statuses[-1] == 429


def test_websocket_messages_have_a_size_limit(client: TestClient) -> None:
    create_venue(client, "venue-a")
    device, auth = register(client, "venue-a")
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_text('{"type": "fixes", "fixes": [' + ",".join(['{"x": 1}'] * 40_000) + "]}")
        error = ws.receive_json()
        assert error["code"] == "too_large"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def fix_at(t: float) -> dict[str, Any]:
    from tests.factories import fix

    return fix(1, 1, t)
