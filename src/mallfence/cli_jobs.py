"""Command line, the scheduled jobs: segments, retention purge, analytics rollup, reports.

Each runs against the configured database and exits; cron (or a Kubernetes CronJob) runs them, the server's
own sweep does the rollup and the purge as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mallfence import migrate
from mallfence.config import Settings
from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.errors import DomainError, NotFound
from mallfence.venues import service as venue_service


def settings_of(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)


def cmd_segments(args: argparse.Namespace) -> int:
    """Place every shopper of a venue in a segment for today (run nightly, e.g. from cron)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from mallfence.commerce import purchases
    from mallfence.engagement.decide import recompute_segments

    settings = settings_of(args)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            try:
                venue = venue_service.get_venue(session, slug=args.venue)
            except NotFound as exc:
                print(exc.message, file=sys.stderr)
                return 2
            tz = ZoneInfo(venue.timezone)
            counts = recompute_segments(session, venue_id=venue.id, tz=tz, today=datetime.now(tz).date(),
                                        spend=purchases.spend)
    finally:
        engine.dispose()
    print(json.dumps({"venue": args.venue, "segments": counts}))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Apply the retention settings now (the server also does it every ``purge_interval_s``)."""
    from mallfence.privacy import service as privacy

    settings = settings_of(args)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            done = privacy.purge(session, retention=privacy.Retention.of(settings))
            session.rollback() if args.dry_run else session.commit()
    finally:
        engine.dispose()
    print(json.dumps({"dry_run": args.dry_run, "affected": done}))
    return 0


def cmd_rollup(args: argparse.Namespace) -> int:
    """Take new events into the hourly rollups (the server's sweep does it too); ``--rebuild`` starts over."""
    from sqlalchemy import delete

    from mallfence.analytics import rollup
    from mallfence.analytics.models import RollupState, ZoneDaily, ZoneHourly

    engine = make_engine(settings_of(args).database_url)
    migrate.upgrade(engine)
    total = 0
    try:
        sessions = make_session_factory(engine)
        if args.rebuild:
            with transaction(sessions) as session:
                for table in (ZoneHourly, ZoneDaily, RollupState):
                    session.execute(delete(table))
        while True:  # passes of at most --batch events, each its own transaction
            with transaction(sessions) as session:
                moved = rollup.roll_up(session, lag_s=args.lag_s, max_events=args.batch)
                last = rollup.position(session)
            total += moved
            if not moved:
                break
    finally:
        engine.dispose()
    print(json.dumps({"events_taken_in": total, "last_event_id": last}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mallfence.analytics import report

    try:
        start, end = report.parse_time(args.start, "--from"), report.parse_time(args.end, "--to")
        out = report.write(settings_of(args), slug=args.venue, start=start, end=end, out=Path(args.out),
                           visit_window_h=args.visit_window_h)
    except (DomainError, ValueError) as exc:
        print(f"report refused: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def add_parsers(sub: Any) -> None:
    segments = sub.add_parser("segments", help="recompute every shopper's segment for today (a nightly job)")
    segments.add_argument("--venue", required=True)
    segments.set_defaults(func=cmd_segments)

    purge = sub.add_parser("purge", help="apply retention: drop old positions, events, decisions, payloads, "
                           "audit entries (MALLFENCE_RETENTION_*_DAYS)")
    purge.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")
    purge.set_defaults(func=cmd_purge)

    roll = sub.add_parser("rollup", help="take new events into the hourly analytics rollups")
    roll.add_argument("--lag-s", type=float, default=30.0, help="leave events recorded this recently for the next pass")
    roll.add_argument("--batch", type=int, default=1_000_000, help="event ids per pass (one transaction each)")
    roll.add_argument("--rebuild", action="store_true", help="drop the rollups and read the whole event log again")
    roll.set_defaults(func=cmd_rollup)

    rep = sub.add_parser("report", help="write a venue's analytics summary (HTML with charts, or PNG)")
    rep.add_argument("--venue", required=True)
    rep.add_argument("--from", dest="start", help="ISO 8601 start (default: 7 days before --to)")
    rep.add_argument("--to", dest="end", help="ISO 8601 end, exclusive (default: the next full hour)")
    rep.add_argument("--out", required=True, help="report.html (charts embedded) or report.png (the charts only)")
    rep.add_argument("--visit-window-h", type=int, default=24, help="campaign funnels: hours after a push that count")
    rep.set_defaults(func=cmd_report)
