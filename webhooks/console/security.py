"""Who may use the console, and proof that a form came from it.

- The console is on when ``TRIAGE_CONSOLE_TOKEN`` is set (a login, in every mode) or in full sandbox mode without
  it (open: nothing real is reachable through it); otherwise every console path is 404.
- The token is exchanged at the login page for a session cookie: signed (HMAC-SHA256 with a key derived from the
  token, so every replica accepts it and changing the token ends every session), ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` when the console's public URL is https, for 12 hours.
- Every browser gets a session (an anonymous one before the login) whose id keys its CSRF token: every POST must
  carry it, compared in constant time. A forged or missing one is 403 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from bot.settings import Settings

COOKIE = "triage_console"
LIFETIME = 12 * 3600
NAME_LIMIT = 64


@dataclass(frozen=True)
class ConsoleSession:
    sid: str  # random, per browser; keys the CSRF token
    who: str | None  # the name given at the login; None: not logged in
    expires: int

    @property
    def logged_in(self) -> bool:
        return self.who is not None


class Keys:
    """The console's signing key: from TRIAGE_CONSOLE_TOKEN when it is set (shared by every replica), otherwise
    random for this process (the open sandbox console: its sessions end with the process)."""

    def __init__(self, settings: Settings) -> None:
        token = settings.console_token.get_secret_value() if settings.console_token is not None else None
        self.token = token
        seed = token.encode() if token is not None else secrets.token_bytes(32)
        self._key = hmac.new(seed, b"triage-bot console session v1", hashlib.sha256).digest()
        self.secure = settings.base_url.startswith("https://")

    def sign(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest()).decode().rstrip("=")

    def token_matches(self, presented: str) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(
            hashlib.sha256(presented.encode()).digest(), hashlib.sha256(self.token.encode()).digest()
        )

    # ---- the cookie --------------------------------------------------------------------------------------------
    def encode(self, session: ConsoleSession) -> str:
        body = json.dumps({"sid": session.sid, "who": session.who, "exp": session.expires}, separators=(",", ":"))
        data = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{data}.{self.sign(data.encode())}"

    def decode(self, value: str | None) -> ConsoleSession | None:
        if not value or value.count(".") != 1 or len(value) > 1024:
            return None
        data, signature = value.split(".")
        if not hmac.compare_digest(signature.encode(), self.sign(data.encode()).encode()):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            session = ConsoleSession(str(body["sid"]), body["who"], int(body["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < time.time() or (session.who is not None and not isinstance(session.who, str)):
            return None
        return session

    def csrf(self, session: ConsoleSession) -> str:
        return self.sign(f"csrf:{session.sid}".encode())

    def csrf_matches(self, session: ConsoleSession, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented).encode(), self.csrf(session).encode())

    def set_cookie(self, response: Response, session: ConsoleSession) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(session),
            max_age=max(0, session.expires - int(time.time())),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


def new_session(who: str | None = None) -> ConsoleSession:
    return ConsoleSession(secrets.token_urlsafe(18), who, int(time.time()) + LIFETIME)


def session_of(request: Request, keys: Keys) -> tuple[ConsoleSession, bool]:
    """The request's session, and whether it is new (its cookie must be set on the answer)."""
    found = keys.decode(request.cookies.get(COOKIE))
    return (found, False) if found is not None else (new_session(), True)


# CSP: nothing inline, nothing from elsewhere but the images messages show (Slack shows them too); the inbox's
# e-mails are shown in a sandboxed frame of their own (srcdoc), which inherits this policy.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; "
    "frame-src 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
