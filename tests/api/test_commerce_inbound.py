"""Signed webhooks in from the POS / ERP: commerce keys, signature and replay checks, stock changes, resends."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from mallfence.delivery.webhooks import sign
from tests.commerce_factories import build_mall, commerce_secret, post_signed, product, signed, stock


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    product(client, "TR-2", "Trail Runner 2")
    product(client, "BK-1", "Harbour Tales")
    return ids


def _levels(client: TestClient, store_id: int) -> dict[str, tuple[int, str]]:
    return {s["sku"]: (s["quantity"], s["level"]) for s in
            client.get(f"/v1/venues/mall/stores/{store_id}/stock").json()}


def test_a_commerce_key_shows_its_secret_once(client: TestClient, mall: dict) -> None:
    r = client.post("/v1/venues/mall/signing-keys/commerce")
    assert r.status_code == 201 and r.json()["secret"].startswith("mfc_") and r.json()["signing"] is True
    listed = [k for k in client.get("/v1/venues/mall/signing-keys").json() if k["purpose"] == "commerce"]
    assert [k["kid"] for k in listed] == ["k1"] and "secret" not in listed[0]
    assert client.post("/v1/venues/mall/signing-keys/qr").json()["secret"] is None  # qr secrets never leave


def test_signed_stock_changes_apply_in_order(client: TestClient, mall: dict) -> None:
    secret = commerce_secret(client)
    stock(client, mall["shoes"], "TR-2", 4)
    r = post_signed(client, secret, "inventory", {"changes": [
        {"sku": "TR-2", "store_id": mall["shoes"], "delta": -1, "reason": "sale"},
        {"sku": "TR-2", "store_id": mall["shoes"], "delta": -1, "reason": "sale"},
        {"sku": "BK-1", "store": "L0-BOOKS", "delta": 24, "reason": "restock"},
        {"sku": "TR-2", "store": "L1-BALLAST", "delta": -2},  # no row yet: the count had drifted
        {"sku": "BK-1", "store_id": mall["shoes"], "quantity": 7, "low_threshold": 10, "reason": "count"},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == 5 and r.json()["clamped"] == [3]
    assert [(lv["sku"], lv["store_id"], lv["quantity"], lv["level"]) for lv in r.json()["levels"]] == [
        ("TR-2", mall["shoes"], 2, "low"), ("BK-1", mall["books"], 24, "in_stock"),
        ("TR-2", mall["upstairs"], 0, "out"), ("BK-1", mall["shoes"], 7, "low")]
    assert _levels(client, mall["shoes"]) == {"TR-2": (2, "low"), "BK-1": (7, "low")}


def test_unknown_stores_and_skus_are_named_and_nothing_applies(client: TestClient, mall: dict) -> None:
    secret = commerce_secret(client)
    stock(client, mall["shoes"], "TR-2", 4)
    r = post_signed(client, secret, "inventory", {"changes": [
        {"sku": "TR-2", "store_id": mall["shoes"], "delta": -1},
        {"sku": "GHOST", "store_id": mall["shoes"], "delta": 1},
        {"sku": "TR-2", "store_id": 999, "delta": 1},
        {"sku": "TR-2", "store": "L9-NOWHERE", "delta": 1},
        {"sku": "TR-2", "store_id": mall["shoes"], "delta": 1, "quantity": 3},
    ]})
    assert r.status_code == 422
    problems = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
    assert list(problems) == [("body", "changes", 4)], "a change both a delta and a count is refused as it parses"
    assert "exactly one of delta or quantity" in problems[("body", "changes", 4)]
    r = post_signed(client, secret, "inventory", {"changes": [
        {"sku": "TR-2", "store_id": mall["shoes"], "delta": -1},
        {"sku": "GHOST", "store_id": mall["shoes"], "delta": 1},
        {"sku": "TR-2", "store_id": 999, "delta": 1},
        {"sku": "TR-2", "store": "L9-NOWHERE", "delta": 1},
    ]})
    assert r.status_code == 422
    problems = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
    assert list(problems) == [("changes", 1, "sku"), ("changes", 2, "store_id"), ("changes", 3, "store")]
    assert "'GHOST' is not in the catalog" in problems[("changes", 1, "sku")]
    assert "store 999 does not exist" in problems[("changes", 2, "store_id")]
    assert _levels(client, mall["shoes"]) == {"TR-2": (4, "in_stock")}  # the good first change was not applied


def _feed(mall: dict) -> bytes:
    return json.dumps({"changes": [{"sku": "TR-2", "store_id": mall["shoes"], "delta": 5}]}).encode()


@pytest.mark.parametrize(("tamper", "says"), [
    (lambda h, b, s: ({k: v for k, v in h.items() if k != "Mallfence-Signature"}, b), "missing Mallfence-Signature"),
    (lambda h, b, s: ({k: v for k, v in h.items() if k != "Mallfence-Timestamp"}, b), "missing Mallfence-Timestamp"),
    (lambda h, b, s: ({**h, "Mallfence-Timestamp": "yesterday"}, b), "is not Unix seconds"),
    (lambda h, b, s: (h, b.replace(b"5", b"9")), "does not match"),  # the body was changed on the way
    (lambda h, b, s: (signed("mfc_not-the-secret", b), b), "does not match"),
    (lambda h, b, s: (signed(s, b, ts=int(time.time()) - 400), b), "s old (limit 300 s)"),  # a replay
    (lambda h, b, s: (signed(s, b, ts=int(time.time()) + 400), b), "in the future"),
])
def test_bad_signatures_are_refused(client: TestClient, mall: dict, tamper, says: str) -> None:  # type: ignore[no-untyped-def]
    secret = commerce_secret(client)
    body = _feed(mall)
    headers, sent = tamper(signed(secret, body), body, secret)
    r = client.post("/v1/venues/mall/inbound/inventory", content=sent, headers=headers)
    assert r.status_code == 401 and says in r.json()["detail"], r.text
    assert _levels(client, mall["shoes"]) == {}


def test_keys_rotate_and_a_retired_key_stops_verifying(client: TestClient, mall: dict) -> None:
    body = _feed(mall)
    r = client.post("/v1/venues/mall/inbound/inventory", content=body, headers=signed("mfc_x", body))
    assert r.status_code == 401 and "has no commerce signing key" in r.json()["detail"]
    old = commerce_secret(client)
    new = commerce_secret(client)
    for secret in (old, new):  # the sender may still use the old key while it moves over
        assert post_signed(client, secret, "inventory", json.loads(body)).status_code == 200
    ts = int(time.time())  # both signatures in one header, as a sender mid-rotation may send them
    both = {**signed(new, body, ts=ts), "Mallfence-Signature": f"{sign('mfc_stale', ts, body)}, {sign(new, ts, body)}"}
    assert client.post("/v1/venues/mall/inbound/inventory", content=body, headers=both).status_code == 200
    assert client.delete("/v1/venues/mall/signing-keys/commerce/k1").status_code == 200
    assert post_signed(client, old, "inventory", json.loads(body)).status_code == 401
    assert _levels(client, mall["shoes"]) == {"TR-2": (15, "in_stock")}


def test_a_resent_delivery_is_answered_not_applied_again(client: TestClient, mall: dict) -> None:
    secret = commerce_secret(client)
    feed = {"changes": [{"sku": "TR-2", "store_id": mall["shoes"], "delta": 5}]}
    first = post_signed(client, secret, "inventory", feed, delivery="dlv_1")
    again = post_signed(client, secret, "inventory", feed, delivery="dlv_1")  # re-signed later: a sender's retry
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert again.headers["Mallfence-Replayed"] == "1" and "Mallfence-Replayed" not in first.headers
    assert _levels(client, mall["shoes"]) == {"TR-2": (5, "in_stock")}
    r = post_signed(client, secret, "inventory", {"changes": [{**feed["changes"][0], "delta": 6}]}, delivery="dlv_1")
    assert r.status_code == 409 and "different body" in r.json()["detail"]
    assert post_signed(client, secret, "inventory", feed, delivery="dlv_2").status_code == 200
    assert _levels(client, mall["shoes"]) == {"TR-2": (10, "in_stock")}
    # a refused delivery is not remembered: fixed, the same id goes through
    bad = {"changes": [{"sku": "GHOST", "store_id": mall["shoes"], "delta": 1}]}
    assert post_signed(client, secret, "inventory", bad, delivery="dlv_3").status_code == 422
    product(client, "GHOST")
    assert post_signed(client, secret, "inventory", bad, delivery="dlv_3").status_code == 200


def test_unparseable_bodies_are_422_after_the_signature(client: TestClient, mall: dict) -> None:
    secret = commerce_secret(client)
    body = b'{"changes": ['
    r = client.post("/v1/venues/mall/inbound/inventory", content=body, headers=signed(secret, body))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/v1/venues/nowhere/inbound/inventory", content=body, headers=signed(secret, body))
    assert r.status_code == 404
