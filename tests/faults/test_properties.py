"""Hypothesis against the pure parts that meet outside text: the payload parsers (alerts, Jira's webhooks,
reports, Slack's bodies), the escaping for Slack mrkdwn, Jira wiki markup and JQL, the mail headers, and the
policy loader. Each either reads its input or refuses it with its own error, never anything else; escaped text
never turns into markup; a JQL string always reads back as the value it quotes."""

from __future__ import annotations

import email
import email.policy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.mail.mailer import MailTemplates, compose, one_line
from bot.sandbox import jql
from tests.faults.conftest import examples
from webhooks.errors import Refusal
from webhooks.slack.request import parse as parse_slack
from workflows.alerts import Source, notification_from
from workflows.escaping import jira_text, jql_string, slack_text
from workflows.jira_webhooks import JiraWebhook
from workflows.policy import PolicyError, parse_policy
from workflows.reports import ReportIn

FUZZ = settings(
    max_examples=examples(full=300, quick=40),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
POLICY_FUZZ = settings(FUZZ, max_examples=examples(full=100, quick=15))  # a policy takes a while to read
text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5), max_leaves=30
)


def _near(example: dict[str, Any]) -> Any:
    """Objects shaped like ``example``, with any key's value replaced by anything, and extra keys."""
    return st.fixed_dictionaries(
        {k: st.one_of(st.just(v), json_values) for k, v in example.items()},
        optional={k: json_values for k in ("x", "status", "alerts", "labels", "issue", "comment") if k not in example},
    )


ALERTMANAGER = {
    "version": "4",
    "groupKey": '{}:{alertname="X"}',
    "status": "firing",
    "receiver": "triage",
    "groupLabels": {"alertname": "X"},
    "commonLabels": {"alertname": "X", "env": "production"},
    "commonAnnotations": {"summary": "s"},
    "externalURL": "http://am",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "X"}, "annotations": {}, "startsAt": "", "fingerprint": "f"}
    ],
}
EVENT = {
    "routing_key": "r",
    "event_action": "trigger",
    "dedup_key": "d",
    "payload": {"summary": "s", "source": "h", "severity": "critical"},
}
JIRA = {
    "webhookEvent": "jira:issue_updated",
    "issue": {"key": "OPS-1", "fields": {"status": {"name": "Done"}}},
    "changelog": {"items": []},
}
REPORT = {
    "subject": "s",
    "category": "billing",
    "app": {"name": "a", "version": "1", "platform": "ios"},
    "metadata": {},
    "attachments": [],
}


@FUZZ
@given(
    source=st.sampled_from(list(Source)), body=_near(ALERTMANAGER) | _near(EVENT) | st.dictionaries(text, json_values)
)
def test_alert_payloads_are_read_or_refused(source: Source, body: dict[str, Any]) -> None:
    try:
        note = notification_from(source, body, "generated")
    except ValidationError:
        return
    assert note.dedup_key and "\x00" not in json.dumps(note.labels)
    json.dumps([note.title, note.labels, note.annotations, note.extra])  # storable


@FUZZ
@given(body=_near(JIRA) | st.dictionaries(text, json_values))
def test_jira_webhooks_are_read_or_refused(body: dict[str, Any]) -> None:
    try:
        event = JiraWebhook.model_validate(body)
    except ValidationError:
        return
    assert event.issue_key is not None or event.issue_id is not None
    event.actor, event.changes, event.status_change, event.assignee_change


@FUZZ
@given(body=_near(REPORT) | st.dictionaries(text, json_values))
def test_reports_are_read_or_refused(body: dict[str, Any]) -> None:
    try:
        report = ReportIn.model_validate(body)
        [a.content for a in report.attachments]
    except (ValidationError, ValueError):
        return
    assert report.subject.strip() and len(report.metadata) <= 30


@FUZZ
@given(body=st.text(max_size=400) | st.builds(lambda v: "payload=" + json.dumps(v), json_values))
def test_slack_bodies_are_read_or_refused(body: str) -> None:
    for content_type in ("application/x-www-form-urlencoded", "application/json"):
        try:
            parsed: Any = parse_slack(body, content_type)
        except Refusal as refused:
            parsed = refused.status
        assert isinstance(parsed, dict) or 400 <= parsed < 500


@FUZZ
@given(value=text)
def test_slack_text_never_becomes_markup(value: str) -> None:
    escaped = slack_text(value)
    assert "<" not in escaped and ">" not in escaped  # no <!channel>, <@U1>, <http://link|text>
    assert re.sub(r"&(amp|lt|gt);", "", escaped).count("&") == 0
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == "".join(
        ch for ch in value if ch in "\n\r\t" or not (ord(ch) < 0x20 or ord(ch) == 0x7F)
    )


@FUZZ
@given(value=text)
def test_jira_text_never_becomes_markup(value: str) -> None:
    escaped = jira_text(value)
    unescaped = re.sub(r"\\(.)", "", escaped, flags=re.DOTALL)  # what is left once every escaped char is gone
    assert not re.search(r"[{}\[\]|*_^+~!?#\\-]", unescaped), escaped


@FUZZ
@given(value=text)
def test_a_jql_string_reads_back_as_its_value(value: str) -> None:
    query = jql.parse(f"project = OPS AND labels = {jql_string(value)}")
    clauses = list(jql.clauses(query.where))
    expected = "".join(ch for ch in value if ch in "\n\r\t" or not (ord(ch) < 0x20 or ord(ch) == 0x7F))
    assert [list(c.values) for c in clauses] == [["OPS"], [expected]]


TEMPLATES = MailTemplates()


@FUZZ
@given(subject=text, message=text, reference=st.from_regex(r"R-[0-9A-Z]{10}", fullmatch=True))
def test_no_text_of_a_customer_adds_a_mail_header(subject: str, message: str, reference: str) -> None:
    mail = compose(
        "closed",
        "jane.doe@example.com",
        {"reference": reference, "subject": subject, "message": message},
        templates=TEMPLATES,
        sender="triage-bot <triage-bot@example.com>",
        message_id=f"{reference}.closed",
    )
    raw = mail.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.SMTP)
    names = [name.lower() for name in parsed.keys()]
    assert sorted(names) == sorted(
        ["from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type"]
    )
    assert parsed["To"] == "jane.doe@example.com"
    assert "\n" not in one_line(subject, 200) and "\r" not in one_line(subject, 200)


@POLICY_FUZZ
@given(document=st.text(max_size=400) | st.builds(lambda v: json.dumps(v), json_values))
def test_the_policy_loader_reads_or_explains(document: str) -> None:
    try:
        parse_policy(document, source="fuzz.yaml")
        said = "fuzz.yaml: read"
    except PolicyError as problem:
        said = str(problem)
    assert said.startswith(("fuzz.yaml", "invalid policy fuzz.yaml:"))


POLICY = """
jira: {project: OPS, issue_type: Task}
operators: {channel: C0OPS, users: [U0OP1]}
qa: {channel: C0QA, users: [U0QA1]}
teams: {payments: {channel: C0PAY, users: [U0PA1]}}
environments:
  production: {match: {env: production}, reopen: 24h, escalate_after: 30m}
"""


@POLICY_FUZZ
@given(line=st.sampled_from(POLICY.strip().splitlines()), replacement=text)
def test_a_policy_with_one_line_changed_is_read_or_explained(line: str, replacement: str) -> None:
    document = POLICY.replace(line, replacement, 1)
    try:
        parse_policy(document, source="changed.yaml")
        said = "changed.yaml: read"
    except PolicyError as problem:
        said = str(problem)
    assert said.startswith(("changed.yaml", "invalid policy changed.yaml:"))


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\\", '"', "x\ny"])
def test_jql_strings_with_quotes_and_backslashes(value: str) -> None:
    query = jql.parse(f"labels = {jql_string(value)}")
    assert [list(c.values) for c in jql.clauses(query.where)] == [[value]]
