"""Tables. Schema changes go through Alembic migrations (bot/db/migrations), never create_all() in the app."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Dialect, Index, LargeBinary, SmallInteger, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Column, Field, SQLModel

from bot.clock import utcnow
from workflows.escaping import without_nul


class Json(TypeDecorator[Any]):
    """JSON held in the database: JSONB on PostgreSQL, JSON text on SQLite; read and written as Python values.
    Text from outside may carry NUL characters, which JSONB refuses: they are dropped on the way in."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return without_nul(value)


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"  # failed for good and holds its lane: the jobs after it wait (triage-bot jobs retry/drop)
    REFUSED = "refused"  # failed for good (an outside system said no), holding nothing up; retryable


class InboundEvent(SQLModel, table=True):
    """Every accepted inbound request, kept as it came: the record of what the bot was told."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("source", "delivery_id", name="uq_inbound_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    delivery_id: str | None = Field(default=None, max_length=255)
    received_at: datetime = Field(default_factory=utcnow)
    body: str = Field(sa_column=Column(Text, nullable=False))


class Job(SQLModel, table=True):
    """A unit of work for the workers. Jobs of one lane run one at a time, in id order."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_lane_status_id", "lane", "status", "id"),  # "is an earlier job of this lane unfinished?"
        # Claims walk the pending jobs in the order they are taken (the most urgent, then the longest ready) and
        # stop at the first whose lane is free: no sort, however long the backlog. Also "jobs by status".
        Index("ix_jobs_claim_order", "status", "priority", "run_after", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lane: str = Field(max_length=255)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json, nullable=False))
    status: str = Field(default=JobStatus.PENDING, max_length=16)
    # 0 (URGENT): opens a ticket, posts its first card or answers a person; 1: brings a known ticket up to date.
    priority: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    attempts: int = 0
    run_after: datetime = Field(default_factory=utcnow)
    locked_by: str | None = Field(default=None, max_length=128)
    locked_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Ticket(SQLModel, table=True):
    """The bot's record of one ticket: what it shows, where it lives in Jira and Slack."""

    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("dedup_hash", "generation", name="uq_ticket_dedup_generation"),)

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(sa_column=Column(Text, nullable=False))
    dedup_hash: str = Field(max_length=64, index=True)
    generation: int = 1
    source: str = Field(max_length=32)
    environment: str = Field(max_length=64)
    team: str | None = Field(default=None, max_length=64)
    priority: str = Field(max_length=32)
    state: str = Field(max_length=16)
    state_before_resolve: str | None = Field(default=None, max_length=16)
    version: int = 1
    title: str = Field(sa_column=Column(Text, nullable=False))
    alert_status: str = Field(max_length=16)
    digest: str = Field(max_length=64)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(Json, nullable=False))
    annotations: dict[str, str] = Field(default_factory=dict, sa_column=Column(Json, nullable=False))
    alerts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(Json, nullable=False))
    truncated_alerts: int = 0
    external_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    jira_key: str | None = Field(default=None, max_length=64, index=True)
    # The issue's id: older Jira Data Center names the issue of a comment event by its id alone.
    jira_issue_id: str | None = Field(default=None, max_length=32, index=True)
    jira_create_attempts: int = 0
    jira_create_attempted_at: datetime | None = None
    # What the Jira issue was last brought to (or refused, which is said once): jira.sync calls Jira only for
    # what differs from the ticket now. Status: a TicketState; assignee: a Slack user id, "" for nobody.
    jira_status_synced: str | None = Field(default=None, max_length=16)
    jira_assignee_synced: str | None = Field(default=None, max_length=32)
    jira_fields_synced: str | None = Field(default=None, max_length=64)  # a digest of summary, priority, labels...
    slack_channel: str = Field(max_length=32)
    slack_ts: str | None = Field(default=None, max_length=32)
    slack_post_attempts: int = 0
    assignee: str | None = Field(default=None, max_length=32)  # Slack user id of the member working on it
    # The assignee's name as Jira gave it, when it was set in Jira: the card shows it for someone with no Slack
    # user the bot knows (None: set in Slack, or nobody).
    assignee_name: str | None = Field(default=None, max_length=255)
    # Customer reports: the public reference, who reported it (the identity service's subject and e-mail), and
    # the Jira project they go to (unset: the policy's jira.project and issue_type).
    report_ref: str | None = Field(default=None, max_length=32, unique=True)
    customer_sub: str | None = Field(default=None, max_length=255, index=True)
    customer_email: str | None = Field(default=None, max_length=320)
    jira_project: str | None = Field(default=None, max_length=64)
    jira_issue_type: str | None = Field(default=None, max_length=64)
    first_event_at: datetime = Field(default_factory=utcnow)
    jira_created_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    state_changed_at: datetime | None = None  # when it entered its current state (escalation counts from here)
    escalations: int = 0  # reminders sent in the current state
    escalated_at: datetime | None = None
    test: bool = False  # a test notification's card (no Jira issue; closed from the start)


class TicketHistory(SQLModel, table=True):
    """Every move and notable change of a ticket: who, when, from, to, through which channel."""

    __tablename__ = "ticket_history"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=128)
    via: str = Field(max_length=16)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str | None = Field(default=None, max_length=16)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))


class TicketCard(SQLModel, table=True):
    """A copy of a ticket's card in another channel (the team's, QA's): one per ticket per channel, edited in
    place with the original. The original card lives on the ticket row (slack_channel, slack_ts)."""

    __tablename__ = "ticket_cards"
    __table_args__ = (UniqueConstraint("ticket_id", "channel", name="uq_ticket_card_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    channel: str = Field(max_length=32)
    ts: str | None = Field(default=None, max_length=32)
    post_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Person(SQLModel, table=True):
    """A Slack user as Jira knows them: found by e-mail, kept for a while so assignments cost no lookups."""

    __tablename__ = "people"

    slack_user: str = Field(primary_key=True, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=255)  # as Slack gives it: full name, else display name
    jira_account: str | None = Field(default=None, max_length=128, index=True)  # Cloud accountId, DC username
    checked_at: datetime = Field(default_factory=utcnow)


class ReportAttachment(SQLModel, table=True):
    """A file a customer attached to a report, kept until it is on the Jira issue."""

    __tablename__ = "report_attachments"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=128)
    size: int
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # None once in Jira
    jira_attachment_id: str | None = Field(default=None, max_length=64)


class IdempotentRequest(SQLModel, table=True):
    """An ``Idempotency-Key`` a customer used, with the request's digest and the answer it got."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("customer_sub", "key", name="uq_idempotency_customer_key"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_sub: str = Field(max_length=255)
    key: str = Field(max_length=255)
    request_digest: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = Field(sa_column=Column(Json, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class OutsideBudget(SQLModel, table=True):
    """One outside system's shared request budget (bot.jobs.budget): while it is paused no worker of any replica
    takes that system's jobs; with a steady rate configured, the next free slot of its pacing."""

    __tablename__ = "outside_budgets"

    system: str = Field(primary_key=True, max_length=32)  # jira, slack
    paused_until: datetime | None = None  # the end of the current (or the last) pause
    paused_since: datetime | None = None  # set while a pause is on; cleared by whoever first sees it end
    reason: str | None = Field(default=None, max_length=64)  # why the last pause began (Jira's RateLimit-Reason)
    strikes: int = 0  # pauses in a row whose length the server did not state: our own backoff doubles with them
    # After a pause, jobs start again at this rate (per second), doubling every few seconds without a 429 (a 429
    # halves it); None: no ramp. Paced with next_slot, like a configured steady rate.
    ramp_rate: float | None = None
    next_slot: float | None = None  # pacing (GCRA): the theoretical arrival time of the next job, epoch seconds
