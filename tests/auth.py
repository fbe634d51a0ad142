"""Credentials for tests: operator keys written straight to the database, staff logins, app keys."""

from __future__ import annotations

from typing import Any

from mallfence.auth import service
from mallfence.db import make_engine, make_session_factory, transaction


def operator_key(database_url: str, *, role: str = "admin", venue_ids: list[int] | None = None,
                 name: str = "tests") -> str:
    """A new operator key (default: a platform admin over every venue), as `mallfence keys create` makes one."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            return service.create_key(session, name=name, role=role, venue_ids=venue_ids)[1]  # type: ignore[arg-type]
    finally:
        engine.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def app_key(client: Any, slug: str) -> dict[str, str]:
    """The X-App-Key header of ``slug`` (read with the client's default operator key)."""
    r = client.get(f"/v1/venues/{slug}/app-key")
    assert r.status_code == 200, r.text
    return {"X-App-Key": r.json()["app_key"]}


def staff_session(client: Any, credential: str) -> dict[str, str]:
    """Log a staff credential in: the Authorization header of its session."""
    r = client.post("/v1/staff/login", json={"credential": credential})
    assert r.status_code == 200, r.text
    return bearer(r.json()["token"])
