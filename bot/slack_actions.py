"""Button clicks from Slack: the ``slack.action`` job decides the move and carries it out.

The click was stored before Slack got its ack. Here, in the ticket's lane, the move is checked against the
workflow table, the clicker's roles and the version of the card they clicked; a refusal goes back to the
clicker alone (ephemeral), a move is recorded and mirrored to Jira and to the card.
"""

from __future__ import annotations

import json

from sqlmodel import col, select

from bot import queue
from bot.models import InboundEvent, Ticket, TicketHistory
from bot.retry import PermanentError
from bot.runtime import Runtime
from bot.ticket_store import move
from bot.worker import JobContext
from workflows.lifecycle import COALESCED, Effect, EffectKind
from workflows.states import TicketState
from workflows.transitions import Action, decide, roles_of

KIND = "slack.action"
EPHEMERAL = "slack.ephemeral"


def handle_slack_action(runtime: Runtime, ctx: JobContext) -> None:
    event_id = json.loads(ctx.job.payload)["event_id"]
    with ctx.final() as session:
        refusal: tuple[str, str, str] | None = None
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        click = json.loads(event.body)
        ticket = session.get(Ticket, click["ticket"])
        if ticket is None:
            raise PermanentError(f"ticket {click['ticket']} does not exist")
        user, action = click["user"], Action(click["action"])
        policy = runtime.policy
        team = policy.teams.get(ticket.team or "")
        roles = roles_of(
            user,
            operators=policy.operators.users,
            team_members=team.users if team else (),
            qa=policy.qa.users if policy.qa else (),
        )
        state = TicketState(ticket.state)
        verdict = decide(
            state, action, roles, version=ticket.version, seen_version=click.get("version"), has_assignee=False
        )
        if not verdict.allowed or verdict.to is None:
            reason = verdict.reason
            if click.get("version") != ticket.version:
                last = session.exec(
                    select(TicketHistory)
                    .where(TicketHistory.ticket_id == ticket.id, col(TicketHistory.to_state).is_not(None))
                    .order_by(col(TicketHistory.id).desc())
                ).first()
                if last is not None:
                    reason = f"{last.actor} already moved it to {TicketState(last.to_state or state).label}"
            refusal = (click["channel"], user, f"Nothing changed: {reason}.")
        elif action is Action.ASSIGN_TEAM and click.get("team") not in policy.teams:
            refusal = (click["channel"], user, f"Nothing changed: there is no team {click.get('team')!r}.")
        else:
            if action is Action.ASSIGN_TEAM:
                ticket.team = click["team"]
            to_team = f" (team {ticket.team})" if action is Action.ASSIGN_TEAM else ""
            move(session, ticket, verdict.to, actor=user, via="slack", note=f"{action.label} in Slack{to_team}")
            text = f"{action.label} by Slack user {user}: now {verdict.to.label}{to_team}."
            for effect in (
                Effect(EffectKind.JIRA_TRANSITION, {"state": verdict.to.value}),
                Effect(EffectKind.JIRA_COMMENT, {"text": text}),
                Effect(EffectKind.SLACK_CARD),
                Effect(EffectKind.SLACK_NOTE, {"text": text}),
            ):
                queue.enqueue(
                    session,
                    kind=effect.kind.value,
                    lane=ctx.job.lane,
                    payload=effect.payload,
                    coalesce=effect.kind in COALESCED,
                )
        if refusal is not None:
            channel, to, words = refusal
            queue.enqueue(
                session, kind=EPHEMERAL, lane=f"ephemeral:{to}", payload={"channel": channel, "user": to, "text": words}
            )


def send_ephemeral(runtime: Runtime, ctx: JobContext) -> None:
    """Tell one person, in the channel they clicked in, why nothing changed (only they see it)."""
    message = json.loads(ctx.job.payload)
    runtime.slack.ephemeral(message["channel"], message["user"], message["text"])
