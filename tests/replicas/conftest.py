"""Real replicas for the multi-process tests: server processes sharing one database and one Redis.

Redis is the one on 127.0.0.1:6379 (``MALLFENCE_TEST_REDIS_URL`` to change it). Without it these tests
skip, unless ``MALLFENCE_REQUIRE_REDIS=1`` (set by .ci/run), where they fail. Every cluster uses its own
key and channel prefix (pub/sub channels ignore Redis DB numbers) and deletes its keys afterwards, so
runs never collide.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.replicas.cluster import REDIS_URL, Cluster, ThrowawayRedis, cluster, free_port, redis_unavailable


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        redis_unavailable(f"cannot reach {REDIS_URL} ({exc}); start it with MALLFENCE_NEED_REDIS=1 scripts/services")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def replicas(request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[Cluster]:
    """One cluster per database backend for the tests of a module (each test uses its own venue)."""
    logs = tmp_path_factory.mktemp(f"replicas-{request.param}")
    if request.param == "sqlite":
        target = logs / "mallfence.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        database_url = f"sqlite:///{target}"
    else:
        database_url = request.getfixturevalue("postgis_url")
    with cluster(database_url, redis_url, logs) as c:
        yield c


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A Redis on a free port for one test (skips like the others when redis-server is missing)."""
    if shutil.which("redis-server") is None:
        redis_unavailable("redis-server is not installed (needed to restart a Redis under running replicas)")
    server = ThrowawayRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
