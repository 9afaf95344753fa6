"""Button clicks from Slack: the ``slack.action`` job carries out what workflows.clicks decides.

The click was stored before Slack got its ack. Here, in the ticket's click lane, the pure planner checks the
move against the workflow table, the clicker's roles and the version of the card they clicked; a refusal goes
back to the clicker alone (ephemeral), a move is applied and its mirror images queued in the ticket's Jira,
Slack and mail lanes, so a Jira outage delays them, never the move or the answer.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from bot.clients.slack import CHANNEL_UNREACHABLE
from bot.db.models import InboundEvent, Ticket, TicketHistory
from bot.jobs import queue
from bot.jobs.kinds import JobKind, own_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.apply import apply
from bot.tickets.email import writes_to_customer
from bot.tickets.store import view
from workflows.clicks import Click, LastMove, plan_click
from workflows.states import TicketState

log = logging.getLogger("triage.slack")
KIND = JobKind.SLACK_ACTION
EPHEMERAL = JobKind.SLACK_EPHEMERAL


def handle_slack_action(runtime: Runtime, ctx: JobContext) -> None:
    event_id = ctx.job.payload["event_id"]
    for audience in runtime.policy.audiences():
        # User groups asked of Slack now, not inside the transaction; one Slack cannot list is a reason to try
        # again later, never to refuse someone who may act.
        runtime.slack.members(audience.users, strict=True)
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        click = Click.model_validate_json(event.body)
        # Locked: alert processing and Jira's webhooks may change the same ticket from other lanes.
        ticket = session.exec(select(Ticket).where(Ticket.id == click.ticket).with_for_update()).first()
        if ticket is None:  # a card from another installation, or a ticket purged since
            tell(session, click.channel, click.user, f"Nothing changed: there is no ticket #{click.ticket}.")
            return
        plan = plan_click(
            view(ticket),
            click,
            policy=runtime.policy,
            members=runtime.slack.members,
            has_customer=writes_to_customer(runtime.settings, ticket),
            last_move=_last_move(session, ticket) if click.version != ticket.version else None,
        )
        if plan.tell:
            tell(session, click.channel, click.user, plan.tell)
        apply(session, runtime.settings, ticket, plan)


def _last_move(session: Session, ticket: Ticket) -> LastMove | None:
    last = session.exec(
        select(TicketHistory)
        .where(TicketHistory.ticket_id == ticket.id, col(TicketHistory.to_state).is_not(None))
        .order_by(col(TicketHistory.id).desc())
    ).first()
    if last is None:
        return None
    return LastMove(last.actor, last.via, TicketState(last.to_state or ticket.state))


def tell(session: Session, channel: str, user: str, words: str) -> None:
    """Queue an ephemeral message (our own mrkdwn; quote outside text escaped): only ``user`` sees it. Each has
    a lane of its own: one that cannot be sent holds up no other."""
    queue.enqueue(
        session,
        kind=EPHEMERAL,
        lane=own_lane(EPHEMERAL),
        payload={"channel": channel, "user": user, "text": words},
        priority=queue.URGENT,  # a person is looking
    )


def send_ephemeral(runtime: Runtime, ctx: JobContext) -> None:
    """Tell one person, in the channel they clicked in, why nothing changed (only they see it)."""
    message = ctx.job.payload
    try:
        runtime.slack.ephemeral(message["channel"], message["user"], message["text"])
    except SlackApiError as problem:
        # A channel the bot is not in (a card shown by /triage elsewhere), or one that is gone: there is
        # nowhere to say it, and retrying will not change that. Anything else is retried as usual.
        if problem.response.get("error") not in CHANNEL_UNREACHABLE:
            raise
        log.warning(
            "could not tell a Slack user why nothing changed",
            extra={"channel": message["channel"], "user": message["user"], "error": problem.response.get("error")},
        )
