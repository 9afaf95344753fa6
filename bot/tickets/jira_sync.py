"""A ticket's Jira work, in its ``jira:N`` lane: create the issue, bring it to the ticket's state, add comments
and files. Safe to run again after a crash at any point:

- a create records its intent before calling, and an attempt after an uncertain one looks for the issue by
  its unique label before creating again;
- ``jira.sync`` reconciles: it reads the ticket as it is now and changes in Jira only what differs from what
  it last brought there (fields, status, assignee), so a queue of stale moves never exists and a repeat is
  harmless (transitions check the issue's status first);
- comments carry a marker and are looked for after an uncertain attempt; files are looked for by name and size.

A refusal no retry can fix (a 403, a workflow condition, a field Jira will not take) is said once in the card's
thread, kept as a refused job for `triage-bot jobs`, counted, and holds up nothing: the ticket's next comment,
assignee or later move still goes to Jira. Only a failed create holds the lane, since all else needs the issue.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import requests
import urllib3
from jira.exceptions import JIRAError
from sqlmodel import select

from bot.clients.jira import TransitionUnavailable
from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import ReportAttachment, Ticket
from bot.jobs import queue
from bot.jobs.kinds import JobKind
from bot.jobs.retry import PermanentError, TryLater, classify
from bot.jobs.worker import JobContext
from bot.metrics import REFUSALS, TICKET_LATENCY, TICKETS_CREATED, TICKETS_UPDATED
from bot.runtime import Runtime
from bot.tickets import people
from bot.tickets.effects import (
    attempt_unanswered,
    forget_attempt,
    load,
    queue_effects,
    record_attempt,
    refused,
    require,
    say,
    shown,
    ticket_id_of,
)
from workflows import tickets
from workflows.effects import CARD, SYNC, named_in
from workflows.escaping import slack_text
from workflows.states import TicketState
from workflows.tickets import TicketView

log = logging.getLogger("triage.jira")
# States a new issue is already in: Jira creates issues in its first status, which is "open" to the policy
# (and Jira has no "assigned": the assignee and labels show it).
CREATED_AS = frozenset({TicketState.OPEN, TicketState.ASSIGNED})
ASSIGNEE_RETRY_SECONDS = 30.0  # how soon an assignee that waited for Slack is tried again


def _extra_labels(runtime: Runtime, ticket: TicketView) -> tuple[str, ...]:
    """The policy's labels for the ticket's project; a report's category as well."""
    reports = runtime.policy.reports
    if ticket.is_report:
        base = reports.jira.labels if reports else runtime.policy.jira.labels
        return (*base, f"category-{ticket.labels.get('category', '')}")
    return runtime.policy.jira.labels


def _fields(runtime: Runtime, ticket: TicketView) -> tuple[dict[str, Any], list[str], str]:
    """The issue's fields as the ticket shows them, its labels, and a digest of both."""
    fields = {
        "summary": tickets.summary(ticket),
        "description": tickets.description(ticket),
        "priority": {"name": ticket.priority},
    }
    labels = tickets.labels(ticket, _extra_labels(runtime, ticket))
    digest = hashlib.sha256(json.dumps([fields, labels], sort_keys=True).encode()).hexdigest()[:32]
    return fields, labels, digest


def _behind(ticket: Ticket, digest: str) -> frozenset[str]:
    """The parts of the Jira issue that differ from what ``ticket`` shows (``digest``: its fields' digest)."""
    parts = {
        "fields": digest != ticket.jira_fields_synced,
        "assignee": (ticket.assignee or "") != ticket.jira_assignee_synced,
        "status": ticket.state != ticket.jira_status_synced,
    }
    return frozenset(part for part, differs in parts.items() if differs)


def _behind_now(runtime: Runtime, row: Ticket) -> bool:
    return bool(_behind(row, _fields(runtime, shown(runtime, row))[2]))


def _never_connected(problem: requests.exceptions.ConnectionError) -> bool:
    """The request never reached Jira (refused, unreachable, no connection in time): nothing can have landed."""
    if isinstance(problem, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(problem.args[0], "reason", None) if problem.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _refusable(problem: JIRAError) -> bool:
    """Jira said no in a way no retry changes (4xx other than 408/409/429)."""
    return not classify(problem).retryable


def _why(problem: JIRAError) -> str:
    return slack_text(str(problem.text or problem.status_code))[:300]


def jira_create(runtime: Runtime, ctx: JobContext) -> None:
    ticket = load(runtime, ticket_id_of(ctx))
    if ticket.jira_key:
        return
    view = shown(runtime, ticket)
    project = ticket.jira_project or runtime.policy.jira.project
    # A client that cannot be made (Jira down when the first one asks its server info) sends no create: that
    # failure leaves no attempt to look for afterwards.
    runtime.jira.connect()
    found = None
    if ticket.jira_create_attempts > 0:
        # An earlier attempt may have created the issue and lost the answer: look before creating again, once
        # Jira's search index (eventually consistent) has had TRIAGE_JIRA_SEARCH_SETTLE_SECONDS to show it, counted
        # from when the bot stopped waiting for that answer (README, Known limits: the bound this holds with).
        settle = runtime.settings.jira_search_settle_seconds
        if ctx.job.last_error == queue.LEASE_EXPIRED:
            # The worker that sent the last attempt died without a word: that request may still be at Jira, which
            # can take it up to the client's timeout after it was sent. Look only once it can have landed.
            settle += runtime.settings.jira_timeout
        since = (
            (utcnow() - ticket.jira_create_attempted_at).total_seconds() if ticket.jira_create_attempted_at else settle
        )
        if since < settle:
            raise TryLater("an earlier create may have landed; waiting for Jira's search to show it", settle - since)
        found = runtime.jira.find_by_label(project, view.dedup_label)
    adopted = found is not None if ticket.jira_create_attempts > 0 else None  # None: there was nothing to look for
    fields, labels, digest = _fields(runtime, view)
    if found is None:
        # Looked and not found: the earlier attempts did not land, and only this one may.
        record_attempt(runtime, ticket, "jira_create_attempts", "jira_create_attempted_at", only=adopted is False)
        fields = {
            "project": {"key": project},
            "issuetype": {"name": ticket.jira_issue_type or runtime.policy.jira.issue_type},
            "labels": labels,
            **fields,
        }
        try:
            found = runtime.jira.create(fields)
        except JIRAError as problem:
            if _refusable(problem):
                # The lane stays held (all else needs the issue); the people who look at the card hear why.
                with transaction(runtime.engine) as session:
                    say(
                        session,
                        ticket.id or 0,
                        f"Jira refused to create this ticket's issue ({_why(problem)}). Fix the cause (the policy's "
                        "jira section, or the project's required fields), then `triage-bot jobs retry "
                        f"{ctx.job.id}`.",
                    )
                REFUSALS.labels("jira", "create").inc()
            if classify(problem).rate_limited:  # refused before any work: nothing was created
                forget_attempt(runtime, ticket, "jira_create_attempts")
            elif not _refusable(problem):  # a 5xx, 408, 409: Jira may have created it
                attempt_unanswered(runtime, ticket, "jira_create_attempted_at")
            raise
        except requests.exceptions.ConnectionError as problem:
            if _never_connected(problem):
                forget_attempt(runtime, ticket, "jira_create_attempts")
            else:
                attempt_unanswered(runtime, ticket, "jira_create_attempted_at")
            raise
        except requests.exceptions.RequestException:  # no answer in time, an unreadable one
            attempt_unanswered(runtime, ticket, "jira_create_attempted_at")
            raise
        TICKETS_CREATED.labels(ticket.source).inc()
    key = found.key
    with ctx.final() as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        row.jira_key, row.jira_issue_id = key, found.id
        row.jira_created_at = utcnow()
        # What the new issue already shows; anything the ticket moved on to meanwhile is one sync away. An issue
        # found after a lost answer shows what the ticket was at that attempt, not now: nothing is known of it.
        state = TicketState(ticket.state)
        row.jira_status_synced = state.value if state in CREATED_AS and not adopted else None
        row.jira_assignee_synced = "" if not adopted else None
        row.jira_fields_synced = digest if not adopted else None
        session.add(row)
        if _behind_now(runtime, row):
            queue_effects(session, row.id or 0, (SYNC,))
        queue_effects(session, row.id or 0, (CARD,))  # the card shows the key now
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


PARTS = ("fields", "assignee", "status")


def _forced(payload: dict[str, Any]) -> frozenset[str]:
    """The parts a sync must bring over even where nothing seems to differ: those someone retried after a refusal
    (``force`` lists them; ``true`` from older releases means all)."""
    force = payload.get("force")
    if force is True:
        return frozenset(PARTS)
    return frozenset(str(part) for part in force) if isinstance(force, list) else frozenset()


def jira_sync(runtime: Runtime, ctx: JobContext) -> None:
    """Bring the issue to the ticket as it is now: fields, then assignee, then status; each only where it differs
    from what this job's predecessors brought over."""
    ticket = load(runtime, ticket_id_of(ctx))
    key = require(ticket.jira_key, JobKind.JIRA_CREATE, f"the Jira issue of ticket {ticket.id}")
    said: list[str] = []
    refusals: list[tuple[str, str]] = []
    brought: dict[str, str | None] = {}  # marker column -> what the issue shows now, for the parts this job did

    fields, labels, digest = _fields(runtime, shown(runtime, ticket))
    todo = _forced(ctx.job.payload) | _behind(ticket, digest)
    if "fields" in todo:
        brought["jira_fields_synced"] = digest
        try:
            runtime.jira.update(key, fields, labels)
            TICKETS_UPDATED.labels("fields").inc()
        except JIRAError as problem:
            if not _refusable(problem):
                raise
            refusals.append(("fields", f"Jira refused to update {key}'s fields ({_why(problem)})."))

    deferred = False
    if "assignee" in todo:
        assignee = _assign(runtime, key, ticket.assignee or "", said)
        deferred = assignee is None
        if not deferred:
            brought["jira_assignee_synced"] = assignee

    state = TicketState(ticket.state)
    if "status" in todo:
        brought["jira_status_synced"] = state.value
        try:
            if _move(runtime, key, state):
                TICKETS_UPDATED.labels("transition").inc()
        except JIRAError as problem:
            if not _refusable(problem):
                raise
            refusals.append(
                ("status", f"Jira refused to move {key} to {state.label} ({_why(problem)}): move it in Jira.")
            )
        except TransitionUnavailable as problem:
            refusals.append(("status", f"Jira offers no way to move {key} to {state.label}: {problem}"))

    with ctx.final() as session:
        # The row first, as every decision locks it (then the queue's lane lock): no deadlock between them.
        row = session.exec(select(Ticket).where(Ticket.id == ticket.id).with_for_update()).one()
        for column, value in brought.items():
            # A change someone made in Jira meanwhile wrote this marker (and the ticket): whichever reached Jira
            # last is not known, so it is unknown, and the next sync brings the ticket's state over.
            unchanged = getattr(row, column) == getattr(ticket, column)
            setattr(row, column, value if unchanged else None)
        session.add(row)
        if deferred or _behind_now(runtime, row):
            # Something is still to bring over: the assignee waiting for Slack, or a change made meanwhile.
            queue.enqueue(
                session,
                kind=JobKind.JIRA_SYNC,
                lane=ctx.job.lane,
                payload={},
                delay=ASSIGNEE_RETRY_SECONDS if deferred else 0.0,
                coalesce=True,
            )
        for words in said:
            say(session, row.id or 0, words)
        for part, words in refusals:
            log.error("Jira refused a change", extra={"jira_key": key, "what": part, "error": words})
            REFUSALS.labels("jira", part).inc()
            say(session, row.id or 0, words)
            refused(session, row.id or 0, JobKind.JIRA_SYNC, words, {"force": [part]})


def _assign(runtime: Runtime, key: str, wanted: str, said: list[str]) -> str | None:
    """Bring the issue's assignee to ``wanted`` (a Slack user, "" for nobody): what the issue shows now, as far as
    the bot is concerned (a person Jira does not know or will not take is said once), or None when it must wait."""
    try:
        account = people.jira_account(runtime, wanted) if wanted else None
    except people.SlackUnavailable as problem:
        # The person's e-mail is Slack's to tell; Slack being down must not hold the rest of the issue back: it
        # is brought over now, the assignee on a later sync.
        log.warning("the assignee waits for Slack", extra={"jira_key": key, "error": str(problem)})
        return None
    except Exception as problem:
        if classify(problem).retryable:
            raise
        # No retry will find them (Slack does not know the user, Jira will not let the bot search users): said
        # once, and the rest of the issue goes on.
        REFUSALS.labels("jira", "assignee").inc()
        said.append(
            f"I cannot find <@{wanted}>'s Jira account ({slack_text(str(problem))[:300]}): assign {key} in Jira."
        )
        return wanted
    if wanted and account is None:
        said.append(f"<@{wanted}> has no Jira account with their Slack e-mail address: assign {key} in Jira by hand.")
        return wanted
    try:
        runtime.jira.assign(key, account)
        TICKETS_UPDATED.labels("assignee").inc()
    except JIRAError as problem:
        if not _refusable(problem):
            raise
        # Jira knows the person but will not assign them (not assignable in the project, deactivated): say so
        # where the team works, and ask Jira afresh next time.
        people.forget(runtime, wanted or None)
        said.append(f"Jira would not assign {key} to <@{wanted}> ({_why(problem)}): assign it in Jira by hand.")
    return wanted


def _move(runtime: Runtime, key: str, state: TicketState) -> bool:
    name = runtime.policy.jira.transitions.get(state.value)
    if name is None:
        return False  # this state has no Jira status of its own (e.g. assigned): the assignee/labels show it
    jira = runtime.policy.jira
    # Jira has no "assigned": an issue that is open in Jira is where an assigned ticket should be.
    same = {state.value, TicketState.OPEN.value} if state is TicketState.ASSIGNED else {state.value}
    return runtime.jira.transition(key, name, already_there=lambda status: jira.state_of_status(status) in same)


def jira_comment(runtime: Runtime, ctx: JobContext) -> None:
    ticket = load(runtime, ticket_id_of(ctx))
    key = require(ticket.jira_key, JobKind.JIRA_CREATE, f"the Jira issue of ticket {ticket.id}")
    marker = f"job-{ctx.job.id}"
    if ctx.job.attempts > 1 and runtime.jira.has_comment(key, marker):
        return
    payload = ctx.job.payload
    if "parts" in payload:  # it names people: by name, and as Jira mentions where asked and their account is known
        known = {user: people.someone(runtime, user) for user in named_in(payload)}
        text = tickets.comment_naming(payload["parts"], known, cloud=runtime.jira.cloud)
    else:
        text = tickets.comment(payload["text"])
    try:
        runtime.jira.add_comment(key, text, marker)
    except JIRAError as problem:
        if not _refusable(problem):
            raise
        # Kept as refused (triage-bot jobs); the comments after it still go.
        REFUSALS.labels("jira", "comment").inc()
        with transaction(runtime.engine) as session:
            say(session, ticket.id or 0, f"Jira refused a comment on {key} ({_why(problem)}).")
        raise PermanentError(f"Jira refused the comment: {problem.status_code} {problem.text}") from problem
    TICKETS_UPDATED.labels("comment").inc()


def jira_attach(runtime: Runtime, ctx: JobContext) -> None:
    """One file a customer attached, onto the Jira issue; the stored copy is dropped once it is there."""
    ticket = load(runtime, ticket_id_of(ctx))
    key = require(ticket.jira_key, JobKind.JIRA_CREATE, f"the Jira issue of ticket {ticket.id}")
    payload = ctx.job.payload
    with transaction(runtime.engine) as session:
        # By its name (unique within its report), or by its id in jobs queued before version 0.2.
        row = (
            session.get(ReportAttachment, payload["attachment_id"])
            if "attachment_id" in payload
            else session.exec(
                select(ReportAttachment).where(
                    ReportAttachment.ticket_id == ticket.id, ReportAttachment.filename == payload["filename"]
                )
            ).first()
        )
        if row is None or row.jira_attachment_id or row.data is None:
            return
        session.expunge(row)
    attachment_id = row.id
    assert row.data is not None
    found = runtime.jira.find_attachment(key, row.filename, row.size) if ctx.job.attempts > 1 else None
    try:
        jira_id = found or runtime.jira.attach(key, row.filename, row.content_type, row.data)
    except JIRAError as problem:
        if problem.status_code not in (400, 403, 404, 413):
            raise
        # Attachments off, no permission, or over Jira's size limit: the ticket goes on without this file.
        log.error("Jira refused a report's attachment", extra={"jira_key": key, "status": problem.status_code})
        REFUSALS.labels("jira", "attach").inc()
        with ctx.final() as session:
            say(
                session,
                ticket.id or 0,
                f"Jira refused the customer's file {slack_text(row.filename)} ({_why(problem)}); it is not on {key}.",
            )
        return
    with ctx.final() as session:
        stored = session.get(ReportAttachment, attachment_id)
        assert stored is not None
        stored.jira_attachment_id, stored.data = jira_id, None
        session.add(stored)
