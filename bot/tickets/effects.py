"""Jobs that carry a ticket's changes to Jira and Slack. Each runs in its ticket's lane, after the jobs
queued before it, and is safe to run again after a crash at any point:

- a create records its intent before calling, and an attempt after an uncertain one looks for the
  issue by its unique label before creating again;
- comments and thread notes carry a marker and are looked for after an uncertain attempt;
- field updates, card edits and transitions are idempotent by nature.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from jira.exceptions import JIRAError
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.clients.slack import CHANNEL_UNREACHABLE
from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import ReportAttachment, Ticket, TicketCard
from bot.jobs import queue
from bot.jobs.retry import PermanentError, TryLater
from bot.jobs.worker import JobContext
from bot.metrics import TICKET_LATENCY, TICKETS_CREATED, TICKETS_UPDATED
from bot.runtime import Runtime
from bot.tickets import people
from bot.tickets.alerts import ticket_lane, ticket_of_lane
from bot.tickets.store import view
from workflows import cards, tickets
from workflows.escaping import slack_text
from workflows.lifecycle import EffectKind
from workflows.states import TicketState
from workflows.tickets import TicketView

log = logging.getLogger("triage.tickets")
CLOCK_SKEW = 300.0  # seconds of leeway between our clock and Slack's when bounding a history search


def _ticket_id(ctx: JobContext) -> int:
    return ticket_of_lane(ctx.job.lane)


def _load(runtime: Runtime, ticket_id: int) -> Ticket:
    with transaction(runtime.engine) as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise PermanentError(f"ticket {ticket_id} does not exist")
        session.expunge(ticket)
        return ticket


def _view(runtime: Runtime, ticket: Ticket) -> TicketView:
    return view(ticket, runtime.jira.browse_url(ticket.jira_key) if ticket.jira_key else None)


def _record_attempt(runtime: Runtime, ticket: Ticket, counter: str, stamp: str | None = None) -> None:
    """Commit the intent before a non-idempotent call, so that a retry knows to look before acting."""
    with transaction(runtime.engine) as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        setattr(row, counter, getattr(row, counter) + 1)
        if stamp:
            setattr(row, stamp, utcnow())
        session.add(row)


def _require_issue(ticket: Ticket) -> str:
    if not ticket.jira_key:
        raise TryLater(f"ticket {ticket.id} has no Jira issue yet")
    return ticket.jira_key


def _fields(runtime: Runtime, shown: TicketView) -> dict[str, Any]:
    return {
        "summary": tickets.summary(shown),
        "description": tickets.description(shown),
        "priority": {"name": shown.priority},
    }


def jira_create(runtime: Runtime, ctx: JobContext) -> None:
    ticket = _load(runtime, _ticket_id(ctx))
    if ticket.jira_key:
        return
    shown = _view(runtime, ticket)
    project = ticket.jira_project or runtime.policy.jira.project
    key = None
    if ticket.jira_create_attempts > 0:
        # An earlier attempt may have created the issue and lost the answer: look before creating again,
        # once Jira's search index has had time to see it.
        settle = runtime.settings.jira_search_settle_seconds
        since = (
            (utcnow() - ticket.jira_create_attempted_at).total_seconds() if ticket.jira_create_attempted_at else settle
        )
        if since < settle:
            raise TryLater("an earlier create may have landed; waiting for Jira's search to show it", settle - since)
        key = runtime.jira.find_by_label(project, shown.dedup_label)
    if key is None:
        _record_attempt(runtime, ticket, "jira_create_attempts", "jira_create_attempted_at")
        fields = {
            "project": {"key": project},
            "issuetype": {"name": ticket.jira_issue_type or runtime.policy.jira.issue_type},
            "labels": tickets.labels(shown, _extra_labels(runtime, shown)),
            **_fields(runtime, shown),
        }
        key = runtime.jira.create(fields)
        TICKETS_CREATED.labels(ticket.source).inc()
    with ctx.final() as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        row.jira_key = key
        row.jira_created_at = utcnow()
        session.add(row)
    latency = (utcnow() - ticket.first_event_at).total_seconds()
    TICKET_LATENCY.observe(latency)
    log.info(
        "Jira issue ready",
        extra={
            "ticket_id": ticket.id,
            "jira_key": key,
            "seconds_since_alert": latency,
            "adopted_after_uncertain_create": ticket.jira_create_attempts > 0,
        },
    )


def _extra_labels(runtime: Runtime, shown: TicketView) -> tuple[str, ...]:
    """The policy's labels for the ticket's project; a report's category as well."""
    reports = runtime.policy.reports
    if shown.is_report:
        base = reports.jira.labels if reports else runtime.policy.jira.labels
        return (*base, f"category-{shown.labels.get('category', '')}")
    return runtime.policy.jira.labels


def jira_sync(runtime: Runtime, ctx: JobContext) -> None:
    ticket = _load(runtime, _ticket_id(ctx))
    key = _require_issue(ticket)
    shown = _view(runtime, ticket)
    runtime.jira.update(key, _fields(runtime, shown), tickets.labels(shown, _extra_labels(runtime, shown)))
    TICKETS_UPDATED.labels("fields").inc()


def jira_comment(runtime: Runtime, ctx: JobContext) -> None:
    ticket = _load(runtime, _ticket_id(ctx))
    key = _require_issue(ticket)
    marker = f"job-{ctx.job.id}"
    if ctx.job.attempts > 1 and runtime.jira.has_comment(key, marker):
        return
    text = json.loads(ctx.job.payload)["text"]
    runtime.jira.add_comment(key, tickets.comment(text), marker)
    TICKETS_UPDATED.labels("comment").inc()


def jira_transition(runtime: Runtime, ctx: JobContext) -> None:
    ticket = _load(runtime, _ticket_id(ctx))
    key = _require_issue(ticket)
    state = TicketState(json.loads(ctx.job.payload)["state"])
    name = runtime.policy.jira.transitions.get(state.value)
    if name is None:
        return  # this state has no Jira status of its own (e.g. assigned): the assignee/labels show it
    jira = runtime.policy.jira
    # Jira has no "assigned": an issue that is open in Jira is where an assigned ticket should be.
    same = {state.value, TicketState.OPEN.value} if state is TicketState.ASSIGNED else {state.value}
    if runtime.jira.transition(key, name, already_there=lambda status: jira.state_of_status(status) in same):
        TICKETS_UPDATED.labels("transition").inc()


def jira_assign(runtime: Runtime, ctx: JobContext) -> None:
    """The Jira assignee follows the Slack one: the Slack user's e-mail finds their Jira account."""
    ticket = _load(runtime, _ticket_id(ctx))
    key = _require_issue(ticket)
    user = json.loads(ctx.job.payload).get("user")
    account = people.jira_account(runtime, user) if user else None
    if user and account is None:
        _say(ctx, f"<@{user}> has no Jira account with their Slack e-mail address: assign {key} in Jira by hand.")
        return
    try:
        runtime.jira.assign(key, account)
    except JIRAError as problem:
        if problem.status_code not in (400, 403, 404):
            raise
        # Jira knows the person but will not assign them (not an assignable user of the project, deactivated):
        # say so where the team works, and ask Jira afresh next time.
        people.forget(runtime, user)
        why = slack_text(str(problem.text))
        _say(ctx, f"Jira would not assign {key} to <@{user}> ({why}): assign it in Jira by hand.")
        return
    TICKETS_UPDATED.labels("assignee").inc()


def jira_attach(runtime: Runtime, ctx: JobContext) -> None:
    """One file a customer attached, onto the Jira issue; the stored copy is dropped once it is there."""
    ticket = _load(runtime, _ticket_id(ctx))
    key = _require_issue(ticket)
    attachment_id = json.loads(ctx.job.payload)["attachment_id"]
    with transaction(runtime.engine) as session:
        row = session.get(ReportAttachment, attachment_id)
        if row is None or row.jira_attachment_id or row.data is None:
            return
        session.expunge(row)
    assert row.data is not None
    found = runtime.jira.find_attachment(key, row.filename, row.size) if ctx.job.attempts > 1 else None
    try:
        jira_id = found or runtime.jira.attach(key, row.filename, row.content_type, row.data)
    except JIRAError as problem:
        if problem.status_code not in (400, 403, 404, 413):
            raise
        # Attachments off, no permission, or over Jira's size limit: the ticket goes on without this file.
        log.error("Jira refused a report's attachment", extra={"jira_key": key, "status": problem.status_code})
        why = slack_text(str(problem.text or problem.status_code))
        _say(ctx, f"Jira refused the customer's file {slack_text(row.filename)} ({why}); it is not on {key}.")
        return
    with ctx.final() as session:
        stored = session.get(ReportAttachment, attachment_id)
        assert stored is not None
        stored.jira_attachment_id, stored.data = jira_id, None
        session.add(stored)


def _say(ctx: JobContext, mrkdwn: str) -> None:
    """Finish the job with a line in the card's thread (our own mrkdwn: outside text escaped by the caller)."""
    with ctx.final() as session:
        queue.enqueue(session, kind=EffectKind.SLACK_NOTE.value, lane=ctx.job.lane, payload={"raw": mrkdwn})


def _post_card(
    runtime: Runtime,
    ticket: Ticket,
    channel: str,
    blocks: list[dict[str, Any]],
    uncertain: bool,
    record: Callable[[], None],
) -> str:
    """Post a card once: after an uncertain attempt, look for it in the channel first."""
    shown = _view(runtime, ticket)
    metadata = cards.card_metadata(shown)
    text = cards.fallback_text(shown)
    since = ticket.created_at.timestamp() - CLOCK_SKEW
    ts = runtime.slack.find_posted(channel, metadata, since) if uncertain else None
    if ts is None:
        record()
        return runtime.slack.post(channel, text, blocks, metadata)
    runtime.slack.update(channel, ts, text, blocks)
    return ts


def slack_card(runtime: Runtime, ctx: JobContext) -> None:
    """Post or edit the ticket's card, and its copies in the team's and QA's channels."""
    ticket = _load(runtime, _ticket_id(ctx))
    shown = _view(runtime, ticket)
    text = cards.fallback_text(shown)
    home = ticket.slack_ts
    if home and not _edited(runtime, ticket.slack_channel, home, text, cards.card(shown)):
        home = None  # someone deleted the card: post it again
        _record_attempt(runtime, ticket, "slack_post_attempts")  # and look before posting, should this fail
    if not home:
        home = _post_card(
            runtime,
            ticket,
            ticket.slack_channel,
            cards.card(shown),
            ticket.slack_post_attempts > 0,
            lambda: _record_attempt(runtime, ticket, "slack_post_attempts"),
        )
        with transaction(runtime.engine) as session:
            row = session.get(Ticket, ticket.id)
            assert row is not None
            row.slack_ts = home
            session.add(row)
    copies = _copies(runtime, ticket)
    if copies:
        try:
            original: str | None = runtime.slack.permalink(ticket.slack_channel, home)
        except SlackApiError:
            original = None  # the copies say less, but they are still posted
        for copy in copies:
            _copy_card(runtime, ticket, copy, text, cards.card(shown, original=original))


def _copy_card(runtime: Runtime, ticket: Ticket, copy: TicketCard, text: str, blocks: list[dict[str, Any]]) -> None:
    """Post or edit the card's copy in a team's or QA's channel. A channel the bot cannot post in does not hold
    up the ticket: the copy is dropped (the next move there tries again) and the original card's thread says so."""
    try:
        if copy.ts and _edited(runtime, copy.channel, copy.ts, text, blocks):
            return
        ts = _post_card(
            runtime, ticket, copy.channel, blocks, copy.post_attempts > 0, partial(_record_copy_attempt, runtime, copy)
        )
    except SlackApiError as problem:
        error = problem.response.get("error")
        if error not in CHANNEL_UNREACHABLE:
            raise
        log.error(
            "cannot post a ticket's card in a channel; invite the bot there",
            extra={"ticket_id": ticket.id, "channel": copy.channel, "error": error},
        )
        with transaction(runtime.engine) as session:
            card = session.get(TicketCard, copy.id)
            if card is not None:
                session.delete(card)
            words = f"I cannot post this ticket's card in <#{copy.channel}> ({error}): please invite me there."
            lane = ticket_lane(ticket.id or 0)
            queue.enqueue(session, kind=EffectKind.SLACK_NOTE.value, lane=lane, payload={"raw": words})
        return
    with transaction(runtime.engine) as session:
        card = session.get(TicketCard, copy.id)
        assert card is not None
        card.ts = ts
        session.add(card)


def _edited(runtime: Runtime, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> bool:
    """Edit a card in place; False when it is gone (someone deleted it)."""
    try:
        runtime.slack.update(channel, ts, text, blocks)
    except SlackApiError as problem:
        if problem.response.get("error") != "message_not_found":
            raise
        log.warning("a ticket's card was deleted; posting it again", extra={"channel": channel, "ts": ts})
        return False
    return True


def _copies(runtime: Runtime, ticket: Ticket) -> list[TicketCard]:
    with transaction(runtime.engine) as session:
        rows = list(
            session.exec(select(TicketCard).where(TicketCard.ticket_id == ticket.id).order_by(col(TicketCard.id)))
        )
        for row in rows:
            session.expunge(row)
        return rows


def _record_copy_attempt(runtime: Runtime, copy: TicketCard) -> None:
    with transaction(runtime.engine) as session:
        row = session.get(TicketCard, copy.id)
        assert row is not None
        row.post_attempts += 1
        session.add(row)


def slack_note(runtime: Runtime, ctx: JobContext) -> None:
    """A line in the thread of the ticket's card: the original's, or with ``channel`` in the payload, the
    card in that channel (a reminder belongs where the people it mentions are)."""
    ticket = _load(runtime, _ticket_id(ctx))
    if not ticket.slack_ts:
        raise TryLater(f"ticket {ticket.id} has no Slack card yet")
    payload = json.loads(ctx.job.payload)
    channel, thread = ticket.slack_channel, ticket.slack_ts
    wanted = payload.get("channel")
    if wanted and wanted != channel:
        copy = next((c for c in _copies(runtime, ticket) if c.channel == wanted and c.ts), None)
        if copy is not None and copy.ts:
            channel, thread = copy.channel, copy.ts
    metadata = {"event_type": "triage_note", "event_payload": {"ticket_id": ticket.id, "job_id": ctx.job.id}}
    since = ctx.job.created_at.timestamp() - CLOCK_SKEW
    if ctx.job.attempts > 1 and runtime.slack.find_posted(channel, metadata, since, thread):
        return
    # "raw" is our own mrkdwn (mentions of ids we chose); "text" may quote outside words and is escaped.
    text = payload.get("raw") or cards.note_text(payload["text"], tuple(payload.get("mention", ())))
    runtime.slack.post(channel, text, None, metadata, thread_ts=thread)


HANDLERS: dict[str, Callable[[Runtime, JobContext], None]] = {
    EffectKind.JIRA_CREATE.value: jira_create,
    EffectKind.JIRA_SYNC.value: jira_sync,
    EffectKind.JIRA_COMMENT.value: jira_comment,
    EffectKind.JIRA_TRANSITION.value: jira_transition,
    EffectKind.JIRA_ASSIGN.value: jira_assign,
    EffectKind.JIRA_ATTACH.value: jira_attach,
    EffectKind.SLACK_CARD.value: slack_card,
    EffectKind.SLACK_NOTE.value: slack_note,
}
