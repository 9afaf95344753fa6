"""Button clicks from Slack: the ``slack.action`` job decides the move and carries it out.

The click was stored before Slack got its ack. Here, in the ticket's click lane, the move is checked against the
workflow table, the clicker's roles and the version of the card they clicked; a refusal goes back to the
clicker alone (ephemeral), a move is recorded and mirrored to Jira and to the card.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from bot.clients.slack import CHANNEL_UNREACHABLE
from bot.db.models import InboundEvent, Ticket, TicketHistory
from bot.jobs import queue
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.alerts import ticket_lane
from bot.tickets.reports import send_mail, writes_to_customer
from bot.tickets.store import move, show_in
from workflows.cards import SECTION_LIMIT
from workflows.escaping import slack_text, truncate
from workflows.forms import INPUT_KEY, form_for
from workflows.lifecycle import COALESCED, Effect, EffectKind
from workflows.policy import SLACK_USER, Policy
from workflows.routing import card_channels
from workflows.states import TicketState
from workflows.transitions import Action, Decision, decide, roles_of

log = logging.getLogger("triage.slack")
KIND = "slack.action"
EPHEMERAL = "slack.ephemeral"


def click_lane(ticket_id: int) -> str:
    """Clicks on one ticket are decided one at a time, in the order Slack sent them, but not behind the ticket's
    Jira and Slack work: a Jira outage delays the mirror images of a move, never the move or the answer."""
    return f"click:{ticket_id}"


def handle_slack_action(runtime: Runtime, ctx: JobContext) -> None:
    event_id = json.loads(ctx.job.payload)["event_id"]
    for audience in runtime.policy.audiences():
        # User groups asked of Slack now, not inside the transaction; one Slack cannot list is a reason to try
        # again later, never to refuse someone who may act.
        runtime.slack.members(audience.users, strict=True)
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        click = json.loads(event.body)
        # Locked: alert processing and Jira's webhooks may change the same ticket from other lanes.
        ticket = session.exec(select(Ticket).where(Ticket.id == int(click["ticket"])).with_for_update()).first()
        if ticket is None:  # a card from another installation, or a ticket purged since
            tell(
                session,
                click["channel"],
                click["user"],
                f"Nothing changed: there is no ticket #{int(click['ticket'])}.",
            )
            return
        action = Action(click["action"])
        verdict = judge(runtime.policy, runtime.slack.members, ticket, click["user"], action, click.get("version"))
        if not verdict.allowed or verdict.to is None:
            reason = verdict.reason
            if click.get("version") != ticket.version:
                reason = _who_moved_it(session, ticket) or reason
            tell(session, click["channel"], click["user"], f"Nothing changed: {reason}.")
        elif (problem := _input_problem(runtime, ticket, action, click)) is not None:
            tell(session, click["channel"], click["user"], f"Nothing changed: {slack_text(problem)}.")
        else:
            _carry_out(session, runtime, ticket, action, verdict.to, click)


def _who_moved_it(session: Session, ticket: Ticket) -> str | None:
    """Slack mrkdwn: who made the ticket's last move, and where to."""
    last = session.exec(
        select(TicketHistory)
        .where(TicketHistory.ticket_id == ticket.id, col(TicketHistory.to_state).is_not(None))
        .order_by(col(TicketHistory.id).desc())
    ).first()
    if last is None:
        return None
    who = f"<@{last.actor}>" if last.via == "slack" and SLACK_USER.match(last.actor) else slack_text(last.actor)
    return f"{who} already moved it to {TicketState(last.to_state or ticket.state).label}"


def tell(session: Session, channel: str, user: str, words: str) -> None:
    """Queue an ephemeral message (our own mrkdwn; quote outside text escaped): only ``user`` sees it. Each has
    a lane of its own: one that cannot be sent holds up no other."""
    queue.enqueue(
        session,
        kind=EPHEMERAL,
        lane=f"ephemeral:{secrets.token_hex(8)}",
        payload={"channel": channel, "user": user, "text": words},
    )


def send_ephemeral(runtime: Runtime, ctx: JobContext) -> None:
    """Tell one person, in the channel they clicked in, why nothing changed (only they see it)."""
    message = json.loads(ctx.job.payload)
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


Members = Callable[[tuple[str, ...]], frozenset[str]]


def judge(
    policy: Policy, members: Members, ticket: Ticket, user: str, action: Action, seen_version: int | None
) -> Decision:
    """May ``user`` take ``action`` on ``ticket`` as they saw it? (The listener asks before opening a form.)
    ``members`` expands a policy's user list (user groups included)."""
    team = policy.teams.get(ticket.team or "")
    roles = roles_of(
        user,
        operators=tuple(members(policy.operators.users)),
        team_members=tuple(members(team.users)) if team else (),
        qa=tuple(members(policy.qa.users)) if policy.qa else (),
    )
    return decide(
        TicketState(ticket.state),
        action,
        roles,
        version=ticket.version,
        seen_version=seen_version,
        has_assignee=ticket.assignee is not None,
        has_team=team is not None,
    )


def _input_problem(runtime: Runtime, ticket: Ticket, action: Action, click: dict[str, Any]) -> str | None:
    """What is wrong with what the form said (checked again here: the policy may have changed since)."""
    policy, members = runtime.policy, runtime.slack.members
    form = form_for(action, has_customer=writes_to_customer(runtime.settings, ticket))
    if form is not None and not click.get(INPUT_KEY[form.kind]):
        return f"{action.label} needs its form: press the button again"
    if action is Action.ASSIGN_TEAM and click.get("team") not in policy.teams:
        return f"there is no team {click.get('team')!r}"
    if action is Action.ASSIGN_MEMBER:
        team = policy.teams.get(ticket.team or "")
        if team is None or click.get("member") not in members(team.users):
            return f"{click.get('member')} is not a member of team {ticket.team}"
    return None


def _carry_out(
    session: Session, runtime: Runtime, ticket: Ticket, action: Action, to: TicketState, click: dict[str, Any]
) -> None:
    """Record the move and queue its mirror images: Jira status, assignee and comment; the cards; the thread;
    for a customer's ticket closed with a message, the e-mail."""
    policy, user = runtime.policy, click["user"]
    what, shown = "", ""  # after the new state: for Jira and the history; for Slack (mrkdwn, with mentions)
    assign_to: tuple[str | None] | tuple[()] = ()
    if action is Action.ASSIGN_TEAM:
        ticket.team = click["team"]
        what, shown = f" (team {ticket.team})", f" (team {slack_text(ticket.team or '')})"
        if ticket.assignee is not None:
            ticket.assignee, assign_to = None, (None,)  # a new team picks its own member
    elif action is Action.ASSIGN_MEMBER:
        ticket.assignee = click["member"]
        assign_to = (ticket.assignee,)
        what, shown = f" (assignee: Slack user {ticket.assignee})", f" (assignee: <@{ticket.assignee}>)"
    elif to is TicketState.OPEN:
        ticket.team = None  # back to triage: the operators pick the team again
        if ticket.assignee is not None:
            ticket.assignee, assign_to = None, (None,)
    said = str(click.get("text") or "").strip()
    move(
        session,
        ticket,
        to,
        actor=user,
        via="slack",
        note=f"{action.label}{what} in Slack" + (f": {said}" if said else ""),
    )
    show_in(session, ticket, card_channels(policy, ticket.team, to))
    told = f"\n{_SAID[action]}: " if said else ""
    text = f"{action.label} by Slack user {user}: now {to.label}{what}.{told}{said}"
    note = truncate(f"{action.label} by <@{user}>: now {to.label}{shown}.{told}{slack_text(said)}", SECTION_LIMIT)
    assert ticket.id is not None
    lane = ticket_lane(ticket.id)
    effects = [Effect(EffectKind.JIRA_TRANSITION, {"state": to.value})]
    effects += [Effect(EffectKind.JIRA_ASSIGN, {"user": who}) for who in assign_to]
    effects += [
        Effect(EffectKind.JIRA_COMMENT, {"text": text}),
        Effect(EffectKind.SLACK_CARD),
        Effect(EffectKind.SLACK_NOTE, {"raw": note}),
    ]
    for effect in effects:
        queue.enqueue(
            session, kind=effect.kind.value, lane=lane, payload=effect.payload, coalesce=effect.kind in COALESCED
        )
    if action is Action.CLOSE and ticket.customer_email and said:
        send_mail(
            session, runtime.settings, ticket, "closed", {"message": said}
        )  # the customer hears what the operator wrote


_SAID = {Action.RESOLVE: "What was done", Action.CLOSE: "Message for the customer"}
