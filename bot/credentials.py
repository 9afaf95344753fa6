"""The bot's own bearer tokens as callers present them: `Authorization: Bearer <token>`, or Basic with the token as
the password (for senders and scrapers that only do basic auth), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac


def presented_secret(authorization: str) -> str | None:
    """The token in an Authorization header's value, or None when it holds none."""
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def token_matches(presented: str, token: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged header with one must not be a 500).
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode())
