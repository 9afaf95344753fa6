"""One clock for the whole service: aware UTC datetimes (sqlmodel stores and returns them as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
