"""Delivery throughput: the outbox → the Dispatcher → websocket clients and a local FCM server, all on 127.0.0.1.

One run, four parts:

1. FCM senders side by side: the same 500-message batches to the same local FCM server through
   firebase-admin's ``send_each`` (FirebaseSender, threads), ``send_each_async`` as shipped (httpx on httpcore) and
   ``send_each_async`` as AsyncFirebaseSender sends it (httpx on aiohttp's keep-alive pool); messages/s, client
   CPU per message, FCM server CPU per message (the server's own ceiling), ratios against send_each.
2. Drain: ``--count`` notifications (less the paced part) for ``--devices`` devices wait in the outbox; the real
   Dispatcher (its thread, in this process, next to the app served by BackgroundServer) sends them: devices with an
   open websocket (``--ws-devices`` real websocket clients in another process, acking what they receive) get them
   there, the others through FCM (the local FCM server out of process: ``--fcm-workers`` uvicorn processes).
3. Paced: the rest is enqueued at ``--rate`` notifications/s while the dispatcher runs: decision→send latency
   (decision = the enqueue commit; send = the FCM server's, or the websocket client's, receive time).
4. The Dispatcher alone with a no-I/O sender on the same kind of database: its own ceiling.

    .venv/bin/python bench/delivery.py [--count 100000] [--devices 5000] [--ws-devices 300] [--pg URL]
                                       [--sender async|threads] [--no-tls]

The local FCM server speaks HTTPS, as FCM does (a CA made at start; every sender here trusts it).

Defaults finish in under 3 minutes on 2 cores (SQLite). Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROJECT = "mallfence-bench"
SA_EMAIL = f"firebase-adminsdk-bench@{PROJECT}.iam.gserviceaccount.com"


# -- helpers ---------------------------------------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    """user + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine, every process (Linux /proc/stat): to tell how much went elsewhere."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def thread_cpu(thread: threading.Thread | None) -> float:
    if thread is None or thread.ident is None or not thread.is_alive():
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except OSError:
        return 0.0


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:,.0f} ms" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- role: one FCM server worker process -----------------------------------------------------------------------------
def fcm_worker(args: argparse.Namespace) -> None:
    """Serve the local FCM on an inherited listening socket; on SIGTERM write what it received to ``--out``."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from mallfence.delivery.fcm_local import LocalFcmServer

    class CompactLog(list):  # what LocalFcmServer appends ReceivedMessages to: keep (notification id, time) only
        def append(self, m: Any) -> None:
            super().append((m.data.get("notification_id", ""), m.received_at))

    class WorkerFcm(LocalFcmServer):
        """LocalFcmServer whose token endpoint hands out one token shared by all workers (each checks the grant)."""

        def __init__(self, shared_token: str) -> None:
            super().__init__(PROJECT)
            self.shared_token = shared_token
            self._received = CompactLog()
            self._tokens[shared_token] = SA_EMAIL

        async def _token(self, request: Request) -> JSONResponse:
            answer = await super()._token(request)
            if answer.status_code != 200:
                return answer
            return JSONResponse({"access_token": self.shared_token, "expires_in": 3600, "token_type": "Bearer"})

    server = WorkerFcm(args.shared_token)
    server.add_service_account(SA_EMAIL, Path(args.public_key).read_text())
    sock = socket.socket(fileno=args.fd)
    tls = {"ssl_certfile": args.tls_cert} if args.tls_cert else {}
    uv = uvicorn.Server(uvicorn.Config(server.app, log_level="warning", access_log=False, lifespan="off",
                                       timeout_keep_alive=60, backlog=4096, **tls))
    # uvicorn re-raises the SIGTERM it shut down on once done (server.py capture_signals): let that one pass
    signal.signal(signal.SIGTERM, lambda *_: None)
    uv.run(sockets=[sock])
    Path(args.out).write_text(json.dumps({"pid": os.getpid(), "cpu_s": time.process_time(),
                                          "received": list(server._received)}))


class FcmCluster:
    """``--fcm-workers`` processes serving one listening socket on 127.0.0.1, and the service-account file."""

    def __init__(self, workers: int, tmp: Path, tls: bool = True) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from mallfence.delivery.fcm_local import write_tls_files

        self.tmp = tmp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.ca_file = write_tls_files(tmp) if tls else None
        if self.ca_file:  # the peers as shipped trust what the environment says (requests, httpx): this bench's CA
            os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = self.ca_file
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (tmp / "fcm-public.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.credentials_file = str(tmp / "service-account.json")
        Path(self.credentials_file).write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": secrets.token_hex(20),
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "client_email": SA_EMAIL, "client_id": "1", "token_uri": f"{self.url}/token",
            "universe_domain": "googleapis.com"}))
        shared = f"local-{secrets.token_urlsafe(24)}"
        self.procs = [subprocess.Popen(
            [sys.executable, str(HERE), "--role", "fcm-worker", "--fd", str(self.sock.fileno()), "--public-key",
             str(tmp / "fcm-public.pem"), "--shared-token", shared, "--out", str(tmp / f"fcm-{i}.json"),
             "--tls-cert", str(tmp / "server.pem") if tls else ""],
            pass_fds=[self.sock.fileno()]) for i in range(workers)]
        self.received: dict[str, list[float]] = {}  # notification id -> receive times (after stop())
        self.cpu_s = 0.0

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for i, p in enumerate(self.procs):
            p.wait(timeout=60)
            data = json.loads((self.tmp / f"fcm-{i}.json").read_text())
            self.cpu_s += data["cpu_s"]
            for ref, at in data["received"]:
                self.received.setdefault(ref, []).append(at)
        self.sock.close()


# -- role: the websocket clients -------------------------------------------------------------------------------------
def ws_clients(args: argparse.Namespace) -> None:
    """Keep every device of ``--devices-file`` connected (as an app would: reconnect when dropped); record each
    notification's receive time; ack what arrived every ``--ack-ms``."""
    from websockets.asyncio.client import connect

    devices = json.loads(Path(args.devices_file).read_text())
    received: list[tuple[int, float]] = []
    drops: Counter[str] = Counter()
    stop = asyncio.Event()
    greeted: set[str] = set()

    async def session(device_id: str, bearer: str) -> None:
        url = f"{args.url.replace('http', 'ws', 1)}/v1/devices/{device_id}/stream"
        async with connect(url, additional_headers={"Authorization": f"Bearer {bearer}"}, max_queue=None) as ws:
            pending: list[int] = []

            async def acker() -> None:
                while True:
                    await asyncio.sleep(args.ack_ms / 1000)
                    if pending:
                        ids, pending[:] = list(pending), []
                        await ws.send(json.dumps({"type": "ack", "ids": ids}))

            task = asyncio.create_task(acker())
            try:
                async for raw in ws:
                    now = time.time()
                    msg = json.loads(raw)
                    if msg["type"] == "notification":
                        received.append((msg["id"], now))
                        pending.append(msg["id"])
                    elif msg["type"] == "hello" and device_id not in greeted:
                        greeted.add(device_id)
                        if len(greeted) == len(devices):
                            print("ready", flush=True)
            finally:
                task.cancel()

    async def client(device_id: str, bearer: str) -> None:
        while not stop.is_set():
            try:
                await session(device_id, bearer)
                drops["closed by the server"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # dropped: count it, come back like an app
                drops[type(exc).__name__] += 1
            await asyncio.sleep(0.2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.create_task(client(d, t)) for d, t in devices]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    Path(args.out).write_text(json.dumps({"cpu_s": time.process_time(), "received": received, "drops": drops}))


# -- part 1: the FCM senders side by side ----------------------------------------------------------------------------
@dataclass
class PeerRow:
    name: str
    messages: int = 0
    seconds: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # the machine's busy CPU outside client and server (other processes)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def peer_messages(tag: str) -> list[Any]:
    from mallfence.delivery.fcm import PushMessage

    return [PushMessage(token=f"peer-{tag}-{i:03d}", title="Coffee is on us", body="Show this at Bean & Leaf, level 1",
                        data={"zone": "food-court", "offer": "latte"}, collapse_key="offers", ttl_s=3600,
                        ref=f"peer-{tag}-{i}") for i in range(500)]


class PeerClock:
    """Wall, client CPU (this process) and FCM server CPU of a run of batches into a PeerRow."""

    def __init__(self, cluster: FcmCluster, row: PeerRow, seconds: float) -> None:
        self.cluster, self.row, self.seconds = cluster, row, seconds
        self.t0, self.c0, self.s0, self.m0 = time.perf_counter(), time.process_time(), cluster.cpu(), machine_cpu()

    def more(self, sent: int) -> bool:
        """Count ``sent`` messages; whether to send another batch."""
        self.row.messages += sent
        if time.perf_counter() - self.t0 < self.seconds or self.row.messages == 0:
            return True
        self.row.seconds = time.perf_counter() - self.t0
        self.row.client_cpu_s = time.process_time() - self.c0
        self.row.server_cpu_s = self.cluster.cpu() - self.s0
        self.row.other_cpu_s = machine_cpu() - self.m0 - self.row.client_cpu_s - self.row.server_cpu_s
        return False


def make_sender(cluster: FcmCluster, kind: str) -> Any:
    from mallfence.delivery.fcm import FirebaseSender
    from mallfence.delivery.fcm_async import AsyncFirebaseSender

    if kind == "async":
        return AsyncFirebaseSender(cluster.credentials_file, base_url=cluster.url, ca_file=cluster.ca_file)
    return FirebaseSender(cluster.credentials_file, base_url=cluster.url)  # trusts the CA through the environment


def run_peer(cluster: FcmCluster, name: str, kind: str, seconds: float) -> PeerRow:
    from firebase_admin import messaging

    from mallfence.delivery import fcm

    sender = make_sender(cluster, "async" if kind == "async" else "threads")
    row, batch = PeerRow(name), peer_messages(kind)
    try:
        sender.send(batch[:5])  # token fetched, connections open
        if kind == "send_each_async":  # firebase-admin's own async path, on the same adapted App (URL, credential)
            app = sender._app

            async def run() -> None:
                clock = PeerClock(cluster, row, seconds)
                sent = 0
                while clock.more(sent):
                    built = [fcm._build(m) for m in batch]
                    response = await messaging.send_each_async(built, app=app)
                    row.outcomes.update("sent" if r.success else type(r.exception).__name__
                                        for r in response.responses)
                    sent = len(batch)
                await messaging._get_messaging_service(app)._async_client.aclose()  # on this loop, not delete_app's

            asyncio.run(run())
        else:
            clock, sent = PeerClock(cluster, row, seconds), 0
            while clock.more(sent):
                row.outcomes.update(r.outcome for r in sender.send(batch))
                sent = len(batch)
    finally:
        sender.close()
    print(f"  {name}: {row.rate:,.0f} msg/s", flush=True)
    return row


def run_peers(cluster: FcmCluster, seconds: float) -> list[PeerRow]:
    return [run_peer(cluster, name, kind, seconds) for name, kind in (
        ("send_each (FirebaseSender: firebase-admin, requests, a thread per message)", "send_each"),
        ("send_each_async as shipped (firebase-admin, httpx on httpcore, HTTP/2 over TLS)", "send_each_async"),
        ("send_each_async (AsyncFirebaseSender: httpx on aiohttp keep-alive)", "async"))]


# -- parts 2 and 3: the outbox, end to end ---------------------------------------------------------------------------
class CountingSender:
    """The FcmSender the dispatcher gets: the real one, counted (progress lines)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.outcomes: Counter[str] = Counter()
        self.lock = threading.Lock()

    def send(self, messages: Sequence[Any]) -> list[Any]:
        results = self.inner.send(messages)
        with self.lock:
            self.outcomes.update(r.outcome for r in results)
        return results

    def close(self) -> None:
        self.inner.close()


def setup_database(args: argparse.Namespace, tmp: Path, suffix: str = "") -> str:
    """A fresh database: a SQLite file, or the scratch PostgreSQL database mallfence_bench_delivery (dropped first)."""
    import sqlalchemy as sa

    if not args.pg:
        return f"sqlite:///{tmp / f'bench{suffix}.db'}"
    name = "mallfence_bench_delivery"
    url = sa.make_url(args.pg).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def seed(sessions: Any, devices: int, ws_devices: int) -> tuple[int, list[str], list[tuple[str, str]]]:
    """A venue; every device with one FCM token; bearer tokens for the websocket ones. (venue, ids, ws (id, bearer))."""
    from mallfence.db import transaction
    from mallfence.delivery.models import PushToken
    from mallfence.devices.models import Device, Shopper
    from mallfence.venues.models import Venue

    ids = [f"bench-{i:06d}" for i in range(devices)]
    step = devices / ws_devices if ws_devices else 0.0  # spread out, so any run of notifications has its share
    bearers = {ids[int(k * step)]: secrets.token_urlsafe(16) for k in range(ws_devices)}
    with transaction(sessions) as s:
        venue = Venue(slug="bench-mall", name="Bench Mall", timezone="UTC", anchor_lon=-2.24, anchor_lat=53.48)
        s.add(venue)
        s.flush()
        s.add_all(Shopper(id=d, venue_id=venue.id) for d in ids)
        s.flush()
        s.add_all(Device(id=d, venue_id=venue.id, shopper_id=d, platform="android",
                         token_hash=hashlib.sha256((bearers.get(d) or d).encode()).hexdigest()) for d in ids)
        s.flush()
        s.add_all(PushToken(device_id=d, token=f"fcm-{d}", token_hash=hashlib.sha256(f"fcm-{d}".encode()).hexdigest(),
                            platform="android") for d in ids)
        venue_id = venue.id
    return venue_id, ids, list(bearers.items())


class Outbox:
    """Writes notifications (the rows service.enqueue writes, in bulk) and remembers each one's commit time."""

    def __init__(self, sessions: Any, venue_id: int, devices: list[str]) -> None:
        self.sessions, self.venue_id, self.devices = sessions, venue_id, devices
        self.decided: dict[int, float] = {}  # notification id -> commit time
        self.written = 0

    def enqueue(self, n: int) -> None:
        from sqlalchemy import insert

        from mallfence.db import transaction
        from mallfence.delivery.models import Notification

        now = datetime.now(UTC)
        rows = [{"venue_id": self.venue_id, "device_id": self.devices[(self.written + i) % len(self.devices)],
                 "dedupe_key": f"bench:{self.written + i}", "category": "operator", "title": "Coffee is on us",
                 "body": "Show this at Bean & Leaf, level 1", "data": {"zone": "food-court", "offer": "latte"},
                 "deep_link": "mall://offers/latte", "collapse_key": "offers",
                 "expires_at": now + timedelta(hours=1), "next_attempt_at": now, "status": "pending", "attempts": 0,
                 "created_at": now} for i in range(n)]
        with transaction(self.sessions) as s:
            ids = list(s.scalars(insert(Notification).returning(Notification.id), rows))
        committed = time.time()
        self.decided.update(dict.fromkeys(ids, committed))
        self.written += n


class DispatchProcess:
    """``mallfence dispatch`` in a process of its own (FCM only, no sockets), polling every 50 ms: the deployment
    where no app thread (uvicorn's loop, ack handlers) competes with the sender for the GIL."""

    def __init__(self, args: argparse.Namespace, url: str, cluster: FcmCluster) -> None:
        self.env = {**os.environ, "MALLFENCE_FCM_CREDENTIALS_FILE": cluster.credentials_file,
                    "MALLFENCE_FCM_BASE_URL": cluster.url, "MALLFENCE_FCM_CA_FILE": cluster.ca_file or "",
                    "MALLFENCE_FCM_SENDER": args.sender, "MALLFENCE_DISPATCH_POLL_S": "0.05",
                    "MALLFENCE_LOG_LEVEL": "warning"}
        self.cmd = [sys.executable, "-m", "mallfence.cli", "--database-url", url, "dispatch",
                    "--batch", str(args.batch)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread = None  # no thread of ours to clock

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL)

    def wake(self) -> None:
        pass  # another process: it finds new rows at its next poll

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def outbox_counts(sessions: Any) -> Counter[str]:
    from sqlalchemy import func, select

    from mallfence.delivery.models import Notification

    with sessions() as s:
        return Counter(dict(s.execute(select(Notification.status, func.count()).group_by(Notification.status)).all()))


def awaiting_ack(sessions: Any) -> int:
    from sqlalchemy import func, select

    from mallfence.delivery.models import Notification

    with sessions() as s:
        return int(s.scalar(select(func.count()).where(Notification.status == "awaiting_ack")) or 0)


@dataclass
class Phase:
    name: str
    ids: set[int]
    started: float = 0.0  # time.time()
    dispatcher_cpu_s: float = 0.0
    sender_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    fcm_server_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0  # every process of the machine, ours included
    handled: int = 0  # what the dispatcher got through in the phase (less than ids when stopped at the limit)
    seconds: float = 0.0


def run_outbox(args: argparse.Namespace, cluster: FcmCluster, tmp: Path) -> tuple[list[Phase], dict[str, Any]]:
    from mallfence import migrate
    from mallfence.config import Settings
    from mallfence.db import make_engine, make_session_factory
    from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
    from mallfence.delivery.fcm import InMemorySender
    from mallfence.server import BackgroundServer

    url = setup_database(args, tmp)
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    venue_id, device_ids, ws = seed(sessions, args.devices, args.ws_devices)
    outbox = Outbox(sessions, venue_id, device_ids)
    paced_n = min(args.count, int(args.count * args.paced_fraction))
    drain_n = args.count - paced_n
    t0 = time.perf_counter()
    for start in range(0, drain_n, 2000):
        outbox.enqueue(min(2000, drain_n - start))
    print(f"outbox: {drain_n:,} notifications for {args.devices:,} devices written in "
          f"{time.perf_counter() - t0:.1f} s ({'PostgreSQL' if args.pg else 'SQLite'})", flush=True)

    settings = Settings(database_url=url, auto_migrate=False, dispatcher_enabled=False, log_level="warning",
                        presence_sweep_interval_s=3600)
    server = BackgroundServer(settings)
    app_url = server.__enter__()
    # BackgroundServer does not hand out its app; the dispatcher needs the app's websocket hub.
    rt = server._server.config.app.state.runtime
    (tmp / "ws-devices.json").write_text(json.dumps(ws))
    clients = subprocess.Popen([sys.executable, str(HERE), "--role", "ws-clients", "--url", app_url,
                                "--devices-file", str(tmp / "ws-devices.json"), "--ack-ms", str(args.ack_ms),
                                "--out", str(tmp / "ws.json")], stdout=subprocess.PIPE, text=True)
    try:
        if ws:
            assert clients.stdout is not None
            line = clients.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError("websocket clients did not connect")
        apart = DispatchProcess(args, url, cluster) if args.dispatch_process else None
        sender = CountingSender(make_sender(cluster, args.sender) if apart is None else InMemorySender())
        pushed_ws = Counter[str]()

        def push_ws(device_id: str, messages: list[dict[str, object]]) -> None:
            pushed_ws["ws"] += len(messages)
            rt.hub.publish(device_id, messages)

        dispatcher: Any = apart or Dispatcher(
            sessions, is_connected=rt.hub.connected, push_ws=push_ws, sender=sender,
            policy=DispatchPolicy(batch=args.batch, ack_timeout_s=args.ack_timeout_s), poll_s=0.05,
            owner="bench-dispatcher")
        rt.dispatcher = dispatcher  # acks and reconnects wake it as in the app
        phases: list[Phase] = []

        def handled() -> int:
            if apart is not None:  # counted where the other process writes it
                time.sleep(0.2)
                counts = outbox_counts(sessions)
                return sum(counts.values()) - counts["pending"] - counts["awaiting_ack"]
            return sender.outcomes["sent"] + sender.outcomes["failed"] + sender.outcomes["prune"] + pushed_ws["ws"]

        def dispatch_cpu() -> float:  # the process that dispatches: this one, or `mallfence dispatch`
            return time.process_time() if apart is None else apart.cpu()

        def measure(phase: Phase, target: int, producer: threading.Thread | None) -> None:
            loop_thread = getattr(sender.inner, "thread", None)  # AsyncFirebaseSender's loop; send_each: none
            d0, l0 = thread_cpu(dispatcher._thread), thread_cpu(loop_thread)
            p0, f0, w0, m0 = dispatch_cpu(), cluster.cpu(), time.perf_counter(), machine_cpu()
            phase.started = time.time()
            base, last_print, deadline = handled(), w0, w0 + args.max_phase_s
            if dispatcher._thread is None and (apart is None or apart.proc is None):
                dispatcher.start()  # the first phase: its CPU clock starts at zero (the process: its start-up too)
            if producer is not None:
                producer.start()
            else:
                dispatcher.wake()
            while handled() - base < target and time.perf_counter() < deadline:
                time.sleep(0.05)
                if time.perf_counter() - last_print >= args.progress_s:
                    last_print = time.perf_counter()
                    done, el = handled() - base, last_print - w0
                    print(f"  [{phase.name} {el:5.1f} s] {done:>7,} / {target:,} handled ({done / el:,.0f}/s): "
                          f"fcm {dict(sender.outcomes)}, ws pushed {pushed_ws['ws']:,}", flush=True)
            if producer is not None:
                producer.join()
            phase.seconds = time.perf_counter() - w0
            phase.dispatcher_cpu_s = thread_cpu(dispatcher._thread) - d0
            phase.sender_cpu_s = thread_cpu(loop_thread) - l0
            phase.process_cpu_s = dispatch_cpu() - p0
            phase.fcm_server_cpu_s = cluster.cpu() - f0
            phase.machine_cpu_s = machine_cpu() - m0
            phase.handled = handled() - base
            if handled() - base < target:
                print(f"  [{phase.name}] stopped at the {args.max_phase_s:g} s limit", flush=True)

        drain = Phase("drain", set(outbox.decided))
        print(f"drain: the dispatcher sends {drain_n:,} queued notifications", flush=True)
        measure(drain, drain_n, None)
        phases.append(drain)

        if paced_n:
            rate = args.rate or max(100.0, 0.5 * drain_n / max(drain.seconds, 1e-6))
            before = set(outbox.decided)

            def produce() -> None:
                tick, sent, begin = 0.02, 0, time.perf_counter()
                while sent < paced_n:
                    due = min(paced_n, int((time.perf_counter() - begin) * rate) + 1)
                    if due > sent:
                        outbox.enqueue(due - sent)
                        dispatcher.wake()
                        sent = due
                    time.sleep(tick)

            paced = Phase(f"paced {rate:,.0f}/s", set())
            print(f"paced: {paced_n:,} notifications enqueued at {rate:,.0f}/s while the dispatcher runs", flush=True)
            measure(paced, paced_n, threading.Thread(target=produce, name="producer"))
            paced.ids = set(outbox.decided) - before
            phases.append(paced)
        awaiting = awaiting_ack(sessions)
        deadline = time.monotonic() + args.settle_s
        while awaiting and time.monotonic() < deadline:  # websocket pushes still on their way, or their acks
            time.sleep(0.2)
            awaiting = awaiting_ack(sessions)
        dispatcher.stop()
        sender.close()
        outcomes = dict(sender.outcomes) if apart is None else dict(outbox_counts(sessions))
        info = {"fcm_outcomes": outcomes, "ws_pushed": pushed_ws["ws"], "decided": outbox.decided,
                "database": "PostgreSQL" if args.pg else "SQLite", "awaiting_ack": awaiting}
    finally:
        clients.send_signal(signal.SIGTERM)
        clients.wait(timeout=60)
        server.__exit__(None, None, None)
        engine.dispose()
    ws_file = tmp / "ws.json"
    ws_data = json.loads(ws_file.read_text()) if ws_file.exists() else {"received": [], "cpu_s": 0.0}
    info["ws_received"] = ws_data["received"]
    info["ws_cpu_s"] = ws_data["cpu_s"]
    info["ws_drops"] = ws_data.get("drops", {})
    return phases, info


def dispatcher_ceiling(args: argparse.Namespace, tmp: Path, count: int) -> tuple[float, float]:
    """The Dispatcher alone, no I/O (InMemorySender, no websocket), same database kind: (notes/s, CPU µs/note)."""
    from mallfence import migrate
    from mallfence.db import make_engine, make_session_factory
    from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
    from mallfence.delivery.fcm import InMemorySender

    url = setup_database(args, tmp, "ceiling")
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    venue_id, device_ids, _ = seed(sessions, args.devices, 0)
    outbox = Outbox(sessions, venue_id, device_ids)
    for start in range(0, count, 2000):
        outbox.enqueue(min(2000, count - start))
    dispatcher = Dispatcher(sessions, is_connected=lambda _: False, push_ws=lambda *_: None, sender=InMemorySender(),
                            policy=DispatchPolicy(batch=args.batch))
    t0, c0, done = time.perf_counter(), time.process_time(), 0
    while (n := dispatcher.run_once()) and time.perf_counter() - t0 < 30:
        done += n
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return done / wall, cpu / max(done, 1) * 1e6


# -- report ----------------------------------------------------------------------------------------------------------
def report(args: argparse.Namespace, peers: list[PeerRow], phases: list[Phase], info: dict[str, Any],
           cluster: FcmCluster) -> None:
    decided: dict[int, float] = info["decided"]
    fcm_first: dict[int, float] = {}
    duplicates = Counter[str]()
    for ref, times in cluster.received.items():
        if ref.isdigit():
            fcm_first[int(ref)] = min(times)
            duplicates["fcm"] += len(times) - 1
    ws_first: dict[int, float] = {}
    for note_id, at in info["ws_received"]:
        if note_id in ws_first:
            duplicates["ws"] += 1
        ws_first[note_id] = min(at, ws_first.get(note_id, at))

    print("\n## FCM senders, same 500-message batches, same local FCM server "
          f"({args.fcm_workers} uvicorn worker process(es))\n")
    print("| sender | msg/s | vs send_each | client CPU / msg | vs send_each | FCM server CPU / msg | other "
          "processes' CPU | outcomes |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    base = peers[0] if peers else None
    for r in peers:
        cpu = r.client_cpu_s / r.messages
        base_cpu = base.client_cpu_s / base.messages if base else cpu
        print(f"| {r.name} | {r.rate:,.0f} | {r.rate / base.rate if base and base.rate else 0:.2f} | "
              f"{cpu * 1e6:,.0f} µs | {cpu / base_cpu if base_cpu else 0:.2f} | "
              f"{r.server_cpu_s / r.messages * 1e6:,.0f} µs | {r.other_cpu_s / r.seconds:.2f} cores | "
              f"{dict(r.outcomes)} |")
    if peers:
        busiest = max(peers, key=lambda r: r.messages)
        per = busiest.server_cpu_s / max(1, busiest.messages)
        print(f"\nFCM server's own ceiling: {per * 1e6:,.0f} µs CPU per message = {1 / max(per, 1e-9):,.0f} msg/s "
              f"per core ({os.cpu_count()} cores here, shared by client and server)")

    via = "AsyncFirebaseSender (send_each_async)" if args.sender == "async" else "FirebaseSender (send_each)"
    if args.dispatch_process:
        via += ", dispatcher in `mallfence dispatch` (its own process)"
    print(f"\n## Outbox → Dispatcher ({info['database']}, batch {args.batch}, FCM via {via}, "
          f"{'HTTPS' if cluster.ca_file else 'HTTP'}) "
          f"→ {args.ws_devices} websocket clients / FCM\n")
    print("| phase | channel | notifications | per second | latency p50 | p99 | max |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for ph in phases:
        total = 0
        for channel, first in (("ws", ws_first), ("fcm", fcm_first)):
            lat = [first[i] - decided[i] for i in ph.ids if i in first]
            ends = [first[i] for i in ph.ids if i in first]
            span = (max(ends) - ph.started) if ends else 0.0
            total += len(lat)
            print(f"| {ph.name} | {channel} | {len(lat):,} | {len(lat) / span if span else 0:,.0f} | "
                  f"{fmt_ms(pct(lat, 0.5))} | {fmt_ms(pct(lat, 0.99))} | {fmt_ms(max(lat) if lat else float('nan'))} |")
        print(f"| {ph.name} | **all** | {total:,} | {total / ph.seconds if ph.seconds else 0:,.0f} | | | |")
    print("\n(drain latency is mostly time waiting in the queue: all of it was decided before the dispatcher "
          "started; the paced phase is the latency figure)\n")
    print("| phase | wall | dispatcher thread CPU | FCM sender loop CPU | whole process CPU | FCM server CPU | "
          "rest of the machine (websocket clients, PostgreSQL, other processes) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ph in phases:
        n = max(1, ph.handled)  # per notification handled, not per one queued
        print(f"| {ph.name} | {ph.seconds:.1f} s | {ph.dispatcher_cpu_s:.1f} s ({ph.dispatcher_cpu_s / n * 1e6:,.0f} µs"
              f"/note) | {ph.sender_cpu_s:.1f} s ({ph.sender_cpu_s / n * 1e6:,.0f} µs) | {ph.process_cpu_s:.1f} s "
              f"({ph.process_cpu_s / n * 1e6:,.0f} µs) | {ph.fcm_server_cpu_s:.1f} s "
              f"({ph.fcm_server_cpu_s / n * 1e6:,.0f} µs) | "
              f"{(ph.machine_cpu_s - ph.process_cpu_s - ph.fcm_server_cpu_s) / ph.seconds:.2f} cores |")
    if phases and phases[0].handled:
        per = phases[0].process_cpu_s / phases[0].handled
        who = "`mallfence dispatch`" if args.dispatch_process else "This process (dispatcher + sender + app)"
        print(f"\n{who} spent {per * 1e6:,.0f} µs CPU per notification in the drain:"
              f" one core, all of it, is {1 / per:,.0f} notifications/s (5,000/s needs ≤ 200 µs; one process runs its "
              "Python on one core at a time, the GIL)")
    if "ceiling" in info:
        rate, cpu = info["ceiling"]
        print(f"\nDispatcher alone (same database kind, InMemorySender, no websocket, batch {args.batch}): "
              f"{rate:,.0f} notifications/s, {cpu:,.0f} µs CPU per notification")
    missing = [i for ph in phases for i in ph.ids if i not in ws_first and i not in fcm_first]
    both = sum(1 for i in ws_first if i in fcm_first)
    seen = "outbox statuses at the end" if args.dispatch_process else "FCM results seen by the dispatcher"
    print(f"\n{seen}: {info['fcm_outcomes']}; websocket pushes {info['ws_pushed']:,}; "
          f"received twice on one channel {dict(duplicates) or 0}; on both (websocket, then FCM after no ack within "
          f"{args.ack_timeout_s:g} s) {both:,}; never received {len(missing):,}; still awaiting an ack at the end "
          f"{info['awaiting_ack']:,}; websocket reconnects {info['ws_drops'] or 0}; "
          f"websocket client process CPU {info['ws_cpu_s']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="notifications through the outbox")
    ap.add_argument("--devices", type=int, default=5000)
    ap.add_argument("--ws-devices", type=int, default=300, help="devices with an open websocket")
    ap.add_argument("--paced-fraction", type=float, default=0.1, help="share of --count enqueued at --rate")
    ap.add_argument("--rate", type=float, default=0.0, help="paced enqueue rate (default: half the drain rate)")
    ap.add_argument("--batch", type=int, default=500, help="dispatcher batch")
    ap.add_argument("--fcm-workers", type=int, default=2, help="local FCM server processes")
    ap.add_argument("--sender", choices=("async", "threads"), default="async", help="the dispatcher's FCM sender")
    ap.add_argument("--no-tls", dest="tls", action="store_false", help="plain HTTP to the local FCM server")
    ap.add_argument("--dispatch-process", action="store_true", help="dispatch with `mallfence dispatch` in a process "
                    "of its own (FCM only: implies --ws-devices 0)")
    ap.add_argument("--ack-ms", type=float, default=50, help="websocket clients ack what they got every this often")
    ap.add_argument("--ack-timeout-s", type=float, default=30.0)
    ap.add_argument("--peer-seconds", type=float, default=5.0, help="per sender in part 1 (0: skip part 1)")
    ap.add_argument("--max-phase-s", type=float, default=100.0, help="a phase stops after this, done or not")
    ap.add_argument("--ceiling-count", type=int, default=20_000, help="the Dispatcher alone, no I/O (0: skip)")
    ap.add_argument("--progress-s", type=float, default=3.0)
    ap.add_argument("--settle-s", type=float, default=10.0, help="at the end, wait this long at most for acks")
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite, e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres (uses database mallfence_bench_delivery)")
    ap.add_argument("--role", choices=("main", "fcm-worker", "ws-clients"), default="main", help=argparse.SUPPRESS)
    for internal in ("--fd", "--public-key", "--shared-token", "--out", "--url", "--devices-file", "--tls-cert"):
        ap.add_argument(internal, help=argparse.SUPPRESS, type=int if internal == "--fd" else str)
    args = ap.parse_args()
    if args.dispatch_process:
        args.ws_devices = 0
    if args.role == "fcm-worker":
        return fcm_worker(args)
    if args.role == "ws-clients":
        return ws_clients(args)

    import firebase_admin
    import httpx
    import sqlalchemy

    print(f"python {platform.python_version()}, firebase-admin {firebase_admin.__version__}, httpx "
          f"{httpx.__version__}, SQLAlchemy {sqlalchemy.__version__}, {os.cpu_count()} cores "
          f"({len(os.sched_getaffinity(0))} usable), load average {os.getloadavg()[0]:.1f} at start", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mallfence-bench-delivery-") as name:
        tmp = Path(name)
        cluster = FcmCluster(args.fcm_workers, tmp, args.tls)
        try:
            peers: list[PeerRow] = []
            if args.peer_seconds > 0:
                print(f"FCM senders, {args.peer_seconds:g} s each:", flush=True)
                peers = run_peers(cluster, args.peer_seconds)
            phases, info = run_outbox(args, cluster, tmp)
            if args.ceiling_count > 0:
                print(f"dispatcher alone: {args.ceiling_count:,} notifications, no I/O", flush=True)
                info["ceiling"] = dispatcher_ceiling(args, tmp, args.ceiling_count)
        finally:
            with contextlib.suppress(Exception):
                cluster.stop()
        report(args, peers, phases, info, cluster)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
