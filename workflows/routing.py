"""Where a notification goes: environment, priority, owner and channel, read from the policy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from workflows.alerts import GroupNotification
from workflows.policy import Environment, MatchValue, Policy
from workflows.severity import highest, priority_for
from workflows.states import TicketState

DEFAULT_ENVIRONMENT = "default"


@dataclass(frozen=True)
class Routing:
    environment: str
    priority: str
    team: str | None
    channel: str
    severity: str = ""  # the word the priority was chosen by ("" when the sender gave none)

    @property
    def owner(self) -> str:
        return f"team {self.team}" if self.team else "operators (triage)"


def matches(selector: dict[str, MatchValue], labels: dict[str, str]) -> bool:
    """Every selector key must be present with the value (or one of the values) given."""
    for key, wanted in selector.items():
        value = labels.get(key)
        if value is None:
            return False
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def environment_for(policy: Policy, labels: dict[str, str]) -> tuple[str, Environment]:
    """The first environment whose selector matches; the policy's default otherwise."""
    for name, env in policy.environments.items():
        if matches(env.match, labels):
            return name, env
    return DEFAULT_ENVIRONMENT, policy.default_environment


def route(policy: Policy, note: GroupNotification) -> Routing:
    name, env = environment_for(policy, note.selectors)
    team: str | None = None
    severity = highest(env, note.severities)
    priority = priority_for(env, severity) if severity else env.default_priority
    for candidate in env.routes:
        if matches(candidate.match, note.selectors):
            team = candidate.team
            priority = candidate.priority or priority
            break
    channel = policy.teams[team].channel if team else policy.operators.channel
    return Routing(environment=name, priority=priority, team=team, channel=channel, severity=severity)


def is_test(policy: Policy, note: GroupNotification) -> bool:
    """A test notification: the sender's own (Grafana's "Test" button), or one the policy's
    ``test_notifications.match`` selects by its labels."""
    return note.test or any(matches(selector, note.selectors) for selector in policy.test_notifications.match)


def dedup_label(dedup_key: str, generation: int) -> str:
    """The Jira label that marks the one ticket of a dedup key's ``generation``-th occurrence.

    It is what an uncertain create is looked up by, so it must be unique per ticket and a valid label.
    """
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()[:20]
    return f"triage-{digest}-{generation}"


def card_channels(policy: Policy, team: str | None, state: TicketState) -> list[str]:
    """Where a ticket in ``state`` must have a card, besides where it was first posted: whoever acts next sees
    it in their own channel (the team for assigned and in-progress work, QA for QA, operators for triage and
    for resolved tickets waiting for QA or close)."""
    owner = policy.teams.get(team or "")
    if state in (TicketState.ASSIGNED, TicketState.IN_PROGRESS) and owner is not None:
        return [owner.channel]
    if state is TicketState.IN_QA and policy.qa is not None:
        return [policy.qa.channel]
    if state in (TicketState.OPEN, TicketState.RESOLVED):
        return [policy.operators.channel]
    return []


def what_it_would_do(policy: Policy, note: GroupNotification) -> dict[str, str | int | list[str]]:
    """What a notification would become, touching nothing (``triage-bot route`` and the console's dry run)."""
    from workflows.tickets import LINK_NAMES

    routing = route(policy, note)
    env = policy.environment_named(routing.environment)
    return {
        "source": note.source.value,
        "status": note.status,
        "title": note.title,
        "environment": routing.environment,
        "dedup_key": note.dedup_key,
        "jira_label": dedup_label(note.dedup_key, 1),
        "severity": routing.severity or "(none)",
        "priority": routing.priority,
        "owner": routing.owner,
        "channel": routing.channel,
        "on_resolve": env.on_resolve,
        "reopen": env.reopen,
        "alerts": len(note.alerts),
        "rules": ", ".join(f"{r.name} ({r.firing} of {r.total} firing)" for r in note.rules) or "(none)",
        "test": policy.test_notifications.action if is_test(policy, note) else "no",
        "links": list(dict.fromkeys(f"{LINK_NAMES[x.kind]}: {x.url}" for a in note.alerts for x in a.links)),
    }
