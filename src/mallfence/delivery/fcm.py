"""Sending pushes through FCM: the sender interface the dispatcher uses, firebase-admin behind it, a fake."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import firebase_admin
import requests.adapters
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as gauth_exceptions
from google.auth.transport.requests import Request as GoogleAuthRequest
from urllib3.util.retry import Retry

MAX_BATCH = 500  # send_each's limit (messaging.py:560)
PAYLOAD_LIMIT = 4000  # FCM refuses > 4,096 bytes; keep a margin for what FCM counts that we do not
MAX_TTL_S = 28 * 24 * 3600  # FCM's longest time to live
FCM_CONNECTIONS = 100  # firebase-admin's own pool size for FCM (messaging.py:527)
ELLIPSIS = "…"
Outcome = Literal["sent", "retry", "prune", "failed"]


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One push to one app install."""

    token: str  # FCM registration token of one app install
    title: str
    body: str
    data: dict[str, str]  # FCM data payload: string values only
    collapse_key: str | None = None
    ttl_s: int | None = None  # seconds until FCM may drop it (from the notification's expiry)
    ref: str = ""  # our notification id, for logs/tests; also sent as data["notification_id"]


@dataclass(frozen=True, slots=True)
class PushResult:
    """What became of one PushMessage."""

    token: str
    outcome: Outcome
    reason: str | None = None  # FCM error code, "transport", "auth", "INVALID_MESSAGE…" or "PAYLOAD_TOO_LARGE"
    retry_after_s: float | None = None  # from Retry-After when FCM gave one
    provider_id: str | None = None  # FCM message name on success ("projects/p/messages/123")


class FcmSender(Protocol):
    """What the dispatcher uses: one result per message, same order; at most 500 messages (ValueError beyond)."""

    def send(self, messages: Sequence[PushMessage]) -> list[PushResult]: ...

    def close(self) -> None: ...


def payload_size(title: str, body: str, data: dict[str, str]) -> int:
    """UTF-8 bytes of the notification + data parts, the part FCM's 4,096-byte limit is about."""
    part = {"notification": {"title": title, "body": body}, "data": data}
    return len(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode())


def _cut(text: str, n: int) -> str:
    """The first n characters plus an ellipsis, not splitting a combining sequence or a flag."""
    while 0 < n < len(text) and (unicodedata.combining(text[n]) or text[n] in "\u200d\ufe0e\ufe0f"
                                 or text[n - 1] == "\u200d"):
        n -= 1
    flags = 0
    while flags < n and "\U0001f1e6" <= text[n - 1 - flags] <= "\U0001f1ff":
        flags += 1
    n -= flags % 2  # regional indicators pair up into flags: never keep half of one
    return text[:n].rstrip() + ELLIPSIS


def _shrink(text: str, fits: Callable[[str], bool]) -> str | None:
    """The longest ``_cut`` of text that fits (text itself if it does), or None."""
    if fits(text):
        return text
    lo, hi, best = 0, len(text) - 1, None
    while lo <= hi:  # the size grows with the prefix length: binary search it
        mid = (lo + hi) // 2
        if fits(candidate := _cut(text, mid)):
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def fit_payload(title: str, body: str, data: dict[str, str], limit: int = PAYLOAD_LIMIT) -> tuple[str, str, dict]:
    """Shorten body, then title, with an ellipsis so the payload is ≤ limit bytes (data is never touched)."""
    new_body = _shrink(body, lambda b: payload_size(title, b, data) <= limit)
    if new_body is not None:
        return title, new_body, data
    new_title = _shrink(title, lambda t: payload_size(t, "", data) <= limit)
    return new_title or "", "", data  # ("", "", data) when data alone is too big: the caller checks


def adapt_firebase_app(app: firebase_admin.App, base_url: str | None, status_retries: int) -> Any:
    """Point this app's FCM service at base_url (None: Google) with our retry policy; returns the service.

    firebase-admin keeps all of this private (messaging.py:496-534): the send URL in the per-app service's
    ``_fcm_url`` (built from the class's ``FCM_URL``) and the requests session in ``_client``. Only this app's
    service changes. If a release moves them we raise rather than silently send to Google
    (test_adapter_finds_firebase_internals watches for that).
    """
    service = messaging._get_messaging_service(app)
    project = app.project_id
    template = getattr(messaging._MessagingService, "FCM_URL", None)
    client = getattr(service, "_client", None)
    if (not isinstance(template, str) or getattr(service, "_fcm_url", None) != template.format(project)
            or not isinstance(getattr(client, "session", None), requests.Session)):
        raise RuntimeError(f"firebase-admin {firebase_admin.__version__} internals moved: cannot redirect FCM")
    prefix = base_url.rstrip("/") if base_url else "https://fcm.googleapis.com"
    if base_url:
        service._fcm_url = f"{prefix}/v1/projects/{project}/messages:send"
        service._fcm_topic_url = f"{prefix}/v1/projects/{project}/registrations"  # unused by us; not Google either
        # google-auth (credentials.py _after_refresh) looks up a "regional access boundary" in a background thread
        # after the first authorised request, at iamcredentials.googleapis.com whatever token_uri says. Seeding a
        # boundary that never expires (the hook gcloud uses) skips that lookup.
        seed = getattr(app.credential.get_credential(), "_set_regional_access_boundary", None)
        if seed is not None:
            seed({"encodedLocations": "0x0", "expiry": dt.datetime(9999, 1, 1)})
    # firebase-admin's own retry (_http_client.py:42) retries 500/503 four times (~7 s) and, since urllib3 honours
    # Retry-After, a 429 "Retry-After: 60" four times too: 4 min for the whole batch. Retry 500/503 briefly with
    # backoff (total=None: no Retry-After-driven retries, and no Retry-After sleeps); the dispatcher gets Retry-After.
    retry = Retry(total=None, connect=1, read=1, status=status_retries, status_forcelist=(500, 503),
                  backoff_factor=0.5, raise_on_status=False, respect_retry_after_header=False, allowed_methods=None)
    # pool_block: send_each runs one thread per message (messaging.py:576); they wait for one of the pooled
    # connections instead of opening, then discarding, hundreds more.
    client.session.mount(prefix, requests.adapters.HTTPAdapter(
        pool_connections=1, pool_maxsize=FCM_CONNECTIONS, pool_block=True, max_retries=retry))
    return service


def _error_info(exc: exceptions.FirebaseError) -> tuple[str | None, list[str], str]:
    """(FcmError errorCode, else google.rpc status; BadRequest field names; message) from FCM's error body."""
    try:
        error = exc.http_response.json().get("error", {})
    except (AttributeError, ValueError):
        return None, [], str(exc)
    code, fields = error.get("status"), []
    for detail in error.get("details", []):
        if detail.get("@type", "").endswith("FcmError") and detail.get("errorCode"):
            code = detail["errorCode"]
        fields += [v.get("field", "") for v in detail.get("fieldViolations", [])]
    return code, fields, str(error.get("message", exc))


def _retry_after(exc: exceptions.FirebaseError) -> float | None:
    value = getattr(exc.http_response, "headers", {}).get("Retry-After") or ""
    try:
        return max(0.0, float(value) if value.strip().isdigit() else
                   email.utils.parsedate_to_datetime(value).timestamp() - time.time())  # seconds or an HTTP date
    except (TypeError, ValueError):
        return None


def result_for_error(token: str, exc: exceptions.FirebaseError) -> PushResult:
    """Map one message's firebase-admin exception to an outcome."""
    if exc.http_response is None:  # no answer: refused/reset/timed out (firebase-admin: Unavailable/DeadlineExceeded)
        return PushResult(token, "retry", "transport")
    code, fields, message = _error_info(exc)
    reason = code or exc.code
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return PushResult(token, "prune", reason)
    if isinstance(exc, messaging.ThirdPartyAuthError):  # APNs/web-push credentials: configuration, alert
        return PushResult(token, "failed", reason)
    if isinstance(exc, exceptions.InvalidArgumentError):
        about_token = any(f in ("message.token", "message.fid") for f in fields) or "registration token" in message
        return PushResult(token, "prune" if about_token else "failed", reason)
    if isinstance(exc, exceptions.ResourceExhaustedError | exceptions.UnavailableError | exceptions.InternalError
                   | exceptions.DeadlineExceededError) or exc.http_response.status_code >= 500:
        return PushResult(token, "retry", reason, _retry_after(exc))
    return PushResult(token, "failed", reason)  # other 401/403/404: our configuration, not the token


def _batch_failure(exc: BaseException) -> tuple[Outcome, str]:
    """Outcome for every message of a batch that failed as a whole (token fetch, SDK trouble)."""
    cause = exc.cause if isinstance(exc, exceptions.FirebaseError) else exc
    if isinstance(cause, gauth_exceptions.RefreshError):  # the token endpoint said no
        return ("retry" if cause.retryable else "failed"), "auth"
    return "retry", "transport"


class FirebaseSender:
    """FcmSender over firebase-admin's send_each, on a named App of its own (several can coexist)."""

    def __init__(self, credentials_file: str, project_id: str | None = None, base_url: str | None = None, *,
                 http_timeout_s: float = 30.0, status_retries: int = 2) -> None:
        cert = credentials.Certificate(credentials_file)
        self.project_id: str = project_id or cert.project_id
        self.base_url = base_url
        # explicit options: with None firebase-admin reads them from $FIREBASE_CONFIG (__init__.py:164)
        self._app: firebase_admin.App | None = firebase_admin.initialize_app(
            cert, {"projectId": self.project_id, "httpTimeout": http_timeout_s}, name=f"mallfence-fcm-{uuid.uuid4()}")
        try:
            self._service = adapt_firebase_app(self._app, base_url, status_retries)
        except BaseException:
            firebase_admin.delete_app(self._app)
            raise
        self._credential = cert.get_credential()
        self._token_request = GoogleAuthRequest()
        self._token_lock = threading.Lock()

    @property
    def fcm_url(self) -> str:
        return str(self._service._fcm_url)

    def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        """Send up to 500 messages; per-message problems come back as results, never as exceptions."""
        if len(messages) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per send, got {len(messages)}")
        if self._app is None:  # else send_each(app=None) would use firebase's default app
            raise RuntimeError("sender is closed")
        built = [_build(m) for m in messages]
        todo = [i for i, b in enumerate(built) if not isinstance(b, PushResult)]
        # send_each([]) would raise UnknownError (ThreadPoolExecutor(max_workers=0), messaging.py:576)
        sent = self._send_batch([built[i] for i in todo], [messages[i].token for i in todo]) if todo else []
        answers = dict(zip(todo, sent, strict=True))
        return [b if isinstance(b, PushResult) else answers[i] for i, b in enumerate(built)]

    def _send_batch(self, batch: list[Any], tokens: list[str]) -> list[PushResult]:
        try:
            self._ensure_token()
            response = messaging.send_each(batch, app=self._app)
        except (exceptions.FirebaseError, gauth_exceptions.GoogleAuthError) as exc:
            outcome, reason = _batch_failure(exc)
            return [PushResult(t, outcome, reason) for t in tokens]
        return [PushResult(t, "sent", provider_id=r.message_id) if r.success else result_for_error(t, r.exception)
                for t, r in zip(tokens, response.responses, strict=True)]

    def _ensure_token(self) -> None:
        """Fetch the OAuth token once, before the batch.

        Otherwise each of send_each's threads refreshes on its own (many token requests for a cold batch), and a
        failed refresh escapes as one UnknownError for the whole batch while other messages may have gone out.
        """
        with self._token_lock:
            if not self._credential.valid:
                self._credential.refresh(self._token_request)

    def close(self) -> None:
        """Delete the App and close its HTTP sessions; idempotent."""
        app, self._app = self._app, None
        if app is None:
            return
        try:  # delete_app closes the service with asyncio.run() (messaging.py:911): not from inside a running loop
            asyncio.get_running_loop()
        except RuntimeError:
            firebase_admin.delete_app(app)
        else:
            worker = threading.Thread(target=firebase_admin.delete_app, args=(app,), name="fcm-close")
            worker.start()
            worker.join()
        self._service._client.close()  # firebase-admin never closes its requests session
        self._token_request.session.close()


def _build(push: PushMessage, *, validate: bool = True) -> messaging.Message | PushResult:
    """The firebase-admin Message for a PushMessage, or a "failed" result when it cannot be sent at all.

    ``validate=False`` skips firebase-admin's own check (a full encode): for callers that handle its ValueError.
    """
    data = {**push.data, "notification_id": push.ref} if push.ref else dict(push.data)
    try:
        title, body, data = fit_payload(push.title, push.body, data)
    except (UnicodeEncodeError, TypeError) as exc:  # a lone surrogate, a non-string value: not sendable
        return PushResult(push.token, "failed", f"INVALID_MESSAGE: {exc}"[:200])
    if payload_size(title, body, data) > PAYLOAD_LIMIT:
        return PushResult(push.token, "failed", "PAYLOAD_TOO_LARGE")
    android: dict[str, Any] = {}
    apns_headers: dict[str, str] = {}
    if push.collapse_key:
        android["collapse_key"] = push.collapse_key
        if len(push.collapse_key.encode()) <= 64:  # APNs refuses longer collapse ids
            apns_headers["apns-collapse-id"] = push.collapse_key
    if push.ttl_s is not None:
        ttl = min(max(push.ttl_s, 0), MAX_TTL_S)
        android["ttl"] = ttl
        apns_headers["apns-expiration"] = str(int(time.time()) + ttl if ttl else 0)  # 0: now or never, as ttl 0
    message = messaging.Message(
        notification=messaging.Notification(title=title, body=body), data=data,
        android=messaging.AndroidConfig(**android) if android else None,
        apns=messaging.APNSConfig(headers=apns_headers) if apns_headers else None)
    # We hold registration tokens: FCM's ``message.token``. ``fid`` is a Firebase Installation ID, another thing.
    # Message(token=...) warns (DeprecationWarning, _messaging_encoder.py:51) and warnings.catch_warnings() is
    # process-global and not thread-safe (the dispatcher sends from worker threads), so set the public attribute the
    # encoder reads (_messaging_encoder.py:731) after construction. A test notices when a release changes this.
    message.token = push.token
    if not validate:
        return message
    try:
        str(message)  # firebase-admin's own validation (string data values, non-empty token), before any network
    except ValueError as exc:
        return PushResult(push.token, "failed", f"INVALID_MESSAGE: {exc}"[:200])
    return message


@dataclass
class InMemorySender:
    """A fake FcmSender: records what it is given and answers per token as told (default "sent")."""

    answers: dict[str, PushResult] = field(default_factory=dict)  # token -> the result to give
    messages: list[PushMessage] = field(default_factory=list)  # everything it was given, in order
    calls: int = 0
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answer(self, token: str, outcome: Outcome, reason: str | None = None,
               retry_after_s: float | None = None) -> None:
        """From now on, answer ``outcome`` for this token."""
        self.answers[token] = PushResult(token, outcome, reason, retry_after_s)

    def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        if len(messages) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per send, got {len(messages)}")
        if self.closed:
            raise RuntimeError("sender is closed")
        with self._lock:
            self.calls += 1
            self.messages.extend(messages)
            return [self.answers.get(m.token) or PushResult(m.token, "sent", provider_id=f"fake/{uuid.uuid4()}")
                    for m in messages]

    def messages_for(self, token: str) -> list[PushMessage]:
        with self._lock:
            return [m for m in self.messages if m.token == token]

    def close(self) -> None:
        self.closed = True
