"""Every payload real senders sent (shared/realworld, with its provenance) through one real server per database:
each alert group becomes one ticket with a sensible title, priority and links, kept as later notifications come;
test notifications become test cards; Jira's deliveries of every shape are answered, comment events that name
their issue by id alone included; what cannot be read gets a clear 4xx."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bot.db.engine import make_engine
from tests.conftest import REPO, Emulators
from tests.e2e.helpers import cards, issues, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess, wait_until

REALWORLD = REPO.parent / "shared" / "realworld"
ENDPOINT = {"alertmanager": "/alerts/alertmanager", "grafana": "/alerts/grafana", "pagerduty": "/alerts/events"}

# The first notification of each group (file), the ticket's title and priority under the example policy (no
# corpus payload names an environment: default_environment, critical High, warning Medium, info Low).
TICKETS = {
    "alertmanager/alerta-v4-severity-in-annotations": ("thing_dead: No things for over 10 minutes", "High"),
    "alertmanager/alertmanager-bot-firing-future-endsat": ("Fire: Something is on fire", "High"),
    "alertmanager/alertmonitor-icmp-3-firing": ("ICMP ping failed", "Medium"),  # major: an error, named by none
    "alertmanager/msteams-19-alerts-regex-groupkey": ("NodeEvent: Server is down", "High"),  # page
    "alertmanager/msteams-single-firing-no-alert-status": ("high_memory_load: Prometheus Test", "Medium"),
    "alertmanager/pfnet-example-severity-page": ("Alert1: 2 is more than 1", "High"),
    "alertmanager/pfnet-test-truncated-2-no-alertname": ("Alerts a=b", "Medium"),
    "alertmanager/tiamxu-unicode-chinese-5-alerts": ("服务异常告警, 服务>异常告警", "High"),
    "alertmanager/zulip-alert-two-firing": ("High CPU Temperature: High CPU core temperature", "High"),
    "grafana/grafana-docs-webhook-example-two-firing": ("High memory usage, High CPU usage", "Medium"),
    "grafana/pytorch-grafana-cloud-datasourcenodata-values-null": (
        "DatasourceNoData: TEST MODE: this is summary: Viable/strict is broken",
        "Medium",
    ),
    "grafana/zulip-grafana11-alert-without-alertname": ("Memory (copy): High memory usage", "Medium"),
    "grafana/zulip-grafana9-firing": ("Test alert: This is a summary field, failure on some_host", "Medium"),
    "pagerduty/alertmanager-trigger-captured": ("PagerDuty Test", "Medium"),  # error
    "pagerduty/go-pdagent-minimal-trigger-no-dedup": ("PagerDuty Agent CreateV1 Test", "Medium"),
    "pagerduty/pd-docs-trigger-routing-key-not-32": ("Example alert on host1.example.com", "Low"),  # info
    "pagerduty/pd-openapi-trigger-with-dedup-links-images": (
        "DISK at 99% on machine prod-datapipe03.example.com",
        "High",
    ),
    "pagerduty/pdpyras-trigger-no-dedup-images-url-key": ("testing 123", "Medium"),
}
TESTS = (
    "grafana/pytorch-grafana-cloud-test-notification-firing",
    "grafana/zulip-grafana-cloud-test-notification-resolved-truncated",
)


def corpus(kind: str) -> list[Path]:
    """The payloads of one sender, each group's first notification before its resolve (as senders send them)."""
    files = sorted((REALWORLD / kind).glob("*.json"))
    return sorted(files, key=lambda f: ("resolve" in f.stem or "acknowledge" in f.stem, f.name))


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def header(card: dict[str, Any]) -> str:
    return str(next(b["text"]["text"] for b in card["blocks"] if b["type"] == "header"))


def text_of(card: dict[str, Any]) -> str:
    return json.dumps(card["blocks"], ensure_ascii=False)


def test_the_realworld_corpus_through_the_server(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    answers: dict[str, httpx.Response] = {}
    chart = json.loads((REALWORLD / "pagerduty" / "pd-openapi-trigger-with-dedup-links-images.json").read_text())
    emulators.slack.unfetchable_images.add(chart["images"][0]["src"])  # Slack refuses a card it cannot show
    with bot.client() as client:
        for kind, path in ENDPOINT.items():
            for payload in corpus(kind):
                answers[name(payload)] = client.post(
                    path, content=payload.read_bytes(), headers={"Content-Type": "application/json"}
                )
        refused = _refusals(client)
        queue_drained(database_url)
        tickets = {t["id"]: t for t in client.get("/api/tickets", params={"limit": 500}).json()["tickets"]}

    assert {n: a.status_code for n, a in answers.items() if a.status_code != 202} == {}
    assert [(n, a.status_code, a.json()["error"]) for n, a in refused if a.status_code != 422] == []
    assert all("no alerts" in json.dumps(a.json()) for n, a in refused if n == "no alerts"), refused

    # One ticket per group: the groups' first notifications, and the two test notifications.
    by_title = {t["title"]: t for t in tickets.values()}
    assert len(tickets) == len(TICKETS) + len(TESTS), sorted(by_title)
    assert {(t, p) for t, p in TICKETS.values()} == {
        (t["title"], t["priority"]) for t in tickets.values() if not t["test"]
    }
    assert sorted(t["title"] for t in tickets.values() if t["test"]) == ["TestAlert: Notification test"] * 2

    # Jira: one issue per real group (none for the tests), summary = the title the ticket opened with.
    found = {i["key"]: i for i in issues(emulators)}
    assert len(found) == len(TICKETS)
    for ticket in tickets.values():
        if ticket["test"]:
            assert ticket["jira_key"] is None and ticket["state"] == "closed"
            continue
        issue = found[ticket["jira_key"]]
        assert issue["fields"]["summary"] == ticket["title"]  # default environment: no suffix
        assert issue["fields"]["priority"]["name"] == ticket["priority"]

    posted = {c["metadata"]["event_payload"]["ticket_id"]: c for c in cards(emulators)}
    assert sorted(posted) == sorted(tickets)
    for ticket_id, card in posted.items():
        assert header(card) == tickets[ticket_id]["title"][:150]

    def card_of(title: str) -> str:
        return text_of(posted[by_title[title]["id"]])

    def description_of(title: str) -> str:
        return str(found[by_title[title]["jira_key"]]["fields"]["description"])

    # Four Grafana notifications of one group (firing, mixed, more firing, resolved): the title stays, the rules show.
    grafana9 = "Test alert: This is a summary field, failure on some_host"
    assert by_title[grafana9]["alert_status"] == "resolved"
    assert "*Alerts:* resolved, 0 of 1 alerts firing" in description_of(grafana9)
    history = found[by_title[grafana9]["jira_key"]]["changelog"]["histories"]
    changed = [i["field"] for c in history for i in c["items"]]
    assert "summary" not in changed
    edits = posted[by_title[grafana9]["id"]]["edits"]
    assert {header(e) for e in edits} <= {grafana9}
    # Several rules in one group: each named, with its counts, on the card and in Jira.
    rules = "High memory usage (1 of 1 firing), High CPU usage (1 of 1 firing)"
    assert rules in card_of("High memory usage, High CPU usage")
    assert rules in description_of("High memory usage, High CPU usage")
    # Grafana's links (dashboard, panel, silence, source) and value; the image as an image.
    grafana11 = "Memory (copy): High memory usage"
    for url in ("/d/ece9fb32-7f71-4be9-bd94-2f23608ae5b9?orgId=1", "viewPanel=2", "/alerting/silence/new"):
        assert url in card_of(grafana11) and url in description_of(grafana11)
    assert "|Dashboard>" in card_of(grafana11) and "[Dashboard|https://play.grafana.org/d/" in description_of(grafana11)
    assert "var=&#39;A&#39;" in card_of(grafana11) or "var='A'" in card_of(grafana11)
    assert '"type": "image"' in card_of(grafana11)
    # PagerDuty's links and images on the card; its custom details as details (a multi-line one quoted).
    disk = card_of("DISK at 99% on machine prod-datapipe03.example.com")
    assert "<http://pagerduty.example.com|An example link.>" in disk and "chart.googleapis.com" in disk
    assert '"type": "image"' not in disk  # Slack could not fetch it: the card went without the block, linked
    assert "*free space:* 1%" in disk
    captured = card_of("PagerDuty Test")
    assert "*resolved:*\\n> Labels:\\n>  - alertname = PagerDuty Test" in captured
    assert "{quote}" in description_of("PagerDuty Test") and "firing=" not in description_of("PagerDuty Test")
    # Counts that agree, alerts the sender left out included.
    assert "3 alerts firing, 1 shown" in card_of("Alerts a=b") and "3 alerts firing, 1 shown" in description_of(
        "Alerts a=b"
    )
    # A test notification's card says so, and has no buttons.
    test_card = posted[next(t["id"] for t in tickets.values() if t["test"])]
    assert "test notification" in text_of(test_card) and not [b for b in test_card["blocks"] if b["type"] == "actions"]

    _jira_deliveries(
        bot, emulators, database_url, found[by_title[grafana11]["jira_key"]], posted[by_title[grafana11]["id"]]
    )
    _slack_interactions(bot, emulators)


def _refusals(client: httpx.Client) -> list[tuple[str, httpx.Response]]:
    """Real bodies made unreadable the ways senders get them wrong: each refused with 422 and the reason."""
    base = json.loads((REALWORLD / "alertmanager" / "zulip-alert-two-firing.json").read_text())
    grafana = json.loads((REALWORLD / "grafana" / "zulip-grafana9-firing.json").read_text())
    return [
        ("no alerts", client.post("/alerts/alertmanager", json=base | {"alerts": []})),
        ("no alerts", client.post("/alerts/grafana", json=grafana | {"alerts": []})),
        ("version 3", client.post("/alerts/alertmanager", json=base | {"version": "3"})),
        ("no group key", client.post("/alerts/alertmanager", json={k: v for k, v in base.items() if k != "groupKey"})),
    ]


def _jira_deliveries(
    bot: BotProcess, emulators: Emulators, database_url: str, issue: dict[str, Any], card: dict[str, Any]
) -> None:
    url = f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}"
    ours = {i["id"] for i in issues(emulators)}
    for payload in sorted((REALWORLD / "jira").glob("*.json")):
        answer = httpx.post(url, content=payload.read_bytes(), headers={"Content-Type": "application/json"})
        # None of these issues is the bot's, by key; a comment naming its issue by id alone may hit one of ours.
        body = json.loads(payload.read_text())
        by_id = "issue" not in body and body["comment"]["self"].split("/issue/")[1].split("/")[0] in ours
        expected = "accepted" if by_id else "ignored"
        assert answer.status_code == 200 and answer.json()["status"] == expected, (payload.name, answer.text)
    # Data Center's comment_created without an issue: only the comment's URL names the issue, by its id.
    body = json.loads((REALWORLD / "jira" / "jenkins-server-comment-created-no-issue.json").read_text())
    body["comment"]["self"] = f"http://localhost:2990/jira/rest/api/2/issue/{issue['id']}/comment/10000"
    answer = httpx.post(url, json=body, headers={"X-Atlassian-Webhook-Identifier": "dc-comment-1"})
    assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text
    queue_drained(database_url)
    thread = wait_until(lambda: emulators.slack.thread(card["channel"], card["ts"])[1:], what="the comment's note")
    assert ["admin commented in Jira: comment body"] == [m["text"] for m in thread]


def _slack_interactions(bot: BotProcess, emulators: Emulators) -> None:
    """Interactions from other apps' captures, signed as Slack signs: answered, none with a server error."""
    for payload in sorted((REALWORLD / "slack").glob("*.json")):
        body = "payload=" + urllib.parse.quote(payload.read_text())
        answer = httpx.post(f"{bot.url}/slack/events", content=body, headers=emulators.slack.signed_request(body))
        assert answer.status_code < 500, (payload.name, answer.status_code, answer.text)


def test_test_notifications_the_policy_ignores_open_nothing(
    make_bot: Any, emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    """``test_notifications: {action: ignore}``: Grafana's Test button, and what ``match`` selects, are answered
    and logged, and nothing is stored or opened; the rest goes on as ever."""
    from bot.settings import EXAMPLE_POLICY

    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text() + "\ntest_notifications: {action: ignore, match: [{test: 'true'}]}\n")
    bot: BotProcess = make_bot(TRIAGE_POLICY=str(policy))
    with bot.client() as client:
        for test in (*TESTS, "grafana/zulip-grafana9-firing"):  # the last by its label test=true
            answer = client.post("/alerts/grafana", json=json.loads((REALWORLD / f"{test}.json").read_text()))
            assert answer.status_code == 202 and answer.json()["status"] == "ignored", answer.text
        real = json.loads((REALWORLD / "grafana" / "zulip-grafana11-values-imageurl.json").read_text())
        assert client.post("/alerts/grafana", json=real).json()["status"] == "accepted"
        queue_drained(database_url)
        [ticket] = client.get("/api/tickets").json()["tickets"]
    assert ticket["title"] == "Memory (copy): High memory usage" and not ticket["test"]
    assert len(cards(emulators)) == 1 and len(issues(emulators)) == 1
    assert bot.log().count("test notification ignored") == 3
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:  # the ignored ones were not even stored
            assert connection.execute(text("SELECT count(*) FROM inbound_events")).scalar() == 1
    finally:
        engine.dispose()
