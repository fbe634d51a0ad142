"""Two replicas sharing Redis and the database against one process, on the same load.

Three set-ups, each started fresh on the same database (the sample mall) with fresh devices:

1. one process, presence in process (the default);
2. one process with Redis (presence, locks and socket routing in Redis, as every replica has them);
3. two replicas with Redis, the load's devices split between them (device i to replica i mod 2).

Each gets the same two loads: HTTP batches (``--clients`` devices posting ``--batch`` fixes at a time, as
bench/ingest.py) and websocket messages of one fix (``--sockets`` devices as fast as taken, as
bench/ws_ingest.py). Printed: fixes/s per set-up, and the ratios two replicas / one process with Redis (what
adding a replica buys) and one process with Redis / in process (what Redis costs).

    .venv/bin/python bench/replicas.py [--seconds 8] [--clients 8] [--batch 100] [--sockets 50]
                                       [--pg URL] [--no-pg] [--redis URL]

Everything on 127.0.0.1: the load comes from this process, on the same cores as the servers, so on a
machine with fewer cores than servers + load the ratio says what sharing the cores gives, not what a
second machine would. PostgreSQL: a throwaway database, dropped at the end; Redis: keys under a fresh
prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PY, _bodies, _load, _mallfence_env, _port, _prepare_db, _register, _serve, databases
from ws_ingest import _saturate


@contextlib.contextmanager
def _servers(db: str, count: int, redis_url: str | None) -> Iterator[list[str]]:
    """``count`` mallfence processes on ``db`` (with Redis under a fresh prefix when ``redis_url``)."""
    prefix = f"mfbench{uuid.uuid4().hex[:8]}:"
    extra = {"MALLFENCE_REDIS_URL": redis_url, "MALLFENCE_REDIS_PREFIX": prefix} if redis_url else {}
    mf = [str(Path(PY).with_name("mallfence")), "serve"]
    try:
        with contextlib.ExitStack() as stack:
            urls = []
            for _ in range(count):
                port = _port()
                urls.append(stack.enter_context(_serve(mf, {**_mallfence_env(db, port), **extra}, port)))
            yield urls
    finally:
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def _ws_messages(batches: list[list[bytes]]) -> list[list[str]]:
    return [[json.dumps({"type": "fix", **f}) for body in device for f in json.loads(body)["fixes"]]
            for device in batches]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--pg", default=os.environ.get("MALLFENCE_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--redis", default=os.environ.get("MALLFENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if not (1 <= args.clients <= 200 and 1 <= args.sockets <= 1000 and 0 < args.seconds <= 120
            and 1 <= args.batch <= 500):
        parser.error("bounded: --clients 1..200, --sockets 1..1000, --seconds <= 120, --batch 1..500")
    host = redis.Redis.from_url(args.redis).connection_pool.connection_kwargs.get("host")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--redis must be on this machine")
    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"Redis at {args.redis} is not reachable ({exc}): start it (scripts/services) and retry")
        return 1
    http_bodies = _bodies(args.clients, args.batch, 40_000 // args.batch)
    ws = _ws_messages(_bodies(args.sockets, 1, 20_000 // args.sockets))
    setups = [("one process, in process", 1, None), ("one process + Redis", 1, args.redis),
              ("two replicas + Redis", 2, args.redis)]
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp, databases(tmp, args.pg, use_pg=not args.no_pg) as targets:
        label, db = targets[-1]  # PostgreSQL unless --no-pg: what replicas share in production
        key = _prepare_db(db)
        print(f"replicas: {label.removeprefix('mallfence ')}, {os.cpu_count()} CPUs (load generator on the same "
              f"cores); HTTP {args.clients} clients x {args.batch} fixes, websocket {args.sockets} sockets x 1 fix, "
              f"{args.seconds:g} s each", flush=True)
        for name, count, redis_url in setups:
            with _servers(db, count, redis_url) as urls:
                devices = _register(urls[0], key, args.clients + args.sockets)
                fixes, elapsed, _ = asyncio.run(_load(urls, devices[:args.clients], http_bodies, args.seconds))
                results[name, "http"] = fixes / elapsed
                sent, elapsed = asyncio.run(_saturate(urls, devices[args.clients:], ws, args.seconds))
                results[name, "ws"] = sent / elapsed
            print(f"  {name:<26} HTTP {results[name, 'http']:>8,.0f} fixes/s   websocket "
                  f"{results[name, 'ws']:>7,.0f} messages/s", flush=True)
    for load in ("http", "ws"):
        two, one, alone = (results[s[0], load] for s in reversed(setups))
        print(f"  {load:<9} two replicas / one process (both with Redis): {two / one:.2f}x; "
              f"one with Redis / one in process: {one / alone:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
