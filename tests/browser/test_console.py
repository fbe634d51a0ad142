"""The operator console in headless Chromium against a real server: sign in, draw a zone, watch a shopper."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import numpy as np
from shapely.geometry import Polygon, shape

from mallfence.spatial.projection import LocalProjection
from mallfence.tracking.live import pseudonym
from mobile_stub.clock import Clock, Fix
from mobile_stub.shopper import Shopper
from tests.auth import bearer, operator_key
from tests.browser.harness import SLUG, Mall, screen_point, sign_in


def _api(mall: Mall) -> httpx.Client:
    return httpx.Client(base_url=mall.url, headers=bearer(mall.key), timeout=10)


def _projection(mall: Mall) -> LocalProjection:
    with _api(mall) as ops:
        lon, lat = ops.get(f"/v1/venues/{SLUG}").json()["anchor"]
    return LocalProjection(lon, lat)


def _zone(mall: Mall, name: str) -> dict[str, Any] | None:
    with _api(mall) as ops:
        zones = ops.get(f"/v1/venues/{SLUG}/zones").json()
    return next((z for z in zones if z["name"] == name), None)


def _local_ring(proj: LocalProjection, zone: dict[str, Any]) -> Polygon:
    lon, lat = np.array(zone["geometry"]["coordinates"][0]).T
    xs, ys = proj.to_local(lon, lat)
    return Polygon(zip(xs, ys, strict=True))


def _free_spot(mall: Mall, proj: LocalProjection) -> tuple[float, float]:
    """A point in the ground-floor spine with 12 m of corridor on each side of it, east-west."""
    with _api(mall) as ops:
        spine = next(z for z in ops.get(f"/v1/venues/{SLUG}/zones", params={"level": 0, "kind": "corridor"}).json())
    corridor = proj.geometry_to_local(shape(spine["geometry"]))
    minx, miny, maxx, maxy = corridor.bounds
    y = (miny + maxy) / 2 if corridor.geom_type == "Polygon" else miny + 4
    x = minx + (maxx - minx) * 0.3
    return x, y


def _draw(page: Any, corners: list[tuple[float, float]]) -> None:
    page.click("#new-zone")
    for x, y in corners:
        sx, sy = screen_point(page, x, y)
        page.mouse.click(sx, sy)
    page.keyboard.press("Enter")


def test_sign_in_refuses_a_wrong_key_and_an_analyst_cannot_draw(page: Any, mall: Mall) -> None:
    page.goto(f"{mall.url}/console/")
    page.fill("#key", "mfk_not-a-real-key")
    page.click("#login button[type=submit]")
    assert "Sign-in failed" in page.locator("#message.error").inner_text()
    assert page.locator("#venue").is_disabled()

    analyst = operator_key(mall.settings.database_url, role="analyst", name="analyst")
    sign_in(page, mall.url, analyst)
    assert "analyst" in page.inner_text("#who-name")
    assert page.locator("#new-zone").is_disabled()
    assert page.locator("#plan [data-zone-id]").count() > 30  # the ground floor's stores, corridor, entrances
    assert page.locator("#plan .beacon").count() > 10 and page.locator("#plan .qr").count() >= 1
    # click the middle of a store, whatever marker or label sits there: the store is picked, read-only
    box = page.locator("#plan .kind-store >> nth=0").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.input_value("#zone-name") and page.input_value("#zone-kind") == "store"
    assert page.locator("#zone-save").is_disabled() and page.locator("#zone-delete").is_disabled()


def test_draw_a_zone_and_watch_a_shopper_walk_into_it(page: Any, mall: Mall) -> None:
    proj = _projection(mall)
    x, y = _free_spot(mall, proj)
    corners = [(x - 3, y - 2), (x + 3, y - 2), (x + 3, y + 2), (x - 3, y + 2)]
    sign_in(page, mall.url, mall.key)

    _draw(page, corners)
    page.fill("#zone-name", "<b>Kiosk</b>")
    page.select_option("#zone-kind", "custom")
    page.click("#zone-save")
    page.wait_for_selector("#message.info")
    assert 'Zone "<b>Kiosk</b>" created' in page.inner_text("#message")

    saved = _zone(mall, "<b>Kiosk</b>")
    assert saved is not None and saved["kind"] == "custom" and saved["level"] == 0
    drawn = _local_ring(proj, saved)
    assert drawn.symmetric_difference(Polygon(corners)).area < 3.0, "saved where it was clicked (to a pixel)"
    page.locator(f'#plan [data-zone-id="{saved["id"]}"]').wait_for()
    assert page.locator("#plan text.label", has_text="<b>Kiosk</b>").count() == 1  # shown as text
    assert page.locator("#plan b").count() == 0

    walker = _StubShopper(mall, proj, start=(x - 14, y), inside=(x, y))
    walker.start()
    shopper = walker.pseudonym()
    dot = page.locator(f'#plan .dot[data-shopper="{shopper}"]')
    dot.wait_for()
    first_x = float(dot.get_attribute("data-x"))
    page.wait_for_function("""([id, x0]) => {
        const d = document.querySelector(`#plan .dot[data-shopper="${id}"]`);
        return d && Math.abs(Number(d.dataset.x) - x0) > 5;
    }""", arg=[shopper, first_x])
    entered = page.locator("#events li.kind-enter", has_text="<b>Kiosk</b>")
    entered.wait_for()
    assert shopper in entered.inner_text()
    walker.join()
    assert not walker.errors, walker.errors

    # the visit is in the footfall at once (the analytics read events the rollup has not taken in yet)
    page.check("#show-heat")
    row = page.locator("#footfall li", has_text="<b>Kiosk</b>")
    row.wait_for()
    assert "1 visits · 1 shoppers" in row.inner_text()
    assert page.locator(f'#plan [data-zone-id="{saved["id"]}"]').get_attribute("data-visits") == "1"  # heatmap
    assert page.locator("#analytics-message").is_hidden()


def test_rename_delete_and_a_refused_polygon(page: Any, mall: Mall) -> None:
    proj = _projection(mall)
    x, y = _free_spot(mall, proj)
    sign_in(page, mall.url, mall.key)

    # a bow-tie crosses itself: the API refuses it and the console says why
    _draw(page, [(x - 2, y - 1.5), (x + 2, y + 1.5), (x + 2, y - 1.5), (x - 2, y + 1.5)])
    page.fill("#zone-name", "Bow tie")
    page.click("#zone-save")
    assert "Zone not saved" in page.locator("#message.error").inner_text()
    assert _zone(mall, "Bow tie") is None
    page.click("#zone-cancel")

    _draw(page, [(x - 4, y - 2.5), (x + 4, y - 2.5), (x, y + 2.5)])
    page.fill("#zone-name", "Info desk")
    page.click("#zone-save")
    page.locator("#message", has_text="Info desk").wait_for()
    assert page.get_attribute("#message", "class") == "info", page.inner_text("#message")
    zone = _zone(mall, "Info desk")
    assert zone is not None

    page.fill("#zone-name", "Information desk")
    page.click("#zone-save")
    page.locator("#message.info", has_text="saved").wait_for()
    assert _zone(mall, "Information desk")["id"] == zone["id"]

    # redraw it as a rectangle further east: same zone, new shape
    page.click("#zone-redraw")
    moved = [(x + 6, y - 2.5), (x + 12, y - 2.5), (x + 12, y + 2.5), (x + 6, y + 2.5)]
    for corner in moved:
        page.mouse.click(*screen_point(page, *corner))
    page.keyboard.press("Enter")
    page.click("#zone-save")
    page.locator("#message.info", has_text="redrawn").wait_for()
    redrawn = _zone(mall, "Information desk")
    assert redrawn["id"] == zone["id"]
    assert _local_ring(proj, redrawn).symmetric_difference(Polygon(moved)).area < 3.0

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#zone-delete")
    page.locator("#message.info", has_text="deleted").wait_for()
    assert _zone(mall, "Information desk") is None
    assert page.locator(f'#plan [data-zone-id="{zone["id"]}"]').count() == 0


class _StubShopper(threading.Thread):
    """mobile_stub's Shopper on its own event loop: walks east into the zone, lingers, walks back out."""

    SPEEDUP = 6.0

    def __init__(self, mall: Mall, proj: LocalProjection, *, start: tuple[float, float],
                 inside: tuple[float, float]):
        super().__init__(daemon=True)
        self.mall, self.errors = mall, []
        legs = [np.linspace(start, inside, 15), np.repeat([inside], 25, axis=0), np.linspace(inside, start, 15)]
        xs, ys = np.concatenate(legs).T
        self.path = list(zip(*proj.to_wgs84(xs, ys), strict=True))
        self.device: str | None = None
        self.registered = threading.Event()

    def run(self) -> None:
        asyncio.run(self._walk())

    async def _walk(self) -> None:
        clock = Clock(self.SPEEDUP, len(self.path) + 1.0)
        fixes = [Fix(t=float(t), body={"id": f"f{t}", "lon": lon, "lat": lat, "accuracy_m": 3.0, "floor": 0,
                                       "ts": clock.iso(float(t))}) for t, (lon, lat) in enumerate(self.path)]
        async with httpx.AsyncClient(timeout=10) as http:
            app_key = (await http.get(f"{self.mall.url}/v1/venues/{SLUG}/app-key",
                                      headers=bearer(self.mall.key))).json()["app_key"]

            async def registered(shopper: Shopper) -> None:
                self.device = shopper.device_id
                self.registered.set()

            shopper = Shopper("kiosk-visitor", fixes, http=http, server_url=self.mall.url, venue_slug=SLUG,
                              clock=clock, app_key=app_key, on_registered=registered)
            stats = await shopper.run()
        self.errors = stats.errors
        self.registered.set()

    def pseudonym(self) -> str:
        assert self.registered.wait(15) and self.device, f"the stub shopper did not register: {self.errors}"
        return pseudonym(self.device)
