"""What a ticket says in Jira: summary, description and labels, within Jira's limits and escaped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflows.alerts import Alert
from workflows.escaping import jira_text, one_line, truncate
from workflows.reports import app_line
from workflows.states import TicketState

SUMMARY_LIMIT = 255
DESCRIPTION_LIMIT = 32_767
LABEL_LIMIT = 255
DESCRIBED_ALERTS = 50  # the rest are counted, not listed


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

    @property
    def is_report(self) -> bool:
        return self.report_ref is not None

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts if a.status == "firing")


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
        lines.append(f"*Status of the alerts:* {ticket.alert_status} ({ticket.firing} of {len(ticket.alerts)} firing)")
    if ticket.labels:
        lines.append(f"*Labels:* {_pairs(ticket.labels)}")
    for name, value in sorted(ticket.annotations.items()):
        lines.append(f"*{jira_text(name)}:* {jira_text(one_line(value))}")
    if ticket.external_url:
        lines.append(f"*Sent by:* {jira_text(ticket.external_url)}")
    if ticket.alerts:
        lines.append("")
        lines.append("h3. Alerts")
    for alert in ticket.alerts[:DESCRIBED_ALERTS]:
        name = alert.labels.get("alertname") or alert.annotations.get("summary") or alert.fingerprint
        since = f" since {jira_text(alert.starts_at)}" if alert.starts_at else ""
        lines.append(f"* [{alert.status}] {jira_text(one_line(name))}{since}: {_pairs(alert.labels)}")
    hidden = len(ticket.alerts) - DESCRIBED_ALERTS + ticket.truncated_alerts
    if hidden > 0:
        lines.append(f"* ...and {hidden} more")
    lines.append("")
    lines.append(f"_Opened by triage-bot; do not remove the label {ticket.dedup_label}._")
    return truncate("\n".join(lines), DESCRIPTION_LIMIT)


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
