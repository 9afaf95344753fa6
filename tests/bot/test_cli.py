"""The command line as a user runs it: exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.settings import EXAMPLE_POLICY
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained
from tests.harness import BotProcess, alertmanager_payload, run_cli, wait_until

ALERT = EXAMPLE_POLICY.parent / "alertmanager.json"


cli = run_cli


def test_policy_check(tmp_path: Path) -> None:
    ok = cli("policy", "check", str(EXAMPLE_POLICY))
    assert ok.returncode == 0 and "OK" in ok.stdout
    # The severity words it knows, per environment, with the priority each gets.
    production = ok.stdout.split("  production (default Medium):\n")[1].split("  staging")[0]
    assert production.startswith("    Highest: critical, ") and ", page, " in production.splitlines()[0]
    assert "    High: warning, error, " in production and ", major, " in production
    assert "test notifications (Grafana's Test button): card" in ok.stdout
    bad = tmp_path / "policy.yaml"
    bad.write_text(EXAMPLE_POLICY.read_text().replace("reopen: 24h", "reopen: tomorrow", 1))
    result = cli("policy", "check", str(bad))
    assert result.returncode == 1  # a check that did not pass (2 is for usage)
    assert f"{bad}:line 21: environments.production.reopen: 'tomorrow' is not a duration" in result.stderr


def test_route_prints_the_decision_without_touching_anything(tmp_path: Path) -> None:
    result = cli("route", str(ALERT), "--json", TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path}/never.db")
    assert result.returncode == 0, result.stderr
    decided = json.loads(result.stdout)
    assert decided | {"dedup_key": "", "jira_label": ""} == {
        "source": "alertmanager",
        "status": "firing",
        "title": "HighErrorRate: 5xx rate above 5% on api",
        "environment": "production",
        "dedup_key": "",
        "jira_label": "",
        "severity": "critical",
        "priority": "Highest",
        "owner": "operators (triage)",
        "channel": "C0OPS",
        "on_resolve": "comment",
        "reopen": "24h",
        "alerts": 2,
        "rules": "HighErrorRate (2 of 2 firing)",
        "test": "no",
        "links": [
            "Source: http://prometheus:9090/graph?g0.expr=rate",
            "Runbook: https://runbooks.example.com/high-error-rate",
        ],
    }
    assert not (tmp_path / "never.db").exists()
    payments = tmp_path / "payments.json"
    body = json.loads(ALERT.read_text())
    body["commonLabels"]["service"] = "payments"
    payments.write_text(json.dumps(body))
    assert "team payments" in cli("route", str(payments)).stdout
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"hello": 1}')
    result = cli("route", str(garbage))
    assert result.returncode == 1 and "fits none of the senders the bot takes" in result.stderr


def test_configuration_errors_say_what_to_fix() -> None:
    result = cli("serve", TRIAGE_JIRA_URL="https://example.atlassian.net")
    assert result.returncode == 2
    assert "TRIAGE_JIRA_URL is set but TRIAGE_JIRA_TOKEN is not" in result.stderr
    result = cli(
        "serve",
        TRIAGE_SLACK_BOT_TOKEN="xoxb-1",
        TRIAGE_SLACK_SIGNING_SECRET="s",
        TRIAGE_JIRA_URL="https://example.atlassian.net",
        TRIAGE_JIRA_TOKEN="t",
    )
    assert result.returncode == 2 and "TRIAGE_WEBHOOK_TOKEN is required" in result.stderr
    result = cli("serve", TRIAGE_DATABASE_URL="mysql://x")
    assert "TRIAGE_DATABASE_URL" in result.stderr and "postgresql+psycopg://" in result.stderr
    assert "xoxb-1" not in result.stderr


def test_dead_jobs_are_listed_and_retried(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    emulators.jira.set_fault(status=400, count=1, methods={"POST"}, path_contains="/issue")
    env = {"TRIAGE_DATABASE_URL": database_url}
    with bot.client() as client:
        post_alert(client, alertmanager_payload("D"))

        def dead() -> Any:
            listed = cli("jobs", **env)
            return listed if "jira.create" in listed.stdout else None

        listed = wait_until(dead, timeout=30, interval=0.5, what="a dead jira.create job")
        assert "dead 1" in listed.stdout and "triage-bot jobs retry ID" in listed.stdout
        job_id = next(line.split()[0] for line in listed.stdout.splitlines() if "jira.create" in line)
        retried = cli("jobs", "retry", job_id, **env)
        assert retried.returncode == 0 and "queued again" in retried.stdout
        assert cli("jobs", "retry", job_id, **env).returncode == 1  # no longer dead
        queue_drained(database_url)
        assert len(issues(emulators)) == 1

        emulators.jira.set_fault(status=400, count=1, methods={"POST"}, path_contains="/issue")
        post_alert(client, alertmanager_payload("D2"))
        listed = wait_until(dead, timeout=30, interval=0.5, what="a second dead jira.create job")
        job_id = next(line.split()[0] for line in listed.stdout.splitlines() if "jira.create" in line)
        dropped = cli("jobs", "drop", job_id, **env)
        assert dropped.returncode == 0 and "dropped" in dropped.stdout
        queue_drained(database_url)  # the card waiting behind it in the lane went out
    assert len(issues(emulators)) == 1
    assert len(cards(emulators)) == 2


def test_a_real_jira_alone_still_needs_a_webhook_token() -> None:
    result = cli("jobs", TRIAGE_JIRA_URL="https://example.atlassian.net", TRIAGE_JIRA_TOKEN="t", TRIAGE_JIRA_USER="u")
    assert result.returncode == 2 and "TRIAGE_WEBHOOK_TOKEN is required" in result.stderr


def test_the_sandbox_shows_the_whole_customer_loop(tmp_path: Path) -> None:
    """`make run` (full sandbox: emulated Jira, Slack, identity service and mail), `triage-bot demo` and
    `triage-bot demo --report`: what they print is what a person sees (the card as Slack shows it, with its
    buttons; the receipt and the closing e-mail whole)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    bot = BotProcess(env={"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/sandbox.db"}, log_path=tmp_path / "bot.log")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("TRIAGE_")}  # no TRIAGE_* but these
    try:
        try:
            bot.start()
        finally:
            os.environ.update(saved)
        alert, demo = (
            subprocess.run(
                [sys.executable, "-m", "bot.cli", "demo", *report, "--url", bot.url],
                capture_output=True,
                text=True,
                env=clean,
                timeout=90,
                check=False,
            )
            for report in ([], ["--report"])
        )
    finally:
        bot.kill()
    assert alert.returncode == 0, alert.stdout + alert.stderr
    card = alert.stdout.split("as Slack shows it:\n", 1)[1].splitlines()
    assert card[:3] == [
        "  | HighErrorRate: 5xx rate above 5% on api",
        "  | =======================================",
        f"  | Jira         OPS-1 ({bot.url}/sandbox/jira/browse/OPS-1)",
    ]
    assert "  | Assignee     nobody yet" in card and "  | 🔴 firing: 2 of 2 alerts firing" in card
    assert card[-2:] == ["  | [Resolve] [Assign team] [Close]", "  | ticket #1 · http://alertmanager:9093"]
    assert not any(raw in alert.stdout for raw in ("*Jira*", "<http", ":red_circle:"))  # no raw mrkdwn

    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "<- 201 report R-" in out and "We received your report" in out
    assert "   e-mail to jane.doe@example.com: [R-" in out
    assert "   | thank you for your report. We received it and it is now with our" in out  # the receipt's text
    assert "   | This message was sent automatically." in out.split("pressed Assign member")[0]
    assert 'pressed Close in C0OPS: the customer now sees "Closed"' in out
    assert "  | Assignee     @Paul Payments" in out and "  | [Reopen]" in out, out  # the card at the end
    closing = out.split("Your report is closed", 1)[1]
    assert "Your refund was sent again today. Sorry for the wait!" in closing
    assert closing.rstrip().endswith("   | This message was sent automatically.")  # the whole e-mail
