"""Which failures are retried, and after how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from jira.exceptions import JIRAError
from requests.structures import CaseInsensitiveDict
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bot.jobs.retry import (
    LANE,
    SYSTEM,
    PermanentError,
    TryLater,
    Verdict,
    classify,
    delay_for,
    parse_rate_limit_reset,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("999999", 3600.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_header(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_classification() -> None:
    assert classify(PermanentError("bad field")) == Verdict(False)
    assert classify(TryLater("not yet", 2.0)) == Verdict(True, 2.0)
    assert classify(ValueError("a bug")) == Verdict(False)
    assert classify(ConnectionResetError()).retryable


def test_delays_honour_retry_after_with_a_little_jitter_else_back_off() -> None:
    assert 5.0 <= delay_for(1, Verdict(True, 5.0)) <= 5.5
    assert delay_for(1, Verdict(True)) < delay_for(6, Verdict(True)) <= 301


# --- 429s: how long, and whose limit (header values as Jira Cloud and Slack send them) ---------------------------

NOW = datetime(2026, 3, 26, 16, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2026-03-26T16:05Z", 30.0),  # Jira Cloud's form: to the minute
        ("2026-03-26T16:04:42Z", 12.0),
        ("2026-03-26T16:04:42.500+00:00", 12.5),
        ("2026-03-26T18:04:42+02:00", 12.0),
        ("2026-03-26T16:04:42", 12.0),  # no zone: UTC
        (str(NOW.timestamp() + 7), 7.0),  # epoch seconds
        ("2026-03-26T16:00Z", None),  # already past: says nothing about how long to wait
        ("17", None),  # seconds left, not a time: not Jira's meaning of the header
        ("2027-03-26T16:00Z", 3600.0),  # capped like Retry-After
        ("tomorrow", None),
        ("", None),
        (None, None),
    ],
)
def test_rate_limit_reset_header(header: str | None, expected: float | None) -> None:
    assert parse_rate_limit_reset(header, now=NOW) == pytest.approx(expected)


def _jira_error(status: int, headers: dict[str, str]) -> JIRAError:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    return JIRAError(
        "Rate limit exceeded.", status_code=status, url="https://x.atlassian.net/rest/api/2/issue", response=response
    )


def _slack_error(status: int, error: str, headers: dict[str, str]) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers,
        status_code=status,
    )
    return SlackApiError(error, response)


def test_a_jira_burst_limit_pauses_all_of_jira_for_as_long_as_it_says() -> None:
    exc = _jira_error(429, {"Retry-After": "5", "RateLimit-Reason": "jira-burst-based", "X-RateLimit-Remaining": "0"})
    assert classify(exc) == Verdict(
        True, 5.0, rate_limited=True, system="jira", scope=SYSTEM, reason="jira-burst-based"
    )


@pytest.mark.parametrize("reason", ["jira-quota-global-based", "jira-quota-tenant-based", "jira-cost-based", None])
def test_jira_quota_limits_and_unnamed_ones_are_the_whole_sites(reason: str | None) -> None:
    headers = {"Retry-After": "60"} | ({"RateLimit-Reason": reason} if reason else {})
    verdict = classify(_jira_error(429, headers))
    assert (verdict.scope, verdict.system, verdict.retry_after, verdict.reason) == (SYSTEM, "jira", 60.0, reason)


def test_the_per_issue_write_limit_holds_only_its_lane() -> None:
    verdict = classify(_jira_error(429, {"Retry-After": "2", "RateLimit-Reason": "jira-per-issue-on-write"}))
    assert (verdict.rate_limited, verdict.scope, verdict.retry_after) == (True, LANE, 2.0)


def test_the_beta_reason_header_is_read_too() -> None:
    verdict = classify(_jira_error(429, {"X-Beta-RateLimit-Reason": "jira-quota-tenant-based"}))
    assert (verdict.scope, verdict.reason, verdict.retry_after) == (SYSTEM, "jira-quota-tenant-based", None)


def test_without_retry_after_jiras_reset_time_says_how_long() -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    verdict = classify(_jira_error(429, {"X-RateLimit-Reset": reset, "RateLimit-Reason": "jira-burst-based"}))
    assert verdict.retry_after is not None and 88 <= verdict.retry_after <= 90
    # Retry-After wins when both are sent (the reset is the request's time plus it, to the minute).
    both = classify(_jira_error(429, {"X-RateLimit-Reset": reset, "Retry-After": "3"}))
    assert both.retry_after == 3.0


def test_a_jira_503_is_no_rate_limit() -> None:
    assert classify(_jira_error(503, {"Retry-After": "7"})) == Verdict(True, 7.0)


def test_a_slack_429_pauses_slack() -> None:
    verdict = classify(_slack_error(429, "ratelimited", {"retry-after": "30"}))
    assert verdict == Verdict(True, 30.0, rate_limited=True, system="slack", scope=SYSTEM)
    # Some Slack answers say so with HTTP 200 and the error alone.
    assert classify(_slack_error(200, "ratelimited", {})).scope == SYSTEM
    assert classify(_slack_error(503, "service_unavailable", {"Retry-After": "4"})) == Verdict(True, 4.0)
