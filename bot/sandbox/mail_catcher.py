"""A real SMTP server that keeps what it is sent (aiosmtpd), for sandbox mode and tests.

It listens on 127.0.0.1 on a port the system picks, without TLS or login (``target`` says where). Messages are
kept in memory and listed at ``GET /_emulator/messages`` of ``create_mail_catcher_app``. ``set_down(True)`` stops
listening, as a crashed server would (connections are refused), and ``set_down(False)`` listens again on the same
port; ``set_refusal("451 4.3.0 ...")`` answers every message with that reply instead of keeping it (a server
that defers mail, or refuses it for good with a 5xx), until ``set_refusal(None)``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from bot.mail.mailer import SmtpTarget

JSON = dict[str, Any]


class EphemeralPortController(Controller):
    """An aiosmtpd ``Controller`` that takes ``port=0`` (any free port; read ``.port`` after ``start()``).

    aiosmtpd 1.4 connects to ``self.port`` to check that the server is up, which fails for port 0
    (aio-libs/aiosmtpd#388): read the port the system picked first."""

    def _trigger_server(self) -> None:
        if self.server is not None and self.port == 0:
            self.port = cast(asyncio.Server, self.server).sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _Keeper:
    """The aiosmtpd handler: parses each message and hands it to the catcher."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self._catcher.refusal
        if refusal is not None:
            self._catcher.refused += 1
            return refusal
        raw = envelope.original_content or envelope.content or b""
        raw = raw if isinstance(raw, bytes) else raw.encode()
        self._catcher._keep(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return "250 2.0.0 OK: kept by the sandbox mail catcher"


class MailCatcher:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._controller: EphemeralPortController | None = None
        self._messages: list[JSON] = []
        self._changed = threading.Condition()
        self._down = False
        self.refusal: str | None = None  # an SMTP reply to every message, in place of keeping it
        self.refused = 0  # messages answered with the refusal

    def set_refusal(self, reply: str | None) -> None:
        """Answer every message's DATA with ``reply`` (e.g. ``451 4.3.0 try again later``), or keep them again."""
        if reply is not None and not (len(reply) > 4 and reply[:3].isdigit() and reply[0] in "45"):
            raise ValueError("an SMTP reply such as '451 4.3.0 try again later'")
        self.refusal = reply

    @property
    def target(self) -> SmtpTarget:
        """Where to send: plain SMTP, no login."""
        if self.port == 0:
            raise RuntimeError("the mail catcher is not started")
        return SmtpTarget(host=self.host, port=self.port, tls="off")

    def start(self) -> Self:
        if self._controller is not None:
            raise RuntimeError("the mail catcher is already started")
        controller = EphemeralPortController(
            _Keeper(self),
            hostname=self.host,
            port=self.port,
            server_hostname="mail-catcher.sandbox",  # not socket.getfqdn(), which can wait on DNS
            ready_timeout=5.0,
        )
        controller.start()
        self._controller, self.port = controller, controller.port
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def set_down(self, down: bool) -> None:
        """Down: connections are refused. Up again: the same port, the messages kept so far."""
        with self._changed:
            if down == self._down:
                return
            self._down = down
        if down:
            self.stop()
        else:
            self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def messages(self) -> list[JSON]:
        """Every message received, oldest first: from, to, subject, message_id, text, html, raw, received_at."""
        with self._changed:
            return [dict(message) for message in self._messages]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[JSON]:
        """The messages once there are at least ``count``; TimeoutError if they do not come in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} message(s) after {timeout}s, expected {count}")
                self._changed.wait(left)
            return [dict(message) for message in self._messages]

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def _keep(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        entry: JSON = {
            "from": mail_from,
            "to": rcpt_tos,
            "subject": str(parsed.get("Subject", "")),
            "message_id": str(parsed.get("Message-ID", "")),
            "text": _part(parsed, "plain"),
            "html": _part(parsed, "html"),
            "raw": raw.decode("utf-8", errors="replace"),
            "received_at": datetime.now(UTC).isoformat(),
        }
        with self._changed:
            self._messages.append(entry)
            self._changed.notify_all()


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_subtype() != subtype:
        return None
    content = body.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


def create_mail_catcher_app(catcher: MailCatcher) -> FastAPI:
    """``GET /_emulator/messages``: what the bot has sent, for people trying the sandbox."""
    app = FastAPI(title="Mail catcher", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catcher = catcher

    @app.get("/_emulator/messages")
    async def all_messages() -> list[JSON]:
        return catcher.messages()

    return app
