"""What a change someone made in Jira does to its ticket: the pure planner behind the ``jira.event`` job.

Changes made by the bot's own Jira account are none (they are its own mirror images coming back), and a move
to the state the ticket is already in is no move: together that keeps Jira and the bot from echoing each
other. Only Slack (the card, the thread) and the customer's e-mail follow; Jira already shows the change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from workflows.effects import CARD, Effect, EffectKind, note
from workflows.escaping import one_line, truncate
from workflows.jira_webhooks import JiraWebhook
from workflows.plans import NOTHING, Entry, Plan
from workflows.policy import Policy
from workflows.reports import mask_email
from workflows.routing import card_channels
from workflows.states import TicketState
from workflows.tickets import TicketView

CLOSED_IN_JIRA = "Our team has dealt with your report and closed it."
COMMENT_PREVIEW = 500


def plan_jira_change(
    ticket: TicketView,
    change: JiraWebhook,
    *,
    policy: Policy,
    own: frozenset[str],
    slack_user_of: Mapping[str, str],
    comment_seen: bool,
) -> Plan:
    """``own``: the bot's own Jira identities; ``slack_user_of``: the Slack user of each Jira account the bot
    knows (bot looks up those the change assigns); ``comment_seen``: Jira told of this comment before
    (issue_commented and comment_created both)."""
    actor = change.actor
    if actor.ids & own:
        return NOTHING
    name = actor.name
    entries: list[Entry] = []
    notes: list[str] = []
    effects: list[Effect] = []
    show_in: list[str] = []
    state, assignee, assignee_name, set_assignee = ticket.state, ticket.assignee, ticket.assignee_name, False
    for status in [str(c.toString or "") for c in change.changes if c.field_id == "status"]:
        mapped = policy.jira.state_of_status(status)
        if mapped is None:
            notes.append(f"{name} moved the Jira issue to {status}, a status the policy does not map.")
            continue
        to = TicketState(mapped)
        if to is state:
            continue
        state = to
        entries.append(Entry(name, "jira", f"moved to {status} in Jira", to=to))
        show_in += card_channels(policy, ticket.team, to)
        if to is TicketState.CLOSED and ticket.customer_email:
            # Closed in Jira: the customer is told all the same, in the template's own words.
            effects.append(Effect(EffectKind.MAIL_SEND, {"kind": "closed", "context": {"message": CLOSED_IN_JIRA}}))
        notes.append(f"{name} moved this to {to.label} in Jira ({status}).")
    for item in [c for c in change.changes if c.field_id == "assignee"]:
        # The card names the person as Jira does, and mentions them when they have a Slack user.
        assignee = slack_user_of.get(item.to) if item.to else None
        assignee_name = (item.toString or item.to) if item.to else None
        set_assignee = True
        who = item.toString or "nobody"
        entries.append(Entry(name, "jira", f"assigned to {who} in Jira"))
        notes.append(f"{name} assigned the Jira issue to {who}.")
    comment = change.comment
    if comment is not None and comment.text is not None and not comment_seen:
        entries.append(Entry(name, "jira", comment_note(comment.id)))
        preview = truncate(one_line(comment.text), COMMENT_PREVIEW)
        if ticket.customer_email:  # a comment quoting the customer's address: not into Slack
            email = ticket.customer_email
            preview = re.sub(re.escape(email), mask_email(email), preview, flags=re.IGNORECASE)
        notes.append(f"{name} commented in Jira: {preview}")
    if not notes:
        return NOTHING
    return Plan(
        history=tuple(entries),
        effects=(CARD, *(note(text) for text in notes), *effects),
        set_assignee=set_assignee,
        assignee=assignee,
        assignee_name=assignee_name,
        show_in=tuple(dict.fromkeys(show_in)),
        in_jira=True,
    )


def comment_note(comment_id: str | None) -> str:
    """The history line of a Jira comment (how a repeated delivery of it is recognised)."""
    return f"commented in Jira (comment {comment_id})"
