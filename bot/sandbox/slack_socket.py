"""Socket Mode for the Slack emulator: ``apps.connections.open`` and the WebSocket Slack then talks over.

Wire format as real Slack's (https://docs.slack.dev/apis/events-api/using-socket-mode; slack_sdk's own mock
server): ``apps.connections.open`` takes the app-level token (a bot token is ``not_allowed_token_type``, any other
token ``invalid_auth``) and answers ``{"ok": true, "url": "wss://.../link/?ticket=...&app_id=..."}``; a URL opens
one connection. On connect the server sends ``{"type": "hello", "num_connections": N, "debug_info": {...},
"connection_info": {"app_id": ...}}``, then envelopes ``{"envelope_id", "type": "interactive" | "slash_commands" |
"events_api", "payload", "accepts_response_payload"}``, each acknowledged by the app with
``{"envelope_id", "payload"?}``. ``{"type": "disconnect", "reason": "refresh_requested"}`` asks the app to open a
new connection, as Slack does every few hours.

Tests drive it from their own thread: ``deliver(kind, payload)`` or ``deliver_form(body)`` (the form body that
``SlackEmulator.click`` / ``submit_view`` build for HTTP) send one envelope to the newest connection and return
the app's ack. The server running the emulator must speak WebSocket (uvicorn's ``ws`` option, not ``none``).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, WebSocket

JSON = dict[str, Any]

SANDBOX_APP_TOKEN = "xapp-sandbox"  # noqa: S105 - matches bot.settings.SANDBOX_SLACK_APP_TOKEN
KINDS = ("interactive", "slash_commands", "events_api")
# Interactive payloads whose ack may carry a response (a modal's errors, an options list), as on Slack.
RESPONDING = {"view_submission", "block_suggestion"}


@dataclass(eq=False)
class _Connection:
    id: int
    websocket: WebSocket
    loop: asyncio.AbstractEventLoop
    acks: dict[str, asyncio.Future[JSON]] = field(default_factory=dict)
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: JSON) -> None:
        async with self.sending:
            await self.websocket.send_text(json.dumps(message))


class SocketModeHub:
    """The Socket Mode side of the emulated workspace; public methods are thread-safe."""

    def __init__(self, *, app_token: str, bot_token: str, app_id: str) -> None:
        self.app_token, self.bot_token, self.app_id = app_token, bot_token, app_id
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._open: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._opened = 0
        self._log: list[JSON] = []

    # ----- apps.connections.open (called from SlackEmulator's dispatch) -----
    def open_connection(self, auth: str | None, token_param: str | None, base_url: str) -> JSON:
        token = auth[7:] if auth and auth.startswith("Bearer ") else token_param
        if not token:
            return {"ok": False, "error": "not_authed"}
        if hmac.compare_digest(token.encode(), self.bot_token.encode()):
            return {"ok": False, "error": "not_allowed_token_type"}
        if not hmac.compare_digest(token.encode(), self.app_token.encode()):
            return {"ok": False, "error": "invalid_auth"}
        ticket = secrets.token_hex(16)
        with self._lock:
            self._tickets.add(ticket)
        ws_base = "ws" + base_url.removeprefix("http")  # http://... -> ws://..., https://... -> wss://...
        return {"ok": True, "url": f"{ws_base}link/?ticket={ticket}&app_id={self.app_id}"}

    # ----- the WebSocket -----
    def install(self, app: FastAPI) -> None:
        app.add_api_websocket_route("/link/", self.serve)

        @app.get("/_emulator/socket")
        async def socket_status() -> JSON:
            return {"ok": True} | self.status()

    async def serve(self, websocket: WebSocket) -> None:
        ticket = websocket.query_params.get("ticket", "")
        with self._lock:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # each URL is good for one connection
        if not valid:
            await websocket.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        await websocket.accept()
        conn = _Connection(next(self._ids), websocket, asyncio.get_running_loop())
        with self._lock:
            self._open[conn.id] = conn
            self._opened += 1
            count = len(self._open)
        debug = {"host": f"applink-sandbox-{conn.id}", "build_number": 1, "approximate_connection_time": 18060}
        hello = {"type": "hello", "num_connections": count, "debug_info": debug}
        await conn.send(hello | {"connection_info": {"app_id": self.app_id}})
        self._record("hello", conn, hello)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self._acknowledged(conn, message.get("text") or (message.get("bytes") or b"").decode())
        finally:
            with self._lock:
                self._open.pop(conn.id, None)
            for pending in conn.acks.values():
                if not pending.done():
                    pending.set_exception(ConnectionError("the app disconnected before acknowledging"))
            self._record("closed", conn, {})

    def _acknowledged(self, conn: _Connection, text: str) -> None:
        try:
            ack = json.loads(text)
        except ValueError:
            ack = None
        self._record("received", conn, {"text": text})
        if not isinstance(ack, dict):
            return
        pending = conn.acks.get(str(ack.get("envelope_id")))
        if pending is not None and not pending.done():
            pending.set_result(ack)

    def _record(self, event: str, conn: _Connection, data: JSON) -> None:
        with self._lock:
            self._log.append({"event": event, "connection": conn.id, "at": time.time()} | data)

    # ----- acting as Slack towards the app -----
    def deliver(
        self, kind: str, payload: JSON, timeout: float = 10.0, *, accepts_response_payload: bool | None = None
    ) -> JSON:
        """Send one envelope to the newest connection and wait for the app's ack (``{"envelope_id", "payload"?}``).

        Call from any thread but the emulator's own. RuntimeError if no app is connected, TimeoutError if the app
        does not acknowledge within ``timeout`` (Slack would retry it), ConnectionError if it disconnects first."""
        if kind not in KINDS:
            raise ValueError(f"envelope type {kind!r} is not one of {KINDS}")
        conn = self._newest()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is conn.loop:
            raise RuntimeError("deliver() waits for the ack: call it from another thread than the emulator's")
        accepts = kind == "slash_commands" if accepts_response_payload is None else accepts_response_payload
        acked = asyncio.wait_for(self._deliver(conn, kind, payload, accepts), timeout)
        return asyncio.run_coroutine_threadsafe(acked, conn.loop).result(timeout + 1)

    def deliver_form(self, body: str, timeout: float = 10.0) -> JSON:
        """Deliver what Slack would have POSTed to the Request URL: ``payload=<json>`` (interactivity, e.g. the body
        of ``SlackEmulator.click`` or ``submit_view``) or a slash command's form fields."""
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        if "payload" in form:
            payload = json.loads(form["payload"])
            accepts = payload.get("type") in RESPONDING
            return self.deliver("interactive", payload, timeout, accepts_response_payload=accepts)
        return self.deliver("slash_commands", form, timeout, accepts_response_payload=True)

    def disconnect(self, reason: str = "refresh_requested") -> int:
        """Tell every connected app to reconnect, as Slack does before it recycles a connection (``warning``,
        ``refresh_requested``) or when Socket Mode is turned off (``link_disabled``). Returns how many were told."""
        with self._lock:
            conns = list(self._open.values())
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
        for conn in conns:
            asyncio.run_coroutine_threadsafe(conn.send(message), conn.loop).result(5)
            self._record("disconnect", conn, {"reason": reason})
        return len(conns)

    def status(self) -> JSON:
        """Connections open now, opened in all, and what went over them (hello, envelopes, acks)."""
        with self._lock:
            return {"open": len(self._open), "opened": self._opened, "log": [dict(e) for e in self._log]}

    def _newest(self) -> _Connection:
        with self._lock:
            if not self._open:
                raise RuntimeError("no app is connected over Socket Mode")
            return self._open[max(self._open)]

    async def _deliver(self, conn: _Connection, kind: str, payload: JSON, accepts: bool) -> JSON:
        envelope: JSON = {"envelope_id": str(uuid.uuid4()), "type": kind, "payload": payload}
        envelope["accepts_response_payload"] = accepts
        if kind == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        ack: asyncio.Future[JSON] = conn.loop.create_future()
        conn.acks[envelope["envelope_id"]] = ack
        try:
            await conn.send(envelope)
            self._record("sent", conn, {"envelope_id": envelope["envelope_id"], "type": kind})
            return await ack
        finally:
            conn.acks.pop(envelope["envelope_id"], None)
