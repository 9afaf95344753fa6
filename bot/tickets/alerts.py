"""The ``alert.process`` job: apply stored notifications to their ticket and queue what follows.

Runs in the lane of its alert group, so notifications of one problem are applied in the order they
arrived; those queued behind it in the lane are applied with it. All of it is one transaction: the ticket
row, its history, the effect jobs and the jobs' own completion commit together or not at all.
"""

from __future__ import annotations

import json
import logging

from sqlmodel import Session

from bot.clock import utcnow
from bot.db.models import InboundEvent, Ticket
from bot.jobs import queue
from bot.jobs.kinds import JobKind, group_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.metrics import ALERT_BATCH
from bot.runtime import Runtime
from bot.tickets.apply import apply, open_ticket
from bot.tickets.store import apply_notification, dedup_hash, latest_for, snapshot, view
from workflows.alerts import Source, notification_from
from workflows.lifecycle import digest, plan
from workflows.routing import is_test, route
from workflows.states import TicketState

KIND = JobKind.ALERT_PROCESS
BATCH = 100  # notifications of one group applied in one transaction at most
log = logging.getLogger("triage.alerts")


def lane_for(dedup_key: str) -> str:
    return group_lane(dedup_hash(dedup_key))


class _FollowerFailed(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(f"notification {index} of the batch failed")
        self.index = index


def process_alert(runtime: Runtime, ctx: JobContext) -> None:
    """Apply this notification and those of its group queued behind it, in order, in one transaction (a storm's
    repeats cost one claim and one commit per group, not per post). A follower that fails ends the batch before
    it: the ones before it are applied, and it runs next, alone, as its lane's head."""
    limit = BATCH
    while True:
        try:
            with ctx.final() as session:
                batch = [ctx.job, *queue.followers(session, ctx.job, limit - 1)] if limit > 1 else [ctx.job]
                for index, job in enumerate(batch):
                    try:
                        _apply_one(runtime, session, int(job.payload["event_id"]))
                    except Exception as exc:
                        if index == 0:
                            raise
                        raise _FollowerFailed(index) from exc
                queue.complete_followers(session, batch[1:])
            ALERT_BATCH.observe(len(batch))
            return
        except _FollowerFailed as failed:
            log.warning("a queued notification failed in a batch; applying the ones before it", exc_info=failed)
            limit = failed.index


def _apply_one(runtime: Runtime, session: Session, event_id: int) -> None:
    event = session.get(InboundEvent, event_id)
    if event is None:
        raise PermanentError(f"inbound event {event_id} is gone")
    received_at = event.received_at
    note = notification_from(Source(event.source), json.loads(event.body))
    current = latest_for(session, note.dedup_key)
    if current is not None:
        stored = view(current)
        note = note.completed_from(stored.title, stored.labels, stored.annotations, stored.alerts)
    routing = route(runtime.policy, note)
    env = runtime.policy.environment_named(routing.environment)
    new_digest = digest(note, routing)
    test = runtime.policy.test_notifications.action if is_test(runtime.policy, note) else None
    decision = plan(snapshot(current) if current else None, note, routing, env, utcnow(), test)
    if not decision.changes_ticket:
        if test is not None:
            log.info("test notification", extra={"dedup_key": note.dedup_key, "outcome": decision.note})
        return
    assert decision.state is not None
    if decision.action == "create":
        ticket = Ticket(
            dedup_key=note.dedup_key,
            dedup_hash=dedup_hash(note.dedup_key),
            generation=(current.generation + 1) if current else 1,
            source=note.source.value,
            environment=routing.environment,
            team=routing.team,
            priority=routing.priority,
            state=decision.state.value,
            title=note.title,
            alert_status=note.status,
            digest=new_digest,
            slack_channel=routing.channel,
            first_event_at=received_at,
            state_changed_at=utcnow(),
            test=decision.test,
            closed_at=utcnow() if decision.state is TicketState.CLOSED else None,
        )
        apply_notification(ticket, note, routing.priority, new_digest)
        open_ticket(session, runtime.settings, ticket, decision.as_plan(note.source.value, None))
    else:
        assert current is not None
        apply_notification(current, note, routing.priority, new_digest)
        apply(session, runtime.settings, current, decision.as_plan(note.source.value, TicketState(current.state)))
