"""IMDF import: an archive becomes, or updates, a mallfence venue; all or nothing, with a report.

The archive is read and checked whole (imdf_archive, imdf_features), mapped (imdf_plan), and every
zone is validated against the venue exactly as the zone API would before anything is written. The
writes are the GeoJSON import's own upsert steps (levels, then zones by external_id), so both
importers agree on what "unchanged" means. Callers run this in one transaction: any problem raises
and rolls back everything, the venue's creation included.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections import defaultdict
from datetime import datetime
from functools import cache
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.errors import Invalid, Issue
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import geojson, schemas
from mallfence.venues import service as venue_service
from mallfence.venues.imdf_archive import ImdfArchive
from mallfence.venues.imdf_features import read_features
from mallfence.venues.imdf_plan import Plan, build_plan
from mallfence.venues.models import Venue

DEFAULT_TIMEZONE = "UTC"
ANCHOR_DRIFT_M = 1_000.0  # an existing venue's anchor further than this from the archive's is worth a word


def import_archive(
    session: Session, *, archive: ImdfArchive, slug: str, timezone: str | None = None, language: str | None = None,
    prune: bool = False, now: datetime | None = None,
) -> schemas.ImdfImportReport:
    """Create or update venue ``slug`` from ``archive``; raises Invalid (nothing kept) on any problem."""
    plan = build_plan(read_features(archive), language=language, now=now)
    venue, created, tz_source = _venue(session, slug=slug, plan=plan, timezone=timezone)
    _validate(venue, plan)
    levels_created, levels_updated = geojson.upsert_levels(
        session, venue=venue, levels=plan.levels, existing=venue_service.levels_by_ordinal(session, venue=venue))
    existing = geojson.zones_by_external_id(session, venue=venue)
    counts: dict[str, schemas.ImportCounts] = defaultdict(schemas.ImportCounts)
    for planned in plan.zones:
        data = planned.data
        outcome = geojson.upsert_zone(session, venue=venue, zone=existing.get(data.external_id), data=data,
                                      drop_store=True)  # occupants are the authority on tenants
        setattr(counts[data.kind], outcome, getattr(counts[data.kind], outcome) + 1)
    keep = {p.data.external_id for p in plan.zones}
    gone = sorted(eid for eid in existing if eid not in keep)
    pruned = geojson.prune_zones(session, zones=existing, keep=keep) if prune else 0
    total = schemas.ImportCounts(**{k: sum(getattr(c, k) for c in counts.values())
                                    for k in ("created", "updated", "unchanged")})
    return schemas.ImdfImportReport(
        venue=venue.slug, venue_created=created, name=venue.name, timezone=venue.timezone, timezone_source=tz_source,
        language=plan.language, levels_created=levels_created, levels_updated=levels_updated,
        zones=dict(sorted(counts.items())), total=total, stores=sum(p.data.store is not None for p in plan.zones),
        not_in_archive=gone, pruned=pruned, features=dict(sorted(archive_counts(archive).items())),
        ignored_types=plan.ignored_types, warnings=_notes(plan.warnings), skipped=_notes(plan.skipped),
        notes=_notes(plan.notes),
    )


def default_slug(archive: ImdfArchive) -> str:
    """A slug from the venue's name (its first label), else from the archive's file name."""
    venues = archive.features.get("venue") or [{}]
    name = venues[0].get("properties", {}).get("name") if isinstance(venues[0], dict) else None
    if isinstance(name, dict) and name:
        name = name.get("en") or name[sorted(name)[0]]
    for text in (name, Path(archive.source).stem):
        slug = re.sub(r"[^a-z0-9]+", "-", str(text or "").lower()).strip("-")[:64].strip("-")
        if slug:
            return slug
    return "venue"


def summary_line(report: schemas.ImdfImportReport) -> str:
    """One line for a terminal: what happened and how much needs a look."""
    t = report.total
    return (f"{'created' if report.venue_created else 'updated'} venue {report.venue!r} ({report.name}, "
            f"{report.timezone}: {report.timezone_source}): {t.created} zones created, {t.updated} updated, "
            f"{t.unchanged} unchanged, {report.stores} stores; {len(report.warnings)} warning(s), "
            f"{sum(max(len(n.feature_ids), 1) for n in report.skipped)} feature(s) skipped")


def archive_counts(archive: ImdfArchive) -> dict[str, int]:
    return {kind: len(items) for kind, items in archive.features.items()}


def _notes(grouped: dict[tuple[str, str], list[str]]) -> list[schemas.ImdfNote]:
    return [schemas.ImdfNote(file=file, message=message, feature_ids=[i for i in ids if i])
            for (file, message), ids in grouped.items()]


def _venue(session: Session, *, slug: str, plan: Plan, timezone: str | None) -> tuple[Venue, bool, str]:
    """The venue to import into (created from the archive if new), whether it was created, where its tz came from."""
    existing = session.scalar(select(Venue).where(Venue.slug == slug))
    try:
        if existing is None:
            tz, source = (timezone, "parameter") if timezone else guess_timezone(plan.country, plan.anchor)
            data = schemas.VenueCreate(slug=slug, name=plan.venue_name, timezone=tz, anchor=plan.anchor)
            return venue_service.create_venue(session, data=data), True, source
        update = schemas.VenueUpdate(name=plan.venue_name if plan.venue_name != existing.name else None,
                                     timezone=timezone)
    except ValidationError as exc:
        raise Invalid([Issue(tuple(e["loc"]), f"{'.'.join(map(str, e['loc']))}: {e['msg']}", e["type"])
                       for e in exc.errors()]) from None
    if update.name:
        plan.notes["venue.geojson", f"venue renamed from {existing.name!r}"].append("")
    venue_service.update_venue(session, venue=existing, data=update)
    drift = LocalProjection(existing.anchor_lon, existing.anchor_lat).distance_m(*plan.anchor)
    if drift > ANCHOR_DRIFT_M:
        plan.warnings["venue.geojson", f"the venue's anchor is kept, {drift / 1000:.1f} km from the archive's "
                      "display point; zones over 5 km from the anchor are refused"].append("")
    return existing, False, "parameter" if timezone else "kept (existing venue)"


def _validate(venue: Venue, plan: Plan) -> None:
    """Each zone as the zone API would check it, problems named by archive file and feature id."""
    issues = []
    for planned in plan.zones:
        data = planned.data
        try:
            venue_service.validate_geometry(venue=venue, geometry=data.geometry, radius_m=None, kind=data.kind,
                                            presence=data.presence.given())
        except Invalid as exc:
            issues += [Issue((planned.file, planned.feature_id, *i.loc),
                             f"{planned.file} feature {planned.feature_id}: {i.msg}", i.type) for i in exc.issues]
    if issues:
        raise Invalid(issues)


@cache
def _country_zones() -> dict[str, list[tuple[str, float, float]]]:
    """Country code -> [(IANA zone, lon, lat of its main city)] from the system's zone.tab, if there is one."""
    for root in zoneinfo.TZPATH:
        path = Path(root) / "zone.tab"
        if path.is_file():
            break
    else:
        return {}
    known = zoneinfo.available_timezones()
    zones: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        country, coords, name = line.split("\t")[:3]
        if name in known:
            lat, lon = _iso6709(coords)
            zones[country].append((name, lon, lat))
    return dict(zones)


def _iso6709(text: str) -> tuple[float, float]:
    """'+5540+01235' or '+404251-0740023' (zone.tab) -> (lat, lon) in degrees."""
    split = max(text.rfind("+"), text.rfind("-"))
    out = []
    for part, deg_digits in ((text[:split], 2), (text[split:], 3)):
        sign, digits = (-1 if part[0] == "-" else 1), part[1:]
        d, m, s = digits[:deg_digits], digits[deg_digits:deg_digits + 2], digits[deg_digits + 2:] or "0"
        out.append(sign * (int(d) + int(m) / 60 + int(s) / 3600))
    return out[0], out[1]


def guess_timezone(country: str | None, anchor: tuple[float, float]) -> tuple[str, str]:
    """IMDF venues carry no timezone: take the address country's, the nearest of its zones if it has several."""
    zones = _country_zones().get(country.upper(), []) if isinstance(country, str) else []
    if len(zones) == 1:
        return zones[0][0], f"guessed from the address country {country.upper()}"
    if zones:
        lon0, lat0 = anchor
        name = min(zones, key=lambda z: math.hypot((z[1] - lon0) * math.cos(math.radians(lat0)), z[2] - lat0))[0]
        return name, (f"guessed: nearest of the {len(zones)} timezones of {country.upper()}; check it and "
                      "PATCH the venue if wrong")
    return DEFAULT_TIMEZONE, "default: no timezone given and none known for the address; PATCH the venue to set it"
