"""Socket Mode: Slack's interactivity over a WebSocket the bot opens itself, for workspaces that cannot expose a
public Request URL. It serves the same bolt app as POST /slack/events (which stays), so a click is handled the
same way: stored with its job before the ack, decided by a worker.

The server's lifespan starts it when TRIAGE_SLACK_APP_TOKEN is set. A token Slack refuses stops the start with a
message naming the variable; Slack being out of reach does not: the bot keeps trying in the background. Once
connected, slack_sdk's client keeps the connection alive (pings) and opens a new one when Slack asks for it
(``disconnect``) or the socket drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.settings import Settings

log = logging.getLogger("triage.slack.socket")

# What apps.connections.open answers when no retry can help: the token is wrong, revoked or of the wrong kind.
REFUSED = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "not_allowed_token_type",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "forbidden_team",
    }
)
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)
RETRY_FIRST, RETRY_MAX = 0.5, 30.0


def refused_message(error: str) -> str:
    return (
        f"Slack refused TRIAGE_SLACK_APP_TOKEN for Socket Mode ({error}): set it to the app-level token (xapp-...) "
        "of this Slack app, with the connections:write scope, or unset it to take interactivity at /slack/events only"
    )


class SlackSocketMode:
    """One Socket Mode connection for the server's bolt app; ``start()`` it in the lifespan, ``close()`` after."""

    def __init__(self, bolt: AsyncApp, settings: Settings) -> None:
        token = settings.effective_slack_app_token()
        if token is None:
            raise ValueError("Socket Mode needs TRIAGE_SLACK_APP_TOKEN")
        self.settings = settings
        self.token = token
        self.handler = AsyncSocketModeHandler(bolt, app_token=token)
        self.handler.client.on_message_listeners.append(self._on_message)
        self.handler.client.on_close_listeners.append(self._on_close)
        self.connections = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, bolt: AsyncApp, settings: Settings) -> SlackSocketMode:
        """Check the token with Slack (SystemExit, naming the variable, if Slack refuses it), then connect in the
        background. With the emulator the check waits for the background: the emulator is this very server, which
        does not listen until the lifespan has started."""
        self = cls(bolt, settings)
        api_url = "emulator" if settings.slack_sandbox else settings.slack_api_url
        log.info("Slack Socket Mode on: interactivity also comes over a WebSocket", extra={"slack": api_url})
        url = None
        if not settings.slack_sandbox:
            try:
                url = await asyncio.wait_for(self._open_url(), settings.slack_timeout)
            except SlackApiError as exc:
                error = str(exc.response.get("error"))
                if error in REFUSED:
                    log.error(refused_message(error), extra={"slack_error": error})
                    await self.handler.close_async()  # type: ignore[no-untyped-call]
                    raise SystemExit(refused_message(error)) from None
                self._retrying(f"Slack answered {error}", RETRY_FIRST)
            except UNREACHABLE as exc:
                self._retrying(type(exc).__name__, RETRY_FIRST)
        self._task = asyncio.create_task(self._connect(url), name="slack-socket-mode")
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.handler.close_async()  # type: ignore[no-untyped-call]
        except Exception as exc:  # closing a broken connection may fail; we are leaving either way
            log.warning("Slack Socket Mode did not close cleanly", extra={"error": type(exc).__name__})
        log.info("Slack Socket Mode closed")

    async def _open_url(self) -> str:
        response = await self.handler.client.web_client.apps_connections_open(app_token=self.token)
        return str(response["url"])

    async def _connect(self, url: str | None) -> None:
        """Get a WebSocket URL (unless the start already has one) and connect; retry with backoff until it works or
        Slack refuses the token."""
        delay = RETRY_FIRST
        while True:
            try:
                if url is None:
                    url = await asyncio.wait_for(self._open_url(), self.settings.slack_timeout)
                self.handler.client.wss_uri = url
                # slack_sdk retries the WebSocket itself; "connected" is logged when Slack's hello arrives.
                await self.handler.connect_async()  # type: ignore[no-untyped-call]
                return
            except SlackApiError as exc:
                error = str(exc.response.get("error"))
                if error in REFUSED:
                    log.error(refused_message(error), extra={"slack_error": error})
                    return
                self._retrying(f"Slack answered {error}", delay)
            except UNREACHABLE as exc:
                self._retrying(type(exc).__name__, delay)
            url = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _retrying(self, error: str, delay: float) -> None:
        # With the emulator the first attempts come before this server listens: expected, not worth a warning.
        level = logging.DEBUG if self.settings.slack_sandbox and delay < RETRY_MAX / 4 else logging.WARNING
        log.log(level, "Slack Socket Mode cannot connect yet; retrying", extra={"error": error, "retry_in": delay})

    async def _on_message(self, message: aiohttp.WSMessage) -> None:
        try:
            data: Any = json.loads(message.data)
        except (TypeError, ValueError):
            return
        if not isinstance(data, dict):
            return
        if data.get("type") == "hello":
            self.connections += 1
            extra = {
                "app_id": (data.get("connection_info") or {}).get("app_id"),
                "num_connections": data.get("num_connections"),
                "slack_host": (data.get("debug_info") or {}).get("host"),
                "connections_so_far": self.connections,
            }
            log.info("Slack Socket Mode " + ("connected" if self.connections == 1 else "reconnected"), extra=extra)
        elif data.get("type") == "disconnect":
            log.info("Slack asked for a new Socket Mode connection; reconnecting", extra={"reason": data.get("reason")})

    async def _on_close(self, message: aiohttp.WSMessage) -> None:
        # slack_sdk has already reconnected by the time it tells us (the new connection's hello is logged).
        log.info("Slack closed a Socket Mode connection", extra={"code": message.data})
