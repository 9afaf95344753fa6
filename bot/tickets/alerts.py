"""The ``alert.process`` job: apply one stored notification to its ticket and queue what follows.

Runs in the lane of its alert group, so notifications of one problem are applied in the order they
arrived. All of it is one transaction: the ticket row, its history, the effect jobs and the job's own
completion commit together or not at all.
"""

from __future__ import annotations

import json

from bot.clock import utcnow
from bot.db.models import InboundEvent, Ticket
from bot.jobs.kinds import JobKind, group_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.apply import apply, open_ticket
from bot.tickets.store import apply_notification, dedup_hash, latest_for, snapshot, view
from workflows.alerts import Source, notification_from
from workflows.lifecycle import digest, plan
from workflows.routing import route
from workflows.states import TicketState

KIND = JobKind.ALERT_PROCESS


def lane_for(dedup_key: str) -> str:
    return group_lane(dedup_hash(dedup_key))


def process_alert(runtime: Runtime, ctx: JobContext) -> None:
    event_id = ctx.job.payload["event_id"]
    with ctx.final() as session:
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
        decision = plan(snapshot(current) if current else None, note, routing, env, utcnow())
        if not decision.changes_ticket:
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
            )
            apply_notification(ticket, note, routing.priority, new_digest)
            open_ticket(session, runtime.settings, ticket, decision.as_plan(note.source.value, None))
        else:
            assert current is not None
            apply_notification(current, note, routing.priority, new_digest)
            apply(session, runtime.settings, current, decision.as_plan(note.source.value, TicketState(current.state)))
