"""The one place configuration is read: MALLFENCE_* environment variables, validated at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-not-a-secret-set-MALLFENCE_SECRET_KEY"  # refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MALLFENCE_", env_file=None, extra="ignore")

    # "production" refuses development defaults (the secret key) and turns on HSTS.
    environment: Literal["development", "production"] = "development"
    # Signs staff session tokens. Set a long random value in production (e.g. `openssl rand -base64 48`).
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    # How long a staff login lasts: a shift, so a lost phone's session ends with it.
    staff_session_s: float = Field(10 * 3600.0, ge=60, le=7 * 86400)
    # Browsers may call the API from these origins (the console is served by mallfence itself: none needed).
    cors_origins: list[str] = []
    # Host headers accepted ("*" any): stops DNS-rebinding and host-header tricks in front of a proxy.
    trusted_hosts: list[str] = ["*"]
    # Largest request body accepted (imports stream up to their own, larger, limits).
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # Rate limits (per process; see mallfence.ratelimit). A device streams ~1 fix a second and replays
    # queued batches after being offline: 10/s with a burst of 40 leaves room for both, not for a flood.
    device_rate_per_s: float = Field(10.0, gt=0)
    device_burst: float = Field(40.0, ge=1)
    operator_rate_per_s: float = Field(20.0, gt=0)  # per operator key or staff session
    operator_burst: float = Field(100.0, ge=1)
    # Registering devices and staff logins, per client address: cheap to ask, so capped.
    public_rate_per_min: float = Field(60.0, gt=0)
    # One websocket message (a batch of fixes or scans) at most this large.
    max_ws_message_bytes: int = Field(262_144, ge=1024)
    # permessage-deflate on device websockets. Off: messages are a few hundred bytes, and compressing each
    # cost 15 % of the server's samples at websocket saturation (bench/ws_ingest.py) plus a zlib context
    # per socket. On for apps on metered links that send large batches.
    ws_compression: bool = False

    # SQLite file by default so a newcomer needs no server; PostgreSQL+PostGIS in production.
    database_url: str = "sqlite:///./var/mallfence.db"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"
    # json: one JSON object per line with request_id and device_id (log shippers); text: for people.
    log_format: Literal["text", "json"] = "text"
    # /metrics needs "Authorization: Bearer <this>" when set; unset, it answers loopback clients only.
    metrics_token: SecretStr | None = None
    # Apply pending migrations at start; turn off where deploys run `mallfence db upgrade` themselves.
    auto_migrate: bool = True

    # Ingest limits: a batch is one HTTP request or one websocket message.
    max_batch_fixes: int = Field(500, ge=1, le=10_000)
    # Device clocks drift; further ahead than this is a broken clock, not drift.
    max_future_skew_s: float = Field(300.0, ge=0)
    # Apps upload fixes queued while offline; older than this is not worth replaying.
    max_fix_age_s: float = Field(24 * 3600.0, gt=0)
    # A fix further than this from the venue anchor is not about this venue (swapped lat/lon, wrong venue).
    max_venue_distance_m: float = Field(5_000.0, gt=0)
    # Spoofing heuristics (tracking.suspect): faster than this between two fixes is not a shopper walking.
    max_speed_m_s: float = Field(12.0, gt=0)
    # A GPS fix further than this from where beacons or a QR code placed the device moments ago is suspect.
    spoof_truth_radius_m: float = Field(50.0, gt=0)
    # Retention (privacy.service.purge, run by `mallfence purge` and hourly by the server): the position
    # behind an event, events with decisions and notifications, delivered webhook payloads, the audit log.
    retention_positions_days: float = Field(7.0, gt=0)
    retention_events_days: float = Field(365.0, gt=0)
    retention_webhooks_days: float = Field(30.0, gt=0)
    retention_audit_days: float = Field(730.0, gt=0)
    purge_interval_s: float = Field(3600.0, gt=0)

    # A device silent for this long has left: its open visits are closed with reason "timeout".
    presence_timeout_s: float = Field(900.0, gt=0)
    presence_sweep_interval_s: float = Field(30.0, gt=0)

    # In-store location. A beacon fix tells the floor: GPS fixes without one are matched on it this long.
    floor_hint_beacon_s: float = Field(60.0, ge=0)
    # A scanned QR code (or a staff scan) pins the floor for longer: it is ground truth, not an estimate.
    floor_hint_qr_s: float = Field(300.0, ge=0)
    # How long a shopper's identity code (shown for staff to scan) stays valid; the app fetches a new one.
    identity_code_ttl_s: float = Field(60.0, ge=10, le=600)

    # Delivery. Without FCM credentials, pushes reach open apps only (the rest wait, then expire).
    fcm_credentials_file: str | None = None  # a Firebase service-account JSON
    fcm_base_url: str | None = None  # None = Google; http://127.0.0.1:… for the local FCM server
    dispatcher_enabled: bool = True  # off for API-only replicas when others dispatch
    # An app that got a push on its websocket must ack it within this, or it goes out through FCM.
    ack_timeout_s: float = Field(30.0, gt=0)
    dispatch_poll_s: float = Field(0.5, gt=0)
    # "async": firebase-admin's send_each_async over kept-alive HTTPS connections (aiohttp), ~2x less CPU per push;
    # "threads": firebase-admin's send_each, a thread and a connection checkout per message (the earlier sender).
    fcm_sender: Literal["async", "threads"] = "async"
    fcm_ca_file: str | None = None  # PEM CA to trust for FCM's HTTPS instead of the system's (a local FCM server)
    fcm_connections: int = Field(100, ge=1, le=1000)  # kept-alive connections to FCM (async sender)
    dispatch_batch: int = Field(500, ge=1, le=5000)  # notifications one dispatcher pass claims (FCM takes 500/call)

    # Replicas. Set redis_url to run several API processes sharing one database and one Redis: device
    # presence, websocket routing and zone-change notices then live in Redis. Unset, all is in process.
    redis_url: str | None = None  # redis://127.0.0.1:6379/0
    redis_prefix: str = "mf:"  # every key and channel starts with it: several deployments per Redis
    # A device silent this long has its presence forgotten (refreshed on every accepted fix).
    redis_state_ttl_s: int = Field(3 * 86400, ge=60)
    # Longest a replica waits for another one to finish a batch of the same device (then: 503, retry).
    redis_lock_wait_s: float = Field(5.0, gt=0)
    # A replica that dies holding a device's lock blocks that device for at most this long.
    redis_lock_ttl_s: float = Field(30.0, gt=0)
    # "device has a websocket on replica R" is forgotten this long after R stops refreshing it.
    redis_socket_ttl_s: float = Field(60.0, ge=3)

    # Webhooks out. Any number of processes may deliver (rows are leased); off for API-only replicas.
    webhooks_enabled: bool = True
    webhook_poll_s: float = Field(1.0, gt=0)
    webhook_timeout_s: float = Field(5.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return v

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET or len(secret) < 32:
                raise ValueError("MALLFENCE_SECRET_KEY must be set to a random value of 32+ characters in production")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")
