"""``mallfence report``: a venue's analytics over a period as one file to mail: HTML with the numbers and
embedded PNG charts (footfall by zone and day, dwell distribution, peak hours, campaign funnels), or a
PNG of the charts alone.

Charts are drawn with matplotlib's object API on the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.figure import Figure
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.analytics import funnel, service
from mallfence.analytics.window import window
from mallfence.config import Settings
from mallfence.db import make_engine, make_session_factory
from mallfence.engagement.models import Campaign, Decision
from mallfence.venues import service as venue_service

TOP = 12  # zones per chart: a mall has hundreds, a chart reads a dozen


def parse_time(value: str | None, flag: str) -> datetime | None:
    """An ISO 8601 time with an offset (``Z`` allowed), or None; ValueError naming ``flag`` otherwise."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag}: {value!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00:00+00:00)") from None
    if t.tzinfo is None:
        raise ValueError(f"{flag}: {value!r} has no timezone offset (add Z or +01:00)")
    return t


def gather(session: Session, *, slug: str, start: datetime | None, end: datetime | None,
           visit_window_h: int) -> dict[str, Any]:
    """Every number the report shows, from the same services as the API."""
    venue = venue_service.get_venue(session, slug=slug)
    tz = ZoneInfo(venue.timezone)
    w, days = window(start=start, end=end, tz=tz), window(start=start, end=end, tz=tz, by_day=True)
    ids = session.scalars(select(Decision.campaign_id).where(
        Decision.venue_id == venue.id, Decision.campaign_id.is_not(None), Decision.at >= w.lo, Decision.at < w.hi)
        .distinct())
    funnels = [funnel.funnel(session, venue=venue, campaign=c, w=w, visit_window_h=visit_window_h)
               for c in session.scalars(select(Campaign).where(Campaign.id.in_(list(ids))).order_by(Campaign.id))]
    return {"venue": venue.name, "slug": venue.slug, "timezone": venue.timezone,
            "footfall": service.footfall(session, venue=venue, w=days, bucket="day", zone_id=None),
            "hourly": service.footfall(session, venue=venue, w=w, bucket="hour", zone_id=None),
            "dwell": service.dwell(session, venue=venue, w=w, zone_id=None),
            "peak": service.peak_hours(session, venue=venue, w=w, zone_id=None),
            "funnels": funnels}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def chart_footfall(data: dict[str, Any]) -> Figure:
    zones = [z for z in data["hourly"]["zones"] if z["visits"]][:TOP][::-1]
    fig = Figure(figsize=(8, 0.4 * max(len(zones), 3) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    y = range(len(zones))
    ax.barh([i + 0.2 for i in y], [z["visits"] for z in zones], height=0.4, label="visits")
    ax.barh([i - 0.2 for i in y], [z["unique_shoppers"] for z in zones], height=0.4, label="unique shoppers")
    ax.set_yticks(list(y), [z["name"] for z in zones])
    ax.set_title("Footfall by zone")
    ax.legend(loc="lower right")
    return fig


def chart_days(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    zones = [z for z in data["footfall"]["zones"] if z["visits"]][:5]
    days = sorted({p["start"][:10] for z in zones for p in z["series"]})  # a day without visits is a 0, not a gap
    for z in zones:
        visits = {p["start"][:10]: p["visits"] for p in z["series"]}
        ax.plot(days, [visits.get(d, 0) for d in days], marker="o", label=z["name"])
    ax.set_title(f"Visits per day ({data['timezone']})")
    ax.tick_params(axis="x", labelrotation=45)
    if ax.has_data():
        ax.legend(fontsize="small")
    return fig


def chart_dwell(data: dict[str, Any]) -> Figure:
    zones = [z for z in data["dwell"]["zones"] if z["count"]][:6]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    labels = [h["bin"] for h in zones[0]["histogram"]] if zones else []
    width = 0.8 / max(len(zones), 1)
    for k, z in enumerate(zones):
        ax.bar([i + k * width for i in range(len(labels))], [h["count"] for h in z["histogram"]], width=width,
               label=z["name"])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    ax.set_title("How long stays lasted")
    if zones:
        ax.legend(fontsize="small")
    return fig


def chart_peak(data: dict[str, Any]) -> Figure:
    grid = data["peak"]["grid"]
    fig = Figure(figsize=(8, 2.8), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow([grid[d] for d in service.WEEKDAYS], aspect="auto", cmap="viridis")
    ax.set_yticks(range(7), list(service.WEEKDAYS))
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_title(f"Arrivals by hour and weekday ({data['peak']['counted']})")
    fig.colorbar(image, ax=ax)
    return fig


def chart_funnel(f: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8, 2.8), layout="constrained")
    ax = fig.add_subplot()
    stages = f["stages"]
    bars = ax.bar([s["stage"] for s in stages], [s["count"] for s in stages])
    ax.bar_label(bars)
    ax.margins(y=0.15)  # room for the labels above the tallest bar
    ax.set_title(f"Campaign funnel: {f['name']}")
    return fig


def charts(data: dict[str, Any]) -> list[tuple[str, Figure]]:
    out = [("Footfall by zone", chart_footfall(data)), ("Visits per day", chart_days(data)),
           ("Dwell", chart_dwell(data)), ("Peak hours", chart_peak(data))]
    return out + [(f"Funnel: {f['name']}", chart_funnel(f)) for f in data["funnels"]]


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def render_html(data: dict[str, Any]) -> str:
    """The report page: numbers as tables, each chart as an embedded PNG."""
    f = data["hourly"]
    dwell = {z["zone_id"]: z for z in data["dwell"]["zones"]}
    rows = [[z["name"], z["kind"], z["visits"], z["unique_shoppers"], dwell.get(z["zone_id"], {}).get("count"),
             dwell.get(z["zone_id"], {}).get("mean_s"), dwell.get(z["zone_id"], {}).get("p50_s"),
             dwell.get(z["zone_id"], {}).get("p90_s")] for z in f["zones"]]
    parts = [f"<h1>{html.escape(data['venue'])}: analytics</h1>",
             f"<p>{html.escape(f['from'])} to {html.escape(f['to'])} "
             f"(UTC; days in {html.escape(data['timezone'])})</p>",
             "<h2>Zones</h2>",
             _table(["zone", "kind", "visits", "unique shoppers", "stays", "mean stay s", "p50 s", "p90 s"], rows)]
    busiest = data["peak"]["busiest"]
    if busiest:
        parts.append(f"<p>Busiest hour: {busiest['weekday']} {busiest['hour']:02d}:00 local, "
                     f"{busiest['visits']} arrivals.</p>")
    for fn in data["funnels"]:
        t, h = fn["groups"]["treatment"], fn["groups"]["holdout"]
        parts += [f"<h2>Campaign: {html.escape(fn['name'])}</h2>",
                  _table(["stage", "count"], [[s["stage"], s["count"]] for s in fn["stages"]]),
                  _table(["group", "shoppers", "visited", "visit rate", "purchased", "purchase rate"],
                         [["treatment", t["shoppers"], t["visited"], _pct(t["visit_rate"]), t["purchased"],
                           _pct(t["purchase_rate"])],
                          ["holdout", h["shoppers"], h["visited"], _pct(h["visit_rate"]), h["purchased"],
                           _pct(h["purchase_rate"])]]),
                  f"<p>Visit lift: {html.escape(fn['lift']['visit']['verdict'])}; purchase lift: "
                  f"{html.escape(fn['lift']['purchase']['verdict'])} (within {fn['visit_window_h']} h of a push).</p>"]
    for title, fig in charts(data):
        b64 = base64.b64encode(_png(fig)).decode()
        parts.append(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}">')
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(data['venue'])} analytics"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")


def render_png(data: dict[str, Any]) -> bytes:
    """The charts stacked into one PNG (numbers are in the HTML form)."""
    figs = [fig for _, fig in charts(data)]
    images = [_png(fig) for fig in figs]
    from matplotlib.image import imread

    arrays = [imread(io.BytesIO(png), format="png") for png in images]
    height = sum(a.shape[0] for a in arrays)
    sheet = Figure(figsize=(8, height / 100), dpi=100)
    y = 1.0
    for a in arrays:
        share = a.shape[0] / height
        ax = sheet.add_axes((0, y - share, 1, share))
        ax.imshow(a)
        ax.axis("off")
        y -= share
    return _png(sheet)


def write(settings: Settings, *, slug: str, start: datetime | None, end: datetime | None, out: Path,
          visit_window_h: int = 24) -> Path:
    """Write the report for ``slug`` to ``out`` (.html, or .png for the charts alone)."""
    if out.suffix.lower() not in (".html", ".htm", ".png"):
        raise ValueError(f"--out: {out.name!r} should end in .html or .png")
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            data = gather(session, slug=slug, start=start, end=end, visit_window_h=visit_window_h)
    finally:
        engine.dispose()
    if out.suffix.lower() == ".png":
        out.write_bytes(render_png(data))
    else:
        out.write_text(render_html(data), encoding="utf-8")
    return out
