"""The routing policy: who gets which ticket, at what priority, and what happens when an alert clears.

Loaded from YAML and validated with errors that point at the line to fix. The policy is data; the
functions in ``routing`` read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workflows.durations import parse_duration

SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
JIRA_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")

OnResolve = Literal["ignore", "comment", "resolve"]

DEFAULT_TRANSITIONS = {
    "open": "Reopen",
    "assigned": "Reopen",  # back from resolved/closed to a team: the issue is open again in Jira
    "in_progress": "In Progress",
    "resolved": "Resolved",
    "closed": "Done",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_STATUSES = {
    "to do": "open",
    "open": "open",
    "reopened": "open",
    "backlog": "open",
    "in progress": "in_progress",
    "resolved": "resolved",
    "in review": "in_qa",
    "done": "closed",
    "closed": "closed",
}


class JiraPolicy(_Strict):
    project: str
    issue_type: str = "Task"
    labels: tuple[str, ...] = ()
    transitions: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TRANSITIONS))
    # Jira status name -> ticket state, for changes made in Jira (matched without regard to case).
    statuses: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STATUSES))

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        known = {"open", "assigned", "in_progress", "resolved", "in_qa", "closed"}
        wrong = sorted(state for state in value.values() if state not in known)
        if wrong:
            raise ValueError(f"unknown state(s) {wrong}; states are {sorted(known)}")
        return {**DEFAULT_STATUSES, **{name.lower(): state for name, state in value.items()}}

    def state_of_status(self, status: str) -> str | None:
        return self.statuses.get(status.strip().lower())

    @field_validator("project")
    @classmethod
    def _project_key(cls, value: str) -> str:
        if not JIRA_PROJECT.match(value):
            raise ValueError("a Jira project key is upper-case letters and digits, like OPS")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for label in value:
            if not label or any(c.isspace() for c in label) or len(label) > 255:
                raise ValueError(f"Jira label {label!r} must be 1-255 characters without spaces")
        return value

    @field_validator("transitions")
    @classmethod
    def _transitions(cls, value: dict[str, str]) -> dict[str, str]:
        known = {"open", "assigned", "in_progress", "resolved", "in_qa", "closed"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown state(s) {unknown}; states are {sorted(known)}")
        return {**DEFAULT_TRANSITIONS, **value}


class Audience(_Strict):
    """A group of people with a Slack channel: the operators, QA, or a team."""

    channel: str
    users: tuple[str, ...] = ()

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not SLACK_CHANNEL.match(value):
            raise ValueError("a Slack channel id looks like C0123ABCD (the id, not the #name)")
        return value

    @field_validator("users")
    @classmethod
    def _users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user in value:
            if not SLACK_USER.match(user) and not user.startswith("S"):
                raise ValueError(f"{user!r} is not a Slack user id (U...) or user group id (S...)")
        return value


MatchValue = str | list[str]


class Route(_Strict):
    match: dict[str, MatchValue]
    team: str | None = None
    priority: str | None = None


class Environment(_Strict):
    match: dict[str, MatchValue] = Field(default_factory=dict)
    priorities: dict[str, str] = Field(default_factory=dict)
    default_priority: str = "Medium"
    routes: tuple[Route, ...] = ()
    on_resolve: OnResolve = "comment"
    reopen: str = "24h"
    escalate_after: str | None = None  # remind the people who should act on an open/assigned ticket
    escalate_limit: int = Field(default=3, ge=1, le=100)

    @field_validator("reopen")
    @classmethod
    def _reopen(cls, value: str) -> str:
        if value not in ("never", "always"):
            parse_duration(value)
        return value

    @field_validator("escalate_after")
    @classmethod
    def _escalate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def escalation_interval(self) -> timedelta | None:
        return parse_duration(self.escalate_after) if self.escalate_after else None

    def reopen_window(self) -> timedelta | None:
        """None: never reopen; timedelta.max: always; else the window after closing."""
        if self.reopen == "never":
            return None
        if self.reopen == "always":
            return timedelta.max
        return parse_duration(self.reopen)


class ReportsJira(_Strict):
    project: str
    issue_type: str = "Bug"
    labels: tuple[str, ...] = ()

    @field_validator("project")
    @classmethod
    def _project_key(cls, value: str) -> str:
        if not JIRA_PROJECT.match(value):
            raise ValueError("a Jira project key is upper-case letters and digits, like SUP")
        return value


class ReportRoute(_Strict):
    """Reports whose fields match (``category``, ``app``, ``platform``) go to ``team`` at ``priority``."""

    match: dict[str, MatchValue]
    team: str | None = None
    priority: str | None = None

    @field_validator("match")
    @classmethod
    def _fields(cls, value: dict[str, MatchValue]) -> dict[str, MatchValue]:
        unknown = sorted(set(value) - REPORT_FIELDS)
        if unknown:
            raise ValueError(f"reports are matched by {sorted(REPORT_FIELDS)}, not {unknown}")
        return value


REPORT_FIELDS = frozenset({"category", "app", "platform"})


TestAction = Literal["ignore", "card"]


class NotificationTests(_Strict):
    """Test notifications (Grafana's contact point "Test" button, and whatever ``match`` selects by label):
    ``ignore`` answers them and opens nothing; ``card`` posts a card that says it is a test, and no Jira issue."""

    action: TestAction = "card"
    match: tuple[dict[str, MatchValue], ...] = ()


class Reports(_Strict):
    """Customer reports from the apps: their own Jira project, routed by category (to triage by default)."""

    jira: ReportsJira
    routes: tuple[ReportRoute, ...] = ()
    default_priority: str = "Medium"


class Policy(_Strict):
    jira: JiraPolicy
    operators: Audience
    qa: Audience | None = None
    teams: dict[str, Audience] = Field(default_factory=dict)
    environments: dict[str, Environment] = Field(default_factory=dict)
    default_environment: Environment = Field(default_factory=Environment)
    reports: Reports | None = None  # unset: reports go to the alerts' project, to triage
    test_notifications: NotificationTests = Field(default_factory=NotificationTests)

    def environment_named(self, name: str) -> Environment:
        return self.environments.get(name, self.default_environment)

    def priorities(self) -> list[str]:
        """Every Jira priority the policy uses, in the order it names them."""
        found: dict[str, None] = {}
        for env in (*self.environments.values(), self.default_environment):
            found.update(dict.fromkeys([*env.priorities.values(), env.default_priority]))
        return list(found)

    def audiences(self) -> list[Audience]:
        return [self.operators, *([self.qa] if self.qa else []), *self.teams.values()]


def _cross_references(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """Checks that span sections: every route names a team that exists."""
    found: list[tuple[tuple[Any, ...], str]] = []
    for env_name, env in policy.environments.items():
        for index, route in enumerate(env.routes):
            if route.team is not None and route.team not in policy.teams:
                found.append(
                    (
                        ("environments", env_name, "routes", index, "team"),
                        f"unknown team {route.team!r}; teams are {sorted(policy.teams)}",
                    )
                )
    if policy.reports is not None:
        for index, report_route in enumerate(policy.reports.routes):
            if report_route.team is not None and report_route.team not in policy.teams:
                found.append(
                    (
                        ("reports", "routes", index, "team"),
                        f"unknown team {report_route.team!r}; teams are {sorted(policy.teams)}",
                    )
                )
    return found


@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"line {self.line}: " if self.line else ""
        return f"{at}{self.where}: {self.message}" if self.where else f"{at}{self.message}"


class PolicyError(Exception):
    """The policy file cannot be used; ``problems`` says where and why."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}:{p}" if p.line else f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid policy {source}:\n{lines}")


def load_policy(path: str | Path) -> Policy:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(source), [PolicyProblem(None, "", f"cannot read the file: {exc}")]) from exc
    return parse_policy(text, source=str(source))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [PolicyProblem(line, "", f"not valid YAML: {problem}")]) from exc
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyProblem(1, "", "the policy must be a mapping with jira, operators...")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        found = [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
        raise PolicyError(source, _problems(node, found)) from exc
    found = _cross_references(policy)
    if found:
        raise PolicyError(source, _problems(node, found))
    return policy


def _problems(node: Any, found: list[tuple[tuple[Any, ...], str]]) -> list[PolicyProblem]:
    return [PolicyProblem(_line_of(node, loc), ".".join(str(p) for p in loc), msg) for loc, msg in found]


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
