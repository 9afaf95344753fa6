"""The migrations build exactly the schema the models describe, on both databases, and go back down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from bot.db import migrate
from bot.db.engine import make_engine
from bot.db.models import Ticket


def test_migrations_match_the_models_and_downgrade(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
        assert migrate.schema_state(engine)[0] == "current"
        from alembic import command
        from alembic.script import ScriptDirectory

        # The check reads the files and the version row itself (no Alembic in serve or the workers); Alembic agrees.
        assert (
            migrate.head_revision()
            == ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_current_head()
        )
        with engine.connect() as connection:
            assert migrate.current_revision(engine) == MigrationContext.configure(connection).get_current_revision()
        command.downgrade(migrate.alembic_config(database_url), "-1")
        assert migrate.schema_state(engine)[0] == "behind"
        command.downgrade(migrate.alembic_config(database_url), "base")
        assert migrate.current_revision(engine) is None
        migrate.upgrade(database_url)
        assert migrate.schema_state(engine)[0] == "current"
    finally:
        engine.dispose()


def _row(engine: Any, table: str, **values: Any) -> None:
    """Insert a row as the schema of the moment has it: every required column filled, ``values`` as given."""
    columns = inspect(engine).get_columns(table)
    filler: dict[str, Any] = {}
    for column in columns:
        if column["name"] in values or column["nullable"] or column.get("autoincrement") is True:
            continue
        kind = str(column["type"]).upper()
        if column["name"] == "id":
            continue
        filler[column["name"]] = 1 if "INT" in kind else datetime(2026, 11, 1, tzinfo=UTC) if "TIME" in kind else "x"
    row = filler | values
    names = ", ".join(row)
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in row)})"), row)


def test_upgrading_keeps_what_was_stored_and_moves_queued_work_to_its_lanes(database_url: str) -> None:
    from alembic import command

    command.upgrade(migrate.alembic_config(database_url), "0006")
    engine = make_engine(database_url)
    try:
        _row(
            engine,
            "tickets",
            id=1,
            state="in_progress",
            assignee="U0PA1",
            jira_key="OPS-1",
            labels='{"service": "pay\\u0000ments"}',  # a NUL, as json.dumps escaped it in the text column
            annotations='{"summary": "checkout errors"}',
            alerts='[{"fingerprint": "f1", "status": "firing"}]',
        )
        _row(
            engine,
            "tickets",
            id=2,
            state="open",
            jira_key=None,
            dedup_hash="y",
            report_ref="R-ABCDEFGHJK",
            labels="{}",
            annotations="{}",
            alerts="[]",
        )
        queued = [
            (1, "ticket:1", "jira.transition", '{"state": "in_progress"}', "pending"),
            (2, "ticket:1", "jira.comment", '{"text": "hi"}', "pending"),
            (3, "ticket:1", "slack.card", "{}", "pending"),
            (4, "ticket:1", "jira.event", '{"event_id": 9}', "dead"),
            (5, "slack:41", "ticket.new", '{"event_id": 41}', "pending"),
            (6, "ticket:1", "slack.note", '{"text": "old"}', "done"),
            (7, "ticket:1", "jira.assign", '{"user": "U0PA1"}', "pending"),
            (8, "mail:R-ABCDEFGHJK", "mail.send", '{"kind": "receipt"}', "pending"),
            (9, "ticket:1", "jira.comment", '{"text": "refused"}', "dead"),
        ]
        for job_id, lane, kind, payload, status in queued:
            _row(engine, "jobs", id=job_id, lane=lane, kind=kind, payload=payload, status=status, attempts=0)
        migrate.upgrade(database_url)
        with engine.connect() as connection:
            tickets = {
                r.id: r
                for r in connection.execute(
                    text(
                        "SELECT id, labels, annotations, alerts, jira_status_synced, jira_assignee_synced FROM tickets"
                    )
                )
            }
            jobs = {r.id: r for r in connection.execute(text("SELECT id, lane, kind, payload, status FROM jobs"))}
    finally:
        engine.dispose()
    json_type = Ticket.__table__.c.labels.type  # type: ignore[attr-defined]
    dialect = make_engine(database_url).dialect
    load = json_type.dialect_impl(dialect).result_processor(dialect, None) or (lambda value: value)
    first = tickets[1]
    # JSONB cannot hold a NUL, so PostgreSQL's upgrade drops it; SQLite keeps the value as it was.
    kept = "payments" if dialect.name == "postgresql" else "pay\x00ments"
    assert load(first.labels) == {"service": kept} and load(first.alerts)[0]["fingerprint"] == "f1"
    assert (first.jira_status_synced, first.jira_assignee_synced) == ("in_progress", "U0PA1")
    assert (tickets[2].jira_status_synced, tickets[2].jira_assignee_synced) == (None, None)  # no issue yet
    assert {i: (j.lane, j.kind) for i, j in jobs.items()} == {
        1: ("jira:1", "jira.sync"),
        2: ("jira:1", "jira.comment"),
        3: ("slack:1", "slack.card"),
        4: ("jira-in:1", "jira.event"),
        5: ("new:41", "ticket.new"),
        6: ("ticket:1", "slack.note"),  # finished work stays as it was
        7: ("jira:1", "jira.sync"),
        8: ("mail:2", "mail.send"),
        9: ("jira:1", "jira.comment"),
    }
    assert load(jobs[1].payload) == {"force": ["status"]} and load(jobs[7].payload) == {"force": ["assignee"]}
    assert load(jobs[2].payload) == {"text": "hi"}
    # A comment refused for good no longer holds up the later work; an event Jira sent still does.
    assert (jobs[9].status, jobs[4].status) == ("refused", "dead")
