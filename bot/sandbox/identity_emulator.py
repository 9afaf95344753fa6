"""The apps' identity service, emulated: OAuth 2.0 Token Introspection (RFC 7662) for sandbox mode and tests.

``POST /introspect`` speaks RFC 7662 as a real authorization server does:

- the body is ``application/x-www-form-urlencoded`` with ``token`` (and an optional ``token_type_hint``, which
  is ignored as §2.1 allows); a missing or repeated ``token`` is ``400 {"error": "invalid_request"}``;
- the caller authenticates itself (§2.1): ``Authorization: Bearer <token>``, or ``Basic`` with any client id
  and ``<token>`` as the secret; otherwise ``401 {"error": "invalid_client"}`` with ``WWW-Authenticate``;
- an unknown, revoked or expired session is ``200 {"active": false}`` and nothing else (§2.2);
- an active one is ``{"active": true, "sub", "email", "scope", "client_id", "token_type", "exp", "iat"}``.
  A session added without ``exp`` slides: each answer gives it another hour.

Faults, latency and a request log (session ids only as SHA-256 hashes) like the Jira and Slack emulators,
with unauthenticated ``/_emulator/*`` control routes. State: ``app.state.emulator`` (:class:`IdentityEmulator`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bot.settings import SANDBOX_IDENTITY_TOKEN

Json = dict[str, Any]

CLIENT_ID = "triage-app"  # the app the sessions were issued to
SLIDING_SECONDS = 3600
REALM = "identity-emulator"


@dataclass(frozen=True)
class SandboxSession:
    session_id: str
    sub: str
    email: str | None
    scope: str = "reports:write"
    active: bool = True
    exp: int | None = None  # epoch seconds; None: a sliding session that never runs out


DEFAULT_SESSIONS = (
    SandboxSession("sandbox-session-jane", "customer-1001", "jane.doe@example.com", "reports:write reports:read"),
    SandboxSession("sandbox-session-john", "customer-1002", "john.roe@example.com", "reports:write reports:read"),
    SandboxSession("sandbox-session-readonly", "customer-1003", "reed.only@example.com", "reports:read"),
    SandboxSession("sandbox-session-expired", "customer-1004", "old.timer@example.com", exp=1_000_000_000),
)


@dataclass
class _Session:
    sub: str
    email: str | None
    scope: str
    active: bool
    exp: int | None
    iat: int


@dataclass
class Fault:
    """An injected failure of ``/introspect``: HTTP ``status`` (None or < 400: latency only), or a 200 whose
    body is ``body`` as given (a malformed answer)."""

    status: int | None = 503
    count: int | None = None  # number of requests to hit, None = unlimited
    seconds: float | None = None  # active for this long from creation, None = until cleared
    retry_after: int | None = None
    latency: float = 0.0
    body: str | None = None
    created: float = field(default_factory=time.monotonic)

    def alive(self, now: float) -> bool:
        return (self.count is None or self.count > 0) and (self.seconds is None or now < self.created + self.seconds)

    @property
    def answers(self) -> bool:
        """Does it answer in the service's stead (an error status or a malformed body), or only delay?"""
        return self.body is not None or (self.status is not None and self.status >= 400)

    def response(self) -> Response:
        if self.body is not None:
            return Response(self.body, 200, media_type="application/json", headers={"Cache-Control": "no-store"})
        status = self.status or 503
        error = {429: "slow_down", 503: "temporarily_unavailable"}.get(status, "server_error")
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return JSONResponse({"error": error, "error_description": HTTPStatus(status).phrase}, status, headers=headers)


class IdentityEmulator:
    """Sessions, faults and the request log of one emulated identity service. Public methods are thread-safe."""

    def __init__(self, token: str = SANDBOX_IDENTITY_TOKEN, sessions: Iterable[SandboxSession] = DEFAULT_SESSIONS):
        self.token = token
        self._initial = tuple(sessions)
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Back to the initial sessions, with no faults, an empty request log and a true clock."""
        with self._lock:
            self._sessions: dict[str, _Session] = {}
            self._faults: list[Fault] = []
            self._log: list[Json] = []
            self.clock_offset = 0.0
            for s in self._initial:
                self.add_session(s.session_id, s.sub, s.email, s.scope, s.active, s.exp)

    def add_session(
        self,
        session_id: str,
        sub: str,
        email: str | None,
        scope: str = "reports:write",
        active: bool = True,
        exp: int | None = None,
    ) -> None:
        """Issue (or replace) a session; ``exp`` in epoch seconds, None for one that never runs out."""
        if not session_id or not sub:
            raise ValueError("a session needs an id and a sub")
        with self._lock:
            self._sessions[session_id] = _Session(sub, email, scope, active, exp, int(self.now()))

    def revoke(self, session_id: str) -> bool:
        """The customer logged out (or was locked out): the session is inactive from now on."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.active = False
            return session is not None

    def set_clock_offset(self, seconds: float) -> None:
        """Run the emulator's clock ``seconds`` ahead (negative: behind) of the real one, as a service whose
        clock drifted would: it then calls a session active that the caller knows has expired."""
        with self._lock:
            self.clock_offset = seconds

    def now(self) -> float:
        return time.time() + self.clock_offset

    def set_fault(
        self,
        status: int | None = 503,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = None,
        latency: float = 0.0,
        body: str | None = None,
    ) -> Fault:
        """Add a fault for ``/introspect``; the most recently added live fault wins. ``body``: answer 200 with
        exactly this instead of an RFC 7662 answer (``status`` is then not used)."""
        if status is not None:
            HTTPStatus(status)  # ValueError for nonsense
        fault = Fault(status, count, seconds, retry_after, latency, body)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self) -> list[Json]:
        """``/introspect`` requests, oldest first: time, status, client (auth scheme or None), token_sha256,
        token_type_hint, active (None when the request failed) and fault. Raw tokens are never kept."""
        with self._lock:
            return [dict(e) for e in self._log]

    def take_fault(self) -> Fault | None:
        with self._lock:
            now = time.monotonic()
            self._faults = [f for f in self._faults if f.alive(now)]
            fault = self._faults[-1] if self._faults else None
            if fault is not None and fault.count is not None:
                fault.count -= 1
            return fault

    def authenticate(self, header: str | None) -> str | None:
        """The scheme the caller authenticated with (``bearer`` or ``basic``), or None."""
        scheme, _, credentials = (header or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return "bearer" if hmac.compare_digest(credentials.encode(), self.token.encode()) else None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, colon, secret = decoded.partition(":")
            secret = urllib.parse.unquote_plus(secret)  # RFC 6749 §2.3.1: form-encoded before base64
            ok = colon and client_id and hmac.compare_digest(secret.encode(), self.token.encode())
            return "basic" if ok else None
        return None

    def introspect(self, token: str) -> Json:
        """The RFC 7662 §2.2 answer for ``token``."""
        with self._lock:
            session = self._sessions.get(token)
            now = self.now()
            if session is None or not session.active or (session.exp is not None and session.exp <= now):
                return {"active": False}
            exp = session.exp if session.exp is not None else int(now) + SLIDING_SECONDS
            answer: Json = {"active": True, "sub": session.sub, "email": session.email, "scope": session.scope}
            return answer | {"client_id": CLIENT_ID, "token_type": "access_token", "exp": exp, "iat": session.iat}

    def record(self, entry: Json) -> None:
        with self._lock:
            self._log.append(entry)


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = {"Cache-Control": "no-store"} | (headers or {})
    return JSONResponse({"error": error, "error_description": description}, status, headers=headers)


def _form(raw: bytes) -> dict[str, list[str]] | None:
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def create_identity_emulator(token: str = SANDBOX_IDENTITY_TOKEN) -> FastAPI:
    """Build the emulator app; ``token`` is the credential its one client (the bot) presents."""
    emu = IdentityEmulator(token)
    app = FastAPI(title="Identity service emulator (RFC 7662 token introspection)")
    app.state.emulator = emu

    @app.post("/introspect")
    async def introspect(request: Request) -> Response:
        started, raw = time.time(), await request.body()
        header = request.headers.get("authorization")
        fault = emu.take_fault()
        if fault is not None and fault.latency:
            await asyncio.sleep(fault.latency)
        client = emu.authenticate(header)
        form = _form(raw)
        tokens = (form or {}).get("token", [])
        hints = (form or {}).get("token_type_hint", [])
        active: bool | None = None
        response: Response
        if fault is not None and fault.answers:
            response = fault.response()
        elif client is None:
            scheme = "Basic" if (header or "").lower().startswith("basic") else "Bearer"
            challenge = {"WWW-Authenticate": f'{scheme} realm="{REALM}"'}
            message = "client authentication failed" if header else "client authentication is required"
            response = _oauth_error(401, "invalid_client", message, challenge)
        elif not request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
            response = _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        elif form is None or len(tokens) != 1 or not tokens[0] or len(hints) > 1:
            response = _oauth_error(400, "invalid_request", "exactly one token parameter is required")
        else:
            answer = emu.introspect(tokens[0])
            active = answer["active"]
            response = JSONResponse(answer, headers={"Cache-Control": "no-store"})
        emu.record(
            {"time": started, "status": response.status_code, "client": client}
            | {"token_sha256": hashlib.sha256(tokens[0].encode()).hexdigest() if tokens else None}
            | {"token_type_hint": hints[0] if hints else None, "active": active}
            | {"fault": bool(fault and fault.answers)}
        )
        return response

    @app.post("/_emulator/sessions")
    async def add_session(request: Request) -> JSONResponse:
        try:
            data = await request.json()
            emu.add_session(**data)
        except (TypeError, ValueError) as err:
            return JSONResponse({"ok": False, "error": f"invalid session: {err}"}, 400)
        return JSONResponse({"ok": True})

    @app.delete("/_emulator/sessions/{session_id}")
    async def revoke(session_id: str) -> JSONResponse:
        found = emu.revoke(session_id)
        return JSONResponse({"ok": found} | ({} if found else {"error": "no such session"}), 200 if found else 404)

    @app.get("/_emulator/requests")
    async def request_log() -> Json:
        return {"ok": True, "requests": emu.requests()}

    @app.post("/_emulator/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            fault = emu.set_fault(**await request.json())
        except (TypeError, ValueError) as err:
            return JSONResponse({"ok": False, "error": f"invalid fault: {err}"}, 400)
        return JSONResponse({"ok": True, "fault": asdict(fault)})

    @app.delete("/_emulator/faults")
    async def clear_faults() -> Json:
        emu.clear_faults()
        return {"ok": True}

    @app.post("/_emulator/reset")
    async def reset() -> Json:
        emu.reset()
        return {"ok": True}

    return app
