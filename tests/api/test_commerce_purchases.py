"""Purchases from the POS webhook: stored once per receipt, exact amounts, read back per shopper and period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from mallfence.commerce import purchases
from tests.commerce_factories import build_mall, commerce_secret, post_signed
from tests.factories import register


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    device, _ = register(client)
    shopper = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-7"}).json()
    return {**ids, "shopper": shopper["id"], "secret": commerce_secret(client)}


def sale(mall: dict, external_id: str = "R-1", days_ago: float = 0, **fields: object) -> dict:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return {"external_id": external_id, "loyalty_id": "L-7", "store_id": mall["books"], "amount": "49.90",
            "currency": "DKK", "items": [{"sku": "BK-1", "qty": 2, "price": 24.95}], "purchased_at": at.isoformat(),
            **fields}


def test_a_purchase_is_stored_once_and_read_back_by_period(client: TestClient, mall: dict) -> None:
    first = sale(mall, "R-1", days_ago=40)
    r = post_signed(client, mall["secret"], "purchases", first)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["amount"], body["amount_minor"], body["currency"], body["duplicate"]) == ("49.90", 4990, "DKK", False)
    assert body["items"] == [{"sku": "BK-1", "qty": 2, "price": "24.95", "price_minor": 2495}]
    again = post_signed(client, mall["secret"], "purchases", first)  # the POS retried
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["id"] == body["id"]
    r = post_signed(client, mall["secret"], "purchases", {**first, "amount": "59.90"})
    assert r.status_code == 409 and "already stored with different contents" in r.json()["detail"]
    post_signed(client, mall["secret"], "purchases", sale(mall, "R-2", days_ago=3, amount=1250, currency="JPY",
                                                          items=[], store="L0-SHOES", store_id=None))
    url = f"/v1/venues/mall/shoppers/{mall['shopper']}/purchases"
    assert [(p["external_id"], p["amount"]) for p in client.get(url).json()] == [("R-1", "49.90"), ("R-2", "1250")]
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    assert [p["external_id"] for p in client.get(url, params={"since": since}).json()] == ["R-2"]
    assert [p["external_id"] for p in client.get(url, params={"until": since}).json()] == ["R-1"]
    assert client.get(url, params={"since": "2026-01-01T00:00:00"}).status_code == 422  # no offset: ambiguous
    with client.app.state.runtime.sessions() as s:  # type: ignore[attr-defined]
        got = purchases.purchases_of(s, shopper_id=mall["shopper"], since=datetime.now(UTC) - timedelta(days=30),
                                     until=datetime.now(UTC))
        assert [(p.external_id, p.amount_minor, p.currency) for p in got] == [("R-2", 1250, "JPY")]
        london = ZoneInfo("Europe/London")  # the test venue's calendar: what segments count days in
        expected = [(datetime.fromisoformat(p["purchased_at"]).astimezone(london).date(), float(p["amount"]))
                    for p in client.get(url).json()]
        today = datetime.now(london).date()
        assert purchases.spend(s, mall["shopper"], today) == expected and expected[0][1] == 49.9
        assert purchases.spend(s, mall["shopper"], today, 30) == expected[1:]


@pytest.mark.parametrize(("fields", "loc", "says"), [
    ({"loyalty_id": "L-404"}, ["loyalty_id"], "no shopper with loyalty_id 'L-404'"),
    ({"loyalty_id": None, "shopper_id": "ghost"}, ["shopper_id"], "no shopper 'ghost'"),
    ({"store_id": 999}, ["store_id"], "store 999 does not exist"),
    ({"amount": "49.905"}, ["amount"], "more decimals than DKK has (2)"),
    ({"currency": "JPY", "amount": "100.5", "items": []}, ["amount"], "more decimals than JPY has (0)"),
    ({"items": [{"sku": "BK-1", "qty": 1, "price": "0.001"}]}, ["items", 0, "price"], "more decimals"),
    ({"currency": "dkk"}, ["body", "currency"], "String should match pattern"),
    ({"purchased_at": "2026-12-01T10:00:00"}, ["body", "purchased_at"], "timezone"),
    ({"purchased_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, ["purchased_at"], "in the future"),
])
def test_bad_purchases_are_refused_and_nothing_is_stored(client: TestClient, mall: dict, fields: dict, loc: list,
                                                         says: str) -> None:
    r = post_signed(client, mall["secret"], "purchases", sale(mall, **fields))  # type: ignore[arg-type]
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc and says in r.json()["detail"][0]["msg"], r.text
    assert client.get(f"/v1/venues/mall/shoppers/{mall['shopper']}/purchases").json() == []


def test_purchases_need_a_signature(client: TestClient, mall: dict) -> None:
    r = client.post("/v1/venues/mall/inbound/purchases", json=sale(mall))
    assert r.status_code == 401 and "missing Mallfence-Signature" in r.json()["detail"]
    assert client.get(f"/v1/venues/mall/shoppers/{mall['shopper']}/purchases").json() == []
