"""Idle websockets held by one server process: resident memory per connection, and heartbeats kept.

A Saturday mall has tens of thousands of apps open that mostly say nothing: what one process pays to hold
them is RSS, not CPU. This opens ``--sockets`` device websockets (each authenticated, greeted, and with its
replay of unacked pushes checked) to one mallfence process, keeps them for ``--hold`` seconds while every
app sends a ping every ``--ping-every`` seconds, and prints the server's RSS before and after, per socket,
and the pongs that came back. The peer, in the same run: a minimal FastAPI websocket endpoint that greets and
answers pings, served the same way (uvicorn, one process), so mallfence's own cost per socket is a ratio.

    .venv/bin/python bench/idle_sockets.py [--sockets 10000] [--hold 60] [--ping-every 20]

Everything listens on and connects to 127.0.0.1 only; the devices are written straight into a temporary
SQLite database before the server starts (registration is not what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import MALL, PY, ROOT, _mallfence_env, _port, _serve

MAX_SOCKETS = 20_000
PEER = '''
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()

@app.websocket("/v1/devices/{device_id}/stream")
async def stream(ws: WebSocket, device_id: str, token: str | None = None) -> None:
    await ws.accept()
    await ws.send_json({"type": "hello", "device_id": device_id})
    try:
        while True:
            message = await ws.receive_json()
            if message.get("type") == "ping":
                await ws.send_json({"type": "pong"})
    except WebSocketDisconnect:
        pass

@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
'''


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _server_pid(port: int) -> int:
    """The process listening on ``port`` (uvicorn may run under a wrapper script)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def _devices(database_url: str, n: int) -> list[tuple[str, str]]:
    """``n`` devices registered in the sample venue, written in one transaction."""
    from mallfence.db import make_engine, make_session_factory, transaction
    from mallfence.devices import service
    from mallfence.devices.schemas import DeviceRegister
    from mallfence.venues import service as venue_service

    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            venue = venue_service.get_venue(session, slug="harbourside")
            out = []
            for _ in range(n):
                device, token = service.register(session, venue=venue,
                                                 data=DeviceRegister(venue="harbourside", platform="stub"))
                out.append((device.id, token))
            return out
    finally:
        engine.dispose()


async def _hold(url: str, devices: list[tuple[str, str]], hold_s: float, ping_every_s: float,
                pid: int) -> dict[str, float]:
    ws_url = url.replace("http://", "ws://")
    sockets: list[websockets.ClientConnection] = []
    failed = 0
    t0 = time.monotonic()
    for start in range(0, len(devices), 250):  # in waves: a server should not be asked for 10,000 at once
        async def one(device: str, token: str) -> websockets.ClientConnection | None:
            try:
                ws = await websockets.connect(f"{ws_url}/v1/devices/{device}/stream?token={token}",
                                              max_size=1 << 20, ping_interval=None, open_timeout=60)
                hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
                assert hello["type"] == "hello", hello
                return ws
            except Exception:  # counted, not fatal: the figure says how many the server took
                return None

        got = await asyncio.gather(*(one(d, t) for d, t in devices[start:start + 250]))
        sockets += [s for s in got if s is not None]
        failed += sum(1 for s in got if s is None)
    opened_s = time.monotonic() - t0
    rss_open = _rss_mib(pid)
    sent = received = 0

    async def heartbeat(ws: websockets.ClientConnection, offset: float) -> None:
        nonlocal sent, received
        await asyncio.sleep(offset)
        end = time.monotonic() + hold_s - offset
        while time.monotonic() < end:
            await ws.send('{"type": "ping"}')
            sent += 1
            while True:  # pushes or events could come first; an idle app gets none
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "pong":
                    received += 1
                    break
            await asyncio.sleep(ping_every_s)

    n = max(1, len(sockets))
    results = await asyncio.gather(*(heartbeat(ws, ping_every_s * i / n) for i, ws in enumerate(sockets)),
                                   return_exceptions=True)
    broken = sum(1 for r in results if isinstance(r, BaseException))
    rss_after = _rss_mib(pid)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"open": len(sockets), "failed": failed, "opened_s": opened_s, "rss_open": rss_open,
            "rss_after": rss_after, "pings": sent, "pongs": received, "broken": broken}


def _run(name: str, url: str, pid: int, devices: list[tuple[str, str]], args: argparse.Namespace) -> dict:
    base = _rss_mib(pid)
    out = asyncio.run(_hold(url, devices, args.hold, args.ping_every, pid))
    out["rss_base"] = base
    per = (max(out["rss_open"], out["rss_after"]) - base) * 1024 / max(1, out["open"])
    out["kib_per_socket"] = per
    print(f"  {name:<10} {out['open']:>6} open ({out['failed']} refused) in {out['opened_s']:.1f} s; RSS "
          f"{base:.0f} MiB idle -> {out['rss_open']:.0f} MiB open -> {out['rss_after']:.0f} MiB after "
          f"{args.hold:.0f} s; {per:.1f} KiB/socket; heartbeats {out['pongs']}/{out['pings']} answered, "
          f"{out['broken']} sockets broke", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the sockets are held, pinging")
    parser.add_argument("--ping-every", type=float, default=20.0)
    args = parser.parse_args()
    if not 1 <= args.sockets <= MAX_SOCKETS:
        parser.error(f"--sockets must be 1..{MAX_SOCKETS}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.sockets + 512
    if hard != resource.RLIM_INFINITY and hard < need:
        parser.error(f"the open-files limit is {hard}: {args.sockets} sockets need {need} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))  # the servers inherit it

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/idle.db"
        mf = str(Path(PY).with_name("mallfence"))
        subprocess.run([mf, "zones", "import", str(MALL)], env={**os.environ, "MALLFENCE_DATABASE_URL": db},
                       check=True, capture_output=True, cwd=ROOT)
        devices = _devices(db, args.sockets)
        print(f"{args.sockets} idle device websockets held {args.hold:.0f} s, a ping every {args.ping_every:.0f} s "
              f"each (target: <= 1.5 GiB RSS for 10,000, heartbeats kept)", flush=True)
        port = _port()
        with _serve([mf, "serve"], _mallfence_env(db, port), port) as url:
            ours = _run("mallfence", url, _server_pid(port), devices, args)
        peer_file = Path(tmp) / "peer.py"
        peer_file.write_text(PEER)
        port = _port()
        with _serve([PY, "-m", "uvicorn", "peer:app", "--app-dir", tmp, "--port", str(port), "--log-level",
                     "warning", "--ws-ping-interval", "0"], {}, port) as url:
            peer = _run("peer", url, _server_pid(port), devices, args)
    total_gib = max(ours["rss_open"], ours["rss_after"]) / 1024
    at_10k = (ours["rss_base"] + ours["kib_per_socket"] * 10_000 / 1024) / 1024  # measured or extrapolated
    held = ours["open"] == args.sockets and ours["pongs"] == ours["pings"] and not ours["broken"]
    print(f"  mallfence held {ours['open']} sockets in {total_gib:.2f} GiB RSS ({at_10k:.2f} GiB at 10,000"
          f"{'' if args.sockets == 10_000 else ', extrapolated'}: {'meets' if at_10k <= 1.5 else 'MISSES'} the "
          f"1.5 GiB target; heartbeats {'all kept' if held else 'NOT all kept'}); "
          f"{ours['kib_per_socket'] / max(0.1, peer['kib_per_socket']):.2f}x the peer's memory per socket")
    return 0


if __name__ == "__main__":
    sys.exit(main())
