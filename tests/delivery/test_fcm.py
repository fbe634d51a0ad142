"""The FCM sender through the real firebase-admin against the local FCM server; never a non-local host."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import firebase_admin
import httpx
import pytest
from firebase_admin import credentials, messaging
from hypothesis import given, settings
from hypothesis import strategies as st

from mallfence.delivery import fcm as fcm_module
from mallfence.delivery.fcm import (
    ELLIPSIS,
    MAX_BATCH,
    PAYLOAD_LIMIT,
    FirebaseSender,
    InMemorySender,
    PushMessage,
    PushResult,
    adapt_firebase_app,
    fit_payload,
    payload_size,
)
from mallfence.delivery.fcm_async import AsyncFirebaseSender, adapt_async_client
from mallfence.delivery.fcm_local import MAX_PAYLOAD_BYTES, LocalFcm, payload_bytes

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
REMOTE_HOSTS: list[str] = []  # every non-local host anything in this module tried to resolve


@pytest.fixture(scope="module", autouse=True)
def only_local_network() -> Iterator[None]:
    """Refuse (and record) name resolution of any non-local host, in every thread, for the whole module."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and str(host if isinstance(host, str) else host.decode()) not in LOCAL_HOSTS:
            REMOTE_HOSTS.append(str(host))
            raise OSError(f"test guard: non-local host {host!r} refused")
        return real(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", guarded)
        # google-auth 2.63 looks the boundary up only when this is set (the earlier one our CI ran did it
        # always). Set it, so every test here runs against the worst case: a deployment that sets it, or a
        # release that enables it again.
        mp.setenv("GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED", "true")
        yield
        time.sleep(0.2)  # let background threads (google-auth's) run before the verdict
    assert not REMOTE_HOSTS, f"something tried to reach {REMOTE_HOSTS}"


@pytest.fixture(autouse=True)
def no_remote_host_in_this_test(request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(REMOTE_HOSTS)
    yield
    if request.node.name != "test_google_auth_would_call_google_without_our_guard":
        assert REMOTE_HOSTS[before:] == [], f"{request.node.name} tried to reach {REMOTE_HOSTS[before:]}"


@pytest.fixture
def fcm() -> Iterator[LocalFcm]:
    with LocalFcm() as server:
        yield server


Sender = FirebaseSender | AsyncFirebaseSender
SENDERS = {"send_each": FirebaseSender, "send_each_async": AsyncFirebaseSender}


@pytest.fixture(params=list(SENDERS))
def make(request: pytest.FixtureRequest) -> type[Sender]:
    """Each sender test runs with both: the same behaviour through firebase-admin's sync and async paths."""
    return SENDERS[request.param]  # type: ignore[return-value]


@pytest.fixture
def sender(fcm: LocalFcm, make: type[Sender]) -> Iterator[Sender]:
    s = make(fcm.credentials_file, base_url=fcm.url)
    yield s
    s.close()


def push(token: str, **kw: object) -> PushMessage:
    fields: dict = {"title": "Sale", "body": "20% off at Bäckerei Schmidt", "data": {"zone": "z1"}, "ref": "n1"} | kw
    return PushMessage(token=token, **fields)


def settle(remote_before: int) -> list[str]:
    """Non-local hosts tried since remote_before, after giving background threads a moment."""
    time.sleep(0.3)
    return REMOTE_HOSTS[remote_before:]


# -- the happy path ------------------------------------------------------------------------------------------
def test_send_reaches_server_with_bearer_from_token_endpoint(fcm: LocalFcm, sender: Sender) -> None:
    before = len(REMOTE_HOSTS)
    [result] = sender.send([push("tok-a")])
    [got] = fcm.messages_for("tok-a")
    assert result == PushResult("tok-a", "sent", provider_id=got.name)
    assert got.name.startswith(f"projects/{fcm.project_id}/messages/")
    assert got.bearer.startswith("local-") and fcm.issued_tokens == {got.bearer}
    assert sender.fcm_url == f"{fcm.url}/v1/projects/mallfence-local/messages:send"
    assert settle(before) == []  # not even google-auth's regional access boundary lookup


def test_fields_arrive_as_fcm_fields(fcm: LocalFcm, sender: Sender) -> None:
    sender.send([push("tok-b", collapse_key="zone-z1", ttl_s=600, ref="42", data={"zone": "z1", "kind": "offer"})])
    [got] = fcm.messages_for("tok-b")
    assert got.target_kind == "token"  # a registration token, not an installation id (fid)
    assert got.notification == {"title": "Sale", "body": "20% off at Bäckerei Schmidt"}
    assert got.data == {"zone": "z1", "kind": "offer", "notification_id": "42"}
    assert got.android == {"collapse_key": "zone-z1", "ttl": "600s"}
    assert got.apns["headers"]["apns-collapse-id"] == "zone-z1"
    assert abs(int(got.apns["headers"]["apns-expiration"]) - (time.time() + 600)) < 5


def test_500_messages_in_one_call_all_arrive_with_one_token_fetch(fcm: LocalFcm, sender: Sender) -> None:
    results = sender.send([push(f"tok-{i}", ref=str(i)) for i in range(MAX_BATCH)])
    assert [r.token for r in results] == [f"tok-{i}" for i in range(MAX_BATCH)]
    assert {r.outcome for r in results} == {"sent"}
    assert len({r.provider_id for r in results}) == MAX_BATCH == len(fcm.received)
    assert len(fcm.issued_tokens) == 1  # unlocked, each of the 500 threads would fetch its own


def test_more_than_500_is_a_programming_error(sender: Sender) -> None:
    with pytest.raises(ValueError, match="500"):
        sender.send([push(f"t{i}") for i in range(MAX_BATCH + 1)])
    with pytest.raises(ValueError, match="500"):
        InMemorySender().send([push(f"t{i}") for i in range(MAX_BATCH + 1)])


def test_empty_and_locally_invalid_messages_need_no_network(fcm: LocalFcm, sender: Sender) -> None:
    assert sender.send([]) == []  # firebase-admin's send_each([]) raises UnknownError
    results = sender.send([push(""), push("tok-ok"), push("tok-int", data={"n": 1}),  # type: ignore[dict-item]
                           push("tok-surrogate", body="broken \ud83d")])
    assert [r.outcome for r in results] == ["failed", "sent", "failed", "failed"]
    assert results[0].reason and results[0].reason.startswith("INVALID_MESSAGE")
    assert [m.target for m in fcm.received] == ["tok-ok"]


# -- errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["UNREGISTERED", "SENDER_ID_MISMATCH", "INVALID_ARGUMENT"])
def test_token_errors_prune(fcm: LocalFcm, sender: Sender, code: str) -> None:
    fcm.fail(code, "tok-bad")
    results = sender.send([push("tok-good"), push("tok-bad")])
    assert results == [PushResult("tok-good", "sent", provider_id=results[0].provider_id),
                       PushResult("tok-bad", "prune", code)]


def test_invalid_argument_not_about_the_token_fails_without_prune(fcm: LocalFcm, sender: Sender) -> None:
    [result] = sender.send([push("tok-c", data={"from": "x"})])  # a reserved data key: FCM refuses the payload
    assert result == PushResult("tok-c", "failed", "INVALID_ARGUMENT")


def test_unavailable_and_internal_retry_after_brief_in_call_retries(fcm: LocalFcm, sender: Sender) -> None:
    fcm.fail("UNAVAILABLE", "tok-u")
    fcm.fail("INTERNAL", "tok-i")
    results = sender.send([push("tok-u"), push("tok-i")])
    assert results == [PushResult("tok-u", "retry", "UNAVAILABLE"), PushResult("tok-i", "retry", "INTERNAL")]
    attempts = [t for t, _ in fcm.attempts]
    assert attempts.count("tok-u") == attempts.count("tok-i") == 3  # 1 + status_retries (2)


def test_transient_unavailable_is_absorbed_by_the_in_call_retry(fcm: LocalFcm, sender: Sender) -> None:
    fcm.fail("UNAVAILABLE", times=2)  # every target, next two requests
    [result] = sender.send([push("tok-t")])
    assert result.outcome == "sent"
    assert [s for _, s in fcm.attempts] == [503, 503, 200]


def test_unavailable_for_a_while(fcm: LocalFcm, make: type[Sender]) -> None:
    sender = make(fcm.credentials_file, base_url=fcm.url, status_retries=0)
    try:
        fcm.fail("UNAVAILABLE", for_s=0.5, retry_after_s=3)
        assert sender.send([push("tok-w")]) == [PushResult("tok-w", "retry", "UNAVAILABLE", 3.0)]
        time.sleep(0.6)
        assert sender.send([push("tok-w")])[0].outcome == "sent"
    finally:
        sender.close()


def test_quota_exceeded_retries_with_retry_after_and_does_not_sleep_in_call(
        fcm: LocalFcm, sender: Sender) -> None:
    fcm.fail("QUOTA_EXCEEDED", "tok-q", retry_after_s=7)
    started = time.monotonic()
    [result] = sender.send([push("tok-q")])
    assert result == PushResult("tok-q", "retry", "QUOTA_EXCEEDED", retry_after_s=7.0)
    assert time.monotonic() - started < 3  # firebase-admin's own retry would sleep 4 x 7 s here
    assert fcm.attempts == [("tok-q", 429)]


def test_third_party_auth_error_fails(fcm: LocalFcm, sender: Sender) -> None:
    fcm.fail("THIRD_PARTY_AUTH_ERROR", "tok-apns")
    assert sender.send([push("tok-apns")]) == [PushResult("tok-apns", "failed", "THIRD_PARTY_AUTH_ERROR")]
    # google-auth's AuthorizedSession takes any 401 for a stale token: it refetches twice and resends
    assert [s for _, s in fcm.attempts] == [401, 401, 401] and len(fcm.issued_tokens) == 3


def test_server_down_is_a_transport_retry_and_recovers(fcm: LocalFcm, sender: Sender) -> None:
    assert sender.send([push("tok-d")])[0].outcome == "sent"
    fcm.stop()
    assert sender.send([push("tok-d"), push("tok-e")]) == [PushResult("tok-d", "retry", "transport"),
                                                           PushResult("tok-e", "retry", "transport")]
    cold = type(sender)(fcm.credentials_file, base_url=fcm.url)  # no token yet: the token fetch fails
    try:
        assert cold.send([push("tok-f")]) == [PushResult("tok-f", "retry", "transport")]
        fcm.start()  # same port
        assert sender.send([push("tok-d")])[0].outcome == "sent"
        assert cold.send([push("tok-f")])[0].outcome == "sent"
    finally:
        cold.close()


def test_huge_multibyte_body_is_shrunk_and_accepted(fcm: LocalFcm, sender: Sender) -> None:
    body = "Große Rabatte 🛍️ 日本語のテキスト " * 400  # ~17 kB of UTF-8
    [result] = sender.send([push("tok-big", body=body)])
    assert result.outcome == "sent"
    [got] = fcm.messages_for("tok-big")
    assert got.notification["body"].endswith(ELLIPSIS) and body.startswith(got.notification["body"][:-1].rstrip())
    assert payload_bytes(got.raw) <= PAYLOAD_LIMIT < MAX_PAYLOAD_BYTES


def test_two_senders_do_not_interfere(make: type[Sender]) -> None:
    with LocalFcm(project_id="mall-one") as one, LocalFcm(project_id="mall-two") as two:
        a = make(one.credentials_file, base_url=one.url)
        b = make(two.credentials_file, base_url=two.url)
        c = make(one.credentials_file, base_url=one.url)
        try:
            two.fail("UNREGISTERED", "shared-token")
            assert a.send([push("shared-token")])[0].outcome == "sent"
            assert b.send([push("shared-token")])[0].outcome == "prune"
            assert c.send([push("shared-token")])[0].outcome == "sent"
            assert [m.project for m in one.received] == ["mall-one", "mall-one"] and two.received == []
            assert len({m.bearer for m in one.received}) == 2  # each sender has its own credential and token
            a.close()
            assert b.send([push("other")])[0].outcome == "sent" and c.send([push("other")])[0].outcome == "sent"
        finally:
            for s in (a, b, c):
                s.close()


# -- firebase-admin internals we depend on ------------------------------------------------------------------------
def test_adapter_finds_firebase_internals(fcm: LocalFcm) -> None:
    """Fails loudly when a firebase-admin release moves the private send URL or session we redirect."""
    template = messaging._MessagingService.FCM_URL
    assert template == "https://fcm.googleapis.com/v1/projects/{0}/messages:send"
    cert = credentials.Certificate(fcm.credentials_file)
    mine = firebase_admin.initialize_app(cert, {"projectId": "p1"}, name="adapter-test-mine")
    other = firebase_admin.initialize_app(cert, {"projectId": "p1"}, name="adapter-test-other")
    try:
        service = adapt_firebase_app(mine, fcm.url, status_retries=0)
        assert service is messaging._get_messaging_service(mine)
        assert service._fcm_url == f"{fcm.url}/v1/projects/p1/messages:send"
        assert template == messaging._MessagingService.FCM_URL  # nothing global changed
        assert messaging._get_messaging_service(other)._fcm_url == template.format("p1")
        moved = messaging._get_messaging_service(other)
        del moved._fcm_url  # what a release renaming it would look like
        with pytest.raises(RuntimeError, match="internals moved"):
            adapt_firebase_app(other, fcm.url, status_retries=0)
    finally:
        firebase_admin.delete_app(mine)
        firebase_admin.delete_app(other)


def test_async_adapter_finds_firebase_internals(fcm: LocalFcm) -> None:
    """Fails loudly when a release moves the private async client that send_each_async sends with."""
    app = firebase_admin.initialize_app(credentials.Certificate(fcm.credentials_file), {"projectId": "p1"},
                                        name="async-adapter-test")
    service = messaging._get_messaging_service(app)
    try:
        shipped = service._async_client._async_client
        ours = adapt_async_client(service, auth=httpx.BasicAuth("u", "p"), ca_file=None, connections=4)
        assert service._async_client._async_client is ours is not shipped
        assert ours.headers["x-goog-api-client"] == shipped.headers["x-goog-api-client"]  # firebase-admin's metrics
        asyncio.run(shipped.aclose())
        del service._async_client._async_client  # what a release renaming it would look like
        with pytest.raises(RuntimeError, match="internals moved"):
            adapt_async_client(service, auth=httpx.BasicAuth("u", "p"), ca_file=None, connections=4)
        service._async_client._async_client = ours  # delete_app closes it
    finally:
        firebase_admin.delete_app(app)
        service._client.close()


def test_https_with_the_configured_ca_and_only_with_it() -> None:
    """FCM is HTTPS: the sender trusts the CA it is given (token endpoint too), and refuses a certificate it
    cannot verify instead of sending anyway."""
    with LocalFcm(tls=True) as fcm:
        assert fcm.url.startswith("https://")
        trusting = AsyncFirebaseSender(fcm.credentials_file, base_url=fcm.url, ca_file=fcm.ca_file)
        untrusting = AsyncFirebaseSender(fcm.credentials_file, base_url=fcm.url, status_retries=0)
        try:
            assert trusting.send([push("tok-tls")])[0].outcome == "sent"
            assert [m.target for m in fcm.received] == ["tok-tls"] and len(fcm.issued_tokens) == 1
            assert untrusting.send([push("tok-no")]) == [PushResult("tok-no", "retry", "transport")]
            assert [m.target for m in fcm.received] == ["tok-tls"] and len(fcm.issued_tokens) == 1
        finally:
            trusting.close()
            untrusting.close()


def test_async_sender_refetches_the_token_once_for_a_batch_answered_401(fcm: LocalFcm) -> None:
    """A 401 means a stale token to google-auth: 100 answers in flight for one token cost one fetch, not 100."""
    sender = AsyncFirebaseSender(fcm.credentials_file, base_url=fcm.url)
    try:
        sender.send([push("warm")])
        fcm.fail("THIRD_PARTY_AUTH_ERROR", times=100)  # the first 100 requests, whichever token
        results = sender.send([push(f"tok-{i}", ref=str(i)) for i in range(100)])
        assert {r.outcome for r in results} == {"sent"}  # each was resent once, with the new token
        assert len(fcm.issued_tokens) == 2 and len(fcm.received) == 101
        assert {m.bearer for m in fcm.received[1:]} == fcm.issued_tokens - {fcm.received[0].bearer}
    finally:
        sender.close()


def test_async_sender_sends_the_valid_messages_of_a_batch_firebase_admin_refuses(fcm: LocalFcm) -> None:
    """firebase-admin refuses a whole send_each_async call for one message it cannot encode; the rest still go."""
    sender = AsyncFirebaseSender(fcm.credentials_file, base_url=fcm.url)
    try:
        results = sender.send([push("tok-1"), push(""), push("tok-3", data={"n": 1}), push("tok-4")])  # type: ignore[dict-item]
        assert [r.outcome for r in results] == ["sent", "failed", "failed", "sent"]
        assert all(r.reason and r.reason.startswith("INVALID_MESSAGE") for r in results[1:3])
        assert sorted(m.target for m in fcm.received) == ["tok-1", "tok-4"]
    finally:
        sender.close()


def test_a_sender_nobody_closed_exits_quietly(fcm: LocalFcm) -> None:
    """A process whose owner never closed the async sender (a server shutdown that timed out) ends without
    tracebacks from its loop or aiohttp's "Unclosed client session"."""
    script = ("import sys\n"
              "from mallfence.delivery.fcm import PushMessage\n"
              "from mallfence.delivery.fcm_async import AsyncFirebaseSender\n"
              "s = AsyncFirebaseSender(sys.argv[1], base_url=sys.argv[2])\n"
              "print(s.send([PushMessage(token='tok-exit', title='a', body='b', data={})])[0].outcome)\n")
    done = subprocess.run([sys.executable, "-c", script, fcm.credentials_file, fcm.url], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "sent", "")


def test_message_token_still_deprecated_and_our_messages_warn_nothing() -> None:
    with pytest.warns(DeprecationWarning, match="fid"):
        messaging.Message(token="x")
    built = fcm_module._build(push("tok-w"))  # warnings are errors here: this must not warn
    assert isinstance(built, messaging.Message)
    assert json.loads(str(built))["token"] == "tok-w"


def test_google_auth_would_call_google_without_our_guard(fcm: LocalFcm) -> None:
    """The hazard _no_google_side_calls exists for (and proof that the network guard above works)."""
    app = firebase_admin.initialize_app(credentials.Certificate(fcm.credentials_file), {}, name="unguarded")
    service = messaging._get_messaging_service(app)
    try:
        service._fcm_url = f"{fcm.url}/v1/projects/{fcm.project_id}/messages:send"  # the URL only, nothing else
        before = len(REMOTE_HOSTS)
        msg = messaging.Message()
        msg.token = "tok-x"
        assert messaging.send_each([msg], app=app).success_count == 1
        deadline = time.monotonic() + 3
        while "iamcredentials.googleapis.com" not in REMOTE_HOSTS[before:] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "iamcredentials.googleapis.com" in REMOTE_HOSTS[before:]
        seen = -1
        while seen != len(REMOTE_HOSTS):  # until its retries are over
            seen = len(REMOTE_HOSTS)
            time.sleep(0.3)
        del REMOTE_HOSTS[before:]  # expected here; anywhere else the module fixture fails
    finally:
        firebase_admin.delete_app(app)
        service._client.close()


def test_close_inside_a_running_event_loop(fcm: LocalFcm, make: type[Sender]) -> None:
    sender = make(fcm.credentials_file, base_url=fcm.url)
    sender.send([push("tok-l")])

    async def shutdown() -> None:
        sender.close()  # firebase-admin's delete_app would call asyncio.run() here

    asyncio.run(shutdown())
    sender.close()  # idempotent
    assert not [a for a in firebase_admin._apps if a.startswith("mallfence-fcm-")]


# -- the local server on its own -----------------------------------------------------------------------------------
def test_server_validates_like_fcm(fcm: LocalFcm, sender: Sender) -> None:
    sender.send([push("warm")])
    bearer = next(iter(fcm.issued_tokens))
    url = f"{fcm.url}/v1/projects/{fcm.project_id}/messages:send"
    with httpx.Client() as http:
        def post(body: object, token: str = bearer) -> httpx.Response:
            return http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})

        denied = post({"message": {"token": "t"}}, token="forged")
        assert denied.status_code == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
        assert post({"message": {"fid": "install-1", "data": {"a": "b"}}}).json()["name"].startswith("projects/")
        assert fcm.received[-1].target_kind == "fid"
        for bad in ({"message": {"token": "t", "topic": "x"}}, {"message": {"token": "t", "data": {"a": 1}}},
                    {"message": {"token": "t", "data": {"a": "é" * 2100}}}, {"message": {"token": "t", "bogus": 1}},
                    {"msg": {}}):
            answer = post(bad)
            assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT", bad
        assert post({"message": {"token": "t"}, "validate_only": True}).status_code == 200
        assert [m.target for m in fcm.received] == ["warm", "install-1"]  # validate_only delivers nothing
        bad_grant = http.post(f"{fcm.url}/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                                        "assertion": "a.b.c"})
        assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "invalid_grant"
        # out-of-process fault injection
        control = f"{fcm.url}/_control/faults"
        assert http.post(control, json={"code": "UNREGISTERED", "token": "gone"}).status_code == 200
        assert http.post(control, json={"code": "NOPE"}).status_code == 400
        assert sender.send([push("gone")])[0] == PushResult("gone", "prune", "UNREGISTERED")
        assert http.delete(control).status_code == 200
        assert sender.send([push("gone")])[0].outcome == "sent"


def test_server_records_are_thread_safe_to_read(fcm: LocalFcm, sender: Sender) -> None:
    reads: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            reads.append(len(fcm.received))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        sender.send([push(f"tok-r{i}") for i in range(200)])
    finally:
        stop.set()
        thread.join()
    assert len(fcm.received) == 200 and reads == sorted(reads)


# -- payload fitting and the fake -------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(title=st.text(max_size=300), body=st.text(max_size=6000),
       data=st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=5))
def test_fit_payload_keeps_under_the_limit(title: str, body: str, data: dict[str, str]) -> None:
    new_title, new_body, new_data = fit_payload(title, body, data)
    assert new_data == data
    assert payload_size(new_title, new_body, data) <= PAYLOAD_LIMIT
    if payload_size(title, body, data) <= PAYLOAD_LIMIT:
        assert (new_title, new_body) == (title, body)
    else:
        assert new_body == "" or (new_body.endswith(ELLIPSIS) and body.startswith(new_body[:-1]))
        assert new_title == title or new_body == ""


def test_fit_payload_does_not_split_characters_made_of_several_code_points() -> None:
    body = ("e\u0301" * 3000) + ("🇩🇪" * 10)
    _, short, _ = fit_payload("t", body, {})
    assert short.endswith(ELLIPSIS) and short[:-1].endswith("e\u0301")
    _, flags, _ = fit_payload("t", "🇩🇪" * 2000, {})
    assert (len(flags) - 1) % 2 == 0
    assert fit_payload("t", "b", {"k": "x" * 5000}) == ("", "", {"k": "x" * 5000})  # data alone too big


def test_data_too_big_fails_locally(fcm: LocalFcm, sender: Sender) -> None:
    assert sender.send([push("tok-h", data={"k": "x" * 5000})]) == [PushResult("tok-h", "failed", "PAYLOAD_TOO_LARGE")]
    assert fcm.received == []


def test_in_memory_sender_records_and_answers_as_told() -> None:
    fake = InMemorySender()
    fake.answer("dead", "prune", "UNREGISTERED")
    fake.answer("busy", "retry", "QUOTA_EXCEEDED", retry_after_s=7)
    results = fake.send([push("ok"), push("dead"), push("busy")])
    assert [(r.token, r.outcome, r.reason, r.retry_after_s) for r in results] == [
        ("ok", "sent", None, None), ("dead", "prune", "UNREGISTERED", None), ("busy", "retry", "QUOTA_EXCEEDED", 7)]
    assert results[0].provider_id and fake.messages_for("dead") == [push("dead")] and fake.calls == 1
    fake.close()
    with pytest.raises(RuntimeError):
        fake.send([push("ok")])
