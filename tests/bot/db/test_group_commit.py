"""Group commit on a real database (SQLite and PostgreSQL): writes queued together share one commit, and one
that fails fails alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from bot.db.group_commit import GroupCommit
from bot.db.models import InboundEvent


def _event(delivery: str, gate: threading.Event | None = None) -> Any:
    def write(session: Session) -> int:
        if gate is not None:
            gate.wait(10)
        event = InboundEvent(source="test", delivery_id=delivery, body="{}")
        session.add(event)
        session.flush()
        assert event.id is not None
        return event.id

    return write


def test_writes_queued_meanwhile_share_a_commit_and_a_bad_one_fails_alone(engine: Any) -> None:
    commits = GroupCommit(engine, max_batch=64)
    gate = threading.Event()
    first = commits.submit(_event("d-first", gate))  # holds the committer while the others queue
    rest = [commits.submit(_event(f"d-{n}")) for n in range(20)]
    duplicate = commits.submit(_event("d-7"))  # the same delivery twice: the database refuses the second
    gate.set()
    assert first.result(10) > 0
    ids = [future.result(10) for future in rest]
    assert len(set(ids)) == 20
    with pytest.raises(IntegrityError):
        duplicate.result(10)
    commits.stop()
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(InboundEvent)).one() == 21


def test_stop_commits_what_is_queued(engine: Any) -> None:
    commits = GroupCommit(engine)
    futures = [commits.submit(_event(f"s-{n}")) for n in range(10)]
    commits.stop()
    assert all(future.done() and future.exception() is None for future in futures)
