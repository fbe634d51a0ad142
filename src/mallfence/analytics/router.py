"""Analytics API: footfall, dwell, paths, peak hours and campaign funnels of a venue, for its operators
(admin and analyst keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from mallfence.analytics import funnel as funnel_service
from mallfence.analytics import service
from mallfence.analytics.window import Window, window
from mallfence.auth.deps import venue_reader
from mallfence.deps import SessionDep
from mallfence.engagement.models import Campaign
from mallfence.errors import NotFound
from mallfence.venues import service as venue_service

router = APIRouter(prefix="/v1/venues/{slug}/analytics", tags=["analytics"], dependencies=[Depends(venue_reader)])

From = Annotated[AwareDatetime | None, Query(alias="from", description="start (ISO 8601 with offset); "
                                             "default: 7 days before `to`")]
To = Annotated[AwareDatetime | None, Query(alias="to", description="end, exclusive; default: the next full hour")]
ZoneId = Annotated[int | None, Query(ge=1, description="only this zone")]


def _window(s: SessionDep, slug: str, start: datetime | None, end: datetime | None, by_day: bool = False) -> Window:
    venue = venue_service.get_venue(s, slug=slug)
    return window(start=start, end=end, tz=ZoneInfo(venue.timezone), by_day=by_day)


@router.get("/footfall")
def footfall(slug: str, s: SessionDep, start: From = None, end: To = None,
             bucket: Literal["hour", "day"] = "hour", zone_id: ZoneId = None) -> dict[str, Any]:
    """Visits (enter events) and unique shoppers (distinct devices) per zone, per UTC hour or venue-local day.

    The range is widened to whole hours (whole local days for ``bucket=day``); the answer says which."""
    w = _window(s, slug, start, end, by_day=bucket == "day")
    return service.footfall(s, venue=venue_service.get_venue(s, slug=slug), w=w, bucket=bucket, zone_id=zone_id)


@router.get("/dwell")
def dwell(slug: str, s: SessionDep, start: From = None, end: To = None, zone_id: ZoneId = None) -> dict[str, Any]:
    """How long stays lasted per zone (exit events' durations, by when they ended): count, mean, p50, p90,
    histogram (<1, 1-5, 5-15, 15-30, 30-60, >60 min)."""
    w = _window(s, slug, start, end)
    return service.dwell(s, venue=venue_service.get_venue(s, slug=slug), w=w, zone_id=zone_id)


@router.get("/transitions")
def transitions(slug: str, s: SessionDep, start: From = None, end: To = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
    """Top moves between stores, food courts, entrances and pickup points: a device's next enter into another
    such zone within 2 hours (corridors, levels, departments and the outline nest around them and are left out)."""
    w = _window(s, slug, start, end)
    return service.transitions(s, venue=venue_service.get_venue(s, slug=slug), w=w, limit=limit)


@router.get("/peak-hours")
def peak_hours(slug: str, s: SessionDep, start: From = None, end: To = None, zone_id: ZoneId = None) -> dict[str, Any]:
    """Visits by hour of day and weekday in venue time: of ``zone_id``, else of the venue outline zones, else of
    every zone."""
    w = _window(s, slug, start, end)
    return service.peak_hours(s, venue=venue_service.get_venue(s, slug=slug), w=w, zone_id=zone_id)


@router.get("/campaigns/{campaign_id}/funnel")
def campaign_funnel(slug: str, campaign_id: int, s: SessionDep, start: From = None, end: To = None,
                    visit_window_h: Annotated[int, Query(ge=1, le=168, description="hours after a push in which a "
                                                         "visit or purchase counts")] = 24) -> dict[str, Any]:
    """decided → sent → delivered → opened → visited → purchased for the pushes decided in the range, and the
    visit and purchase lift over the holdout group with a 95 % interval ("too few to tell" when it is)."""
    venue = venue_service.get_venue(s, slug=slug)
    campaign = s.get(Campaign, campaign_id)
    if campaign is None or campaign.venue_id != venue.id:
        raise NotFound(f"campaign_id: campaign {campaign_id} not found in venue {slug!r}")
    w = _window(s, slug, start, end)
    return funnel_service.funnel(s, venue=venue, campaign=campaign, w=w, visit_window_h=visit_window_h)
