"""A simulated staff app: scans shoppers' identity codes for the customer card, listens to store alerts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import websockets


class StaffError(RuntimeError):
    """The server refused the staff app (bad token, a code that would not scan)."""


class StaffDesk:
    """One staff member's phone at their store."""

    def __init__(self, http: httpx.AsyncClient, server_url: str, token: str):
        self.http, self.server, self.token = http, server_url.rstrip("/"), token  # the staff credential (mfs_…)
        self.headers: dict[str, str] = {}  # the session's, once signed in
        self.me: dict[str, Any] = {}
        self.cards: list[dict[str, Any]] = []

    @property
    def store_id(self) -> int:
        return int(self.me["store"]["id"])

    @property
    def zone_id(self) -> int | None:
        zone = self.me["store"].get("zone_id")
        return int(zone) if zone is not None else None

    async def sign_in(self) -> dict[str, Any]:
        """Log the credential in for a session (POST /v1/staff/login), then who it is (GET /v1/staff/me)."""
        resp = await self.http.post(f"{self.server}/v1/staff/login", json={"credential": self.token})
        if resp.status_code != 200:
            raise StaffError(f"staff login refused: {resp.status_code} {resp.text[:200]}")
        self.headers = {"Authorization": f"Bearer {resp.json()['token']}"}
        resp = await self.http.get(f"{self.server}/v1/staff/me", headers=self.headers)
        if resp.status_code != 200:
            raise StaffError(f"staff token refused: {resp.status_code} {resp.text[:200]}")
        self.me = resp.json()
        return self.me

    async def scan(self, code: str) -> dict[str, Any]:
        """Scan a shopper's identity code: the customer card, or StaffError with the server's reason."""
        resp = await self.http.post(f"{self.server}/v1/staff/scans", json={"code": code}, headers=self.headers)
        if resp.status_code != 200:
            raise StaffError(f"scan refused: {resp.status_code} {resp.text[:300]}")
        card = resp.json()
        self.cards.append(card)
        return card

    async def watch(self, on_alert: Callable[[dict[str, Any]], None], stop: asyncio.Event) -> None:
        """Print (hand to ``on_alert``) the store's alerts until ``stop`` is set."""
        url = "ws" + self.server.removeprefix("http") + "/v1/staff/stream"
        async with websockets.connect(url, additional_headers=self.headers, open_timeout=10) as ws:
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                message = json.loads(raw)
                if message.get("type") == "alert":
                    on_alert(message)


def format_card(card: dict[str, Any]) -> str:
    """A customer card in two lines, as a staff app would headline it."""
    shopper = card.get("shopper") or {}
    who = shopper.get("display_name") or shopper.get("loyalty_id") or f"guest {str(shopper.get('id', '?'))[:8]}"
    consent = card.get("consent")
    flags = ("consent " + ", ".join(f"{k} {'yes' if consent.get(k) else 'no'}"
                                    for k in ("location", "marketing", "analytics"))) if consent else "no consent yet"
    here = ", ".join(z.get("name", "?") for z in card.get("here_now") or []) or "-"
    visits = card.get("visits") or {}
    return (f"{who} at {card.get('store', {}).get('name')}: {visits.get('days', 0)} visit day(s), {flags}\n"
            f"    here now: {here}; recent: {len(card.get('recent_visits') or [])} visit(s); "
            f"{len(card.get('orders') or [])} order(s), {len(card.get('wishlist') or [])} wishlist item(s)")
