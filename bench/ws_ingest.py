"""Websocket ingest, one server process: messages/s at saturation, and fix→event latency at a set rate.

1. Saturation: ``--clients`` devices each send one fix per websocket message as fast as the server takes
   them for ``--seconds``, then a ping; the run ends when every pong is back (a socket's messages are
   handled in order, so the pong means all of its fixes were). Messages/s is fixes over that time.
   The peer, in the same run: a minimal FastAPI websocket that parses each message into the same pydantic
   model and discards it (the framework's ceiling), so mallfence's own cost is a ratio.
2. Latency: ``mobile-stub swarm`` at ``--rate-total`` fixes/s (shoppers x 5 fixes/s each) over websockets:
   the time from a fix sent to its event received, p50 / p99.

    .venv/bin/python bench/ws_ingest.py [--seconds 10] [--clients 50] [--rate-total 2000] [--pg URL] [--no-pg]

Everything on 127.0.0.1; PostgreSQL: a throwaway database, dropped at the end. Targets (issue 8): >= 8,000
messages/s; p99 <= 25 ms at 2,000 fixes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PY, _bodies, _port, _serve, databases, mallfence_server

PEER = '''
from datetime import datetime
from typing import Literal
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

class Fix(BaseModel):
    type: Literal["fix"] | None = None
    id: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float = Field(gt=0)
    floor: int | None = None
    ts: datetime
    mocked: bool | None = None

app = FastAPI()

@app.websocket("/v1/devices/{device_id}/stream")
async def stream(ws: WebSocket, device_id: str, token: str | None = None) -> None:
    await ws.accept()
    await ws.send_json({"type": "hello"})
    try:
        while True:
            text = await ws.receive_text()
            if '"ping"' in text:
                await ws.send_json({"type": "pong"})
            else:
                Fix.model_validate_json(text)
    except WebSocketDisconnect:
        pass

@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
'''


def _messages(clients: int, per_client: int) -> list[list[str]]:
    """Per client, its fixes as websocket messages (the walker's, one a second)."""
    batches = _bodies(clients, per_client, 1)
    out = []
    for device in batches:
        fixes = [f for body in device for f in json.loads(body)["fixes"]]
        out.append([json.dumps({"type": "fix", **f}) for f in fixes])
    return out


async def _saturate(url: str | list[str], devices: list[tuple[str, str]], messages: list[list[str]], seconds: float
                    ) -> tuple[int, float]:
    """(fixes sent, elapsed s); with several server URLs, device i connects to url i mod n."""
    urls = [u.replace("http://", "ws://") for u in ([url] if isinstance(url, str) else url)]
    sockets = []
    for i, (device, token) in enumerate(devices):
        ws = await websockets.connect(f"{urls[i % len(urls)]}/v1/devices/{device}/stream?token={token}",
                                      max_size=1 << 22, ping_interval=None)
        await ws.recv()  # hello
        sockets.append(ws)
    sent = 0
    t0 = time.monotonic()
    end = t0 + seconds

    async def drain(ws: websockets.ClientConnection) -> None:
        while json.loads(await ws.recv())["type"] != "pong":
            pass

    async def one(ws: websockets.ClientConnection, mine: list[str]) -> None:
        nonlocal sent
        reader = asyncio.create_task(drain(ws))
        for i, message in enumerate(mine):
            if time.monotonic() >= end:
                break
            await ws.send(message)
            sent += 1
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the others write too
        await ws.send('{"type": "ping"}')
        await asyncio.wait_for(reader, 300)

    await asyncio.gather(*(one(ws, m) for ws, m in zip(sockets, messages, strict=True)))
    elapsed = time.monotonic() - t0
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return sent, elapsed


def _latency(url: str, key: str, rate_total: float, seconds: float) -> str:
    from mobile_stub.load import run_swarm

    shoppers = max(1, round(rate_total / 5))
    report = asyncio.run(run_swarm(url, "harbourside", shoppers=shoppers, rate=5.0, duration_s=seconds,
                                   transport="ws", api_key=key))
    return (f"{report.fixes_sent / report.duration_s:,.0f} fixes/s offered by {shoppers} shoppers, {report.events} "
            f"events; fix→event p50 {_ms(report.p50_ms)}, p99 {_ms(report.p99_ms)}; after the crowd's arrival (first "
            f"{report.warmup_s:g} s) p50 {_ms(report.steady_p50_ms)}, p99 {_ms(report.steady_p99_ms)} over "
            f"{report.steady_latencies} events")


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate-total", type=float, default=2000.0)
    parser.add_argument("--pg", default=os.environ.get("MALLFENCE_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    if not (1 <= args.clients <= 1000 and 0 < args.seconds <= 120 and 0 < args.rate_total <= 10_000):
        parser.error("bounded: --clients 1..1000, --seconds <= 120, --rate-total <= 10000")
    per_client = 20_000 // args.clients
    messages = _messages(args.clients, per_client)
    print(f"websocket ingest: {args.clients} sockets, one fix a message, {args.seconds:g} s; {os.cpu_count()} CPUs",
          flush=True)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(tmp) / "peer.py"
        peer.write_text(PEER)
        port = _port()
        with _serve([PY, "-m", "uvicorn", "peer:app", "--app-dir", tmp, "--port", str(port), "--log-level",
                     "warning"], {}, port) as url:
            sent, elapsed = asyncio.run(_saturate(url, [(f"p{i}", "x") for i in range(args.clients)], messages,
                                                  args.seconds))
            results["peer"] = sent / elapsed
            print(f"  {'peer (parse, discard)':<22} {results['peer']:>8,.0f} messages/s", flush=True)
        with databases(tmp, args.pg, use_pg=not args.no_pg) as targets:
            for label, db in targets:
                with mallfence_server(db, args.clients) as (url, key, devices):
                    sent, elapsed = asyncio.run(_saturate(url, devices, messages, args.seconds))
                    results[label] = sent / elapsed
                    print(f"  {label:<22} {results[label]:>8,.0f} messages/s ({sent} fixes in {elapsed:.1f} s; "
                          f"{results[label] / results['peer']:.2f} of the peer)", flush=True)
                    print(f"  {'':<22} at a set rate: {_latency(url, key, args.rate_total, args.seconds)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
