"""Personal data: consent history, positions kept only with consent, export, erasure proven table by table,
retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mallfence import cli
from mallfence.privacy import pseudonym
from mallfence.venues.models import Venue
from tests.auth import app_key, bearer, operator_key
from tests.commerce_factories import build_mall, commerce_secret, hire, post_signed, product, scan_shopper, stock
from tests.factories import create_venue, fix

OPEN = {"max_per_day": 50, "max_per_week": 200, "min_gap_s": 0, "quiet_hours": None}


def join(client: TestClient, loyalty_id: str, *, consent: dict | None = None) -> dict[str, Any]:
    r = client.post("/v1/devices", json={"venue": "mall", "platform": "android"}, headers=app_key(client, "mall"))
    assert r.status_code == 201, r.text
    device, auth = r.json()["device_id"], bearer(r.json()["token"])
    if consent is not None:
        r = client.put(f"/v1/devices/{device}/consent", headers=auth, json=consent)
        assert r.status_code == 200, r.text
    shopper = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": loyalty_id})
    assert shopper.status_code == 200, shopper.text
    return {"device": device, "auth": auth, "shopper": shopper.json()["id"],
            "own": {**auth, "X-Device-Id": device}}


YES = {"location": True, "marketing": True, "analytics": True, "version": "2"}


def walk(client: TestClient, who: dict, *points: tuple[float, float, float]) -> list[dict]:
    r = client.post(f"/v1/devices/{who['device']}/positions", headers=who["auth"],
                    json={"fixes": [fix(x, y, t) for x, y, t in points]})
    assert r.status_code == 200, r.text
    return r.json()["events"]


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    client.put("/v1/venues/mall/push-policy", json=OPEN)
    product(client, "TR-2", "Trail Runner 2")
    stock(client, ids["shoes"], "TR-2", 12)
    r = client.post("/v1/venues/mall/campaigns", json={
        "name": "Shoes", "trigger": "enter", "status": "active", "priority": 90,
        "targets": {"store_ids": [ids["shoes"]]},
        "content": {"title": "Socks free with any pair", "body": "Today"}})
    assert r.status_code == 201, r.text
    return ids


def a_full_life(client: TestClient, mall: dict, loyalty_id: str) -> dict[str, Any]:
    """A shopper who did everything that leaves a trace: consent twice, walks with pushes, a push token, a
    wishlist, an order, a purchase, a staff scan, a webhook about them."""
    who = join(client, loyalty_id, consent={**YES, "marketing": False, "version": "1"})
    assert client.put(f"/v1/devices/{who['device']}/consent", headers=who["auth"], json=YES).status_code == 200
    assert client.put(f"/v1/devices/{who['device']}/push-tokens", headers=who["auth"],
                      json={"token": f"fcm-token-{loyalty_id}-0123456789", "platform": "android"}).status_code == 200
    assert client.put(f"/v1/devices/{who['device']}/wishlist/TR-2", headers=who["auth"]).status_code in (200, 201)
    r = client.post("/v1/venues/mall/orders", json={"external_id": f"WEB-{loyalty_id}", "loyalty_id": loyalty_id,
                                                    "store_id": mall["books"], "pickup_zone": "L0-PU-A",
                                                    "status": "ready"})
    assert r.status_code == 201, r.text
    secret = client.app.state.commerce_secret  # type: ignore[attr-defined]
    sale = {"external_id": f"R-{loyalty_id}", "loyalty_id": loyalty_id, "store_id": mall["shoes"], "amount": "49.90",
            "currency": "DKK", "items": [{"sku": "TR-2", "qty": 1, "price": 49.90}],
            "purchased_at": datetime.now(UTC).isoformat()}
    assert post_signed(client, secret, "purchases", sale).status_code == 201
    events = walk(client, who, (180, 10, 0), (140, 10, 5), (70, 10, 60), (70, 12, 120))
    assert {e["zone"]["name"] for e in events} >= {"Mall", "Shoes zone"}
    scan_shopper(client, client.app.state.staff, who["device"], who["auth"])  # type: ignore[attr-defined]
    client.post(f"/v1/devices/{who['device']}/identity-codes", headers=who["auth"])
    return who


@pytest.fixture
def lives(client: TestClient, mall: dict) -> tuple[dict, dict]:
    client.app.state.commerce_secret = commerce_secret(client)  # type: ignore[attr-defined]
    client.app.state.staff = hire(client, mall["shoes"])  # type: ignore[attr-defined]
    r = client.post("/v1/venues/mall/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                                      "event_types": ["zone.enter", "zone.exit"]})
    assert r.status_code == 201, r.text
    return a_full_life(client, mall, "L-1"), a_full_life(client, mall, "L-2")


def test_positions_are_kept_only_with_location_consent(client: TestClient, mall: dict) -> None:
    silent = join(client, "L-9")  # the app never reported consent
    agreed = join(client, "L-8", consent=YES)
    for who in (silent, agreed):
        assert walk(client, who, (180, 10, 0), (140, 10, 5))
    for who, kept in ((silent, False), (agreed, True)):
        events = client.get(f"/v1/shoppers/{who['shopper']}/export", headers=who["own"]).json()["tables"]["events"]
        assert events and all((e["lon"] is not None) == kept for e in events), events


def test_consent_changes_are_kept_as_a_history(client: TestClient, mall: dict) -> None:
    who = join(client, "L-3", consent={**YES, "version": "1"})
    client.put(f"/v1/devices/{who['device']}/consent", headers=who["auth"], json={**YES, "marketing": False})
    records = client.get(f"/v1/shoppers/{who['shopper']}/export", headers=who["own"]).json()["tables"][
        "consent_records"]
    assert [(r["marketing"], r["version"]) for r in records] == [(True, "1"), (False, "2")]
    assert all(r["recorded_at"] for r in records)


def test_export_has_everything_and_no_credentials(client: TestClient, lives: tuple[dict, dict]) -> None:
    one, other = lives
    r = client.get(f"/v1/shoppers/{one['shopper']}/export", headers=one["own"])
    assert r.status_code == 200, r.text
    body = r.json()
    tables = body["tables"]
    assert body["device_ids"] == [one["device"]]
    for name in ("shoppers", "devices", "consent_records", "events", "decisions", "notifications", "push_tokens",
                 "identity_codes", "wishlist_items", "orders", "purchases"):
        assert tables[name], f"{name} is missing from the export"
    assert [d["loyalty_id"] for d in tables["shoppers"]] == ["L-1"]
    assert {e["kind"] for e in tables["events"]} >= {"enter", "staff_scan"}
    assert "Socks free with any pair" in {n["title"] for n in tables["notifications"]}
    assert tables["push_tokens"][0]["token"] == "…23456789"  # a tail to recognise it by, not the token
    text = json.dumps(body)
    assert other["device"] not in text and other["shopper"] not in text
    assert "token_hash" not in text and "nonce" not in text
    # the venue's admin may export it too; an analyst, another shopper's app, another venue's admin may not
    assert client.get(f"/v1/shoppers/{one['shopper']}/export").json()["tables"]["events"] == tables["events"]
    url = client.app.state.runtime.settings.database_url  # type: ignore[attr-defined]
    venue_id = tables["shoppers"][0]["venue_id"]
    analyst = operator_key(url, role="analyst", venue_ids=[venue_id])
    assert client.get(f"/v1/shoppers/{one['shopper']}/export", headers=bearer(analyst)).status_code == 403
    assert client.get(f"/v1/shoppers/{one['shopper']}/export", headers=other["own"]).status_code == 403
    create_venue(client, slug="elsewhere")
    with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
        elsewhere = session.scalar(sa.select(Venue.id).where(Venue.slug == "elsewhere"))
    stranger = operator_key(url, venue_ids=[elsewhere])
    assert client.get(f"/v1/shoppers/{one['shopper']}/export", headers=bearer(stranger)).status_code == 404
    assert client.get("/v1/shoppers/not-a-shopper/export").status_code == 404


def _everything(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table in the database, as text."""
    meta = sa.MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            out[table.name] = [" ".join(map(str, row)) for row in conn.execute(sa.select(table))]
    return out


def test_erasure_leaves_no_trace_in_any_table(client: TestClient, lives: tuple[dict, dict]) -> None:
    one, other = lives
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:  # an audit row from before ids were hashed there, naming the shopper
        conn.execute(sa.text("INSERT INTO audit_log (at, actor, action, target, status, detail) "
                             "VALUES (:at, 'key:1 ops', 'GET /v1/venues/{slug}/shoppers/{shopper_id}', :t, 200, '{}')"),
                     {"at": datetime.now(UTC), "t": f"shopper_id={one['shopper']}"})
    before = _everything(engine)
    ids = (one["shopper"], one["device"])
    assert {t for t, rows in before.items() if any(i in r for r in rows for i in ids)} >= {
        "shoppers", "devices", "events", "decisions", "notifications", "push_tokens", "wishlist_items", "orders",
        "purchases", "consent_records", "identity_codes", "webhook_deliveries", "audit_log"}
    other_rows = {t: sorted(r for r in rows if other["device"] in r or other["shopper"] in r)
                  for t, rows in before.items()}

    r = client.delete(f"/v1/shoppers/{one['shopper']}", headers=one["own"])
    assert r.status_code == 200, r.text
    assert r.json()["shopper"] == pseudonym(one["shopper"]) and r.json()["devices"] == 1
    assert r.json()["removed"]["events"] >= 3

    after = _everything(engine)
    found = {t: [r for r in rows if any(i in r for i in ids)] for t, rows in after.items()}
    assert {t: rows for t, rows in found.items() if rows} == {}
    # the other shopper lost nothing
    assert {t: sorted(r for r in rows if other["device"] in r or other["shopper"] in r)
            for t, rows in after.items()} == other_rows
    # aggregates without identity stay: the campaign still counts its sends
    assert client.get("/v1/venues/mall/campaigns").json()[0]["sends"] == 2
    # the erasure is audited, by hash
    trail = [e for e in client.get("/v1/venues/mall/audit").json() if e["action"] == "shopper.erase"]
    assert [e["target"] for e in trail] == [f"shopper {pseudonym(one['shopper'])}"]
    # the erased app's token is dead; asking again finds nothing
    assert client.post(f"/v1/devices/{one['device']}/positions", headers=one["auth"],
                       json={"fixes": [fix(10, 10, 300)]}).status_code in (401, 404)
    assert client.delete(f"/v1/shoppers/{one['shopper']}").status_code == 404


def test_an_admin_erases_by_request_and_the_audit_keeps_no_id(client: TestClient, lives: tuple[dict, dict]) -> None:
    one, _ = lives
    assert client.delete(f"/v1/shoppers/{one['shopper']}").status_code == 200
    trail = client.get("/v1/venues/mall/audit").json()
    assert not [e for e in trail if one["shopper"] in json.dumps(e) or one["device"] in json.dumps(e)]
    assert [e["actor"].startswith("key:") for e in trail if e["action"] == "shopper.erase"] == [True]


def test_retention_drops_old_positions_then_old_events(client: TestClient, lives: tuple[dict, dict],
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = lives
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM events WHERE device_id = :d AND lon IS NOT NULL"
                                                      " ORDER BY id"), {"d": one["device"]})]
        assert len(ids) >= 2
        conn.execute(sa.text("UPDATE events SET occurred_at = :t WHERE id = :i"),
                     {"t": now - timedelta(days=8), "i": ids[0]})
        conn.execute(sa.text("UPDATE events SET occurred_at = :t WHERE id = :i"),
                     {"t": now - timedelta(days=400), "i": ids[1]})
    monkeypatch.setenv("MALLFENCE_DATABASE_URL", client.app.state.runtime.settings.database_url)  # type: ignore[attr-defined]
    assert cli.main(["purge", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["affected"]["positions"] == 2  # the 400-day one has one too
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM events WHERE id = :i AND lon IS NOT NULL"),
                           {"i": ids[0]}) == 1  # a dry run changes nothing
    assert cli.main(["purge"]) == 0
    done = json.loads(capsys.readouterr().out)["affected"]
    assert done["positions"] == 2 and done["events"] == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, lon FROM events WHERE id IN (:a, :b)"),
                                 {"a": ids[0], "b": ids[1]}).all())
    assert rows == {ids[0]: None}  # 8 days old: the event stays without its position; 400 days: gone
