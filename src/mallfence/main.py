"""The FastAPI application: ``create_app(settings)`` wires the runtime and the routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool

from mallfence import console, errors, logs, metrics, migrate
from mallfence.analytics import rollup
from mallfence.analytics.router import router as analytics_router
from mallfence.auth import router as auth_router
from mallfence.commerce import inbound as commerce_inbound
from mallfence.commerce import listeners as commerce_listeners
from mallfence.commerce import offers as commerce_offers
from mallfence.commerce import purchases as commerce_purchases
from mallfence.commerce import service as commerce_service
from mallfence.commerce.inbound_router import router as commerce_inbound_router
from mallfence.commerce.router import devices as wishlist_router
from mallfence.commerce.router import operators as commerce_router
from mallfence.commerce.router import public as stock_router
from mallfence.config import Settings
from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.delivery import webhooks
from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
from mallfence.delivery.fcm import FcmSender
from mallfence.delivery.router import devices as push_router
from mallfence.delivery.router import venues as notifications_router
from mallfence.delivery.webhook_dispatcher import WebhookDispatcher, WebhookPolicy
from mallfence.delivery.webhook_router import router as webhooks_router
from mallfence.devices.router import router as devices_router
from mallfence.devices.router import shoppers as shoppers_router
from mallfence.engagement import decide as engagement
from mallfence.engagement import router as engagement_api
from mallfence.middleware import AuditLog, BodyLimit, RequestContext, SecurityHeaders
from mallfence.privacy import service as privacy
from mallfence.privacy.router import router as privacy_router
from mallfence.runtime import Limits, Runtime, shared_parts
from mallfence.staff import identity
from mallfence.staff.router import devices as identity_router
from mallfence.staff.router import operators as staff_accounts_router
from mallfence.staff.router import staff as staff_router
from mallfence.tracking import service as tracking_service
from mallfence.tracking.group import GroupIngest
from mallfence.tracking.hub import Hub
from mallfence.tracking.live import router as live_router
from mallfence.tracking.router import router as tracking_router
from mallfence.tracking.router import stats as ingest_stats_router
from mallfence.venues.beacon_router import router as beacons_router
from mallfence.venues.qr_router import router as qr_router
from mallfence.venues.router import router as venues_router
from mallfence.venues.router import venue as venue_router
from mallfence.venues.snapshot import SnapshotRegistry

log = logging.getLogger("mallfence")


def build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.database_url)
    if settings.auto_migrate:
        migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    # Names this process on the bus and in the socket directory; new on every start, so a restarted
    # replica never receives pushes meant for the sockets its previous life held.
    replica_id = uuid.uuid4().hex[:12]
    shared = shared_parts(settings)  # in process, or in Redis when MALLFENCE_REDIS_URL is set
    snapshots = SnapshotRegistry(sessions, bus=shared.bus, replica_id=replica_id)
    snapshots.load_all()
    return Runtime(settings=settings, engine=engine, sessions=sessions, snapshots=snapshots,
                   states=shared.states, hub=Hub(replica_id=replica_id, bus=shared.bus, directory=shared.directory),
                   bus=shared.bus, replica_id=replica_id, closers=shared.closers,
                   listeners=[webhooks.on_events, commerce_listeners.on_events, engagement.on_events],
                   push_sources=[commerce_offers.candidates], out_of_stock=commerce_service.out_of_stock,
                   spend=commerce_purchases.spend, limits=Limits.of(settings))


def _purge_codes(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return identity.purge_expired(session)


def _purge_inbound(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return commerce_inbound.purge(session)


def _roll_up(rt: Runtime) -> int:
    # Small passes: on SQLite a pass holds the write lock, and ingest must not wait behind a long catch-up.
    with transaction(rt.sessions) as session:
        return rollup.roll_up(session, max_events=100_000)


def _retention(rt: Runtime) -> int:
    """Apply the retention settings, at most every ``purge_interval_s`` (one replica's pass is enough, but
    several doing it is harmless: the deletes are idempotent)."""
    now = time.monotonic()
    if now - rt.last_purge < rt.settings.purge_interval_s:
        return 0
    rt.last_purge = now
    with transaction(rt.sessions) as session:
        done = privacy.purge(session, retention=privacy.Retention.of(rt.settings))
    if any(done.values()):
        log.info("retention purge: %s", done)
    return sum(done.values())


async def _sweep(rt: Runtime) -> None:
    """Close visits of devices that went silent, drop old identity codes and inbound delivery ids, take new
    events into the hourly rollups, every ``presence_sweep_interval_s``; apply retention every
    ``purge_interval_s`` (after the rollup: events leave, their counts stay)."""
    while True:
        await asyncio.sleep(rt.settings.presence_sweep_interval_s)
        for task in (tracking_service.expire_silent, _purge_codes, _purge_inbound, _roll_up, _retention):
            try:
                await run_in_threadpool(task, rt)
            except Exception:  # the next sweep retries; a sweep must never kill the server
                log.exception("sweep task %s failed", task.__name__)


def build_sender(settings: Settings) -> FcmSender | None:
    """FCM through firebase-admin when credentials are configured; otherwise no FCM channel."""
    if not settings.fcm_credentials_file:
        log.warning("no MALLFENCE_FCM_CREDENTIALS_FILE: pushes reach open apps only")
        return None
    if settings.fcm_sender == "threads":
        from mallfence.delivery.fcm import FirebaseSender

        return FirebaseSender(credentials_file=settings.fcm_credentials_file, base_url=settings.fcm_base_url)
    from mallfence.delivery.fcm_async import AsyncFirebaseSender

    return AsyncFirebaseSender(settings.fcm_credentials_file, base_url=settings.fcm_base_url,
                               ca_file=settings.fcm_ca_file, connections=settings.fcm_connections)


def create_app(settings: Settings | None = None, *, fcm_sender: FcmSender | None = None) -> FastAPI:
    """The app; ``fcm_sender`` replaces the configured FCM sender (tests, embedding)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.install()  # after the server configured its loggers: no token from a URL reaches them
        rt = await run_in_threadpool(build_runtime, settings)
        rt.hub.bind(asyncio.get_running_loop())
        rt.bus.start()
        rt.group = GroupIngest(rt)
        rt.group.start()
        app.state.runtime = rt
        sender = fcm_sender if fcm_sender is not None else build_sender(settings)
        if settings.dispatcher_enabled:
            rt.dispatcher = Dispatcher(
                rt.sessions, is_connected=rt.hub.connected, push_ws=rt.hub.publish, sender=sender,
                policy=DispatchPolicy(batch=settings.dispatch_batch, ack_timeout_s=settings.ack_timeout_s),
                poll_s=settings.dispatch_poll_s,
            )
            rt.dispatcher.start()
        if settings.webhooks_enabled:
            rt.webhooks = WebhookDispatcher(rt.sessions, policy=WebhookPolicy(timeout_s=settings.webhook_timeout_s),
                                            poll_s=settings.webhook_poll_s)
            rt.webhooks.start()
        sweeper = asyncio.create_task(_sweep(rt))
        try:
            yield
        finally:
            sweeper.cancel()
            await run_in_threadpool(rt.group.stop)  # finishes the group in hand; later messages are refused
            if rt.dispatcher is not None:
                await run_in_threadpool(rt.dispatcher.stop)
            if rt.webhooks is not None:
                await run_in_threadpool(rt.webhooks.stop)  # waits for at most one request in flight
            if sender is not None and fcm_sender is None:
                sender.close()
            await run_in_threadpool(rt.close)
            rt.engine.dispose()

    app = FastAPI(
        title="mallfence",
        version="0.1.0",
        summary="Geofencing for shopping malls: zones in, positions in, enter / exit / dwell out.",
        lifespan=lifespan,
    )
    errors.install(app)
    # Outermost first: request id, host check, CORS, size limit and headers before anything runs; the audit
    # log innermost, where the route and the caller are known.
    app.add_middleware(AuditLog)
    app.add_middleware(SecurityHeaders, hsts=settings.environment == "production")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", "X-App-Key"])
    if settings.trusted_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(RequestContext, access_log=settings.log_format == "json")

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, _exc: IntegrityError) -> JSONResponse:
        # Two writers raced on a unique key; the loser's transaction was rolled back whole.
        return JSONResponse({"detail": "conflicts with data written at the same time; retry"}, status_code=409)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, _exc: Exception) -> JSONResponse:
        # A number the database cannot hold (SQLite: past 64 bits; PostgreSQL: past a column's type): the
        # request is wrong, not the server. Name the parameter when it is one of the URL's.
        return JSONResponse({"detail": errors.out_of_range(request.path_params, request.query_params)},
                            status_code=422)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> JSONResponse:
        rt: Runtime = request.app.state.runtime
        try:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, do not raise: this is what the load balancer reads
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    # Not in the OpenAPI schema: it is for Prometheus, not API clients (see mallfence.metrics for access).
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    app.add_api_route("/metrics", metrics.endpoint(token), methods=["GET"], include_in_schema=False)

    app.include_router(auth_router.keys)
    app.include_router(auth_router.me)
    app.include_router(auth_router.staff_login)
    app.include_router(auth_router.venue)
    app.include_router(venues_router)
    app.include_router(venue_router)
    app.include_router(beacons_router)
    app.include_router(qr_router)
    app.include_router(devices_router)
    app.include_router(shoppers_router)
    app.include_router(tracking_router)
    app.include_router(ingest_stats_router)
    app.include_router(privacy_router)
    app.include_router(live_router)
    app.include_router(identity_router)
    app.include_router(staff_accounts_router)
    app.include_router(staff_router)
    app.include_router(engagement_api.venues)
    app.include_router(engagement_api.campaigns)
    app.include_router(engagement_api.devices)
    app.include_router(push_router)
    app.include_router(notifications_router)
    app.include_router(webhooks_router)
    app.include_router(commerce_router)
    app.include_router(wishlist_router)
    app.include_router(stock_router)
    app.include_router(commerce_inbound_router)
    app.include_router(analytics_router)
    console.mount(app)
    return app
