"""HTTP batch ingest, one server process: fixes/s on SQLite and on PostgreSQL+PostGIS, against a peer.

The peer is a minimal FastAPI app served the same way (uvicorn, one process) whose positions endpoint only
parses the same body into a pydantic model and discards it: the framework's ceiling on this machine, so
mallfence's own cost shows as a ratio. Every server runs in its own process; the load comes from this one
(``--clients`` concurrent devices, each posting batches of ``--batch`` fixes one after the other, the bodies
encoded before the clock starts). The fixes are the walker's (mobile_stub), so presence does real work:
zones entered and left, events stored and published.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 8] [--batch 100] [--pg URL] [--no-pg]

Everything listens on and connects to 127.0.0.1 only. PostgreSQL: a throwaway database on the server at
--pg (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
MALL = ROOT / "zones" / "harbourside-mall.geojson"
PY = sys.executable

PEER = '''
from datetime import datetime
from fastapi import FastAPI
from pydantic import BaseModel, Field

class Fix(BaseModel):
    id: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float = Field(gt=0)
    floor: int | None = None
    ts: datetime
    mocked: bool | None = None

class Positions(BaseModel):
    fixes: list[Fix] = Field(max_length=500)

app = FastAPI()

@app.post("/v1/devices/{device_id}/positions")
def positions(device_id: str, body: Positions) -> dict:
    return {"accepted": len(body.fixes), "dropped": [], "events": []}

@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
'''


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


@contextlib.contextmanager
def _serve(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _mallfence_env(database_url: str, port: int) -> dict[str, str]:
    return {"MALLFENCE_DATABASE_URL": database_url, "MALLFENCE_PORT": str(port), "MALLFENCE_LOG_LEVEL": "warning",
            "MALLFENCE_DEVICE_RATE_PER_S": "1000000", "MALLFENCE_DEVICE_BURST": "1000000",
            "MALLFENCE_OPERATOR_RATE_PER_S": "1000000", "MALLFENCE_OPERATOR_BURST": "1000000",
            "MALLFENCE_PUBLIC_RATE_PER_MIN": "100000000", "MALLFENCE_PRESENCE_SWEEP_INTERVAL_S": "3600"}


def _prepare_db(database_url: str) -> str:
    """Migrate, import the sample mall; an operator key."""
    env = {**os.environ, "MALLFENCE_DATABASE_URL": database_url}
    mf = str(Path(PY).with_name("mallfence"))
    subprocess.run([mf, "zones", "import", str(MALL)], env=env, check=True, capture_output=True, cwd=ROOT)
    out = subprocess.run([mf, "keys", "create", "--name", "bench", "--all-venues"], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return out.strip().rsplit(" ", 1)[-1]


def _bodies(clients: int, batch: int, per_client: int) -> list[list[bytes]]:
    """Per client, its batches as JSON bytes: the walker's fixes, one a second, dated in the recent past."""
    from mobile_stub.clock import Clock
    from mobile_stub.load import _long_walk
    from mobile_stub.swarm import _fixes
    from mobile_stub.venue import load_venue_file

    venue = load_venue_file(str(MALL))
    span = float(per_client * batch)
    clock = Clock(1.0, span + 60)
    out = []
    for c in range(clients):
        walk = _long_walk(venue, random.Random(1000 + c), span)
        fixes = [f.body for f in _fixes(venue, f"c{c}", walk, 0.0, clock, 7 + c)]
        out.append([json.dumps({"fixes": fixes[i:i + batch]}).encode() for i in range(0, len(fixes), batch)])
    return out


async def _load(url: str | list[str], devices: list[tuple[str, str]], bodies: list[list[bytes]], seconds: float
                ) -> tuple[int, float, list[float]]:
    """(fixes accepted, elapsed s, request latencies s); with several server URLs, device i posts to url i mod n."""
    latencies: list[float] = []
    accepted = 0
    urls = [url] if isinstance(url, str) else url
    limits = httpx.Limits(max_connections=len(devices), max_keepalive_connections=len(devices))
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        t0 = time.monotonic()
        end = t0 + seconds

        async def client(i: int) -> None:
            nonlocal accepted
            device, token = devices[i]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for body in bodies[i]:
                if time.monotonic() >= end:
                    return
                s = time.perf_counter()
                r = await http.post(f"{urls[i % len(urls)]}/v1/devices/{device}/positions", content=body,
                                    headers=headers)
                latencies.append(time.perf_counter() - s)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")
                accepted += r.json()["accepted"]

        await asyncio.gather(*(client(i) for i in range(len(devices))))
        return accepted, time.monotonic() - t0, latencies


def _register(url: str, key: str, n: int) -> list[tuple[str, str]]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        app_key = http.get("/v1/venues/harbourside/app-key").json()["app_key"]
        out = []
        for _ in range(n):
            d = http.post("/v1/devices", json={"venue": "harbourside", "platform": "stub"},
                          headers={"X-App-Key": app_key, "Authorization": ""}).json()
            http.put(f"/v1/devices/{d['device_id']}/consent", json={"location": True, "marketing": True,
                                                                     "analytics": True, "version": "bench"},
                     headers={"Authorization": f"Bearer {d['token']}"})
            out.append((d["device_id"], d["token"]))
        return out


@contextlib.contextmanager
def databases(tmp: str, pg_url: str, *, use_pg: bool) -> Iterator[list[tuple[str, str]]]:
    """(label, database URL) to run mallfence on: a SQLite file in ``tmp`` and, with ``use_pg``, a throwaway
    PostgreSQL database on the server at ``pg_url``, dropped afterwards."""
    targets = [("mallfence sqlite", f"sqlite:///{tmp}/bench.db")]
    admin, name = None, None
    if use_pg:
        base = sa.make_url(pg_url)
        name = f"mallfence_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        targets.append(("mallfence postgresql", base.set(database=name).render_as_string(hide_password=False)))
    try:
        yield targets
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@contextlib.contextmanager
def mallfence_server(database_url: str, clients: int) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    """A mallfence process on ``database_url`` with the sample mall: (url, operator key, ``clients`` devices)."""
    key = _prepare_db(database_url)
    port = _port()
    with _serve([str(Path(PY).with_name("mallfence")), "serve"], _mallfence_env(database_url, port), port) as url:
        yield url, key, _register(url, key, clients)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000 if values else float("nan")


def run_one(name: str, url: str | list[str], devices: list[tuple[str, str]], bodies: list[list[bytes]], seconds: float
            ) -> float:
    fixes, elapsed, lat = asyncio.run(_load(url, devices, bodies, seconds))
    rate = fixes / elapsed
    print(f"  {name:<22} {rate:>9,.0f} fixes/s  ({fixes} fixes in {elapsed:.1f} s; request p50 "
          f"{_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms)", flush=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pg", default=os.environ.get("MALLFENCE_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    per_client = 30_000 // args.batch  # about what a 2-core box takes in 10 s: the clock, not the data, ends a run
    print(f"HTTP batch ingest: {args.clients} clients x batches of {args.batch} fixes, {args.seconds:g} s each; "
          f"{os.cpu_count()} CPUs", flush=True)
    bodies = _bodies(args.clients, args.batch, per_client)
    results: dict[str, float] = {}

    port = _port()
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(tmp) / "peer.py"
        peer.write_text(PEER)
        with _serve([PY, "-m", "uvicorn", "peer:app", "--app-dir", tmp, "--port", str(port), "--log-level",
                     "warning"], {}, port) as url:
            devices = [(f"peer-{i}", "x") for i in range(args.clients)]
            results["peer"] = run_one("peer (parse, discard)", url, devices, bodies, args.seconds)

        with databases(tmp, args.pg, use_pg=not args.no_pg) as targets:
            for label, db in targets:
                with mallfence_server(db, args.clients) as (url, _key, devices):
                    results[label] = run_one(label, url, devices, bodies, args.seconds)
    for label, rate in results.items():
        if label != "peer":
            print(f"  {label}: {rate / results['peer']:.2f} of the peer's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
