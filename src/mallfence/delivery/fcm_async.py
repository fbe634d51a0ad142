"""FcmSender over firebase-admin's ``send_each_async``, on an event loop of its own, HTTP/1.1 keep-alive via aiohttp.

Why not firebase-admin's async client as shipped: it sends through httpcore, whose HTTP/2 path raises
``TooManyStreamsError`` once a batch has more requests in flight than the server allows streams (FCM: 100;
encode/httpcore#1022), and whose HTTP/1.1 pool rescans every queued request on each state change. Measured in
bench/delivery.py: 2.0-2.2 ms client CPU per message with a third of a 500-batch failing, against ~1 ms and no
failure with aiohttp's keep-alive pool below the same httpx client. So this sender keeps firebase-admin's
``send_each_async`` (message encoding, per-message errors, exception classes) and swaps only the httpx client it
sends with (``adapt_async_client``): aiohttp transport, our CA, and a bearer auth that does not build a requests
session per request as firebase-admin's does.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import random
import ssl
import threading
import uuid
from collections.abc import Generator, Sequence
from typing import Any

import firebase_admin
import httpx
from firebase_admin import _http_client, credentials, exceptions, messaging
from google.auth import exceptions as gauth_exceptions
from google.auth.transport.requests import Request as GoogleAuthRequest
from httpx_aiohttp import AiohttpTransport

from mallfence.delivery.fcm import (
    FCM_CONNECTIONS,
    MAX_BATCH,
    PushMessage,
    PushResult,
    _batch_failure,
    _build,
    adapt_firebase_app,
    result_for_error,
)

RETRY_BACKOFF_S = 0.5  # in-call retries wait 0.5 s, 1 s, ... (jittered): a blip, not an outage (the dispatcher's job)


class BearerAuth(httpx.Auth):
    """The service account's OAuth token as ``Authorization: Bearer``, refetched when FCM answers 401.

    Like google-auth's AuthorizedSession (and firebase-admin's flow), a request is resent at most twice after a
    401. Unlike them, a 401 for a token that another request already replaced is resent with the new token, not
    a new fetch: 500 requests in flight answered 401 cost one token request, not 500.
    """

    MAX_REFRESHES = 2

    def __init__(self, credential: Any, ca_file: str | None = None) -> None:
        self._credential = credential
        self._session_request = GoogleAuthRequest()  # one requests session for token fetches, not one per message
        # The token endpoint has the send endpoint's certificate. Per request: requests lets $REQUESTS_CA_BUNDLE
        # override Session.verify (psf/requests#3829), not an explicit verify.
        self._request: Any = (functools.partial(self._session_request, verify=ca_file) if ca_file
                              else self._session_request)
        self._lock = threading.Lock()

    def refresh(self, stale: str | None = None) -> None:
        """Fetch a token if there is none valid, or if ``stale`` is still the current one (blocking)."""
        with self._lock:
            if not self._credential.valid or (stale is not None and self._credential.token == stale):
                self._credential.refresh(self._request)

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        for attempt in range(self.MAX_REFRESHES + 1):
            token = self._credential.token
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401 or attempt == self.MAX_REFRESHES:
                return
            await asyncio.to_thread(self.refresh, token)  # the fetch blocks: not on the event loop

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BearerAuth is for the async client")

    def close(self) -> None:
        self._session_request.session.close()


def adapt_async_client(service: Any, *, auth: httpx.Auth, ca_file: str | None, connections: int) -> httpx.AsyncClient:
    """Swap the httpx client firebase-admin's ``send_each_async`` sends with (messaging.py:593) for ours.

    firebase-admin keeps it private: ``_MessagingService._async_client`` is an ``HttpxAsyncClient`` whose
    ``request`` (_http_client.py:309) calls ``self._async_client.request``. Ours keeps its headers and timeout
    (public httpx properties) and changes transport and auth. Raises when a release moves either attribute
    (test_async_adapter_finds_firebase_internals).
    """
    wrapper = getattr(service, "_async_client", None)
    old = getattr(wrapper, "_async_client", None)
    if not isinstance(wrapper, _http_client.HttpxAsyncClient) or not isinstance(old, httpx.AsyncClient):
        raise RuntimeError(f"firebase-admin {firebase_admin.__version__} internals moved: cannot swap its async "
                           "HTTP client")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    # keepalive_expiry below the server's idle timeout (uvicorn 5 s, Google ~4 min): we close first, never race it
    transport = AiohttpTransport(verify=verify, limits=httpx.Limits(max_connections=connections, keepalive_expiry=4))
    client = httpx.AsyncClient(transport=transport, auth=auth, headers=old.headers, timeout=old.timeout)
    wrapper._async_client = client
    return client


class AsyncFirebaseSender:
    """FcmSender over firebase-admin's send_each_async; ``send`` may be called from any thread but its loop's."""

    def __init__(self, credentials_file: str, project_id: str | None = None, base_url: str | None = None, *,
                 ca_file: str | None = None, connections: int = FCM_CONNECTIONS, http_timeout_s: float = 30.0,
                 status_retries: int = 2) -> None:
        cert = credentials.Certificate(credentials_file)
        self.project_id: str = project_id or cert.project_id
        self.status_retries = status_retries
        self._app: firebase_admin.App | None = firebase_admin.initialize_app(
            cert, {"projectId": self.project_id, "httpTimeout": http_timeout_s}, name=f"mallfence-fcm-{uuid.uuid4()}")
        self._loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._loop.run_forever, name="fcm-sender-loop", daemon=True)
        try:
            self._service = adapt_firebase_app(self._app, base_url, status_retries=0)
            self._auth = BearerAuth(self._app.credential.get_credential(), ca_file)
            self._client = adapt_async_client(self._service, auth=self._auth, ca_file=ca_file,
                                              connections=connections)
        except BaseException:
            firebase_admin.delete_app(self._app)
            raise
        self.thread.start()
        # An owner that never closes us (a server whose shutdown timed out) still gets its connections closed at
        # exit, while the loop thread lives, instead of aiohttp's "Unclosed client session" from the collector.
        atexit.register(self.close)

    @property
    def fcm_url(self) -> str:
        return str(self._service._fcm_url)

    def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        """Send up to 500 messages; per-message problems come back as results, never as exceptions."""
        if len(messages) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per send, got {len(messages)}")
        if self._app is None:
            raise RuntimeError("sender is closed")
        # firebase-admin validates while encoding, and one bad message fails the whole call: build without the
        # check (it costs a second full encode per message) and validate one by one only when the call refuses.
        built: list[Any] = [_build(m, validate=False) for m in messages]
        todo = [i for i, b in enumerate(built) if not isinstance(b, PushResult)]
        if not todo:
            return built
        tokens = [messages[i].token for i in todo]
        try:
            self._auth.refresh()  # once, here, before the batch (a blocking fetch would stall the loop)
        except (gauth_exceptions.GoogleAuthError, exceptions.FirebaseError) as exc:
            outcome, reason = _batch_failure(exc)
            answers = [PushResult(t, outcome, reason) for t in tokens]
        else:
            answers = asyncio.run_coroutine_threadsafe(
                self._send_all([built[i] for i in todo], tokens), self._loop).result()
        for i, answer in zip(todo, answers, strict=True):
            built[i] = answer
        return built

    async def _send_all(self, batch: list[Any], tokens: list[str]) -> list[PushResult]:
        """One send_each_async call, then brief in-call retries of what got 500/503 or no answer."""
        results: list[PushResult | None] = [None] * len(batch)
        todo = list(range(len(batch)))
        for attempt in range(self.status_retries + 1):
            if attempt:
                await asyncio.sleep(random.uniform(0.5, 1.0) * RETRY_BACKOFF_S * 2 ** (attempt - 1))
            answers = await self._send_once([batch[i] for i in todo], [tokens[i] for i in todo])
            for i, answer in zip(todo, answers, strict=True):
                results[i] = answer
            todo = [i for i, r in zip(todo, answers, strict=True) if _blip(r)]
            if not todo:
                break
        return [r for r in results if r is not None]

    async def _send_once(self, batch: list[Any], tokens: list[str]) -> list[PushResult]:
        try:
            response = await messaging.send_each_async(batch, app=self._app)
        except ValueError:  # firebase-admin refused a message while encoding: find it, send the others
            return await self._send_valid(batch, tokens)
        except exceptions.FirebaseError as exc:
            outcome, reason = _batch_failure(exc)
            return [PushResult(t, outcome, reason) for t in tokens]
        return [PushResult(t, "sent", provider_id=r.message_id) if r.success else result_for_error(t, r.exception)
                for t, r in zip(tokens, response.responses, strict=True)]

    async def _send_valid(self, batch: list[Any], tokens: list[str]) -> list[PushResult]:
        results: list[PushResult | None] = [None] * len(batch)
        for i, message in enumerate(batch):
            try:
                str(message)  # firebase-admin's own validation, as FirebaseSender runs it up front
            except ValueError as exc:
                results[i] = PushResult(tokens[i], "failed", f"INVALID_MESSAGE: {exc}"[:200])
        valid = [i for i, r in enumerate(results) if r is None]
        if valid:
            for i, answer in zip(valid, await self._send_once([batch[i] for i in valid], [tokens[i] for i in valid]),
                                 strict=True):
                results[i] = answer
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Close the HTTP client and the loop, delete the App; idempotent."""
        app, self._app = self._app, None
        if app is None:
            return
        atexit.unregister(self.close)
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self.thread.join(timeout=10)
        self._loop.close()
        # delete_app closes its services with asyncio.run() (messaging.py:911), ours is closed: run it in a thread,
        # which also works when close() itself is called from inside a running loop
        worker = threading.Thread(target=firebase_admin.delete_app, args=(app,), name="fcm-close")
        worker.start()
        worker.join()
        self._service._client.close()  # firebase-admin never closes its requests session
        self._auth.close()


def _blip(result: PushResult) -> bool:
    """Worth another try within this call: 500/503 without Retry-After, or no answer at all."""
    return result.outcome == "retry" and result.retry_after_s is None and result.reason in (
        "transport", "UNAVAILABLE", "INTERNAL")
