"""Command line: mallfence serve | demo | dispatch | db upgrade | zones import (GeoJSON or IMDF) / export |
beacons import | qr import | rollup | report."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mallfence import cli_jobs, logs, migrate
from mallfence.config import Settings
from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.errors import DomainError, Invalid, Issue, NotFound
from mallfence.venues import geojson, imdf_archive, imdf_import, schemas
from mallfence.venues import service as venue_service

_settings = cli_jobs.settings_of


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mallfence.main import create_app

    settings = _settings(args)
    host = args.host or settings.host
    port = args.port or settings.port
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level,
                ws_max_size=1 << 20, ws_per_message_deflate=settings.ws_compression,
                log_config=logs.config(settings.log_format, settings.log_level),
                access_log=settings.log_format != "json")  # json: mallfence.access has the line, with ids
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    print(f"database at {settings.database_url} is up to date")
    return 0


def is_imdf(path: Path) -> bool:
    """An IMDF archive is a folder or a .zip; anything else is taken for GeoJSON."""
    return path.is_dir() or zipfile.is_zipfile(path)


def import_imdf(settings: Settings, path: Path, slug: str | None, prune: bool = False, timezone: str | None = None,
                language: str | None = None) -> schemas.ImdfImportReport:
    """Import an IMDF archive (zip or folder), creating the venue from it if needed."""
    archive = imdf_archive.read_path(path)
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            return imdf_import.import_archive(session, archive=archive, slug=slug or imdf_import.default_slug(archive),
                                              timezone=timezone, language=language, prune=prune)
    finally:
        engine.dispose()


def import_file(settings: Settings, path: Path, slug: str | None, prune: bool = False) -> schemas.ImportSummary:
    """Import a venue file into the database, creating the venue from its ``venue`` member if needed."""
    collection = json.loads(path.read_text())
    meta = collection.get("venue") if isinstance(collection, dict) else None
    slug = slug or (meta or {}).get("slug")
    if not slug:
        raise NotFound("no --venue given and the file has no venue.slug")
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            try:
                venue = venue_service.get_venue(session, slug=slug)
            except NotFound:
                if not isinstance(meta, dict):
                    raise NotFound(f"venue {slug!r} does not exist and the file has no 'venue' to create it") from None
                data = schemas.VenueCreate.model_validate({**meta, "slug": slug})
                venue = venue_service.create_venue(session, data=data)
            return geojson.import_collection(session, venue=venue, collection=collection, prune=prune)
    finally:
        engine.dispose()


def cmd_zones_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        if is_imdf(path):
            report = import_imdf(_settings(args), path, args.venue, args.prune, args.timezone, args.language)
            print(report.model_dump_json(indent=1))
            print(imdf_import.summary_line(report), file=sys.stderr)
            return 0
        if args.timezone or args.language:
            print("import refused: --timezone and --language are for IMDF archives (a GeoJSON file names its "
                  "venue's timezone in 'venue')", file=sys.stderr)
            return 2
        summary = import_file(_settings(args), path, args.venue, args.prune)
    except Invalid as exc:
        print(f"import refused, nothing was stored ({len(exc.issues)} problem(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {'.'.join(map(str, issue.loc))}: {issue.msg}", file=sys.stderr)
        return 2
    except (DomainError, ValidationError, json.JSONDecodeError, OSError) as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 2
    print(summary.model_dump_json())
    return 0


def import_beacons_file(settings: Settings, path: Path, slug: str | None, prune: bool = False) -> Any:
    """Import a beacon layout (CSV, or GeoJSON points as in zones/*-beacons.geojson) into a venue."""
    from mallfence.venues import beacon_service

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows, source = beacon_service.rows_from_csv(text), "csv"
    else:
        data = json.loads(text)
        slug = slug or ((data.get("venue") or {}).get("slug") if isinstance(data, dict) else None)
        rows, source = beacon_service.rows_from_geojson(data), "features"
    return _in_venue(settings, slug, lambda s, v: beacon_service.import_beacons(s, venue=v, rows=rows,
                                                                                 source=source, prune=prune))


def import_qr_file(settings: Settings, path: Path, slug: str | None) -> Any:
    """Import QR code definitions (zones/*-qr.json: codes bound by zone external ids) into a venue."""
    from mallfence.venues import qr_service

    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("codes"), list):
        raise Invalid(Issue(("codes",), "expected an object with a 'codes' array (see zones/README.md)"))
    slug = slug or data.get("venue")
    return _in_venue(settings, slug, lambda s, v: qr_service.import_codes(s, venue=v, codes=data["codes"]))


def _in_venue(settings: Settings, slug: str | None, change: Any) -> Any:
    if not slug:
        raise NotFound("no --venue given and the file names no venue")
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            return change(session, venue_service.get_venue(session, slug=slug))
    finally:
        engine.dispose()


def _report_import(run: Any) -> int:
    try:
        summary = run()
    except Invalid as exc:
        print(f"import refused, nothing was stored ({len(exc.issues)} problem(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {'.'.join(map(str, issue.loc))}: {issue.msg}", file=sys.stderr)
        return 2
    except (DomainError, ValidationError, json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 2
    print(summary.model_dump_json())
    return 0


def cmd_beacons_import(args: argparse.Namespace) -> int:
    return _report_import(lambda: import_beacons_file(_settings(args), Path(args.file), args.venue, args.prune))


def cmd_qr_import(args: argparse.Namespace) -> int:
    return _report_import(lambda: import_qr_file(_settings(args), Path(args.file), args.venue))


def cmd_zones_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        try:
            venue = venue_service.get_venue(session, slug=args.venue)
        except NotFound as exc:
            print(exc.message, file=sys.stderr)
            return 2
        collection = geojson.export_collection(session, venue=venue)
    engine.dispose()
    text = json.dumps(collection, indent=1)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0


def cmd_dispatch(args: argparse.Namespace) -> int:
    """Run only the outbox dispatcher (FCM channel), e.g. as a separate worker process."""
    import signal
    import threading

    from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
    from mallfence.main import build_sender

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    sender = build_sender(settings)
    if sender is None:
        print("dispatch needs MALLFENCE_FCM_CREDENTIALS_FILE: without it there is no channel to send on",
              file=sys.stderr)
        return 2
    # No websockets live in this process: every due notification goes to FCM.
    dispatcher = Dispatcher(
        make_session_factory(engine), is_connected=lambda _device: False, push_ws=lambda _d, _m: None,
        sender=sender, policy=DispatchPolicy(batch=args.batch or settings.dispatch_batch, lease_s=args.lease_s,
                                             ack_timeout_s=settings.ack_timeout_s),
        poll_s=settings.dispatch_poll_s,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    dispatcher.start()
    print(f"{dispatcher.owner} dispatching from {settings.database_url}", flush=True)
    done.wait()
    dispatcher.stop()
    sender.close()
    engine.dispose()
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an operator key: the first one (a platform admin) can only come from here."""
    from sqlalchemy import select

    from mallfence.auth import service
    from mallfence.venues.models import Venue

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    try:
        with transaction(make_session_factory(engine)) as session:
            ids = None
            if not args.all_venues:
                found = dict(session.execute(select(Venue.slug, Venue.id).where(Venue.slug.in_(args.venue))).all())
                missing = [v for v in args.venue if v not in found]
                if missing:
                    print(f"no venue {missing[0]!r}", file=sys.stderr)
                    return 2
                ids = list(found.values())
            key, secret = service.create_key(session, name=args.name, role=args.role, venue_ids=ids)
    finally:
        engine.dispose()
    print(f"key {key.id} ({key.role}, {'every venue' if ids is None else ', '.join(args.venue)}): {secret}")
    print("store it now: it is not shown again", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mallfence.auth.models import ApiKey

    engine = make_engine(_settings(args).database_url)
    with make_session_factory(engine)() as session:
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            where = "every venue" if k.all_venues else f"venues {k.venue_ids}"
            print(f"{k.id:>4}  {k.prefix}…  {k.role:<8} {where:<20} {state:<20} {k.name}")
    engine.dispose()
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from mallfence.auth import service

    engine = make_engine(_settings(args).database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            key = service.revoke_key(session, key_id=args.id)
    except NotFound as exc:
        print(exc.message, file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"key {key.id} ({key.prefix}…) revoked")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mallfence.demo import run_demo

    return run_demo(shoppers=args.shoppers, speedup=args.speedup, seed=args.seed, venue_file=args.venue_file,
                    duration_s=args.duration)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mallfence", description=__doc__)
    p.add_argument("--database-url", help="overrides MALLFENCE_DATABASE_URL")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="sample mall + simulated shoppers on the embedded database")
    demo.add_argument("--shoppers", type=int, default=6)
    demo.add_argument("--speedup", type=float, default=30.0, help="simulated seconds per wall second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--venue-file", default="zones/harbourside-mall.geojson")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    demo.set_defaults(func=cmd_demo)

    dispatch = sub.add_parser("dispatch", help="run the notification dispatcher alone (FCM)")
    dispatch.add_argument("--batch", type=int, help="notifications claimed per pass (MALLFENCE_DISPATCH_BATCH)")
    dispatch.add_argument("--lease-s", type=float, default=60.0, help="how long a claim holds before others retake it")
    dispatch.set_defaults(func=cmd_dispatch)

    keys = sub.add_parser("keys", help="operator API keys")
    k_sub = keys.add_subparsers(dest="keys_command", required=True)
    k_new = k_sub.add_parser("create", help="create a key and print it once")
    k_new.add_argument("--name", required=True, help="who holds it")
    k_new.add_argument("--role", choices=("admin", "analyst"), default="admin")
    scope = k_new.add_mutually_exclusive_group(required=True)
    scope.add_argument("--venue", action="append", default=[], help="a venue it may use (repeatable)")
    scope.add_argument("--all-venues", action="store_true", help="every venue: a platform key")
    k_new.set_defaults(func=cmd_keys_create)
    k_sub.add_parser("list", help="list keys (never the keys themselves)").set_defaults(func=cmd_keys_list)
    k_rev = k_sub.add_parser("revoke", help="stop a key at once")
    k_rev.add_argument("id", type=int)
    k_rev.set_defaults(func=cmd_keys_revoke)

    cli_jobs.add_parsers(sub)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(func=cmd_db_upgrade)

    zones = sub.add_parser("zones", help="import / export venue maps (GeoJSON, IMDF import)")
    z_sub = zones.add_subparsers(dest="zones_command", required=True)
    imp = z_sub.add_parser("import", help="upsert a GeoJSON FeatureCollection or an IMDF archive (.zip or folder) "
                                          "into a venue (all or nothing)")
    imp.add_argument("file", help="GeoJSON file, IMDF .zip, or folder holding an unpacked IMDF archive")
    imp.add_argument("--venue", help="venue slug (default: the file's venue.slug; for IMDF, from the venue's name)")
    imp.add_argument("--prune", action="store_true", help="delete zones whose external_id is not in the file")
    imp.add_argument("--timezone", help="IMDF: IANA timezone (IMDF has none; default: guessed from the address)")
    imp.add_argument("--language", help="IMDF: labels to name things by (default: the manifest's language)")
    imp.set_defaults(func=cmd_zones_import)
    exp = z_sub.add_parser("export", help="write a venue as GeoJSON")
    exp.add_argument("--venue", required=True)
    exp.add_argument("--output", "-o")
    exp.set_defaults(func=cmd_zones_export)

    beacons = sub.add_parser("beacons", help="import a venue's beacon layout")
    b_sub = beacons.add_subparsers(dest="beacons_command", required=True)
    b_imp = b_sub.add_parser("import", help="upsert beacons from CSV or GeoJSON points (all or nothing)")
    b_imp.add_argument("file")
    b_imp.add_argument("--venue", help="venue slug (default: the file's venue.slug)")
    b_imp.add_argument("--prune", action="store_true", help="delete beacons that are not in the file")
    b_imp.set_defaults(func=cmd_beacons_import)

    qr = sub.add_parser("qr", help="import a venue's QR code definitions")
    q_sub = qr.add_subparsers(dest="qr_command", required=True)
    q_imp = q_sub.add_parser("import", help="upsert QR codes from a zones/*-qr.json file (all or nothing)")
    q_imp.add_argument("file")
    q_imp.add_argument("--venue", help="venue slug (default: the file's venue)")
    q_imp.set_defaults(func=cmd_qr_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
