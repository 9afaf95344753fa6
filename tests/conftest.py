"""Shared fixtures: both databases, the emulators in-process, the bot as a real process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.db import migrate
from bot.db.engine import make_engine
from bot.sandbox.jira_emulator import JiraEmulator, create_jira_emulator
from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import SlackEmulator, create_slack_emulator
from tests.harness import BotProcess, bot_env, postgres_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/triage.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@dataclass
class Emulators:
    jira: JiraEmulator
    slack: SlackEmulator
    jira_url: str
    slack_url: str


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    jira_app, slack_app = create_jira_emulator(), create_slack_emulator()
    with ServerThread(jira_app) as jira_server, ServerThread(slack_app) as slack_server:
        yield Emulators(
            jira=jira_app.state.emulator,
            slack=slack_app.state.emulator,
            jira_url=jira_server.url,
            slack_url=slack_server.url + "/api/",
        )


@pytest.fixture
def make_bot(database_url: str, emulators: Emulators, tmp_path: Path) -> Iterator[Any]:
    """Start bot processes against this test's database and emulators; all are stopped at the end."""
    started: list[BotProcess] = []

    def start(command: tuple[str, ...] = ("serve",), wait: bool = True, **extra: str) -> BotProcess:
        env = bot_env(database_url, emulators.jira_url, emulators.slack_url, **extra)
        bot = BotProcess(env=env, log_path=tmp_path / f"bot-{len(started)}.log", command=command)
        started.append(bot)
        return bot.start(wait=wait)

    yield start
    for bot in started:
        bot.kill()


@pytest.fixture
def bot(make_bot: Any) -> BotProcess:
    started: BotProcess = make_bot()
    return started
