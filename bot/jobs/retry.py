"""The one retry layer for every outside system: the job queue.

The Jira and Slack clients are built with their own retries switched off; a failed call fails its job,
and the queue runs it again after a delay chosen here: what the server asked for in ``Retry-After`` (or Jira's
``X-RateLimit-Reset``), else exponential backoff with jitter (tenacity's strategy). Errors that no retry can fix
end the job at once. A 429 also says whose limit it was: the whole system's (every lane of it waits, see
bot.jobs.budget) or one Jira issue's (``RateLimit-Reason: jira-per-issue-on-write``: only its lane waits).
"""

from __future__ import annotations

import email.utils
import math
import random
import smtplib
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import requests
import tenacity
from jira.exceptions import JIRAError
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy.exc import InterfaceError, OperationalError

MAX_RETRY_AFTER = 3600.0
_BACKOFF = tenacity.wait_exponential_jitter(initial=1, max=300, exp_base=2, jitter=1)
_RETRYABLE_HTTP = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_RETRYABLE_SLACK = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


# Whose limit a 429 hit: the outside system's as a whole (every lane of it waits), or only this job's lane.
Scope = Literal["system", "lane"]
SYSTEM: Scope = "system"
LANE: Scope = "lane"
# Jira Cloud's per-issue write limit: only writes to that one issue must slow down, the rest of Jira goes on.
# Every other reason (jira-burst-based, jira-quota-global-based, jira-quota-tenant-based, jira-cost-based, none)
# is taken as a limit of the whole site.
PER_ISSUE_REASONS = frozenset({"jira-per-issue-on-write"})
# Where Jira Cloud says which limit it was; the X-Beta- form is seen on sites testing the points-based quotas.
REASON_HEADERS = ("RateLimit-Reason", "X-RateLimit-Reason", "X-Beta-RateLimit-Reason")


@dataclass(frozen=True)
class Verdict:
    retryable: bool
    retry_after: float | None = None  # what the server asked for (Retry-After, else X-RateLimit-Reset), seconds
    rate_limited: bool = False  # a 429: the request was refused unprocessed, so the attempt does not count
    system: str | None = None  # whose 429 it was: "jira" or "slack"
    scope: Scope | None = None  # for a 429: the whole system waits, or only this lane
    reason: str | None = None  # Jira's RateLimit-Reason, as sent


_noticed = threading.local()


def notice(verdict: Verdict) -> None:
    """A client saw a 429 (every call passes here, whatever the handler then does with the error): the worker
    running the job on this thread reports it to the system's budget when the job ends (take_noticed). Only the
    latest per system is kept, so threads that run no jobs (the HTTP server's) hold at most one each."""
    if verdict.rate_limited and verdict.system is not None:
        seen: dict[str, Verdict] | None = getattr(_noticed, "seen", None)
        if seen is None:
            seen = _noticed.seen = {}
        seen[verdict.system] = verdict


def take_noticed() -> list[Verdict]:
    """The 429s this thread's calls saw since the last look (the latest per system), forgotten as they are taken."""
    seen: dict[str, Verdict] | None = getattr(_noticed, "seen", None)
    if not seen:
        return []
    taken = list(seen.values())
    seen.clear()
    return taken


def jira_response_seen(response: Any, *args: Any, **kwargs: Any) -> None:
    """A requests response hook for the Jira client's session: notices every 429, whichever call it answered."""
    if getattr(response, "status_code", None) == 429:
        notice(_jira_429(_headers(response)))


class PermanentError(Exception):
    """No retry can fix this (bad configuration, a rejected field): the job is kept as dead at once."""


class TryLater(Exception):
    """Not yet possible (e.g. waiting for another job of the lane); retried with backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None  # a header we cannot read: fall back to our own backoff
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_rate_limit_reset(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds until ``X-RateLimit-Reset``. Jira Cloud sends an ISO 8601 timestamp to the minute
    (``2026-03-26T16:05Z``); seconds, an offset, or epoch seconds are read too. None when unreadable or not in
    the future (a reset already past says nothing about how long to wait: our own backoff decides)."""
    if not value:
        return None
    value = value.strip()
    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            epoch = float(value)
        except ValueError:
            return None
        if not math.isfinite(epoch) or epoch < 1e9:  # not a timestamp (some APIs send seconds left here)
            return None
        moment = datetime.fromtimestamp(epoch, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _headers(response: Any) -> Any:
    return getattr(response, "headers", None) or {}


def _header(headers: Any, name: str) -> str | None:
    """A header by name, whatever the case of the mapping's keys (requests folds case, slack_sdk does not)."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


def _jira_429(headers: Any) -> Verdict:
    """Jira's answer to a request over a limit: how long (Retry-After, else X-RateLimit-Reset) and whose limit."""
    after = parse_retry_after(_header(headers, "Retry-After"))
    if after is None:
        after = parse_rate_limit_reset(_header(headers, "X-RateLimit-Reset"))
    reason = next((v.strip() for v in (_header(headers, h) for h in REASON_HEADERS) if v and v.strip()), None)
    scope = LANE if reason is not None and reason.lower() in PER_ISSUE_REASONS else SYSTEM
    return Verdict(True, after, rate_limited=True, system="jira", scope=scope, reason=reason)


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, PermanentError):
        return Verdict(False)
    if isinstance(exc, TryLater):
        return Verdict(True, exc.retry_after)
    if isinstance(exc, JIRAError):
        status = exc.status_code
        headers = _headers(exc.response) if exc.response is not None else {}
        if status == 429:
            return _jira_429(headers)
        if status is None or status in _RETRYABLE_HTTP:
            return Verdict(True, parse_retry_after(_header(headers, "Retry-After")))
        return Verdict(False)
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        after = parse_retry_after(_header(exc.response.headers or {}, "Retry-After"))
        if status == 429 or error in ("ratelimited", "rate_limited"):
            # Slack's limits are per method (chat.postMessage also per channel); the budget keeps one per system.
            return Verdict(True, after, rate_limited=True, system="slack", scope=SYSTEM)
        if status in _RETRYABLE_HTTP or error in _RETRYABLE_SLACK:
            return Verdict(True, after)
        return Verdict(False)
    if isinstance(exc, OperationalError | InterfaceError) or getattr(exc, "connection_invalidated", False):
        return Verdict(True)  # the database restarted, a deadlock was broken, SQLite stayed locked: try again
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return Verdict(status in _RETRYABLE_HTTP, parse_retry_after(exc.response.headers.get("Retry-After")))
    if isinstance(exc, smtplib.SMTPException):  # before OSError, its base class
        return _smtp_verdict(exc)
    if isinstance(exc, requests.RequestException | SlackRequestError | OSError | socket.timeout | TimeoutError):
        return Verdict(True)
    return Verdict(False)


def _smtp_verdict(exc: smtplib.SMTPException) -> Verdict:
    """SMTP says in the reply code whether to try again: 4xx is temporary (greylisting, a full queue, 421 while
    the server restarts), 5xx final (550 no such mailbox, 554, 535 a wrong password). A dropped connection is
    retried; other client-side errors (no STARTTLS, no AUTH, SMTPUTF8 needed) are configuration, not luck."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return Verdict(bool(codes) and not any(500 <= code < 600 for code in codes))
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data refused, greeting, HELO, AUTH
        return Verdict(not 500 <= exc.smtp_code < 600)  # 4xx, or a garbled reply (-1): try again
    return Verdict(isinstance(exc, smtplib.SMTPServerDisconnected))


class _Attempt:
    """The slice of tenacity's RetryCallState its wait strategies read."""

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


def delay_for(attempt: int, verdict: Verdict) -> float:
    """Seconds to wait before attempt ``attempt + 1``."""
    if verdict.retry_after is not None:
        # What the server asked for, plus up to 10% so that jobs told to wait together do not return together.
        return verdict.retry_after * (1 + random.random() / 10)  # noqa: S311 - jitter, not security
    return float(_BACKOFF(_Attempt(attempt)))  # type: ignore[arg-type]
