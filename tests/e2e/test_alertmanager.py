"""A real Alertmanager (Debian's 0.25) in front of the real bot: grouping, redelivery, resolve, per environment.

Alertmanager runs as its own process on a free port, with a config written for each test. Alerts go in through
its API (`POST /api/v2/alerts`) exactly as Prometheus would send them; Alertmanager groups them, waits
`group_wait` and delivers its webhook to the bot with the bot's Bearer token. Nothing on that path is faked:
only Jira and Slack are the in-process emulators.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

CLEARED = "All alerts of this problem have cleared."
INSTALL_HINT = "run tests/services.sh (or `apt-get install prometheus-alertmanager`); `make test` does it for you"


def _binary(name: str) -> str:
    """The Alertmanager tools are a hard requirement of the suite: missing means failing, never skipping."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        pytest.fail(f"{name} is not installed, so the real-Alertmanager test cannot run: {INSTALL_HINT}")
    return found


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Alertmanager:
    """One `prometheus-alertmanager` process, killed at the end of the test."""

    config_path: Path
    storage_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    _binary("prometheus-alertmanager"),
                    f"--config.file={self.config_path}",
                    f"--storage.path={self.storage_path}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no HA gossip, no second port
                    "--log.level=debug",  # every notify attempt shows in the log shown on failure
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, timeout=30, interval=0.1, what=f"Alertmanager at {self.url}/-/ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Alertmanager exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, alerts: list[dict[str, Any]]) -> None:
        answer = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        assert answer.status_code == 200, f"Alertmanager refused the alerts: {answer.status_code} {answer.text}"


SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager.yml"


def write_config(path: Path, bot: BotProcess) -> Path:
    """deploy/alertmanager.yml, the one users get, with only the bot's URL, the token file and the group timings
    (seconds, not minutes) changed."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["route"] |= {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    [receiver] = config["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"].endswith("/alerts/alertmanager") and webhook["send_resolved"] is True
    webhook["url"] = f"{bot.url}/alerts/alertmanager"
    token = path.with_name("triage-bot-token")
    token.write_text(WEBHOOK_TOKEN)
    webhook["http_config"]["authorization"]["credentials_file"] = str(token)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    check = subprocess.run(
        [_binary("amtool"), "check-config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert check.returncode == 0, f"amtool check-config failed:\n{check.stdout}\n{check.stderr}"
    return path


@pytest.fixture
def alertmanager(bot: BotProcess, tmp_path: Path) -> Iterator[Alertmanager]:
    _binary("prometheus-alertmanager")  # fail before writing anything when it is missing
    config = write_config(tmp_path / "alertmanager.yml", bot)
    manager = Alertmanager(config, tmp_path / "alertmanager-data", tmp_path / "alertmanager.log")
    try:
        yield manager.start()
    finally:
        manager.kill()


@contextlib.contextmanager
def logs_on_failure(manager: Alertmanager, bot: BotProcess) -> Iterator[None]:
    """On any failure print both processes' logs (pytest shows them with the failure)."""
    try:
        yield
    except BaseException:
        for name, text in (("Alertmanager", manager.log()), ("bot", bot.log())):
            print(f"\n===== {name} log (last 8000 chars) =====\n{text[-8000:]}")
        raise


def group(name: str, instances: int, env: str, starts: datetime, ends: datetime | None = None) -> list[dict[str, Any]]:
    """Alerts as Prometheus posts them to `/api/v2/alerts`: one per instance, same alertname (one group)."""
    alerts = []
    for i in range(instances):
        alert: dict[str, Any] = {
            "labels": {
                "alertname": name,
                "env": env,
                "severity": "critical",
                "instance": f"{name.lower()}-host-{i}:9100",
            },
            "annotations": {"summary": f"{name} is failing"},
            "startsAt": _timestamp(starts),
            "generatorURL": f"http://prometheus.invalid:9090/graph?g0.expr={name}",
        }
        if ends is not None:
            alert["endsAt"] = _timestamp(ends)
        alerts.append(alert)
    return alerts


def tickets(bot: BotProcess) -> list[dict[str, Any]]:
    with bot.client() as client:
        answer = client.get("/api/tickets")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["tickets"]
        return found


def comments(issue: dict[str, Any]) -> list[str]:
    return [c["body"] for c in issue["fields"]["comment"]["comments"]]


def settled(bot: BotProcess, emulators: Emulators, database_url: str, firing: list[int]) -> list[dict[str, Any]]:
    """Wait until the bot has one ticket per group with all its alerts firing and has finished the work.

    Waiting for the content, not for a number of notifications: how many webhooks Alertmanager sends for a group
    depends on timing (see `test_alertmanager_staging_group_resolves_the_jira_issue`).
    """
    wait_until(
        lambda: len(issues(emulators)) >= len(firing) and sorted(t["firing_alerts"] for t in tickets(bot)) == firing,
        timeout=60,
        interval=0.1,
        what=f"{len(firing)} Jira issues and tickets with {firing} alerts firing",
    )
    queue_drained(database_url)
    found = issues(emulators)
    assert len(found) == len(firing), [i["fields"]["summary"] for i in found]
    return found


def test_alertmanager_groups_become_tickets_and_resolve_as_comments(
    bot: BotProcess, alertmanager: Alertmanager, emulators: Emulators, database_url: str
) -> None:
    # startsAt "now": Alertmanager holds each new group for group_wait (1 s) before the first notification.
    starts = datetime.now(UTC)
    firing = group("AmDiskFull", 3, "production", starts) + group("AmLatencyHigh", 2, "production", starts)
    with logs_on_failure(alertmanager, bot):
        for _ in range(3):  # Prometheus resends every alert while it fires; Alertmanager must merge them
            alertmanager.post(firing)

        found = settled(bot, emulators, database_url, firing=[2, 3])
        by_name = {i["fields"]["summary"].split()[0]: i for i in found}  # "AmDiskFull is failing (production)"
        assert sorted(by_name) == ["AmDiskFull", "AmLatencyHigh"], [i["fields"]["summary"] for i in found]
        assert len({i["fields"]["summary"] for i in found}) == 2
        for issue in found:
            assert "triage-bot" in issue["fields"]["labels"], issue["fields"]["labels"]
            assert issue["fields"]["priority"]["name"] == "Highest"
            assert comments(issue) == []

        posted = cards(emulators, "C0OPS")
        assert len(posted) == 2 and len(cards(emulators)) == 2, posted
        card_of = {
            name: next(c for c in posted if issue["key"] in json.dumps(c["blocks"])) for name, issue in by_name.items()
        }
        assert card_of["AmDiskFull"]["ts"] != card_of["AmLatencyHigh"]["ts"]
        assert "3 of 3 alerts firing" in json.dumps(card_of["AmDiskFull"]["blocks"])
        assert "2 of 2 alerts firing" in json.dumps(card_of["AmLatencyHigh"]["blocks"])

        # Prometheus ends an alert by sending it again with endsAt set; "now" is in the past when it arrives
        # (and, unlike now - 1 s, never before startsAt, which Alertmanager would refuse).
        ends = datetime.now(UTC)
        resolved = group("AmDiskFull", 3, "production", starts, ends) + group(
            "AmLatencyHigh", 2, "production", starts, ends
        )
        for _ in range(2):
            alertmanager.post(resolved)

        wait_until(
            lambda: (
                all(t["alert_status"] == "resolved" for t in tickets(bot))
                and all(comments(i) for i in issues(emulators))
            ),
            timeout=60,
            interval=0.1,
            what="both tickets to see their alerts resolved and the resolve comments",
        )
        queue_drained(database_url)

        found = issues(emulators)
        assert len(found) == 2
        for issue in found:
            assert comments(issue) == [CLEARED], (issue["key"], comments(issue))
            assert issue["fields"]["status"]["name"] != "Resolved"  # on_resolve: comment, not resolve
        state = {t["jira_key"]: (t["state"], t["alert_status"], t["firing_alerts"]) for t in tickets(bot)}
        assert state == {i["key"]: ("open", "resolved", 0) for i in found}
        for card in card_of.values():
            thread = emulators.slack.thread("C0OPS", card["ts"])
            assert [m["text"] for m in thread[1:]] == [CLEARED]
        assert len(cards(emulators)) == 2  # resolving edits the cards, never posts new ones


def test_alertmanager_staging_group_resolves_the_jira_issue(
    bot: BotProcess, alertmanager: Alertmanager, emulators: Emulators, database_url: str
) -> None:
    # startsAt well in the past, as Prometheus sends for a rule with `for: 5m`. Alertmanager 0.25 then skips
    # group_wait and flushes the group as soon as its first alert is inserted (dispatch.go aggrGroup.insert), so
    # the bot may get one notification per alert ("new alerts added") rather than one for the whole group.
    starts = datetime.now(UTC) - timedelta(minutes=5)
    with logs_on_failure(alertmanager, bot):
        for _ in range(2):
            alertmanager.post(group("AmQueueStuck", 2, "staging", starts))
        [issue] = settled(bot, emulators, database_url, firing=[2])
        assert issue["fields"]["summary"] == "AmQueueStuck is failing (staging)"
        assert "triage-bot" in issue["fields"]["labels"]
        assert issue["fields"]["status"]["name"] != "Resolved"

        alertmanager.post(group("AmQueueStuck", 2, "staging", starts, ends=datetime.now(UTC) - timedelta(seconds=1)))

        def jira_resolved() -> bool:
            current = emulators.jira.issue(issue["key"])
            return current is not None and current["fields"]["status"]["name"] == "Resolved"

        wait_until(jira_resolved, timeout=60, interval=0.1, what=f"{issue['key']} to be Resolved in Jira")
        queue_drained(database_url)
        [ticket] = tickets(bot)
        assert (ticket["jira_key"], ticket["state"], ticket["alert_status"]) == (issue["key"], "resolved", "resolved")
        assert len(issues(emulators)) == 1 and len(cards(emulators, "C0OPS")) == 1
