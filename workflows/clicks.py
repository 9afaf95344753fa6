"""What a click (or a form's submission) on a ticket's card does: the one pure decision that both the Slack
listener (before it opens a form, within Slack's 3 seconds) and the worker (when it carries the click out)
call. The worker feeds it the ticket as stored and what it knows of people; it returns a ``Plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from workflows.cards import SECTION_LIMIT
from workflows.effects import CARD, SYNC, Effect, EffectKind, Named, comment_naming, raw_note
from workflows.escaping import slack_text, truncate
from workflows.forms import INPUT_KEY, form_for
from workflows.plans import Entry, Plan, refusal
from workflows.policy import SLACK_USER, Policy
from workflows.routing import card_channels
from workflows.states import TicketState
from workflows.tickets import TicketView
from workflows.transitions import Action, Decision, decide, roles_of

Members = Callable[[tuple[str, ...]], frozenset[str]]
_SAID = {Action.RESOLVE: "What was done", Action.CLOSE: "Message for the customer"}


class Click(BaseModel):
    """A click as stored before Slack got its ack: the button, the card's ticket and version, who and where,
    and what its form said (``team``, ``member`` or ``text``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Action
    ticket: int
    version: int | None = None
    user: str
    channel: str
    team: str | None = None
    member: str | None = None
    text: str | None = None

    def entered(self, key: str) -> str | None:
        value = getattr(self, key, None)
        return str(value) if value else None


@dataclass(frozen=True)
class LastMove:
    """The ticket's last move, to tell someone who clicked a card that was out of date who moved it."""

    actor: str
    via: str
    to: TicketState


def judge(
    policy: Policy, members: Members, ticket: TicketView, user: str, action: Action, seen: int | None
) -> Decision:
    """May ``user`` take ``action`` on ``ticket`` as they saw it (version ``seen``)? ``members`` expands a policy's
    user list (user groups included)."""
    team = policy.teams.get(ticket.team or "")
    roles = roles_of(
        user,
        operators=tuple(members(policy.operators.users)),
        team_members=tuple(members(team.users)) if team else (),
        qa=tuple(members(policy.qa.users)) if policy.qa else (),
    )
    return decide(
        ticket.state,
        action,
        roles,
        version=ticket.version,
        seen_version=seen,
        has_assignee=ticket.assignee is not None or ticket.assignee_name is not None,
        has_team=team is not None,
    )


def _who_moved_it(last: LastMove | None) -> str | None:
    if last is None:
        return None
    who = f"<@{last.actor}>" if last.via == "slack" and SLACK_USER.match(last.actor) else slack_text(last.actor)
    return f"{who} already moved it to {last.to.label}"


def _input_problem(
    policy: Policy, members: Members, ticket: TicketView, click: Click, has_customer: bool
) -> str | None:
    """What is wrong with what the form said (checked again here: the policy may have changed since)."""
    form = form_for(click.action, has_customer=has_customer)
    if form is not None and not click.entered(INPUT_KEY[form.kind]):
        return f"{click.action.label} needs its form: press the button again"
    if click.action is Action.ASSIGN_TEAM and click.team not in policy.teams:
        return f"there is no team {click.team!r}"
    if click.action is Action.ASSIGN_MEMBER:
        team = policy.teams.get(ticket.team or "")
        if team is None or click.member not in members(team.users):
            return f"{click.member} is not a member of team {ticket.team}"
    return None


def plan_click(
    ticket: TicketView,
    click: Click,
    *,
    policy: Policy,
    members: Members,
    has_customer: bool,
    last_move: LastMove | None,
) -> Plan:
    """The move a click makes, or the words that tell the clicker why nothing changed."""
    verdict = judge(policy, members, ticket, click.user, click.action, click.version)
    if not verdict.allowed or verdict.to is None:
        reason = verdict.reason
        if click.version != ticket.version:
            reason = _who_moved_it(last_move) or reason
        return refusal(f"Nothing changed: {reason}.")
    problem = _input_problem(policy, members, ticket, click, has_customer)
    if problem is not None:
        return refusal(f"Nothing changed: {slack_text(problem)}.")
    return _move(ticket, click, verdict.to, policy, has_customer)


def _move(ticket: TicketView, click: Click, to: TicketState, policy: Policy, has_customer: bool) -> Plan:
    """The move, its history, and its mirror images: the Jira issue brought to the new state, a comment, the
    cards, a line in the thread; for a customer's ticket closed with a message, the e-mail."""
    action, user = click.action, click.user
    team, assignee = ticket.team, ticket.assignee
    # After the new state: for the history; for Jira (people by name, the assignee mentioned); for Slack (mrkdwn).
    what, shown = "", ""
    named: list[str | Named] = []
    if action is Action.ASSIGN_TEAM:
        team, assignee = click.team, None  # a new team picks its own member
        what, shown = f" (team {team})", f" (team {slack_text(team or '')})"
        named = [what]
    elif action is Action.ASSIGN_MEMBER:
        assignee = click.member
        what, shown = f" (assignee: Slack user {assignee})", f" (assignee: <@{assignee}>)"
        named = [" (assignee: ", Named(assignee or "", mention=True), ")"]
    elif to is TicketState.OPEN:
        team, assignee = None, None  # back to triage: the operators pick the team again
    said = (click.text or "").strip()
    told = f"\n{_SAID[action]}: " if said else ""
    in_jira = comment_naming(f"{action.label} by ", Named(user), f": now {to.label}", *named, f".{told}{said}")
    note = truncate(f"{action.label} by <@{user}>: now {to.label}{shown}.{told}{slack_text(said)}", SECTION_LIMIT)
    effects: list[Effect] = [SYNC, in_jira, CARD, raw_note(note)]
    if action is Action.CLOSE and has_customer and said:
        # The customer hears what the operator wrote.
        effects.append(Effect(EffectKind.MAIL_SEND, {"kind": "closed", "context": {"message": said}}))
    return Plan(
        history=(Entry(user, "slack", f"{action.label}{what} in Slack" + (f": {said}" if said else ""), to=to),),
        effects=tuple(effects),
        set_team=team != ticket.team,
        team=team,
        set_assignee=assignee != ticket.assignee,
        assignee=assignee,
        show_in=tuple(card_channels(policy, team, to)),
    )
