from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.settings import EXAMPLE_POLICY
from tests.harness import alertmanager_payload
from workflows.alerts import AlertmanagerWebhook, Event, from_alertmanager, from_event, parse_any
from workflows.durations import format_duration, parse_duration
from workflows.policy import load_policy
from workflows.routing import dedup_label, route

POLICY = load_policy(EXAMPLE_POLICY)


def test_alertmanager_group_becomes_one_notification_keyed_by_receiver_and_group_key() -> None:
    body = json.loads((EXAMPLE_POLICY.parent / "alertmanager.json").read_text())
    note = parse_any(body)
    assert note.dedup_key == 'alertmanager|triage-bot|{}:{alertname="HighErrorRate"}'
    assert note.title == "HighErrorRate: 5xx rate above 5% on api"
    assert [a.fingerprint for a in note.alerts] == ["a1b2c3d4e5f60718", "b1b2c3d4e5f60718"]
    assert note.severity == "critical"


def test_alertmanager_version_other_than_4_is_refused() -> None:
    body = alertmanager_payload("x")
    body["version"] = "3"
    with pytest.raises(ValidationError, match="version 4"):
        AlertmanagerWebhook.model_validate(body)


def test_optional_newer_fields_are_accepted() -> None:
    body = alertmanager_payload("x") | {"notification_reason": "first notification", "routeLabels": {}}
    assert from_alertmanager(AlertmanagerWebhook.model_validate(body)).status == "firing"


def test_events_v2_trigger_and_resolve_share_a_dedup_key() -> None:
    trigger = Event.model_validate(
        {
            "routing_key": "rk",
            "event_action": "trigger",
            "dedup_key": "disk-1",
            "payload": {
                "summary": "Disk full",
                "source": "db-1",
                "severity": "error",
                "custom_details": {"env": "production", "nested": {"a": 1}},
            },
        }
    )
    resolve = Event.model_validate({"routing_key": "rk", "event_action": "resolve", "dedup_key": "disk-1"})
    first, second = from_event(trigger, "gen"), from_event(resolve, "gen")
    assert first.dedup_key == second.dedup_key == "events|rk|disk-1"
    assert (first.status, second.status) == ("firing", "resolved")
    assert first.selectors["env"] == "production"  # the policy matches the short one-line details
    assert "env" not in first.labels and first.alerts[0].details == {"env": "production", "nested": '{"a": 1}'}
    with pytest.raises(ValidationError, match="needs the dedup_key"):
        Event.model_validate({"routing_key": "rk", "event_action": "resolve"})
    with pytest.raises(ValidationError, match="needs a payload"):
        Event.model_validate({"routing_key": "rk", "event_action": "trigger"})


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"env": "production", "severity": "critical"}, ("production", "Highest", None, "C0OPS")),
        (
            {"env": "production", "severity": "warning", "service": "payments"},
            ("production", "High", "payments", "C0PAY"),
        ),
        ({"env": "staging", "severity": "info"}, ("staging", "Low", None, "C0OPS")),
        ({"env": "staging", "severity": "unknown"}, ("staging", "Low", None, "C0OPS")),
        ({"env": "dev", "severity": "critical"}, ("default", "High", None, "C0OPS")),
    ],
)
def test_routing_table(labels: dict[str, str], expected: tuple[str, str, str | None, str]) -> None:
    note = from_alertmanager(AlertmanagerWebhook.model_validate(alertmanager_payload("r", labels=labels)))
    decided = route(POLICY, note)
    assert (decided.environment, decided.priority, decided.team, decided.channel) == expected


def test_dedup_label_is_a_valid_unique_jira_label() -> None:
    a, b = dedup_label("k1", 1), dedup_label("k1", 2)
    assert a != b and dedup_label("k1", 1) == a
    assert " " not in a and len(a) < 255


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert format_duration(timedelta(hours=25)) == "1d1h"
    for bad in ("", "soon", "10", "5x", "h1"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
