"""What a ticket says in Jira: summary, description and labels, within Jira's limits and escaped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflows.alerts import TITLE_ANNOTATIONS, Alert, Link, Rule, rules_of
from workflows.escaping import jira_link, jira_text, one_line, truncate
from workflows.reports import app_line
from workflows.states import TicketState

SUMMARY_LIMIT = 255
DESCRIPTION_LIMIT = 32_767
LABEL_LIMIT = 255
DESCRIBED_ALERTS = 50  # the rest are counted, not listed
DETAIL_LINES = 15  # lines of one multi-line detail shown; the rest are counted
LINKS_SHOWN = 10  # the group's links shown together (each alert in Jira lists its own as well)
LINK_NAMES = {
    "source": "Source",
    "dashboard": "Dashboard",
    "panel": "Panel",
    "silence": "Silence",
    "runbook": "Runbook",
    "image": "Image",
    "link": "Link",
}


@dataclass(frozen=True)
class TicketView:
    """A ticket as the renderers see it; built by ``bot`` from the stored row."""

    id: int
    title: str
    source: str
    environment: str
    priority: str
    state: TicketState
    team: str | None
    alert_status: str
    dedup_label: str
    jira_key: str | None = None
    jira_url: str | None = None
    assignee: str | None = None  # the Slack user working on it
    assignee_name: str | None = None  # their name as Jira gave it, when it was set in Jira
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
    truncated_alerts: int = 0
    external_url: str = ""
    created_at: datetime | None = None
    version: int = 1
    report_ref: str | None = None  # customer reports: the public reference
    customer_sub: str | None = None
    customer_email: str | None = None  # shown in full in Jira only, masked in Slack
    test: bool = False  # a test notification's card: no Jira issue

    @property
    def is_report(self) -> bool:
        return self.report_ref is not None

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts if a.status == "firing")

    @property
    def rules(self) -> tuple[Rule, ...]:
        return rules_of(self.alerts)

    @property
    def firing_first(self) -> list[Alert]:
        """The alerts, those firing first (otherwise in the sender's order)."""
        return sorted(self.alerts, key=lambda a: a.status != "firing")


def alert_counts(ticket: TicketView) -> str:
    """How many alerts the group has and how many fire, the same words on the card and in Jira; alerts the sender
    left out (Alertmanager's ``max_alerts``: ``truncatedAlerts``) are counted, and said to be left out."""
    shown, hidden, firing = len(ticket.alerts), ticket.truncated_alerts, ticket.firing
    if not hidden:
        return f"{firing} of {shown} alerts firing"
    statuses = {a.status for a in ticket.alerts}
    if len(statuses) == 1:
        return f"{shown + hidden} alerts {statuses.pop()}, {shown} shown"
    return f"{shown + hidden} alerts, {shown} shown ({firing} of them firing)"


def rules_text(ticket: TicketView) -> str | None:
    """Every rule of a group of several, with its counts (None for a group of one rule)."""
    rules = ticket.rules
    if len(rules) < 2:
        return None
    return ", ".join(f"{r.name} ({r.firing} of {r.total} firing)" for r in rules)


def links(ticket: TicketView, limit: int = LINKS_SHOWN) -> list[tuple[str, Link]]:
    """The sender's links for the whole group, each once, named (Source, Dashboard, Silence 2...): the firing
    alerts' first."""
    found: dict[str, Link] = {}
    for alert in ticket.firing_first:
        for item in alert.links:
            found.setdefault(item.url, item)
    named: list[tuple[str, Link]] = []
    count: dict[str, int] = {}
    for item in list(found.values())[:limit]:
        count[item.kind] = count.get(item.kind, 0) + 1
        name = item.text if item.kind == "link" and item.text else LINK_NAMES[item.kind]
        named.append((name if count[item.kind] == 1 or item.text else f"{name} {count[item.kind]}", item))
    return named


def details(ticket: TicketView) -> dict[str, str]:
    """The sender's details (PagerDuty-style ``custom_details``) of the group, empty ones left out."""
    found: dict[str, str] = {}
    for alert in ticket.firing_first:
        for name, value in alert.details.items():
            if value.strip():
                found.setdefault(name, value)
    return found


def detail_lines(value: str) -> list[str]:
    """A multi-line detail's lines, bounded (the last says how many more there are)."""
    lines = value.strip().splitlines()
    if len(lines) > DETAIL_LINES:
        return [*lines[:DETAIL_LINES], f"(and {len(lines) - DETAIL_LINES} more lines)"]
    return lines


def summary(ticket: TicketView) -> str:
    env = f" ({ticket.environment})" if ticket.environment != "default" else ""
    return truncate(one_line(f"{ticket.title}{env}"), SUMMARY_LIMIT) or "Alert"


_LABEL_UNSAFE = re.compile(r"\s+")


def label(text: str) -> str:
    return truncate(_LABEL_UNSAFE.sub("_", text.strip()), LABEL_LIMIT, marker="")


def labels(ticket: TicketView, extra: tuple[str, ...] = ()) -> list[str]:
    out = ["triage-bot", ticket.dedup_label, label(f"source-{ticket.source}"), label(f"env-{ticket.environment}")]
    out.extend(label(e) for e in extra)
    return list(dict.fromkeys(x for x in out if x))


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{jira_text(k)}={jira_text(one_line(v))}" for k, v in sorted(values.items()))


def description(ticket: TicketView) -> str:
    if ticket.is_report:
        return _report_description(ticket)
    lines = [
        f"*Problem:* {jira_text(one_line(ticket.title))}",
        f"*Source:* {jira_text(ticket.source)}    *Environment:* {jira_text(ticket.environment)}",
    ]
    if ticket.alerts:
        lines.append(f"*Alerts:* {ticket.alert_status}, {alert_counts(ticket)}")
    rules = rules_text(ticket)
    if rules:
        lines.append(f"*Rules:* {jira_text(rules)}")
    if ticket.labels:
        lines.append(f"*Labels:* {_pairs(ticket.labels)}")
    for name, value in sorted(ticket.annotations.items()):
        lines.append(f"*{jira_text(name)}:* {jira_text(one_line(value))}")
    group_links = links(ticket)
    if group_links:
        lines.append("*Links:* " + " · ".join(jira_link(item.url, name) for name, item in group_links))
    if ticket.external_url:
        lines.append(f"*Sent by:* {jira_text(ticket.external_url)}")
    lines += _details(ticket)
    if ticket.alerts:
        lines.append("")
        lines.append("h3. Alerts")
    for alert in ticket.alerts[:DESCRIBED_ALERTS]:
        lines += _alert_lines(alert, ticket.annotations)
    hidden = len(ticket.alerts) - DESCRIBED_ALERTS + ticket.truncated_alerts
    if hidden > 0:
        lines.append(f"* ...and {hidden} more")
    lines.append("")
    lines.append(f"_Opened by triage-bot; do not remove the label {ticket.dedup_label}._")
    return truncate("\n".join(lines), DESCRIPTION_LIMIT)


def _details(ticket: TicketView) -> list[str]:
    found = details(ticket)
    if not found:
        return []
    lines = ["", "h3. Details"]
    for name, value in found.items():
        if "\n" in value.strip():
            quoted = "\n".join(jira_text(line) for line in detail_lines(value))
            lines += [f"*{jira_text(name)}:*", "{quote}", quoted, "{quote}"]
        else:
            lines.append(f"*{jira_text(name)}:* {jira_text(value.strip())}")
    return lines


def _alert_lines(alert: Alert, group: dict[str, str]) -> list[str]:
    """An alert in the issue: its rule, labels, its own text (where the group's is not the same), value and links."""
    name = alert.name or alert.annotations.get("summary") or alert.fingerprint
    since = f" since {jira_text(alert.starts_at)}" if alert.starts_at else ""
    lines = [f"* [{alert.status}] {jira_text(one_line(name))}{since}: {_pairs(alert.labels)}"]
    text = next((k for k in TITLE_ANNOTATIONS if alert.annotations.get(k, "").strip()), None)
    if text and alert.annotations[text] != group.get(text):
        lines.append(f"** {jira_text(one_line(alert.annotations[text]))}")
    if alert.value:
        lines.append(f"** Value: {jira_text(one_line(alert.value))}")
    if alert.links:
        named = (jira_link(item.url, item.text or LINK_NAMES[item.kind]) for item in alert.links)
        lines.append("** " + " · ".join(named))
    return lines


def comment(text: str) -> str:
    """A comment from the bot: our own words, but escaped all the same (they may quote outside text)."""
    return truncate(jira_text(text), DESCRIPTION_LIMIT)


@dataclass(frozen=True)
class Someone:
    """A Slack user as Jira is told of them: their name as Slack gives it and their Jira account (Cloud accountId,
    Data Center username), each None when not known."""

    slack_user: str
    name: str | None = None
    jira_account: str | None = None


_ACCOUNT = re.compile(r"[^\[\]|{}\s]+")  # an account id or user name that wiki markup's mention can hold


def person(who: Someone, *, mention: bool, cloud: bool) -> str:
    """A person in wiki markup: a mention (``[~accountid:…]`` on Cloud, ``[~username]`` on Data Center) where
    asked and their Jira account is known, else their name, else (Slack could not say) their Slack id."""
    if mention and who.jira_account and _ACCOUNT.fullmatch(who.jira_account):
        return f"[~accountid:{who.jira_account}]" if cloud else f"[~{who.jira_account}]"
    return jira_text(one_line(who.name)) if who.name else f"Slack user {who.slack_user}"


def comment_naming(parts: list[Any], people: Mapping[str, Someone], *, cloud: bool) -> str:
    """A comment from the bot that names Slack users (workflows.effects.comment_naming): its words escaped, each
    person as ``person`` writes them (``people``: what is known of them, by Slack user id)."""
    out = []
    for part in parts:
        if isinstance(part, dict):
            user = str(part["slack_user"])
            out.append(person(people.get(user) or Someone(user), mention=bool(part.get("mention")), cloud=cloud))
        else:
            out.append(jira_text(str(part)))
    return truncate("".join(out), DESCRIPTION_LIMIT)


def _report_description(ticket: TicketView) -> str:
    app = ticket.labels
    reporter = f"{ticket.customer_sub} ({ticket.customer_email or 'no e-mail'})"
    lines = [
        f"*Reported by:* {jira_text(reporter)}",
        f"*App:* {jira_text(app_line(app))}",
        f"*Category:* {jira_text(app.get('category', ''))}    *Reference:* {jira_text(ticket.report_ref or '')}",
        "",
        jira_text(ticket.annotations.get("description") or "(no description)"),
    ]
    extra = {k.removeprefix("meta."): v for k, v in ticket.labels.items() if k.startswith("meta.")}
    if extra:
        lines += ["", f"*Details:* {_pairs(extra)}"]
    lines += ["", f"_Reported from the app; opened by triage-bot; do not remove the label {ticket.dedup_label}._"]
    return truncate("\n".join(lines), DESCRIPTION_LIMIT)
