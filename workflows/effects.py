"""What a decision asks of the outside world, by system.

Each system (Jira, Slack, the customer's e-mail) works through its own queue lane per ticket, so one being
down or refusing never holds up another. Where the system holds *state* (the Jira issue's fields, status and
assignee; the Slack card) the effect is a reconciliation: it brings the system to the ticket's current state
when it runs, so one pending copy per ticket is enough and a stale move is never replayed. Where it holds a
*log* (Jira comments and files, thread notes, e-mails) each entry is its own effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class System(StrEnum):
    JIRA = "jira"
    SLACK = "slack"
    MAIL = "mail"


class EffectKind(StrEnum):
    JIRA_CREATE = "jira.create"
    JIRA_SYNC = "jira.sync"  # reconcile: summary, description, priority, labels, status and assignee
    JIRA_COMMENT = "jira.comment"
    JIRA_ATTACH = "jira.attach"  # a file a customer attached to a report
    SLACK_CARD = "slack.card"  # reconcile: the ticket's card and its copies in other channels
    SLACK_NOTE = "slack.note"  # a line of history in the card's thread
    MAIL_SEND = "mail.send"  # an e-mail to the ticket's customer

    @property
    def system(self) -> System:
        return System(self.value.split(".", 1)[0])


# Effects that bring an outside system to the ticket's current state: one pending copy per ticket is enough.
RECONCILED = frozenset({EffectKind.JIRA_SYNC, EffectKind.SLACK_CARD})


@dataclass(frozen=True)
class Effect:
    kind: EffectKind
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> System:
        return self.kind.system


SYNC = Effect(EffectKind.JIRA_SYNC)
CARD = Effect(EffectKind.SLACK_CARD)


def comment(text: str) -> Effect:
    """A Jira comment (plain words; escaped for Jira when it is written)."""
    return Effect(EffectKind.JIRA_COMMENT, {"text": text})


@dataclass(frozen=True)
class Named:
    """A Slack user a Jira comment names: by name, or with ``mention`` as a Jira mention where their account is
    known (bot looks them up when it writes the comment; workflows.tickets.comment_naming renders them)."""

    slack_user: str
    mention: bool = False


def comment_naming(*parts: str | Named) -> Effect:
    """A Jira comment of plain words (escaped when written) and people."""
    return Effect(
        EffectKind.JIRA_COMMENT,
        {
            "parts": [
                part if isinstance(part, str) else {"slack_user": part.slack_user, "mention": part.mention}
                for part in parts
            ]
        },
    )


def named_in(payload: dict[str, Any]) -> list[str]:
    """The Slack users a comment's payload names."""
    return list(dict.fromkeys(str(p["slack_user"]) for p in payload.get("parts", []) if isinstance(p, dict)))


def note(text: str, mention: tuple[str, ...] = (), channel: str | None = None) -> Effect:
    """A line in the card's thread: ``text`` is outside words (escaped when rendered), ``mention`` Slack ids to
    mention, ``channel`` the card whose thread it goes in (default: the original card)."""
    payload: dict[str, Any] = {"text": text}
    if mention:
        payload["mention"] = list(mention)
    if channel:
        payload["channel"] = channel
    return Effect(EffectKind.SLACK_NOTE, payload)


def raw_note(mrkdwn: str) -> Effect:
    """A line in the card's thread in our own mrkdwn (any outside words in it escaped by the caller)."""
    return Effect(EffectKind.SLACK_NOTE, {"raw": mrkdwn})
