"""Every Slack Web API call goes through here: one client, timeouts, metrics, no retries of its own
(the job queue is the retry layer and honours Retry-After; see bot.retry)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.jobs.retry import TryLater, classify, notice
from bot.metrics import outside_call
from bot.settings import Settings

HISTORY_PAGES = 5
# Slack errors that say the bot cannot post in a channel (not invited, archived, gone): no retry will help.
CHANNEL_UNREACHABLE = frozenset({"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived"})
GROUPS_TTL = 300.0  # seconds a user group's members are trusted before Slack is asked again
log = logging.getLogger("triage.slack")


@dataclass(frozen=True)
class SlackPerson:
    id: str
    name: str | None  # the full name (what Jira shows of people too), else the display name, else the handle
    email: str | None


def _person(user: dict[str, Any], user_id: str) -> SlackPerson:
    profile = user.get("profile") or {}
    names = (profile.get("real_name"), user.get("real_name"), profile.get("display_name"), user.get("name"))
    name = next((str(n).strip() for n in names if n and str(n).strip()), None)
    return SlackPerson(user_id, name, str(profile["email"]) if profile.get("email") else None)


class _NoticingClient(WebClient):
    """Every Slack call, whatever method: a 429 (``ratelimited``) is noticed for the shared budget, also when the
    handler that made the call catches it (bot.jobs.budget)."""

    def api_call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().api_call(*args, **kwargs)
        except SlackApiError as problem:
            notice(classify(problem))
            raise


class SlackGateway:
    def __init__(self, settings: Settings) -> None:
        base_url, token, _secret = settings.effective_slack()
        # retry_handlers=[]: the SDK would otherwise retry connection errors itself, stacking a second layer.
        self.client = _NoticingClient(
            token=token, base_url=base_url, timeout=int(settings.slack_timeout), retry_handlers=[]
        )
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._groups_lock = threading.Lock()

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> str:
        with outside_call("slack", "chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata=metadata,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(response["ts"])

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        with outside_call("slack", "chat.postEphemeral"):
            self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    def members(self, users: tuple[str, ...], *, strict: bool = False) -> frozenset[str]:
        """The Slack user ids in a policy list, with user groups (S...) expanded through
        ``usergroups.users.list`` (scope usergroups:read), asked again after GROUPS_TTL. A group Slack cannot
        list keeps its last known members; with none known it counts as empty, or with ``strict`` raises
        TryLater (a job should wait rather than refuse someone)."""
        found = {u for u in users if not u.startswith("S")}
        for group in (u for u in users if u.startswith("S")):
            found |= self._group(group, strict)
        return frozenset(found)

    def known_members(self, users: tuple[str, ...]) -> frozenset[str] | None:
        """``members`` without asking Slack (for a listener that must ack within 3 seconds): None when a
        group's members are not known yet."""
        found = {u for u in users if not u.startswith("S")}
        with self._groups_lock:
            for group in (u for u in users if u.startswith("S")):
                known = self._groups.get(group)
                if known is None:
                    return None
                found |= known[1]
        return frozenset(found)

    def _group(self, group: str, strict: bool) -> frozenset[str]:
        now = time.monotonic()
        with self._groups_lock:
            known = self._groups.get(group)
        if known is not None and now - known[0] < GROUPS_TTL:
            return known[1]
        try:
            with outside_call("slack", "usergroups.users.list"):
                response = self.client.usergroups_users_list(usergroup=group)
        except SlackClientError as problem:
            log.warning("cannot list a Slack user group", extra={"usergroup": group, "error": str(problem)})
            if known is not None:
                return known[1]
            if strict:
                raise TryLater(f"cannot list the Slack user group {group} yet: {problem}") from problem
            return frozenset()
        members = frozenset(str(u) for u in response.get("users") or [])
        with self._groups_lock:
            self._groups[group] = (now, members)
        return members

    def user(self, user: str) -> SlackPerson:
        """A Slack user's name and e-mail address (``users.info``; the e-mail needs the users:read.email scope)."""
        with outside_call("slack", "users.info"):
            response = self.client.users_info(user=user)
        return _person(response.get("user") or {}, user)

    def user_by_email(self, email: str) -> SlackPerson | None:
        """The Slack user with this e-mail address (``users.lookupByEmail``, scope users:read.email); None when
        there is none."""
        try:
            with outside_call("slack", "users.lookupByEmail"):
                response = self.client.users_lookupByEmail(email=email)
        except SlackApiError as problem:
            if problem.response.get("error") == "users_not_found":
                return None
            raise
        found = response.get("user") or {}
        return _person(found, str(found.get("id") or "")) if found.get("id") else None

    def permalink(self, channel: str, ts: str) -> str:
        with outside_call("slack", "chat.getPermalink"):
            response = self.client.chat_getPermalink(channel=channel, message_ts=ts)
        return str(response["permalink"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        with outside_call("slack", "chat.update"):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def find_posted(
        self, channel: str, metadata: dict[str, Any], oldest: float, thread_ts: str | None = None
    ) -> str | None:
        """The ts of a message we posted with exactly this metadata payload, if an uncertain post landed.
        ``oldest`` (unix seconds) bounds the search to when the post can have happened."""
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            with outside_call("slack", "conversations.history"):
                if thread_ts:
                    page = self.client.conversations_replies(
                        channel=channel, ts=thread_ts, cursor=cursor, include_all_metadata=True, limit=200
                    )
                else:
                    page = self.client.conversations_history(
                        channel=channel, cursor=cursor, include_all_metadata=True, limit=200
                    )
            messages: list[dict[str, Any]] = page.get("messages", [])
            for message in messages:
                found = message.get("metadata") or {}
                if (
                    found.get("event_type") == metadata["event_type"]
                    and found.get("event_payload") == metadata["event_payload"]
                ):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None
