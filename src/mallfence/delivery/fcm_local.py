"""A local FCM HTTP v1 server (OAuth token endpoint + messages:send) for tests and ``mallfence demo``.

It answers like FCM, down to the error bodies firebase-admin turns into its exception classes (``error.status``
plus an ``FcmError`` detail's ``errorCode``), so the real SDK can be pointed at it.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as gauth_exceptions
from google.auth import jwt as gauth_jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAX_PAYLOAD_BYTES = 4096
# google-auth signs the grant with this audience whatever token_uri says (google/oauth2/service_account.py:417)
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
MESSAGE_FIELDS = {"name", "token", "fid", "topic", "condition", "data", "notification", "android", "apns",
                  "webpush", "fcm_options"}
TARGETS = ("token", "fid", "topic", "condition")
RESERVED_DATA_KEYS = {"from", "notification", "message_type"}  # and the google.* / gcm.* prefixes
# fault code -> (HTTP status, google.rpc status, message), as FCM answers them
FAULTS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message the local FCM accepted."""

    project: str
    target_kind: str  # token | fid | topic | condition
    target: str
    name: str
    notification: dict[str, Any]
    data: dict[str, str]
    android: dict[str, Any]
    apns: dict[str, Any]
    raw: dict[str, Any]  # the whole "message" object
    bearer: str
    received_at: float


@dataclass(slots=True)
class _Fault:
    code: str
    remaining: int | None  # requests it still answers; None: no count limit
    until: float | None  # time.monotonic() deadline; None: no time limit
    retry_after_s: int | None


def _error(status: int, rpc_status: str, message: str, details: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _invalid(message: str, field_name: str | None = None, code: str = "INVALID_ARGUMENT") -> JSONResponse:
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR, "errorCode": code}]
    if field_name:  # FCM names the offending field in a google.rpc.BadRequest detail
        details.append({"@type": BAD_REQUEST, "fieldViolations": [{"field": field_name, "description": message}]})
    return _error(400, "INVALID_ARGUMENT", message, details)


def payload_bytes(message: dict[str, Any]) -> int:
    """FCM's payload measure: UTF-8 size of the notification and data parts, not the JSON escapes on the wire."""
    part = {k: message[k] for k in ("notification", "data") if k in message}
    return len(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode())


def _validate(msg: dict[str, Any]) -> JSONResponse | None:
    """FCM's checks on a message's content, as an error answer (None: fine)."""
    data = msg.get("data", {})
    if not isinstance(data, dict):
        return _invalid("Invalid value at 'message.data'", "message.data")
    for i, (key, value) in enumerate(data.items()):
        if key in RESERVED_DATA_KEYS or key.startswith(("google.", "gcm.")):
            return _invalid(f"Invalid data payload key: {key}", f"message.data[{i}].key")
        if not isinstance(value, str):
            where = f"message.data[{i}].value"
            return _invalid(f"Invalid value at '{where}' (TYPE_STRING), {json.dumps(value)}", where)
    ttl = msg.get("android", {}).get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and re.fullmatch(r"\d+(\.\d{1,9})?s", ttl)):
        return _invalid(f"Invalid value at 'message.android.ttl' (google.protobuf.Duration), {ttl!r}",
                        "message.android.ttl")
    if any(not isinstance(v, str) for v in msg.get("apns", {}).get("headers", {}).values()):
        return _invalid("Invalid value at 'message.apns.headers'", "message.apns.headers")
    if (size := payload_bytes(msg)) > MAX_PAYLOAD_BYTES:
        return _invalid(f"Message is too big: {size} bytes (limit {MAX_PAYLOAD_BYTES})", "message")
    return None


class LocalFcmServer:
    """State and ASGI app of the local FCM: issued tokens, accepted messages, injected faults (thread-safe)."""

    def __init__(self, project_id: str | None = None) -> None:
        self.project_id = project_id  # when set, other projects get 403 as a foreign project would
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}  # client_email -> public key PEM
        self._tokens: dict[str, str] = {}  # access token -> client_email
        self._faults: dict[str | None, _Fault] = {}  # target (None: every target) -> fault
        self._received: list[ReceivedMessage] = []
        self._attempts: list[tuple[str, int]] = []
        self.app = Starlette(routes=[
            Route("/token", self._token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            Route("/_control/faults", self._control_faults, methods=["POST", "DELETE"]),
            Route("/_control/messages", self._control_messages, methods=["GET"]),
        ])

    def add_service_account(self, client_email: str, public_key_pem: str) -> None:
        """Accept token grants signed by this key."""
        with self._lock:
            self._keys[client_email] = public_key_pem

    @property
    def received(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._received)

    @property
    def attempts(self) -> list[tuple[str, int]]:  # (target, HTTP status) of each authenticated send, retries too
        with self._lock:
            return list(self._attempts)

    @property
    def issued_tokens(self) -> set[str]:
        with self._lock:
            return set(self._tokens)

    def messages_for(self, token: str) -> list[ReceivedMessage]:
        return [m for m in self.received if m.target == token]

    def fail(self, code: str, token: str | None = None, *, times: int | None = None, for_s: float | None = None,
             retry_after_s: int | None = None) -> None:
        """Answer ``code`` for token (None: all) for ``times`` requests or ``for_s`` seconds, else always."""
        if code not in FAULTS:
            raise ValueError(f"unknown fault {code!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults[token] = _Fault(code, times, time.monotonic() + for_s if for_s is not None else None,
                                         retry_after_s)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, target: str) -> _Fault | None:
        with self._lock:
            for key in (target, None):
                fault = self._faults.get(key)
                if fault is not None and (fault.remaining == 0 or (fault.until or 1e300) <= time.monotonic()):
                    del self._faults[key]
                elif fault is not None:
                    fault.remaining = fault.remaining - 1 if fault.remaining is not None else None
                    return fault
        return None

    async def _token(self, request: Request) -> JSONResponse:
        # parsed by hand: Starlette's request.form() needs python-multipart, not worth a dependency
        form = urllib.parse.parse_qs((await request.body()).decode())
        if form.get("grant_type") != [JWT_GRANT] or len(form.get("assertion", [])) != 1:
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, 400)
        assertion = form["assertion"][0]
        try:
            issuer = str(gauth_jwt.decode(assertion, verify=False).get("iss"))
            with self._lock:
                key = self._keys.get(issuer)
            if key is None:
                raise gauth_exceptions.InvalidValue(f"unknown service account {issuer!r}")
            gauth_jwt.decode(assertion, certs=key, audience=GOOGLE_TOKEN_AUDIENCE, clock_skew_in_seconds=30)
        except (gauth_exceptions.GoogleAuthError, ValueError) as exc:
            return JSONResponse({"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}, 400)
        token = f"local-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = issuer
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _send(self, request: Request) -> JSONResponse:
        project = request.path_params["project"]
        auth = request.headers.get("authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if bearer not in self.issued_tokens:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
                          "access token.", headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if self.project_id is not None and project != self.project_id:
            return _error(403, "PERMISSION_DENIED", f"Permission 'cloudmessaging.messages.create' denied on "
                          f"resource '//cloudresourcemanager.googleapis.com/projects/{project}'")
        response, target = self._accept(project, bearer, await request.body())
        with self._lock:
            self._attempts.append((target, response.status_code))
        return response

    def _accept(self, project: str, bearer: str, body: bytes) -> tuple[JSONResponse, str]:
        try:
            payload = json.loads(body)
        except ValueError:
            return _invalid("Invalid JSON payload received."), ""
        if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
            return _invalid("Invalid JSON payload received: 'message' is required.", "message"), ""
        msg: dict[str, Any] = payload["message"]
        unknown = sorted(set(payload) - {"message", "validate_only"})
        unknown += sorted(f"message.{k}" for k in set(msg) - MESSAGE_FIELDS)
        if unknown:
            return _invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
                            unknown[0]), ""
        targets = [k for k in TARGETS if msg.get(k)]
        if len(targets) != 1:
            return _invalid("Exactly one of token, fid, topic or condition must be set.", "message"), ""
        kind, target = targets[0], str(msg[targets[0]])
        if (error := _validate(msg)) is not None:
            return error, target
        if (fault := self._take_fault(target)) is not None:
            status, rpc_status, text = FAULTS[fault.code]
            details: list[dict[str, Any]] = [{"@type": FCM_ERROR, "errorCode": fault.code}]
            if fault.code == "INVALID_ARGUMENT":
                details.append({"@type": BAD_REQUEST, "fieldViolations": [{"field": f"message.{kind}",
                                                                           "description": text}]})
            headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s is not None else None
            return _error(status, rpc_status, text, details, headers), target
        if payload.get("validate_only"):  # FCM checks, answers, delivers nothing
            return JSONResponse({"name": f"projects/{project}/messages/fake_message_id"}), target
        with self._lock:
            name = f"projects/{project}/messages/{len(self._received) + 1}"
            self._received.append(ReceivedMessage(
                project=project, target_kind=kind, target=target, name=name, notification=msg.get("notification", {}),
                data=msg.get("data", {}), android=msg.get("android", {}), apns=msg.get("apns", {}), raw=msg,
                bearer=bearer, received_at=time.time()))
        return JSONResponse({"name": name}), target

    async def _control_faults(self, request: Request) -> JSONResponse:
        """POST {"code", "token"?, "times"?, "for_s"?, "retry_after_s"?} adds a fault; DELETE clears them."""
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True})
        try:
            spec = await request.json()
            self.fail(spec["code"], spec.get("token"), times=spec.get("times"), for_s=spec.get("for_s"),
                      retry_after_s=spec.get("retry_after_s"))
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"ok": True})

    async def _control_messages(self, request: Request) -> JSONResponse:
        return JSONResponse([{"name": m.name, "target": m.target, "notification": m.notification, "data": m.data,
                              "received_at": m.received_at} for m in self.received])


def write_tls_files(folder: Path) -> str:
    """A new CA (``ca.pem``, returned) and a certificate it signed for 127.0.0.1/localhost (``server.pem``: key too).

    trustme is a dev dependency (tests, bench): imported here, so the demo's plain-HTTP server does not need it.
    """
    import trustme

    ca = trustme.CA(organization_name="mallfence local FCM")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost", "::1").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem"))
    return str(folder / "ca.pem")


class LocalFcm(LocalFcmServer):
    """``with LocalFcm() as fcm:`` — the local FCM served on 127.0.0.1 from a thread, with a service-account file.

    ``tls=True`` serves HTTPS, as FCM does, with a certificate from a CA made at start (``ca_file``: trust it).
    """

    def __init__(self, project_id: str = "mallfence-local", port: int = 0, *, tls: bool = False) -> None:
        super().__init__(project_id)
        self.port = port
        self.tls = tls
        self.url = self.credentials_file = self.ca_file = ""
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> LocalFcm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Serve in a daemon thread (after stop(): again, on the same port); write the service-account file once."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mallfence-fcm-")
            if self.tls:
                self.ca_file = write_tls_files(Path(self._tmp.name))
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        tls = {"ssl_certfile": str(Path(self._tmp.name) / "server.pem")} if self.tls else {}
        self._uvicorn = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                      lifespan="off", backlog=2048, **tls))
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"local-fcm:{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("local FCM server did not start")
            time.sleep(0.01)
        if not self.credentials_file:
            self._write_credentials()

    def stop(self) -> None:
        """Stop serving: connections are refused until start() again."""
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=10)
        self._uvicorn = self._thread = None

    def close(self) -> None:
        """Stop and delete the service-account file."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self.credentials_file, self.ca_file = None, "", ""

    def _write_credentials(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"firebase-adminsdk-local@{self.project_id}.iam.gserviceaccount.com"
        self.add_service_account(email, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
        assert self._tmp is not None
        path = Path(self._tmp.name) / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": self.project_id, "private_key_id": secrets.token_hex(20),
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "client_email": email, "client_id": str(secrets.randbelow(10**20)), "token_uri": f"{self.url}/token",
            "universe_domain": "googleapis.com"}, indent=2))
        self.credentials_file = str(path)
