"""The ``/triage`` slash command: what it was asked, and what it answers. Pure; ``webhooks`` wires it to Slack.

/triage OPS-12        the ticket's card, to the caller only (its buttons work as on any card)
/triage 12            the same, by the bot's ticket number
/triage list [WHAT]   unfinished tickets, newest first; WHAT is a state (open, assigned, in_progress,
                      resolved, in_qa, closed, or "all") or a team name
/triage new           a form to open a ticket by hand
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from workflows.cards import assignee_text
from workflows.escaping import one_line, slack_text, truncate
from workflows.forms import select_options
from workflows.plans import Entry, Opening, Plan, opening_effects
from workflows.policy import Policy
from workflows.states import TicketState, initial_state
from workflows.tickets import TicketView

NEW_TICKET_VIEW = "triage.new_ticket"
LIST_LIMIT = 20
TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 2000

USAGE = (
    "*/triage* drives triage from anywhere in Slack:\n"
    "• `/triage OPS-12` (or `/triage 12`): the ticket's card, just for you\n"
    "• `/triage list`: unfinished tickets; `/triage list in_qa`, `/triage list payments`, `/triage list all`\n"
    "• `/triage new`: open a ticket by hand"
)

_KEY = re.compile(r"^#?(?:(?P<key>[A-Za-z][A-Za-z0-9_]*-\d+)|(?P<id>\d{1,12}))$")


@dataclass(frozen=True)
class Command:
    kind: Literal["help", "show", "list", "new", "unknown"]
    key: str | None = None  # show: a Jira key (upper case)
    ticket_id: int | None = None  # show: the bot's ticket number
    states: tuple[TicketState, ...] = ()  # list: these states (empty: every unfinished one)
    team: str | None = None  # list: this team's
    problem: str = ""  # unknown: what to tell the caller


UNFINISHED = tuple(s for s in TicketState if s is not TicketState.CLOSED)


def parse(text: str, teams: list[str]) -> Command:
    words = text.split()
    if not words or words[0].lower() in ("help", "?"):
        return Command("help")
    head, rest = words[0].lower(), words[1:]
    if head == "new":
        return Command("new")
    if head == "list":
        if not rest:
            return Command("list", states=UNFINISHED)
        what = " ".join(rest).lower().replace(" ", "_").replace("-", "_")
        if what == "all":
            return Command("list", states=tuple(TicketState))
        if what in {s.value for s in TicketState}:
            return Command("list", states=(TicketState(what),))
        team = next((t for t in teams if t.lower() == " ".join(rest).lower()), None)
        if team is not None:
            return Command("list", states=UNFINISHED, team=team)
        known = ", ".join([s.value for s in TicketState] + ["all", *teams])
        return Command("unknown", problem=f"I can list by state or team: {known}.")
    found = _KEY.match(words[0]) if len(words) == 1 else None
    if found:
        if found["key"]:
            return Command("show", key=found["key"].upper())
        return Command("show", ticket_id=int(found["id"]))
    return Command("unknown", problem=f"I don't know `{slack_text(truncate(one_line(text), 50))}`.")


def listing(tickets: list[TicketView], command: Command, more: bool) -> str:
    """The answer to ``/triage list``: one line per ticket, newest first."""
    what = (command.team and f"team {command.team}'s") or ""
    if command.states and set(command.states) != set(UNFINISHED):
        what = " ".join(x for x in (what, "/".join(s.label.lower() for s in command.states)) if x)
    heading = f"*{len(tickets)}{'+' if more else ''} {what or 'unfinished'} ticket{'s' if len(tickets) != 1 else ''}*"
    if not tickets:
        return f"{heading}: nothing to do."
    lines = [heading]
    for t in tickets:
        key = f"<{t.jira_url}|{slack_text(t.jira_key)}>" if t.jira_url and t.jira_key else f"#{t.id}"
        owner = f"team {slack_text(t.team)}" if t.team else "operators"
        who = f" · {assignee_text(t)}" if t.assignee or t.assignee_name else ""
        lines.append(f"• {key} · {t.state.label} · {owner}{who} · {slack_text(truncate(one_line(t.title), 80))}")
    if more:
        lines.append(f"_Showing the newest {LIST_LIMIT}._")
    return "\n".join(lines)


class NewTicketMetadata(BaseModel):
    """The New ticket form's ``private_metadata``: the channel ``/triage new`` was typed in (the opener's answer
    goes there). Read with ``model_validate_json()``."""

    model_config = ConfigDict(frozen=True)

    channel: str = ""

    def private_metadata(self) -> str:
        """``{"channel": "C1"}``: json.dumps' spacing, byte for byte what the form has always carried."""
        return json.dumps(self.model_dump())


def new_ticket_modal(channel: str, teams: list[str], priorities: list[str]) -> dict[str, Any]:
    """The form behind ``/triage new``."""

    owners = [("", "Operators (triage)")] + [(t, f"Team {t}") for t in teams]
    default = "Medium" if "Medium" in priorities else (priorities[len(priorities) // 2] if priorities else "")
    return {
        "type": "modal",
        "callback_id": NEW_TICKET_VIEW,
        "private_metadata": NewTicketMetadata(channel=channel).private_metadata(),
        "title": {"type": "plain_text", "text": "New ticket"},
        "submit": {"type": "plain_text", "text": "Open"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "title",
                "label": {"type": "plain_text", "text": "What is wrong"},
                "element": {"type": "plain_text_input", "action_id": "title", "max_length": TITLE_LIMIT},
            },
            {
                "type": "input",
                "block_id": "description",
                "optional": True,
                "label": {"type": "plain_text", "text": "Details"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "description",
                    "multiline": True,
                    "max_length": DESCRIPTION_LIMIT,
                },
            },
            {
                "type": "input",
                "block_id": "priority",
                "label": {"type": "plain_text", "text": "Priority"},
                "element": {
                    "type": "static_select",
                    "action_id": "priority",
                    "options": select_options([(p, p) for p in priorities]),
                    **({"initial_option": select_options([(default, default)])[0]} if default else {}),
                },
            },
            {
                "type": "input",
                "block_id": "owner",
                "label": {"type": "plain_text", "text": "Who takes it"},
                "element": {
                    "type": "static_select",
                    "action_id": "owner",
                    "options": select_options([(v or "-", t) for v, t in owners]),
                    "initial_option": select_options([("-", owners[0][1])])[0],
                },
            },
        ],
    }


@dataclass(frozen=True)
class NewTicket:
    title: str
    description: str
    priority: str
    team: str | None


def new_ticket_entered(values: dict[str, Any], teams: list[str], priorities: list[str]) -> NewTicket | dict[str, str]:
    """What the New ticket form said, or the errors to show under its fields."""

    def text(block: str) -> str:
        value = ((values.get(block) or {}).get(block) or {}).get("value")
        return value.strip() if isinstance(value, str) else ""

    def chosen(block: str) -> str:
        option = ((values.get(block) or {}).get(block) or {}).get("selected_option") or {}
        value = option.get("value")
        return value if isinstance(value, str) else ""

    errors: dict[str, str] = {}
    title, description = text("title"), text("description")
    if not title:
        errors["title"] = "Say what is wrong."
    elif len(title) > TITLE_LIMIT:
        errors["title"] = f"At most {TITLE_LIMIT} characters."
    if len(description) > DESCRIPTION_LIMIT:
        errors["description"] = f"At most {DESCRIPTION_LIMIT} characters."
    priority = chosen("priority")
    if priority not in priorities:
        errors["priority"] = "Pick a priority."
    owner = chosen("owner")
    team = None if owner in ("", "-") else owner
    if team is not None and team not in teams:
        errors["owner"] = "That team is not in the policy."
    if errors:
        return errors
    return NewTicket(one_line(title), description, priority, team)


NOT_ALLOWED = "Nothing opened: only the operators, QA and the teams in triage-bot's policy can open tickets."


def plan_new_ticket(form: NewTicket, user: str, policy: Policy, *, allowed: bool) -> Opening | None:
    """The ticket ``/triage new`` opens (straight to the team it names, or to triage), or None when ``user`` is
    not someone the policy names (``allowed``: the caller expanded the policy's user groups)."""
    if not allowed:
        return None
    team = form.team if form.team in policy.teams else None
    audience = policy.teams[team] if team else policy.operators
    state = initial_state(team)
    return Opening(
        state=state,
        team=team,
        channel=audience.channel,
        plan=Plan(history=(Entry(user, "slack", "opened by hand in Slack", to=state),), effects=opening_effects()),
    )
