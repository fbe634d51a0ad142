"""What the demo prints besides the shoppers' own events: the operator, FCM, the decision log, staff alerts.

Each runs on a thread of its own against the demo's server and prints through ``say`` until ``stop``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from mallfence.delivery.fcm_local import LocalFcm

Say = Callable[[str, str], None]
ANNOUNCE_AFTER_S = 20.0  # wall seconds before the operator's one announcement to the whole mall


def setup_engagement(ops: httpx.Client, slug: str, store_ids: list[int]) -> list[dict[str, Any]]:
    """A tight push budget and two campaigns that compete for it: what the demo's decisions are about."""
    r = ops.put(f"/v1/venues/{slug}/push-policy",
                  json={"max_per_day": 2, "max_per_week": 5, "min_gap_s": 120, "quiet_hours": None})
    r.raise_for_status()
    made = []
    for body in (
        {"name": "Coffee happy hour", "trigger": "enter", "status": "active", "priority": 5, "cooldown_s": 0,
         "targets": {"kinds": ["food_court"]},
         "content": {"title": "Happy hour: {incentive}", "body": "Show this at any food court counter.",
                     "texts": {"da": {"title": "Happy hour: {incentive}", "body": "Vis dette ved en disk."}}},
         "incentives": [{"segment": "new", "text": "your first coffee free"},
                        {"segment": "*", "text": "two coffees for one"}]},
        {"name": "Store welcome", "trigger": "enter", "status": "active", "priority": 1,
         "targets": {"store_ids": store_ids},
         "content": {"title": "Welcome in", "body": "10 % off one item today with this push."}},
    ):
        r = ops.post(f"/v1/venues/{slug}/campaigns", json=body)
        r.raise_for_status()
        made.append(r.json())
    return made


def operator(ops: httpx.Client, slug: str, stop: threading.Event, say: Say) -> None:
    """Plays the mall operator: one announcement to everyone in the mall, backgrounded apps too."""
    if stop.wait(ANNOUNCE_AFTER_S):
        return
    venue_zones = ops.get(f"/v1/venues/{slug}/zones", params={"kind": "venue"}).json()
    if not venue_zones:
        return
    note = {"zone_id": venue_zones[0]["id"], "title": "Late opening tonight: shops open until 22:00",
            "body": "Enjoy the evening at Harbourside.", "category": "operator", "dedupe_key": "demo-late"}
    sent = ops.post(f"/v1/venues/{slug}/notifications", json=note).json()
    say("push", f"operator     push   '{note['title']}' to {sent.get('devices', 0)} shopper(s) in the mall")


def fcm(server: LocalFcm, stop: threading.Event, say: Say) -> None:
    """Prints what reaches the local FCM server: pushes for apps that were not on the websocket."""
    seen = 0
    while True:
        stopping = stop.wait(0.2)
        received = server.received
        for message in received[seen:]:
            token = message.target
            shopper = token.removeprefix("stub-").rsplit("-", 1)[0] if token.startswith("stub-") else token[:12]
            say("push", f"{shopper:<12} push   via FCM (app in background): {message.notification.get('title')}")
        seen = len(received)
        if stopping:
            return


def decisions(ops: httpx.Client, slug: str, names: dict[str, str], campaigns: dict[int, str],
              stop: threading.Event, say: Say) -> None:
    """Prints every decision the engine logs: what went out, what was held back and why."""
    last = 0
    while not stop.wait(0.5):
        try:
            rows = ops.get(f"/v1/venues/{slug}/decisions", params={"limit": 200}).json()
        except httpx.HTTPError:
            continue
        for d in sorted((r for r in rows if r["id"] > last), key=lambda r: r["id"]):
            last = d["id"]
            what = campaigns.get(d["campaign_id"], d["kind"].replace("_", " "))
            who = names.get(d.get("device_id", ""), "a shopper")
            if d["sent"]:
                say("decision", f"{who:<12} decide {what}: sent")
            else:
                numbers = ", ".join(f"{k} {v}" for k, v in d["detail"].items()
                                    if k in ("sent_today", "max_per_day", "last_push_s_ago", "why", "winner"))
                why = d["reason"] + (f": {numbers}" if numbers else "")
                say("decision", f"{who:<12} decide {what}: held back ({why})")


def staff_alerts(url: str, tokens: tuple[str, ...], stop: threading.Event, say: Say) -> None:
    """Listens on each staff app's store stream (a thread each) and prints click-and-collect arrivals."""
    threads = [threading.Thread(target=_staff_stream, args=(url, t, stop, say), daemon=True) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _staff_stream(url: str, token: str, stop: threading.Event, say: Say) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    try:
        ws = connect(url.replace("http", "ws", 1) + f"/v1/staff/stream?token={token}", open_timeout=5)
    except OSError:
        return
    with ws:
        while not stop.is_set():
            try:
                msg = json.loads(ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            if msg.get("type") == "alert" and msg.get("kind") == "order_arrival":
                order = msg.get("order") or {}
                shopper = (msg.get("card") or {}).get("shopper") or {}
                who = shopper.get("display_name") or shopper.get("loyalty_id") or "their shopper"
                say("card", f"staff        alert  order {order.get('external_id')} arriving: {who} is at the "
                            "pickup point")
