"""The fault suite (`make test-faults`). Scenarios marked ``faults`` run only there (``TRIAGE_FAULTS=1``, one at a
time); the cheap part (fuzzing with a bounded number of examples, hostile requests, the leak scan, one fault
scenario) runs in `make test` too. Each test says what it counted; the run ends with those lines."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from bot.sandbox.identity_emulator import IdentityEmulator, create_identity_emulator
from bot.sandbox.server_thread import ServerThread
from bot.settings import SANDBOX_IDENTITY_TOKEN

FULL = os.environ.get("TRIAGE_FAULTS") == "1"
COUNTED = "fault-counts"


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
