"""Which failures are retried, and after how long."""

from __future__ import annotations

import pytest

from bot.jobs.retry import PermanentError, TryLater, Verdict, classify, delay_for, parse_retry_after


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
