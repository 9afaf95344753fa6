"""Test harness: databases, the bot as a real process, waiting for conditions. No project code is mocked."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from sqlalchemy import text as sa_text

from bot.sandbox.samples import alertmanager_payload as alertmanager_payload  # re-exported for the tests

PG_HOST = os.environ.get("TRIAGE_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_DSN = f"host={PG_HOST} port=5432 user=postgres dbname=postgres"
WEBHOOK_TOKEN = "test-webhook-token-0123456789"
SLACK_TOKEN = "xoxb-sandbox"
SLACK_SECRET = "sandbox-signing-secret"
JIRA_USER, JIRA_TOKEN = "sandbox@example.com", "sandbox-token"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class BotProcess:
    """`triage-bot serve` (or `worker`) as a real process, configured only through its environment."""

    env: dict[str, str]
    log_path: Path
    command: tuple[str, ...] = ("serve",)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> BotProcess:
        env = {**os.environ, **self.env, "TRIAGE_PORT": str(self.port)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *self.command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait and self.command[0] == "serve":
            wait_until(self._ready, timeout=30, interval=0.1, what=f"bot at {self.url} (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, token: str | None = WEBHOOK_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def bot_env(database_url: str, jira_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    env = {
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_AUTO_MIGRATE": "true",
        "TRIAGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TRIAGE_JIRA_URL": jira_url,
        "TRIAGE_JIRA_USER": JIRA_USER,
        "TRIAGE_JIRA_TOKEN": JIRA_TOKEN,
        "TRIAGE_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "TRIAGE_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "TRIAGE_SLACK_API_URL": slack_url,
        "TRIAGE_PUBLIC_URL": "http://127.0.0.1:9",
        "TRIAGE_JOB_LEASE_SECONDS": "5",
        "TRIAGE_JOB_POLL_SECONDS": "0.05",
        "TRIAGE_JIRA_SEARCH_SETTLE_SECONDS": "1",
        "TRIAGE_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def table_counts(engine: Any) -> dict[str, int]:
    """Rows in every table of the bot's schema, and the highest id of those that have one: what "changes nothing"
    is checked against. ``engine``: a SQLAlchemy engine on the bot's database (kept open by the caller)."""
    from bot.db.models import SQLModel

    counted: dict[str, int] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            counted[table.name] = int(conn.execute(sa_text(f"SELECT count(*) FROM {table.name}")).scalar_one())
            if "id" in table.c:
                top = conn.execute(sa_text(f"SELECT max(id) FROM {table.name}")).scalar()
                counted[f"{table.name}.max_id"] = int(top or 0)
    return counted
