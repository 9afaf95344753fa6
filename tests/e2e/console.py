"""The console's browser tests' shared parts: `triage-bot serve` in full sandbox mode as a person runs it, and
Debian's chromium driven by Playwright (its own browser download is not reachable here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BotProcess

CHROMIUM = os.environ.get("TRIAGE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "console-screenshots"


def sandbox_server(tmp: Path, database_url: str, **extra: str) -> BotProcess:
    """The bot as `make run` starts it (full sandbox: Jira, Slack, identity and mail built in), on its own
    database and port, its workers polling briskly."""
    env = {
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_AUTO_MIGRATE": "true",
        "TRIAGE_JOB_POLL_SECONDS": "0.05",
        "TRIAGE_JIRA_SEARCH_SETTLE_SECONDS": "0",
        "TRIAGE_LOG_LEVEL": "INFO",
        **extra,
    }
    return BotProcess(env=env, log_path=tmp / "bot.log").start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (tests/services.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def screenshot(page: Any, name: str) -> None:
    """A picture of the page for a reviewer, in var/console-screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def keep_log(bot: BotProcess, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if bot.log_path.exists():
        shutil.copy(bot.log_path, SCREENSHOTS / f"{name}.log")
