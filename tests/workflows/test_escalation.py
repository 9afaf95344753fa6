from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.escalation import due, reminder
from workflows.states import TicketState as S

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
H = timedelta(hours=1)


def test_due_only_while_waiting_after_each_interval_up_to_the_limit() -> None:
    assert not due(S.OPEN, T0, 0, None, H, 3, T0 + H / 2)
    assert due(S.OPEN, T0, 0, None, H, 3, T0 + H)
    assert not due(S.OPEN, T0, 1, T0 + H, H, 3, T0 + H * 1.5)
    assert due(S.ASSIGNED, T0, 1, T0 + H, H, 3, T0 + H * 2)
    assert not due(S.OPEN, T0, 3, T0 + H * 3, H, 3, T0 + H * 10)
    assert not due(S.IN_PROGRESS, T0, 0, None, H, 3, T0 + H * 10)
    assert not due(S.OPEN, T0, 0, None, None, 3, T0 + H * 10)


def test_reminder_words() -> None:
    assert reminder(S.OPEN, timedelta(minutes=90), 1, 3) == (
        "this ticket has been open for 1h30m: please triage it. (reminder 1 of 3)"
    )
