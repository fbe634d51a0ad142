"""Replica processes, a cluster of two, and a Redis of our own that a test may kill."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from tests.auth import operator_key
from tests.conftest import UNLIMITED

REDIS_URL = os.environ.get("MALLFENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("MALLFENCE_REQUIRE_REDIS") == "1"


def redis_unavailable(reason: str) -> None:
    if REQUIRE_REDIS:
        pytest.fail(f"Redis is required (MALLFENCE_REQUIRE_REDIS=1) but {reason}", pytrace=False)
    pytest.skip(f"Redis not available: {reason}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drop_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # a throwaway Redis may be gone already
    finally:
        client.close()


@dataclass
class Replica:
    """``python -m mallfence.cli serve`` in its own process."""

    name: str
    database_url: str
    redis_url: str
    prefix: str
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "MALLFENCE_REDIS_URL": self.redis_url, "MALLFENCE_REDIS_PREFIX": self.prefix,
               "MALLFENCE_PRESENCE_SWEEP_INTERVAL_S": "3600", "MALLFENCE_LOG_LEVEL": "warning",
               "MALLFENCE_DISPATCH_POLL_S": "0.1", "PYTHONUNBUFFERED": "1",
               **{f"MALLFENCE_{k.upper()}": str(v) for k, v in UNLIMITED.items()}}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mallfence.cli", "--database-url", self.database_url, "serve",
                 "--host", "127.0.0.1", "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"replica {self.name} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail(f"replica {self.name} not ready in {timeout} s:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Cluster:
    a: Replica
    b: Replica
    redis_url: str
    prefix: str
    api_key: str = ""  # a platform admin's operator key, for the tests' operator calls

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_connect_timeout=1)

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Both replicas listen on the bus (pub/sub drops what is sent before that)."""
        client = self.redis()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    if client.pubsub_numsub(f"{self.prefix}venues")[0][1] == 2:
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        pytest.fail("replicas did not subscribe to the bus in time")


@contextlib.contextmanager
def cluster(database_url: str, redis_url: str, logs: Path) -> Iterator[Cluster]:
    """Two replicas started side by side, stopped and their Redis keys dropped at the end."""
    prefix = f"mftest:{uuid.uuid4().hex[:10]}:"
    a = Replica("A", database_url, redis_url, prefix, logs / "replica-a.log")
    b = Replica("B", database_url, redis_url, prefix, logs / "replica-b.log")
    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        c = Cluster(a, b, redis_url, prefix, operator_key(database_url))
        c.wait_subscribed()
        yield c
    finally:
        a.stop()
        b.stop()
        drop_prefix(redis_url, prefix)


@dataclass
class ThrowawayRedis:
    """A Redis of our own on a free loopback port, without persistence: killing it loses everything."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        pytest.fail(f"redis-server on port {self.port} did not start")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # like a crash: no goodbye to the clients
            self.proc.wait()
