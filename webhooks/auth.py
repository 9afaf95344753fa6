"""Who may call: a bearer token for alert senders; Grafana's HMAC signature when configured."""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request

from bot.credentials import presented_secret, token_matches
from webhooks.errors import Refusal

GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
SIGNATURE_WINDOW_SECONDS = 300


def require_token(request: Request, token: str) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise Refusal(
            401,
            "unauthorized",
            "send Authorization: Bearer <TRIAGE_WEBHOOK_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="triage-bot"'},
        )
    presented = presented_secret(header)
    if presented is None or not token_matches(presented, token):
        raise Refusal(
            401,
            "unauthorized",
            "the token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="triage-bot", error="invalid_token"'},
        )


def check_grafana_signature(request: Request, body: bytes, secret: str, timestamp_header: str | None) -> None:
    signature = request.headers.get(GRAFANA_SIGNATURE_HEADER, "")
    if not signature:
        raise Refusal(401, "missing_signature", f"{GRAFANA_SIGNATURE_HEADER} is required (hmacConfig is set)")
    message = body
    if timestamp_header:
        stamp = request.headers.get(timestamp_header, "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_WINDOW_SECONDS:
            raise Refusal(401, "stale_signature", f"{timestamp_header} is missing or outside 5 minutes")
        message = stamp.encode() + b":" + body
    if not hmac_matches(secret, message, signature):
        raise Refusal(401, "bad_signature", "the HMAC signature does not match the body")


def hmac_matches(secret: str, message: bytes, presented_hex: str) -> bool:
    """Is ``presented_hex`` the hex HMAC-SHA256 of ``message`` (Grafana's and Jira's signatures both are)?"""
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged header with one answered 500).
    return hmac.compare_digest(presented_hex.strip().lower().encode("utf-8", "surrogateescape"), expected.encode())
