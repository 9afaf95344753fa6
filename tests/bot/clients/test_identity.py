"""The session check: the real SessionVerifier over real HTTP against the identity emulator (RFC 7662)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from bot.clients.identity import (
    DEFAULT_RETRY_AFTER,
    Customer,
    IdentityUnavailable,
    ScopeMissing,
    SessionRefused,
    SessionVerifier,
    session_key,
)
from bot.sandbox.identity_emulator import IdentityEmulator, create_identity_emulator
from bot.sandbox.server_thread import ServerThread
from bot.settings import SANDBOX_IDENTITY_TOKEN, Settings

T = TypeVar("T")
JANE = "sandbox-session-jane"


@dataclass
class Identity:
    emulator: IdentityEmulator
    url: str  # the introspection endpoint

    def settings(self, url: str | None = None, token: str = SANDBOX_IDENTITY_TOKEN, **extra: Any) -> Settings:
        return Settings(session_introspection_url=url or self.url, session_introspection_token=token, **extra)

    def calls(self) -> int:
        return len(self.emulator.requests())


@pytest.fixture(scope="module")
def identity_server() -> Iterator[tuple[IdentityEmulator, str]]:
    app = create_identity_emulator()
    with ServerThread(app) as server:
        yield app.state.emulator, server.url + "/introspect"


@pytest.fixture
def identity(identity_server: tuple[IdentityEmulator, str]) -> Identity:
    emulator, url = identity_server
    emulator.reset()
    return Identity(emulator, url)


def run(settings: Settings, scenario: Callable[[SessionVerifier], Awaitable[T]]) -> T:
    """Run ``scenario`` with a fresh verifier on a fresh event loop, closing the verifier whatever happens."""

    async def main() -> T:
        verifier = SessionVerifier(settings)
        try:
            return await scenario(verifier)
        finally:
            await verifier.aclose()

    return asyncio.run(main())


def refusal(settings: Settings, session_id: str, kind: type[Exception] = SessionRefused) -> Any:
    """The exception ``verify(session_id)`` raises; its message names neither the session nor the token."""

    async def scenario(verifier: SessionVerifier) -> Exception:
        with pytest.raises(kind) as caught:
            await verifier.verify(session_id)
        return caught.value

    exc = run(settings, scenario)
    assert not session_id or session_id not in str(exc)
    token = settings.session_introspection_token
    assert token is not None and token.get_secret_value() not in str(exc)
    return exc


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- answers -----------------------------------------------------------------------------------------------


def test_an_active_session_is_its_customer(identity: Identity) -> None:
    customer = run(identity.settings(), lambda v: v.verify(JANE))
    assert customer == Customer("customer-1001", "jane.doe@example.com", frozenset({"reports:write", "reports:read"}))
    [request] = identity.emulator.requests()
    assert request["client"] == "bearer"
    assert request["token_type_hint"] == "access_token"
    assert request["token_sha256"] == hashlib.sha256(JANE.encode()).hexdigest()
    assert JANE not in str(identity.emulator.requests())  # the emulator's log keeps no raw session id


@pytest.mark.parametrize("session_id", ["no-such-session", "sandbox-session-expired"])
def test_unknown_and_expired_sessions_are_refused(identity: Identity, session_id: str) -> None:
    refusal(identity.settings(), session_id)
    assert [r["active"] for r in identity.emulator.requests()] == [False]


def test_a_revoked_session_is_refused(identity: Identity) -> None:
    assert run(identity.settings(), lambda v: v.verify("sandbox-session-john")).sub == "customer-1002"
    assert identity.emulator.revoke("sandbox-session-john")
    refusal(identity.settings(), "sandbox-session-john")
    identity.emulator.add_session("inactive", "customer-9", "x@example.com", active=False)
    refusal(identity.settings(), "inactive")


def test_expiry_is_honoured_even_when_the_service_says_active(identity: Identity) -> None:
    # The service's clock runs a minute behind ours: it still calls the session active.
    identity.emulator.set_clock_offset(-60)
    identity.emulator.add_session("stale", "customer-7", "s@example.com", exp=int(time.time()) - 10)
    exc = refusal(identity.settings(), "stale")
    assert "expired" in str(exc)
    assert [r["active"] for r in identity.emulator.requests()] == [True]


def test_a_session_without_the_scope_is_forbidden_unless_no_scope_is_required(identity: Identity) -> None:
    exc = refusal(identity.settings(), "sandbox-session-readonly", ScopeMissing)
    assert exc.scope == "reports:write"
    assert run(identity.settings(session_scope=""), lambda v: v.verify("sandbox-session-readonly")).scopes == {
        "reports:read"
    }
    assert refusal(identity.settings(session_scope="reports:read admin"), JANE, ScopeMissing).scope == "admin"


@pytest.mark.parametrize("session_id", ["", "has space", "tab\there", "line\nbreak", "caf\u00e9", "\x00", "x" * 4097])
def test_a_malformed_session_id_never_reaches_the_service(identity: Identity, session_id: str) -> None:
    refusal(identity.settings(), session_id)
    assert identity.calls() == 0


# ---- failures: 503 with Retry-After, never cached --------------------------------------------------------


def test_the_service_refusing_our_credentials_is_unavailability(identity: Identity) -> None:
    settings = identity.settings(token="not-the-introspection-token")

    async def scenario(verifier: SessionVerifier) -> list[IdentityUnavailable]:
        errors = []
        for _ in range(2):
            with pytest.raises(IdentityUnavailable) as caught:
                await verifier.verify(JANE)
            errors.append(caught.value)
        return errors

    first, _ = run(settings, scenario)
    assert "credentials" in str(first) and "TRIAGE_SESSION_INTROSPECTION_TOKEN" in str(first)
    assert "not-the-introspection-token" not in str(first) and JANE not in str(first)
    assert first.retry_after == DEFAULT_RETRY_AFTER
    assert [(r["status"], r["client"]) for r in identity.emulator.requests()] == [(401, None), (401, None)]


@pytest.mark.parametrize(("status", "retry_after", "expected"), [(503, 7, 7), (429, 2, 2), (500, None, 5)])
def test_service_errors_are_unavailability_and_are_not_remembered(
    identity: Identity, status: int, retry_after: int | None, expected: int
) -> None:
    identity.emulator.set_fault(status, count=1, retry_after=retry_after)

    async def scenario(verifier: SessionVerifier) -> tuple[IdentityUnavailable, Customer]:
        with pytest.raises(IdentityUnavailable) as caught:
            await verifier.verify(JANE)
        return caught.value, await verifier.verify(JANE)  # the fault is spent: the service answers

    exc, customer = run(identity.settings(), scenario)
    assert exc.retry_after == expected and f"HTTP {status}" in str(exc)
    assert customer.sub == "customer-1001"
    assert identity.calls() == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[]", "not a JSON object"),
        ('"active"', "not a JSON object"),
        ("<html>Service Unavailable</html>", "not a JSON object"),
        ("", "not a JSON object"),
        ("{}", "no boolean 'active'"),
        ('{"active": "true", "sub": "customer-1001"}', "no boolean 'active'"),
        ('{"active": 1, "sub": "customer-1001"}', "no boolean 'active'"),
        ('{"active": null}', "no boolean 'active'"),
    ],
)
def test_an_answer_that_is_not_rfc_7662_is_unavailability_and_is_not_remembered(
    identity: Identity, body: str, problem: str
) -> None:
    identity.emulator.set_fault(None, count=1, body=body)

    async def scenario(verifier: SessionVerifier) -> tuple[IdentityUnavailable, Customer]:
        with pytest.raises(IdentityUnavailable) as caught:
            await verifier.verify(JANE)
        return caught.value, await verifier.verify(JANE)  # the fault is spent: the service answers

    exc, customer = run(identity.settings(), scenario)
    assert problem in str(exc) and exc.retry_after == DEFAULT_RETRY_AFTER
    assert not body or body not in str(exc)  # the message never echoes the answer
    assert customer.sub == "customer-1001"
    assert [(r["status"], r["fault"]) for r in identity.emulator.requests()] == [(200, True), (200, False)]


@pytest.mark.parametrize(
    ("body", "refusal_text"),
    [
        ('{"active": false, "exp": "soon"}', "not active"),
        ('{"active": true, "sub": "customer-1001", "exp": "soon"}', "unreadable expiry"),
        ('{"active": true, "sub": "customer-1001", "exp": null}', "unreadable expiry"),
        ('{"active": true, "sub": "customer-1001", "exp": true}', "unreadable expiry"),
        ('{"active": true, "sub": "customer-1001", "nbf": 99999999999}', "not valid yet"),
        ('{"active": true, "sub": 1001}', "names no customer"),
        ('{"active": true, "sub": "  "}', "names no customer"),
        ('{"active": true}', "names no customer"),
    ],
)
def test_an_active_answer_that_cannot_be_trusted_refuses_the_session(
    identity: Identity, body: str, refusal_text: str
) -> None:
    identity.emulator.set_fault(None, count=1, body=body)
    assert refusal_text in str(refusal(identity.settings(), JANE))


def test_answers_are_read_as_services_write_them(identity: Identity) -> None:
    exp = int(time.time()) + 600
    answers = [
        # RFC 7662: space-separated scopes, exp an integer; members it does not define are no obstacle
        f'{{"active": true, "sub": "c-1", "scope": "reports:write  reports:read", "exp": {exp}, "ext": {{"a": 1}}}}',
        # a JSON array of scopes, a fractional exp, an address unfit for a mail header, a numeric client_id
        f'{{"active": true, "sub": "c-2", "scope": ["reports:write", 7], "exp": {exp}.5, "email": "a b@example.com",'
        ' "client_id": 5, "iat": "yesterday", "nbf": "now"}',
    ]

    async def scenario(verifier: SessionVerifier) -> list[Customer]:
        customers = []
        for n, body in enumerate(answers):
            identity.emulator.set_fault(None, count=1, body=body)
            customers.append(await verifier.verify(f"session-{n}"))
        return customers

    assert run(identity.settings(), scenario) == [
        Customer("c-1", None, frozenset({"reports:write", "reports:read"})),
        Customer("c-2", None, frozenset({"reports:write"})),
    ]


def test_a_slow_service_times_out_and_is_not_remembered(identity: Identity) -> None:
    identity.emulator.set_fault(None, count=1, latency=0.6)

    async def scenario(verifier: SessionVerifier) -> tuple[IdentityUnavailable, float, Customer]:
        started = time.monotonic()
        with pytest.raises(IdentityUnavailable) as caught:
            await verifier.verify(JANE)
        return caught.value, time.monotonic() - started, await verifier.verify(JANE)

    exc, waited, customer = run(identity.settings(session_timeout=0.25), scenario)
    assert "did not answer within 0.25s" in str(exc) and exc.retry_after == DEFAULT_RETRY_AFTER
    assert waited < 0.5
    assert customer.sub == "customer-1001"
    deadline = time.monotonic() + 2
    while identity.calls() < 2 and time.monotonic() < deadline:  # the slow request ends on the server's side
        time.sleep(0.02)
    assert [r["status"] for r in identity.emulator.requests()] == [200, 200]


def test_an_unreachable_service_is_unavailability_and_is_not_remembered(identity: Identity) -> None:
    port = closed_port()
    app = create_identity_emulator()

    async def scenario(verifier: SessionVerifier) -> tuple[IdentityUnavailable, Customer]:
        with pytest.raises(IdentityUnavailable) as caught:
            await verifier.verify(JANE)
        with ServerThread(app, port=port):  # the service comes up where it was missing
            return caught.value, await verifier.verify(JANE)

    exc, customer = run(identity.settings(url=f"http://127.0.0.1:{port}/introspect"), scenario)
    assert "unreachable" in str(exc)
    assert customer.sub == "customer-1001"
    assert len(app.state.emulator.requests()) == 1


# ---- cache -----------------------------------------------------------------------------------------------


def test_answers_are_cached_briefly_under_a_hash_of_the_session_id(identity: Identity) -> None:
    async def scenario(verifier: SessionVerifier) -> None:
        await verifier.verify(JANE)
        await verifier.verify(JANE)
        assert identity.calls() == 1
        assert list(verifier._cache) == [session_key(JANE)] and JANE not in str(vars(verifier))
        with pytest.raises(SessionRefused):
            await verifier.verify("no-such-session")
        with pytest.raises(SessionRefused):  # a refusal is an answer too
            await verifier.verify("no-such-session")
        assert identity.calls() == 2
        await asyncio.sleep(0.25)
        await verifier.verify(JANE)
        assert identity.calls() == 3

    run(identity.settings(session_cache_seconds=0.2), scenario)


def test_a_session_is_never_trusted_from_cache_past_its_expiry(identity: Identity) -> None:
    exp = int(time.time()) + 1
    if exp - time.time() < 0.3:  # room for the first answer to be active
        exp += 1
    identity.emulator.add_session("short", "customer-8", "s@example.com", exp=exp)

    async def scenario(verifier: SessionVerifier) -> None:
        await verifier.verify("short")
        await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
        with pytest.raises(SessionRefused):
            await verifier.verify("short")

    run(identity.settings(session_cache_seconds=30), scenario)
    assert identity.calls() == 2


def test_the_cache_is_bounded(identity: Identity) -> None:
    for n in range(5):
        identity.emulator.add_session(f"s{n}", f"customer-{n}", None)

    async def scenario(verifier: SessionVerifier) -> None:
        verifier.cache_entries = 3
        for n in range(5):
            await verifier.verify(f"s{n}")
        assert list(verifier._cache) == [session_key(f"s{n}") for n in (2, 3, 4)]

    run(identity.settings(), scenario)


def test_a_burst_for_one_session_makes_one_request(identity: Identity) -> None:
    identity.emulator.set_fault(None, latency=0.1)  # every answer is slow: the burst piles up

    async def scenario(verifier: SessionVerifier) -> list[Customer]:
        return await asyncio.gather(*(verifier.verify(JANE) for _ in range(20)))

    customers = run(identity.settings(), scenario)
    assert {c.sub for c in customers} == {"customer-1001"}
    assert identity.calls() == 1


def test_a_failed_burst_fails_every_caller_and_is_forgotten(identity: Identity) -> None:
    identity.emulator.set_fault(503, count=1, retry_after=3, latency=0.1)

    async def scenario(verifier: SessionVerifier) -> tuple[list[Any], Customer]:
        results = await asyncio.gather(*(verifier.verify(JANE) for _ in range(20)), return_exceptions=True)
        return results, await verifier.verify(JANE)

    results, customer = run(identity.settings(), scenario)
    assert all(isinstance(r, IdentityUnavailable) and r.retry_after == 3 for r in results)
    assert customer.sub == "customer-1001"
    assert identity.calls() == 2


def test_reports_are_off_without_an_identity_service() -> None:
    settings = Settings(jira_url="https://jira.example.com", jira_token="t", webhook_token="w" * 16)
    with pytest.raises(ValueError, match="TRIAGE_SESSION_INTROSPECTION_URL"):
        SessionVerifier(settings)


# ---- the emulator speaks RFC 7662 ------------------------------------------------------------------------


def test_the_emulator_answers_as_rfc_7662_says(identity: Identity) -> None:
    bearer = {"Authorization": f"Bearer {SANDBOX_IDENTITY_TOKEN}"}
    basic_secret = base64.b64encode(f"triage-bot:{SANDBOX_IDENTITY_TOKEN}".encode()).decode()
    with httpx.Client(timeout=5) as http:
        active = http.post(identity.url, data={"token": JANE}, headers=bearer)
        assert active.status_code == 200 and active.headers["cache-control"] == "no-store"
        body = active.json()
        assert body | {"exp": 0, "iat": 0} == {
            "active": True,
            "sub": "customer-1001",
            "email": "jane.doe@example.com",
            "scope": "reports:write reports:read",
            "client_id": "triage-app",
            "token_type": "access_token",
            "exp": 0,
            "iat": 0,
        }
        assert body["iat"] <= time.time() < body["exp"]

        assert http.post(identity.url, data={"token": "nope"}, headers=bearer).json() == {"active": False}
        assert http.post(identity.url, data={"token": "sandbox-session-expired"}, headers=bearer).json() == {
            "active": False
        }
        basic = http.post(identity.url, data={"token": JANE}, headers={"Authorization": f"Basic {basic_secret}"})
        assert basic.json()["active"] is True

        missing = http.post(identity.url, data={"token_type_hint": "access_token"}, headers=bearer)
        assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
        twice = http.post(
            identity.url,
            content=f"token={JANE}&token=x",
            headers=bearer | {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert twice.status_code == 400
        as_json = http.post(identity.url, json={"token": JANE}, headers=bearer)
        assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")

        anonymous = http.post(identity.url, data={"token": JANE})
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
        assert anonymous.headers["www-authenticate"].startswith("Bearer ")
        wrong = base64.b64encode(b"triage-bot:wrong").decode()
        refused = http.post(identity.url, data={"token": JANE}, headers={"Authorization": f"Basic {wrong}"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
        assert "sub" not in refused.text
    assert JANE not in str(identity.emulator.requests())


def test_the_emulator_control_routes(identity: Identity) -> None:
    base = identity.url.removesuffix("/introspect")
    settings = identity.settings(session_cache_seconds=0)
    with httpx.Client(base_url=base, timeout=5) as http:
        added = {"session_id": "s-1", "sub": "customer-5", "email": "e@example.com", "scope": "reports:write"}
        assert http.post("/_emulator/sessions", json=added).json() == {"ok": True}
        assert http.post("/_emulator/sessions", json={"sub": "x"}).status_code == 400
        assert http.post("/_emulator/faults", json={"status": 503, "retry_after": 9}).json()["ok"]
        assert http.post("/_emulator/faults", json={"bogus": 1}).status_code == 400
        assert refusal(settings, "s-1", IdentityUnavailable).retry_after == 9
        assert http.delete("/_emulator/faults").json() == {"ok": True}
        assert run(settings, lambda v: v.verify("s-1")).sub == "customer-5"
        assert http.delete("/_emulator/sessions/s-1").json() == {"ok": True}
        refusal(settings, "s-1")
        log = http.get("/_emulator/requests").json()["requests"]
        assert [(r["status"], r["active"], r["fault"]) for r in log] == [
            (503, None, True),
            (200, True, False),
            (200, False, False),
        ]
        assert http.post("/_emulator/reset").json() == {"ok": True}
        assert identity.emulator.requests() == []
        assert http.delete("/_emulator/sessions/s-1").status_code == 404
