"""What the scenarios share: the bot's environment, the clock of Jira issues, running the async load, naming Jira
requests."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx

from bench.procs import Server, clean_env
from bot.sandbox.jira_emulator import ChangeEvent

WEBHOOK_TOKEN = "bench-webhook-token-0123456789"  # a local throw-away token
JIRA_USER, JIRA_TOKEN = "sandbox@example.com", "sandbox-token"  # the emulator's default credentials
SLACK_TOKEN, SLACK_SECRET = "xoxb-sandbox", "sandbox-signing-secret"
T = TypeVar("T")


def issue_clock() -> tuple[dict[str, float], Callable[[ChangeEvent], None]]:
    """When each Jira issue was created, as the Jira emulator saw it: the map and the listener that fills it."""
    created: dict[str, float] = {}
    lock = threading.Lock()

    def on_change(event: ChangeEvent) -> None:
        if event.kind == "issue_created":
            with lock:
                created[event.issue_key] = event.timestamp

    return created, on_change


def bot_env(database_url: str, jira_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    """Only what a production deployment must set; everything else (workers, poll, lease) stays default."""
    return clean_env(
        {
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
            **extra,
        }
    )


def scrape(server: Server) -> str:
    answer = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=30)
    answer.raise_for_status()
    return answer.text


def terminate(signum: int, _frame: Any) -> None:
    """SIGTERM outside the event loop: unwind through every ``finally`` (servers, databases)."""
    raise SystemExit(128 + signum)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` where SIGTERM cancels the load cleanly: an exception raised by a signal handler in the
    middle of a task can leave asyncio.run waiting for ever on the tasks it cancels."""
    terminated = False

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def cancel() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if terminated:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, terminate)  # remove_signal_handler left SIG_DFL behind


def category(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    tail = parts[3:] if parts[:2] == ["rest", "api"] else parts  # below /rest/api/{2,3,latest}/
    if not tail:
        return f"{method} {path}"
    head = tail[0]
    if head == "serverInfo":
        return "serverInfo"
    if head.startswith("search"):
        return "search"
    if head == "issue":
        if len(tail) == 1 and method == "POST":
            return "create issue"
        if len(tail) == 2:
            return {"GET": "get issue", "PUT": "update issue"}.get(method, f"{method} issue")
        return f"{method} issue/{tail[2]}"  # comment, transitions, assignee
    return f"{method} {head}"
