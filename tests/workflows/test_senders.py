"""What real senders say, read as they meant it: titles, rules, severities, links, values, details, test
notifications and odd bodies (payloads from shared/realworld), and how the card and the Jira issue show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.settings import EXAMPLE_POLICY
from workflows import cards, tickets
from workflows.alerts import GroupNotification, Source, notification_from
from workflows.lifecycle import TicketSnapshot, digest, plan
from workflows.policy import parse_policy
from workflows.routing import is_test, route
from workflows.severity import highest, known_words, priority_for
from workflows.states import TicketState
from workflows.tickets import TicketView

REALWORLD = Path(__file__).resolve().parents[3] / "shared" / "realworld"
POLICY = parse_policy(EXAMPLE_POLICY.read_text())
SOURCES = {"alertmanager": Source.ALERTMANAGER, "grafana": Source.GRAFANA, "pagerduty": Source.EVENTS}


def body(name: str) -> dict[str, Any]:
    return dict(json.loads((REALWORLD / f"{name}.json").read_text()))


def read(name: str, changes: dict[str, Any] | None = None) -> GroupNotification:
    return notification_from(SOURCES[name.split("/")[0]], body(name) | (changes or {}), "generated")


def view(note: GroupNotification, **extra: Any) -> TicketView:
    routing = route(POLICY, note)
    fields: dict[str, Any] = {
        "id": 7,
        "title": note.title,
        "source": note.source.value,
        "environment": routing.environment,
        "priority": routing.priority,
        "state": TicketState.OPEN,
        "team": None,
        "alert_status": note.status,
        "dedup_label": "triage-x-1",
        "labels": note.labels,
        "annotations": note.annotations,
        "alerts": note.alerts,
        "truncated_alerts": note.truncated_alerts,
        "external_url": note.external_url,
    }
    return TicketView(**(fields | extra))


def card_text(ticket: TicketView) -> str:
    return json.dumps(cards.card(ticket), ensure_ascii=False)


@pytest.mark.parametrize(
    ("name", "title"),
    [
        # Grafana's own title when it is more than its labels' values; otherwise the summary, with the rule's name.
        ("grafana/zulip-grafana9-firing", "Test alert: This is a summary field, failure on some_host"),
        ("grafana/zulip-grafana11-values-imageurl", "Memory (copy): High memory usage"),
        # Several rules and no common text: the rules' names, not the first alert's.
        ("grafana/grafana-docs-webhook-example-two-firing", "High memory usage, High CPU usage"),
        # kube-prometheus writes ``message``; a status prefix in a sender's text is dropped.
        ("alertmanager/alertmanager-bot-firing-future-endsat", "Fire: Something is on fire"),
        ("pagerduty/alertmanager-trigger-captured", "PagerDuty Test"),
        # No alertname, no text: what the group's labels say.
        ("alertmanager/pfnet-test-truncated-2-no-alertname", "Alerts a=b"),
        ("alertmanager/alertmonitor-icmp-3-firing", "ICMP ping failed"),
    ],
)
def test_the_title_is_the_best_text_the_sender_gave(name: str, title: str) -> None:
    assert read(name).title == title


def test_a_custom_grafana_title_wins_without_its_status() -> None:
    note = read("grafana/zulip-grafana9-firing", {"title": "[FIRING:3] Queue backlog on rabbitmq"})
    assert note.title == "Queue backlog on rabbitmq"


def test_a_description_alone_makes_a_title() -> None:
    data = body("alertmanager/zulip-single-no-generatorurl")
    data["commonAnnotations"] = {"description": "CPU core temperature is 34.75C"}
    assert read("alertmanager/zulip-single-no-generatorurl", data).title == (
        "High CPU Temperature: CPU core temperature is 34.75C"
    )


def test_notifications_never_change_the_title_or_what_the_digest_sees_of_it() -> None:
    first = read("grafana/zulip-grafana9-firing")
    resolved = read("grafana/zulip-grafana9-resolved")
    assert resolved.title != first.title  # "<no value>" in the resolved summary: the planner never uses it
    routing = route(POLICY, first)
    ticket = TicketSnapshot(TicketState.OPEN, "firing", digest(first, routing))
    env = POLICY.environment_named(routing.environment)
    again = GroupNotification(**{**first.__dict__, "title": "something else"})
    assert plan(ticket, again, routing, env, datetime.now(UTC)).action == "ignore"


def test_omitted_statuses_and_alertnames_are_tolerated_where_clear() -> None:
    no_status = read("alertmanager/msteams-19-alerts-regex-groupkey")
    assert {a.status for a in no_status.alerts} == {"firing"} and len(no_status.alerts) == 19
    nameless = read("grafana/zulip-grafana11-alert-without-alertname")
    assert [a.name for a in nameless.alerts] == ["Memory (copy)"]
    data = body("alertmanager/zulip-alert-two-firing")
    del data["status"]
    assert notification_from(Source.ALERTMANAGER, data).status == "firing"


@pytest.mark.parametrize("source", ["alertmanager/zulip-alert-two-firing", "grafana/zulip-grafana9-firing"])
def test_a_body_without_alerts_is_refused_with_the_reason(source: str) -> None:
    with pytest.raises(ValidationError, match="carries no alerts"):
        read(source, {"alerts": []})


def test_severity_is_the_highest_among_the_firing_alerts_then_the_labels() -> None:
    env = POLICY.environment_named("production")
    # alerta: severity only on the alert, commonLabels has none.
    assert route(POLICY, read("alertmanager/alerta-v4-severity-in-annotations")).severity == "critical"
    data = body("alertmanager/zulip-alert-two-firing")
    data["commonLabels"] = {"alertname": "High CPU Temperature", "env": "production"}
    data["alerts"][0]["labels"]["severity"], data["alerts"][1]["labels"]["severity"] = "warning", "page"
    note = notification_from(Source.ALERTMANAGER, data)
    assert (route(POLICY, note).severity, route(POLICY, note).priority) == ("page", "Highest")
    data["alerts"][1]["status"] = "resolved"  # a resolved alert's severity no longer counts
    assert route(POLICY, notification_from(Source.ALERTMANAGER, data)).priority == "High"
    assert highest(env, ("info", "MAJOR", "warning")) == "MAJOR"


def test_the_policy_maps_any_word_by_itself_or_by_its_level() -> None:
    policy = parse_policy(
        EXAMPLE_POLICY.read_text().replace(
            "priorities: {critical: Highest, warning: High, info: Medium}",
            "priorities: {critical: Highest, P2: High, warning: Medium, info: Low, sev-x: Highest}",
        )
    )
    env = policy.environment_named("production")
    assert [priority_for(env, w) for w in ("page", "p2", "error", "major", "minor", "debug", "bogus")] == [
        "Highest",
        "High",
        "Medium",  # error: the policy does not name it, nor its level; the next level below (warning) it does
        "Medium",
        "Medium",
        "Low",
        "Medium",  # a word nobody knows: the default
    ]
    assert highest(env, ("warning", "sev-x")) == "sev-x"  # a word of the policy's own ranks by its priority
    assert known_words(env)["Highest"][:2] == ["critical", "sev-x"]


def test_links_values_and_the_image_are_kept_and_escaped() -> None:
    ticket = view(read("grafana/zulip-grafana11-values-imageurl"))
    shown = card_text(ticket)
    assert "<https://play.grafana.org/d/ece9fb32-7f71-4be9-bd94-2f23608ae5b9?orgId=1&amp;viewPanel=2|Panel>" in shown
    assert "|Dashboard>" in shown and "|Silence>" in shown and "|Source>" in shown
    assert '"type": "image", "image_url": "https://grafana.com/assets/img/blog/mixed_styles.png"' in shown
    assert not cards.has_images(cards.card(ticket, images=False)) and "|Image>" in card_text(ticket)
    assert "*Value*\\n• [ var='A' labels={instance=node_exporter:9100, job=node}" in shown
    jira = tickets.description(ticket)
    assert "[Panel|https://play.grafana.org/d/ece9fb32-7f71-4be9-bd94-2f23608ae5b9?orgId=1&viewPanel=2]" in jira
    assert "** Value: \\[ var='A' labels=" in jira
    # A link cannot break out of its markup: the URL is percent-encoded, the text escaped.
    data = body("grafana/zulip-grafana11-values-imageurl")
    data["alerts"][0]["dashboardURL"] = "https://x.example/d?a=1|<!channel>]"
    data["alerts"][0]["panelURL"] = "javascript:alert(1)"
    hostile = view(notification_from(Source.GRAFANA, data))
    assert "<https://x.example/d?a=1%7C%3C!channel%3E%5D|Dashboard>" in card_text(hostile)
    assert "[Dashboard|https://x.example/d?a=1%7C%3C!channel%3E%5D]" in tickets.description(hostile)
    assert "javascript" not in card_text(hostile) and "Panel" not in card_text(hostile)


def test_pagerduty_links_images_and_details() -> None:
    ticket = view(read("pagerduty/pd-openapi-trigger-with-dedup-links-images"))
    shown = card_text(ticket)
    assert "<http://pagerduty.example.com|An example link.>" in shown and '"type": "image"' in shown
    assert "*free space:* 1%" in shown and "*load avg:* 0.75" in shown
    assert "free space=" not in tickets.description(ticket)  # details are not labels
    captured = view(read("pagerduty/alertmanager-trigger-captured"))
    assert "*firing:*\\n> Labels:\\n>  - alertname = PagerDuty Test" in card_text(captured)
    assert "*firing:*\n{quote}\nLabels:\n \\- alertname = PagerDuty Test" in tickets.description(captured)
    # A long multi-line detail is bounded.
    data = body("pagerduty/alertmanager-trigger-captured")
    data["payload"]["custom_details"]["firing"] = "\n".join(f"line {i} <!here>" for i in range(500))
    long = card_text(view(notification_from(Source.EVENTS, data, "x")))
    assert "line 14 &lt;!here&gt;" in long and "line 15 " not in long and "(and " in long


def test_counts_agree_on_the_card_and_in_jira_with_truncated_alerts() -> None:
    ticket = view(read("alertmanager/pfnet-test-truncated-2-no-alertname"))
    assert tickets.alert_counts(ticket) == "3 alerts firing, 1 shown"
    assert "3 alerts firing, 1 shown" in card_text(ticket) and "3 alerts firing, 1 shown" in tickets.description(ticket)
    mixed = view(read("grafana/zulip-grafana9-mixed-1-firing-2-resolved", {"truncatedAlerts": 2}))
    assert tickets.alert_counts(mixed) == "5 alerts, 3 shown (1 of them firing)"


def test_every_rule_of_a_group_is_named_with_its_counts() -> None:
    ticket = view(read("grafana/zulip-grafana9-mixed-1-firing-2-resolved"))
    rules = "Test alert (0 of 2 firing), Second webhook test (1 of 1 firing)"
    assert rules in card_text(ticket) and f"*Rules:* {rules}" in tickets.description(ticket)
    assert "alertname" not in ticket.labels  # the group is not labelled after its first alert


def test_grafana_test_notifications_are_recognised_and_planned_by_policy() -> None:
    for name in (
        "grafana/pytorch-grafana-cloud-test-notification-firing",
        "grafana/zulip-grafana-cloud-test-notification-resolved-truncated",
    ):
        note = read(name)
        assert note.test and is_test(POLICY, note)
        routing, env = route(POLICY, note), POLICY.default_environment
        shown = plan(None, note, routing, env, datetime.now(UTC), "card")
        assert (shown.action, shown.state, shown.test, [e.kind.value for e in shown.effects]) == (
            "create",
            TicketState.CLOSED,
            True,
            ["slack.card"],
        )
        assert plan(None, note, routing, env, datetime.now(UTC), "ignore").action == "ignore"
    assert not read("grafana/zulip-grafana9-firing").test
    matched = parse_policy(EXAMPLE_POLICY.read_text() + "\ntest_notifications: {match: [{test: 'true'}]}\n")
    assert is_test(matched, read("grafana/zulip-grafana9-firing"))
    # A test for a group with an open ticket changes nothing; a real problem after a test card opens its own.
    open_one = TicketSnapshot(TicketState.OPEN, "firing", "")
    assert plan(open_one, read(name), route(POLICY, read(name)), env, datetime.now(UTC), "card").action == "ignore"
    real = read("grafana/zulip-grafana9-firing")
    routing = route(POLICY, real)
    card = TicketSnapshot(TicketState.CLOSED, "firing", "", test=True)
    assert plan(card, real, routing, POLICY.default_environment, datetime.now(UTC)).action == "create"


def test_a_test_card_says_so_and_has_no_buttons() -> None:
    ticket = view(read("grafana/pytorch-grafana-cloud-test-notification-firing"), test=True, state=TicketState.CLOSED)
    blocks = cards.card(ticket)
    assert "A test notification" in json.dumps(blocks) and not [b for b in blocks if b["type"] == "actions"]


@pytest.mark.parametrize("kind", ["alertmanager", "grafana", "pagerduty"])
def test_every_corpus_payload_reads_and_renders(kind: str) -> None:
    for path in sorted((REALWORLD / kind).glob("*.json")):
        note = read(f"{kind}/{path.stem}")
        ticket = view(note)
        assert note.title and len(cards.card(ticket)) <= 50
        assert len(tickets.description(ticket)) <= tickets.DESCRIPTION_LIMIT
