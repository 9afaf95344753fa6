"""The fault suite (`make test-faults`). Scenarios marked ``faults`` run only there (``TRIAGE_FAULTS=1``, one at a
time); the cheap part (fuzzing with a bounded number of examples, hostile requests, the leak scan, one fault
scenario) runs in `make test` too. Each test says what it counted; the run ends with those lines."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.sandbox.identity_emulator import DEFAULT_SESSIONS, IdentityEmulator, create_identity_emulator
from bot.sandbox.server_thread import ServerThread
from bot.settings import SANDBOX_IDENTITY_TOKEN
from tests.conftest import Emulators
from tests.harness import JIRA_TOKEN, SLACK_SECRET, SLACK_TOKEN, WEBHOOK_TOKEN

FULL = os.environ.get("TRIAGE_FAULTS") == "1"
COUNTED = "fault-counts"


# What must never be seen outside: every secret the scenarios run with, and the customers' sessions and addresses.
SECRETS = {
    "the webhook token": WEBHOOK_TOKEN,
    "the Slack bot token": SLACK_TOKEN,
    "the Slack signing secret": SLACK_SECRET,
    "the Jira API token": JIRA_TOKEN,
    "the identity service's token": SANDBOX_IDENTITY_TOKEN,
    "the Jira webhook secret": "fuzz-jira-webhook-secret-0123",
    "the Grafana HMAC secret": "fuzz-grafana-hmac-secret-0123",
    **{f"the session of {s.sub}": s.session_id for s in DEFAULT_SESSIONS},
}
ADDRESSES = {f"the address of {s.sub}": s.email for s in DEFAULT_SESSIONS if s.email}


def leaks(text: str, *, addresses: bool = True) -> list[str]:
    """The secrets (and customers' addresses) found in ``text``."""
    found = [name for name, secret in SECRETS.items() if secret in text]
    return found + ([name for name, address in ADDRESSES.items() if address in text] if addresses else [])


@pytest.fixture(autouse=True)
def nothing_leaks(request: pytest.FixtureRequest, tmp_path: Path, emulators: Emulators) -> Iterator[None]:
    """After every test here: no secret and no customer's address in any line the bot logged, any Slack message,
    ephemeral or form, and no secret in any Jira issue (the Jira issue of a report carries the customer's address,
    for the people who reply; Slack shows it masked). Error bodies are checked by the tests that get them."""
    yield
    places = {f"log {log.name}": log.read_text(errors="replace") for log in sorted(tmp_path.glob("*.log"))}
    slack = emulators.slack
    places["Slack messages"] = json.dumps([slack.messages(), slack.ephemerals(), slack.views()])
    found = [f"{what} in {place}" for place, text in places.items() for what in leaks(text)]
    found += [f"{what} in a Jira issue" for what in leaks(json.dumps(emulators.jira.issues()), addresses=False)]
    assert not found, found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside `make test-faults`, leave out the long scenarios (and the one that restarts PostgreSQL)."""
    if FULL:
        return
    left_out = [item for item in items if item.get_closest_marker("faults")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        (report.nodeid, value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == COUNTED
    ]
    if lines:
        terminalreporter.section("what the fault suite counted")
        for nodeid, value in lines:
            terminalreporter.write_line(f"{nodeid.split('::', 1)[-1]}\n    {value}")


@pytest.fixture
def counted(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line of what this test counted; printed at the end of the run (works under xdist too)."""

    def say(line: str) -> None:
        request.node.user_properties.append((COUNTED, line))
        print(line)

    return say


@pytest.fixture
def identity() -> Iterator[tuple[IdentityEmulator, dict[str, str]]]:
    """The identity emulator on its own port, and the environment that points the bot at it."""
    app = create_identity_emulator()
    with ServerThread(app) as server:
        env = {
            "TRIAGE_SESSION_INTROSPECTION_URL": f"{server.url}/introspect",
            "TRIAGE_SESSION_INTROSPECTION_TOKEN": SANDBOX_IDENTITY_TOKEN,
        }
        yield app.state.emulator, env


def examples(full: int, quick: int) -> int:
    """Hypothesis examples per property: TRIAGE_FUZZ_EXAMPLES, else ``full`` in the fault suite, ``quick`` in
    `make test`."""
    return int(os.environ.get("TRIAGE_FUZZ_EXAMPLES") or (full if FULL else quick))
