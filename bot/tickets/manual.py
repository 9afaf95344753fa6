"""The ``ticket.new`` job: a ticket someone opened by hand with ``/triage new``.

The form's submission was stored before Slack got its ack; here it becomes a ticket, in one transaction with
its history and the jobs that create the Jira issue and post the card. The submission's event id is the
ticket's identity (its dedup key), so running this job twice opens one ticket.
"""

from __future__ import annotations

import json

from bot.clock import utcnow
from bot.db.models import InboundEvent, Ticket
from bot.jobs import queue
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.alerts import ticket_lane
from bot.tickets.clicks import tell
from bot.tickets.store import dedup_hash, latest_for, record
from workflows.lifecycle import EffectKind
from workflows.states import initial_state

KIND = "ticket.new"
SOURCE = "slack"


def open_ticket(runtime: Runtime, ctx: JobContext) -> None:
    event_id = json.loads(ctx.job.payload)["event_id"]
    people = frozenset().union(*(runtime.slack.members(a.users, strict=True) for a in runtime.policy.audiences()))
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        form = json.loads(event.body)
        dedup_key = f"slack:new:{event_id}"
        if latest_for(session, dedup_key) is not None:
            return
        if form["user"] not in people:
            words = "Nothing opened: only the operators, QA and the teams in triage-bot's policy can open tickets."
            if form.get("channel"):
                tell(session, form["channel"], form["user"], words)
            return
        policy, team = runtime.policy, form["team"]
        audience = policy.teams[team] if team in policy.teams else policy.operators
        state = initial_state(team if team in policy.teams else None)
        ticket = Ticket(
            dedup_key=dedup_key,
            dedup_hash=dedup_hash(dedup_key),
            source=SOURCE,
            environment="default",
            team=team if team in policy.teams else None,
            priority=form["priority"],
            state=state.value,
            title=form["title"],
            alert_status="firing",
            digest="",
            annotations=json.dumps({"description": form["description"]} if form["description"] else {}),
            slack_channel=audience.channel,
            first_event_at=event.received_at,
            state_changed_at=utcnow(),
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        record(session, ticket, actor=form["user"], via="slack", note="opened by hand in Slack", to_state=state.value)
        lane = ticket_lane(ticket.id)
        queue.enqueue(session, kind=EffectKind.JIRA_CREATE.value, lane=lane)
        queue.enqueue(session, kind=EffectKind.SLACK_CARD.value, lane=lane, coalesce=True)
        if form.get("channel"):
            words = f"Opened ticket #{ticket.id}; its card is in <#{audience.channel}>."
            tell(session, form["channel"], form["user"], words)
