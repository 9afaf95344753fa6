"""Slack Web API emulator (FastAPI) for sandbox mode and tests.

Serves ``/api/{method}`` so that ``slack_sdk.WebClient(base_url=f"{url}/api/")`` (and AsyncWebClient) work
unchanged, plus unauthenticated ``/_emulator/*`` control routes. Wire format follows real Slack: errors are
HTTP 200 ``{"ok": false, "error": ...}``; rate limits are HTTP 429 + ``Retry-After`` + ``"ratelimited"``.

Behaviour worth knowing (chosen to match real Slack):
- ``ts`` values are wall-clock microseconds, strictly increasing across the workspace.
- ``chat.postMessage`` auto-creates any ``C…``/``G…``/``D…`` channel id, accepts ``#name`` of a known channel and
  maps a known user id ``U…`` to the bot's DM ``D…``. Other methods answer ``channel_not_found`` for unknown ids.
- A well-formed ``thread_ts`` that names no top-level message is accepted (``ok: true``) but the message shows
  up nowhere (not in history, not in any thread), as on real Slack; the emulator marks it ``orphan``.
  A malformed ``thread_ts`` gives ``invalid_thread_ts``.
- Blocks without ``block_id`` get one (stable hash), as Slack fills them in. ``chat.update`` keeps fields
  (text, blocks, metadata) that the call omits and records the previous version in ``edits``.
- ``metadata`` is returned by postMessage/update, but by history/replies only with ``include_all_metadata``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.sandbox.slack_socket import SANDBOX_APP_TOKEN, SocketModeHub

JSON = dict[str, Any]

TEAM_ID, TEAM_DOMAIN, BOT_USER_ID, BOT_ID, APP_ID = "T0SANDBOX", "sandbox", "U0BOT", "B0BOT", "A0SANDBOX"
MAX_TEXT, MAX_MESSAGE_BLOCKS, MAX_VIEW_BLOCKS = 40_000, 50, 100
BLOCK_TYPES = {"section", "actions", "context", "header", "divider", "image", "input", "rich_text"}
TS_RE = re.compile(r"^\d{10}\.\d{6}$")
POST_OPTIONS = ("unfurl_links", "unfurl_media", "mrkdwn", "username", "icon_emoji", "icon_url", "parse", "link_names")
BOT_FIELDS = {"user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID, "team": TEAM_ID}
VIEW_DEFAULTS: JSON = {"team_id": TEAM_ID, "app_id": APP_ID, "bot_id": BOT_ID, "previous_view_id": None}
VIEW_DEFAULTS |= {"private_metadata": "", "callback_id": "", "external_id": "", "state": {"values": {}}}
VIEW_DEFAULTS |= {"clear_on_close": False, "notify_on_close": False}


@dataclass(frozen=True)
class EmulatedSlackUser:
    id: str
    name: str
    email: str
    real_name: str = ""
    is_bot: bool = False

    def to_api(self) -> JSON:
        real = self.real_name or self.name
        profile: JSON = dict.fromkeys(("avatar_hash", "title", "phone", "skype", "status_text", "status_emoji"), "")
        profile |= {"real_name": real, "real_name_normalized": real, "display_name": self.name}
        profile |= {"display_name_normalized": self.name, "email": self.email, "fields": {}, "team": TEAM_ID}
        user: JSON = {"id": self.id, "team_id": TEAM_ID, "name": self.name, "real_name": real, "deleted": False}
        user |= {"is_bot": self.is_bot, "is_app_user": False, "is_admin": False, "tz": "UTC", "tz_offset": 0}
        return user | {"updated": 1_700_000_000, "profile": profile}


DEFAULT_USERS = (
    EmulatedSlackUser("U0OP1", "olivia.ops", "olivia.ops@example.com", "Olivia Ops"),
    EmulatedSlackUser("U0PA1", "paul.pay", "paul.pay@example.com", "Paul Payments"),
    EmulatedSlackUser("U0PA2", "petra.pay", "petra.pay@example.com", "Petra Payments"),
    EmulatedSlackUser("U0QA1", "quinn.qa", "quinn.qa@example.com", "Quinn QA"),
    EmulatedSlackUser("U0OUT1", "otto.out", "otto.out@example.com", "Otto Outsider"),  # in no policy audience
)
DEFAULT_CHANNELS = {"C0OPS": "ops", "C0PAY": "payments", "C0QA": "qa"}
DEFAULT_USERGROUPS = {"S0OPS": ["U0OP1"], "S0PAY": ["U0PA1", "U0PA2"], "S0QA": ["U0QA1"]}


class SlackError(Exception):
    def __init__(self, error: str, *messages: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: JSON = {"ok": False, "error": error, **extra}
        if messages:
            self.body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}


class RateLimited(Exception):
    def __init__(self, retry_after: int | None, status: int = 429) -> None:
        super().__init__("ratelimited")
        self.retry_after, self.status = retry_after, status


@dataclass
class Fault:
    """An injected failure: HTTP ``status`` (429 or 5xx; < 400 means latency only) for matching calls."""

    status: int = 429
    count: int | None = None  # number of calls to hit, None = unlimited
    seconds: float | None = None  # active for this long from creation, None = until cleared
    retry_after: int | None = 1
    latency: float = 0.0
    methods: set[str] | None = None
    after_commit: bool = False  # the call takes effect, then answers the fault anyway (a lost answer)
    created: float = field(default_factory=time.monotonic)

    def alive(self, now: float) -> bool:
        return (self.count is None or self.count > 0) and (self.seconds is None or now < self.created + self.seconds)


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[JSON] | None
    metadata: JSON | None
    thread_ts: str | None = None
    orphan: bool = False  # thread_ts named no message: Slack answers ok but shows it nowhere
    options: JSON = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    edits: list[JSON] = field(default_factory=list)
    edited_ts: str | None = None

    def record(self) -> JSON:
        keys = ("channel", "ts", "text", "blocks", "metadata", "thread_ts", "orphan", "options", "replies", "edits")
        rec = {k: copy.deepcopy(getattr(self, k)) for k in keys}
        return rec | {"reply_count": len(self.replies), "edit_count": len(self.edits)}


class _Params:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = dict(raw)

    def get(self, name: str, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value in (None, "") and required:
            raise SlackError("invalid_arguments", f"missing required field: {name}")
        return None if value is None else str(value)

    def flag(self, name: str) -> bool:
        return str(self.raw.get(name, "")).lower() in ("1", "true", "yes")

    def number(self, name: str, default: float, error: str) -> float:
        try:
            return float(self.raw.get(name) or default)
        except ValueError:
            raise SlackError(error, f"{name} must be a number") from None

    def parsed(self, name: str, error: str) -> Any:
        value = self.raw.get(name)
        if isinstance(value, str) and value:
            try:
                return json.loads(value)
            except ValueError:
                raise SlackError(error, f"{name} is not valid JSON") from None
        return value or None


def _too_long(obj: Any, limit: int, where: str, errors: list[str], plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn") or "text" not in obj:
        errors.append(f"must provide a text object [json-pointer:{where}]")
    elif plain_only and obj["type"] != "plain_text":
        errors.append(f"must be plain_text [json-pointer:{where}/type]")
    elif len(str(obj["text"])) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{where}/text]")


def _block_id(index: int, block: JSON) -> str:
    return hashlib.sha1(f"{index}{json.dumps(block, sort_keys=True)}".encode(), usedforsecurity=False).hexdigest()[:5]


def validate_blocks(blocks: Any, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Loose Slack-like validation; returns Slack-style error strings (empty list = valid)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    action_ids: set[str] = set()

    def element(el: Any, where: str) -> None:
        if not isinstance(el, dict) or not isinstance(el.get("type"), str):
            errors.append(f"must be an element object [json-pointer:{where}]")
            return
        if el["type"] == "button":
            _too_long(el.get("text"), 75, f"{where}/text", errors, plain_only=True)
            if len(str(el.get("value", ""))) > 2000:
                errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
        if "action_id" in el:
            aid = str(el["action_id"])
            if len(aid) > 255:
                errors.append(f"must be less than 256 characters [json-pointer:{where}/action_id]")
            if aid in action_ids:
                errors.append(f"duplicate action_id `{aid}` [json-pointer:{where}/action_id]")
            action_ids.add(aid)

    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict) or kind not in BLOCK_TYPES:
            errors.append(f"unsupported type `{kind}` [json-pointer:{where}/type]")
            continue
        if len(str(block.get("block_id", ""))) > 255:
            errors.append(f"must be less than 256 characters [json-pointer:{where}/block_id]")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide either text or fields [json-pointer:{where}]")
            if "text" in block:
                _too_long(block["text"], 3000, f"{where}/text", errors)
            for j, f in enumerate(block.get("fields") or []):
                _too_long(f, 2000, f"{where}/fields/{j}", errors)
            if "accessory" in block:
                element(block["accessory"], f"{where}/accessory")
        elif kind == "header":
            _too_long(block.get("text"), 150, f"{where}/text", errors, plain_only=True)
        elif kind in ("actions", "context"):
            els, limit = block.get("elements"), 25 if kind == "actions" else 10
            if not isinstance(els, list) or not els or len(els) > limit:
                errors.append(f"must have 1 to {limit} items [json-pointer:{where}/elements]")
            elif kind == "actions":
                for j, el in enumerate(els):
                    element(el, f"{where}/elements/{j}")
        elif kind == "image" and not ((block.get("image_url") or block.get("slack_file")) and block.get("alt_text")):
            errors.append(f"must provide image_url and alt_text [json-pointer:{where}]")
        elif kind == "input":
            _too_long(block.get("label"), 2000, f"{where}/label", errors, plain_only=True)
            element(block.get("element"), f"{where}/element")
        elif kind == "rich_text" and not isinstance(block.get("elements"), list):
            errors.append(f"must provide elements [json-pointer:{where}/elements]")
    return errors


def validate_view(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["must be an object [json-pointer:/view]"]
    errors = [
        e.replace("json-pointer:/", "json-pointer:/view/")
        for e in validate_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
    ]
    if view.get("type") != "modal":
        errors.append("must be `modal` [json-pointer:/view/type]")
    _too_long(view.get("title"), 24, "/view/title", errors, plain_only=True)
    for key in ("submit", "close"):
        if key in view:
            _too_long(view[key], 24, f"/view/{key}", errors, plain_only=True)
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    return errors


class SlackEmulator:
    """The emulated workspace. Public methods are thread-safe and return copies."""

    def __init__(
        self,
        *,
        bot_token: str,
        users: Iterable[EmulatedSlackUser],
        channels: Mapping[str, str],
        usergroups: Mapping[str, list[str]],
        signing_secret: str,
        rate_limit_per_channel: float | None = None,
        rate_limit_burst: int = 3,
        app_token: str = SANDBOX_APP_TOKEN,
    ) -> None:
        self.bot_token, self.signing_secret = bot_token, signing_secret
        self.socket = SocketModeHub(app_token=app_token, bot_token=bot_token, app_id=APP_ID)  # Socket Mode
        self.users = {u.id: u for u in users}
        self.usergroups = {k: list(v) for k, v in usergroups.items()}
        self.rate_limit_per_channel, self.rate_limit_burst = rate_limit_per_channel, rate_limit_burst
        self._initial_channels = dict(channels)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.reset()

    # ----- inspection and control (thread-safe) -----
    def reset(self) -> None:
        with self._lock:
            self.channels = dict(self._initial_channels)
            self._messages: dict[str, dict[str, _Message]] = {}
            self._ephemeral: list[JSON] = []
            self._views: dict[str, JSON] = {}
            self._triggers: dict[str, str] = {}  # trigger_id -> the user whose click or command made it
            self._view_users: dict[str, str] = {}  # view id -> the user it was opened for
            self._closed_views: set[str] = set()  # submitted (and accepted) or cancelled
            self._requests: list[JSON] = []
            self._faults: list[Fault] = []
            self._buckets: dict[str, tuple[float, float]] = {}
            self._last_ts = 0
            self.not_member: set[str] = set()  # channels the bot was not invited to: posting answers not_in_channel
            # Image URLs Slack cannot fetch: a message with an image block showing one is refused, as Slack does.
            self.unfetchable_images: set[str] = set()

    def delete_message(self, channel: str, ts: str) -> None:
        """Someone deleted a message (as chat.delete does)."""
        with self._lock:
            self._find(channel, ts)
            del self._messages[channel][ts]

    def remove_bot(self, channel: str) -> None:
        """The bot is not a member of ``channel`` (never invited, or removed): posting there fails."""
        with self._lock:
            self.not_member.add(channel)

    def messages(self, channel: str | None = None) -> list[JSON]:
        """All stored messages (top-level, replies and orphans), oldest first per channel."""
        with self._lock:
            chans = [channel] if channel else list(self._messages)
            return [m.record() for c in chans for m in self._messages.get(c, {}).values()]

    def message(self, channel: str, ts: str) -> JSON | None:
        with self._lock:
            msg = self._messages.get(channel, {}).get(ts)
            return msg.record() if msg else None

    def thread(self, channel: str, ts: str) -> list[JSON]:
        """The parent then its replies, oldest first ([] if there is no such message)."""
        with self._lock:
            parent = self._messages.get(channel, {}).get(ts)
            if parent is None:
                return []
            return [parent.record()] + [self._messages[channel][r].record() for r in parent.replies]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[JSON]:
        with self._lock:
            return [
                copy.deepcopy(e)
                for e in self._ephemeral
                if channel in (None, e["channel"]) and user in (None, e["user"])
            ]

    def views(self) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def open_views(self, user: str) -> list[JSON]:
        """The modals open on ``user``'s screen (opened with a trigger of theirs, not closed), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(v)
                for vid, v in self._views.items()
                if self._view_users.get(vid) == user and vid not in self._closed_views
            ]

    def close_view(self, view_id: str) -> None:
        """The modal is gone from the screen: submitted and accepted by the app, or cancelled."""
        with self._lock:
            self._closed_views.add(view_id)

    def respond(self, channel: str, user: str, answer: Mapping[str, Any]) -> None:
        """Show what an app answered in a command's ack (``text``, ``blocks``) to ``user`` alone, as Slack does."""
        text, blocks = str(answer.get("text") or ""), answer.get("blocks")
        if not text and not blocks:
            return
        with self._lock:
            stored = [{"block_id": _block_id(i, b)} | b for i, b in enumerate(blocks)] if blocks else None
            record = {"channel": channel, "user": user, "ts": self._next_ts(), "text": text, "blocks": stored}
            self._ephemeral.append(record | {"thread_ts": None})

    def requests(self) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(self._requests)

    def set_fault(
        self,
        status: int = 429,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = 1,
        latency: float = 0.0,
        methods: set[str] | None = None,
        after_commit: bool = False,
    ) -> Fault:
        """Add a fault; the most recently added active fault matching a method wins. With ``after_commit``
        the call takes effect and is answered with the fault all the same."""
        fault = Fault(status, count, seconds, retry_after, latency, set(methods) if methods else None, after_commit)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ----- acting as Slack towards the bot -----
    def signed_request(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers Slack sends with ``body`` (signature v0 over ``v0:{ts}:{body}``)."""
        ts = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(self.signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": f"v0={digest}",
        }

    def click(
        self, channel: str, ts: str, label: str, user_id: str, *, timestamp: int | None = None
    ) -> tuple[str, dict[str, str]]:
        """Press the button labelled ``label`` on a stored message as ``user_id``: the signed block_actions
        request (body, headers) Slack would send. ValueError if the message has no such button."""
        message = self.message(channel, ts)
        if message is None:
            raise KeyError(f"no message {channel}/{ts}")
        button = next(
            (
                el
                for block in message["blocks"] or []
                for el in [block.get("accessory"), *(block.get("elements") or [])]
                if isinstance(el, dict) and el.get("type") == "button" and el.get("text", {}).get("text") == label
            ),
            None,
        )
        if button is None:
            raise ValueError(f"message {channel}/{ts} has no button {label!r}")
        body = self.block_actions_payload(channel, ts, user_id, button["action_id"], button.get("value", ""))
        return body, self.signed_request(body, timestamp=timestamp)

    def press(self, channel: str, ts: str, action_id: str, user_id: str) -> tuple[str, dict[str, str]]:
        """Press the element ``action_id`` of a message (or of an ephemeral one shown to ``user_id``) as
        ``user_id``: the signed block_actions request (body, headers) Slack would send. KeyError if there is no
        such message, ValueError if it has no such element."""
        with self._lock:
            message = self.message(channel, ts)
            if message is None:
                message = next(
                    (e for e in self._ephemeral if (e["channel"], e["ts"], e["user"]) == (channel, ts, user_id)), None
                )
            if message is None:
                raise KeyError(f"no message {channel}/{ts}")
            element = next(
                (
                    el
                    for block in message["blocks"] or []
                    for el in [block.get("accessory"), *(block.get("elements") or [])]
                    if isinstance(el, dict) and el.get("action_id") == action_id
                ),
                None,
            )
            if element is None:
                raise ValueError(f"message {channel}/{ts} has no action_id {action_id!r}")
            body = self.block_actions_payload(channel, ts, user_id, action_id, str(element.get("value", "")))
        return body, self.signed_request(body)

    def submit_view(
        self, user_id: str, values: Mapping[str, Mapping[str, str]], view_id: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """Submit a modal the app opened (the newest, or ``view_id``) as ``user_id`` with
        ``{block_id: {action_id: value}}`` (select options by value, other inputs as text): the signed
        view_submission request (body, headers) Slack would send."""
        with self._lock:
            if not self._views:
                raise KeyError("no modal was opened")
            view = copy.deepcopy(self._views[view_id] if view_id else list(self._views.values())[-1])
            elements = {
                (b.get("block_id"), b.get("element", {}).get("action_id")): b.get("element", {})
                for b in view.get("blocks", [])
                if b.get("type") == "input"
            }
        state: JSON = {}
        for block_id, actions in values.items():
            for action_id, value in actions.items():
                kind = elements.get((block_id, action_id), {}).get("type", "plain_text_input")
                entry: JSON = {"type": kind}
                if kind.endswith("select"):
                    entry["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
                else:
                    entry["value"] = value
                state.setdefault(block_id, {})[action_id] = entry
        user = self.users.get(user_id, EmulatedSlackUser(user_id, user_id.lower(), ""))
        payload: JSON = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "trigger_id": f"{next(self._ids)}.{int(time.time())}.{secrets.token_hex(16)}",
            "view": view | {"state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return body, self.signed_request(body)

    def slash_command(
        self, user_id: str, text: str, channel: str = "C0OPS", command: str = "/triage"
    ) -> tuple[str, dict[str, str]]:
        """Run ``command text`` as ``user_id`` in ``channel``: the signed request (body, headers) Slack sends
        to the command's Request URL (a form, not JSON)."""
        user = self.users.get(user_id, EmulatedSlackUser(user_id, user_id.lower(), ""))
        n = next(self._ids)
        fields = {
            "token": "sandbox-verification-token",
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"https://hooks.slack.com/commands/{TEAM_ID}/{n}/sandbox{n:08d}",
            "trigger_id": f"{n}.{int(time.time())}.{secrets.token_hex(16)}",
        }
        with self._lock:
            self._triggers[fields["trigger_id"]] = user.id
        body = urllib.parse.urlencode(fields)
        return body, self.signed_request(body)

    def block_actions_payload(self, channel: str, ts: str, user_id: str, action_id: str, value: str) -> str:
        """Form body ``payload=<json>`` of a click on ``action_id`` in a stored message.

        A message shown to ``user_id`` alone (an ephemeral one) can be clicked too, by them.
        Raises KeyError if the message does not exist, ValueError if it has no such action."""
        with self._lock:
            ephemeral = ts not in self._messages.get(channel, {})
            if ephemeral:
                shown = next(
                    (e for e in self._ephemeral if (e["channel"], e["ts"], e["user"]) == (channel, ts, user_id)), None
                )
                if shown is None:
                    raise KeyError(f"no message {channel}/{ts}")
                msg = _Message(channel, ts, shown["text"], shown["blocks"], None, shown.get("thread_ts"))
            else:
                msg = self._messages[channel][ts]
            found = next(
                (
                    (b, el)
                    for b in msg.blocks or []
                    for el in [b.get("accessory"), *(b.get("elements") or [])]
                    if isinstance(el, dict) and el.get("action_id") == action_id
                ),
                None,
            )
            if found is None:
                raise ValueError(f"message {channel}/{ts} has no action_id {action_id!r}")
            block, el = found
            user = self.users.get(user_id, EmulatedSlackUser(user_id, user_id.lower(), ""))
            n = next(self._ids)
            trigger = f"{n}.{int(time.time())}.{secrets.token_hex(16)}"
            self._triggers[trigger] = user.id
            action: JSON = {"action_id": action_id, "block_id": block["block_id"], "type": el["type"]}
            action["action_ts"] = f"{time.time():.6f}"
            if el["type"] == "button":
                action |= {"text": el.get("text"), "value": value}
            elif el["type"].endswith("select"):
                option = next((o for o in el.get("options", []) if o.get("value") == value), {"value": value})
                action["selected_option"] = option
            else:
                action["value"] = value
            container: JSON = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": ephemeral}
            if msg.thread_ts:
                container["thread_ts"] = msg.thread_ts
            payload: JSON = {
                "type": "block_actions",
                "api_app_id": APP_ID,
                "token": "sandbox-verification-token",
                "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID},
                "container": container,
                "trigger_id": trigger,
                "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
                "enterprise": None,
                "is_enterprise_install": False,
                "channel": {"id": channel, "name": self.channels.get(channel, "")},
                "state": {"values": {}},
                "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/{n}/sandbox{n:08d}",
                "actions": [action],
            }
            if not ephemeral:  # Slack sends the message clicked on, except for an ephemeral one
                payload["message"] = self._wire_message(msg, include_metadata=False)
        return urllib.parse.urlencode({"payload": json.dumps(payload)})

    # ----- dispatch -----
    async def handle(self, method: str, params: JSON, auth: str | None, base_url: str) -> JSONResponse:
        with self._lock:
            now = time.monotonic()  # expired and used-up faults are dropped
            self._faults = [f for f in self._faults if f.alive(now)]
            fault = next((f for f in reversed(self._faults) if f.methods is None or method in f.methods), None)
            if fault and fault.count is not None:
                fault.count -= 1
        if fault and fault.latency:
            await asyncio.sleep(fault.latency)
        with self._lock:
            status, headers, body = 200, {}, {}
            try:
                if fault and fault.status >= 400 and not fault.after_commit:
                    raise RateLimited(fault.retry_after, fault.status)
                body = self._dispatch(method, _Params(params), auth, base_url)
                if fault and fault.status >= 400:
                    raise RateLimited(fault.retry_after, fault.status)
            except SlackError as exc:
                body = exc.body
            except RateLimited as exc:
                status = exc.status
                body = {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}
                if exc.retry_after is not None:
                    headers["Retry-After"] = str(exc.retry_after)
            logged = {k: v for k, v in params.items() if k != "token"}
            entry = {"method": method, "params": logged, "status": status, "ok": body["ok"]}
            self._requests.append(entry | {"error": body.get("error"), "at": time.time()})
        return JSONResponse(body, status_code=status, headers=headers)

    def _dispatch(self, method: str, p: _Params, auth: str | None, base_url: str) -> JSON:
        if method == "apps.connections.open":  # Socket Mode: the one method authorised by the app-level token
            return self.socket.open_connection(auth, p.get("token"), base_url)
        handler: Callable[[_Params, str], JSON] | None = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None or not re.fullmatch(r"[a-z]+(\.[a-zA-Z]+)+", method):
            raise SlackError("unknown_method", req_method=method)
        token = auth[7:] if auth and auth.startswith("Bearer ") else p.get("token")
        if not token:
            raise SlackError("not_authed")
        if not hmac.compare_digest(token, self.bot_token):
            raise SlackError("invalid_auth")
        return {"ok": True} | handler(p, base_url)

    def _next_ts(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, p: _Params, create: bool = False) -> str:
        ref = p.get("channel") or ""
        by_name = {n: c for c, n in self.channels.items()}
        if ref.lstrip("#") in by_name:
            return by_name[ref.lstrip("#")]
        if ref.startswith("U") and ref in self.users:  # posting to a user id opens the bot's DM
            ref = "D" + ref[1:]
        if ref in self.channels or (create and re.fullmatch(r"[CGD][A-Z0-9]+", ref)):
            self.channels.setdefault(ref, ref.lower())
            return ref
        raise SlackError("channel_not_found")

    def _find(self, channel: str, ts: str | None) -> _Message:
        msg = self._messages.get(channel, {}).get(ts or "")
        if msg is None:
            raise SlackError("message_not_found")
        return msg

    def _content(self, p: _Params) -> tuple[str, list[JSON] | None, JSON | None]:
        text, blocks = p.get("text"), p.parsed("blocks", "invalid_blocks_format")
        markdown = p.get("markdown_text")
        if markdown is not None:
            if text is not None or blocks is not None:
                raise SlackError("markdown_text_conflict")
            text = markdown
        if not text and not blocks:
            raise SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            errors = validate_blocks(blocks) + [
                f"downloading image failed [json-pointer:/blocks/{i}/image_url]"
                for i, b in enumerate(blocks)
                if isinstance(b, dict) and b.get("type") == "image" and b.get("image_url") in self.unfetchable_images
            ]
            if errors:
                raise SlackError("invalid_blocks", *errors, errors=errors)
            blocks = [{"block_id": _block_id(i, b)} | b for i, b in enumerate(blocks)]  # Slack fills them in
        metadata = p.parsed("metadata", "invalid_metadata_format")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload", {}), dict)
        ):
            raise SlackError("invalid_metadata_schema")
        return text or "", blocks, metadata

    def _wire_message(self, m: _Message, include_metadata: bool = True) -> JSON:
        out: JSON = {"type": "message", "text": m.text, "ts": m.ts, **BOT_FIELDS}
        if m.blocks:
            out["blocks"] = copy.deepcopy(m.blocks)
        if m.metadata and include_metadata:
            out["metadata"] = copy.deepcopy(m.metadata)
        if m.thread_ts:
            out |= {"thread_ts": m.thread_ts, "parent_user_id": BOT_USER_ID}
            if m.options.get("reply_broadcast"):
                out["subtype"] = "thread_broadcast"
        if m.replies:
            out |= {"thread_ts": m.ts, "reply_count": len(m.replies), "latest_reply": m.replies[-1]}
            out |= {"reply_users": [BOT_USER_ID], "reply_users_count": 1, "subscribed": False}
        if m.edited_ts:
            out["edited"] = {"user": BOT_USER_ID, "ts": m.edited_ts}
        return out

    def _rate_limit(self, channel: str) -> None:
        rate = self.rate_limit_per_channel
        if not rate:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.rate_limit_burst), now))
        tokens = min(float(self.rate_limit_burst), tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1 - tokens) / rate)))
        self._buckets[channel] = (tokens - 1, now)

    def _page(self, items: list[JSON], p: _Params, default_limit: int) -> JSON:
        limit = max(1, min(int(p.number("limit", default_limit, "invalid_limit")), 999))
        start = int(p.number("cursor", 0, "invalid_cursor"))
        page, rest = items[start : start + limit], items[start + limit :]
        cursor = {"next_cursor": str(start + limit) if rest else ""}
        return {"messages": page, "has_more": bool(rest), "response_metadata": cursor}

    # ----- Web API methods: ``_api_<method with "." as "_">(params, base_url)`` -----
    def _api_auth_test(self, p: _Params, base: str) -> JSON:
        ids = {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}
        return {"url": base, "team": "Sandbox", "user": "triage-bot", **ids}

    def _api_chat_postMessage(self, p: _Params, base: str) -> JSON:
        channel = self._channel(p, create=True)
        if channel in self.not_member:
            raise SlackError("not_in_channel")
        text, blocks, metadata = self._content(p)
        thread_ts = p.get("thread_ts")
        if thread_ts is not None and not TS_RE.match(thread_ts):
            raise SlackError("invalid_thread_ts", f"{thread_ts} is not a valid thread_ts")
        self._rate_limit(channel)
        chan = self._messages.setdefault(channel, {})
        parent = chan.get(thread_ts or "")
        options: JSON = {k: p.raw[k] for k in POST_OPTIONS if k in p.raw}
        options["reply_broadcast"] = p.flag("reply_broadcast")
        orphan = bool(thread_ts and (parent is None or parent.thread_ts is not None))
        msg = _Message(channel, self._next_ts(), text, blocks, metadata, thread_ts, orphan, options)
        chan[msg.ts] = msg
        if thread_ts and not msg.orphan and parent is not None:
            parent.replies.append(msg.ts)
        return {"channel": channel, "ts": msg.ts, "message": self._wire_message(msg)}

    def _api_chat_update(self, p: _Params, base: str) -> JSON:
        channel = self._channel(p)
        msg = self._find(channel, p.get("ts", required=True))
        text, blocks, metadata = self._content(p)
        msg.edits.append({"text": msg.text, "blocks": msg.blocks, "metadata": msg.metadata, "edited_ts": msg.edited_ts})
        msg.text = text if "text" in p.raw or "markdown_text" in p.raw else msg.text  # omitted fields are kept
        msg.blocks = blocks if "blocks" in p.raw else msg.blocks
        msg.edited_ts = self._next_ts()
        msg.metadata = metadata if "metadata" in p.raw else msg.metadata
        return {"channel": channel, "ts": msg.ts, "text": msg.text, "message": self._wire_message(msg)}

    def _api_chat_delete(self, p: _Params, base: str) -> JSON:
        channel = self._channel(p)
        msg = self._find(channel, p.get("ts", required=True))
        del self._messages[channel][msg.ts]
        return {"channel": channel, "ts": msg.ts}

    def _api_chat_postEphemeral(self, p: _Params, base: str) -> JSON:
        channel, user = self._channel(p), p.get("user", required=True)
        if user not in self.users:
            raise SlackError("user_not_in_channel")
        text, blocks, _ = self._content(p)
        ts = self._next_ts()
        record = {"channel": channel, "user": user, "ts": ts, "text": text, "blocks": blocks}
        self._ephemeral.append(record | {"thread_ts": p.get("thread_ts")})
        return {"message_ts": ts}

    def _api_chat_getPermalink(self, p: _Params, base: str) -> JSON:
        channel = self._channel(p)
        msg = self._find(channel, p.get("message_ts", required=True))
        link = f"{base}archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _api_conversations_history(self, p: _Params, base: str) -> JSON:
        channel, meta = self._channel(p), p.flag("include_all_metadata")
        oldest, latest = p.number("oldest", 0, "invalid_ts_oldest"), p.number("latest", math.inf, "invalid_ts_latest")
        inclusive = p.flag("inclusive")
        visible = [
            self._wire_message(m, meta)
            for m in reversed(self._messages.get(channel, {}).values())
            if (not m.thread_ts or m.options.get("reply_broadcast"))
            and not m.orphan
            and (oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest)
        ]
        return self._page(visible, p, 100) | {"pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}

    def _api_conversations_replies(self, p: _Params, base: str) -> JSON:
        channel, meta = self._channel(p), p.flag("include_all_metadata")
        msg = self._messages.get(channel, {}).get(p.get("ts", required=True) or "")
        if msg is None or msg.orphan:
            raise SlackError("thread_not_found")
        chain = [msg] + [self._messages[channel][r] for r in msg.replies]
        return self._page([self._wire_message(m, meta) for m in chain], p, 1000)

    def _api_conversations_info(self, p: _Params, base: str) -> JSON:
        cid = self._channel(p)
        kind = {"is_channel": cid[0] == "C", "is_group": cid[0] == "G", "is_im": cid[0] == "D"}
        info = {"id": cid, "name": self.channels[cid], "is_private": cid[0] != "C", "is_archived": False}
        info |= {"is_member": True, "created": 1_700_000_000, "creator": BOT_USER_ID, "context_team_id": TEAM_ID}
        return {"channel": info | kind}

    def _api_users_info(self, p: _Params, base: str) -> JSON:
        user = self.users.get(p.get("user", required=True) or "")
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.to_api()}

    def _api_users_lookupByEmail(self, p: _Params, base: str) -> JSON:
        email = (p.get("email", required=True) or "").lower()
        user = next((u for u in self.users.values() if u.email.lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": user.to_api()}

    def _api_usergroups_users_list(self, p: _Params, base: str) -> JSON:
        group = p.get("usergroup", required=True) or ""
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _store_view(self, view: Any, view_id: str, previous: JSON | None, hash_: str | None = None) -> JSON:
        errors = validate_view(view)
        if errors:
            raise SlackError("invalid_arguments", *errors)
        if previous is not None and hash_ and hash_ != previous["hash"]:
            raise SlackError("hash_conflict")
        root = previous["root_view_id"] if previous else view_id
        stored = {"id": view_id, "root_view_id": root, "hash": f"{time.time():.6f}.{next(self._ids)}"}
        stored = copy.deepcopy(VIEW_DEFAULTS) | stored | copy.deepcopy(view)
        self._views[view_id] = stored
        return {"view": copy.deepcopy(stored)}

    def _api_views_open(self, p: _Params, base: str) -> JSON:
        trigger = p.get("trigger_id", required=True) or ""
        view_id = f"V{next(self._ids):08d}"
        opened = self._store_view(p.parsed("view", "invalid_arguments"), view_id, None)
        if trigger in self._triggers:
            self._view_users[view_id] = self._triggers[trigger]
        return opened

    def _api_views_push(self, p: _Params, base: str) -> JSON:
        return self._api_views_open(p, base)

    def _api_views_update(self, p: _Params, base: str) -> JSON:
        view_id, external = p.get("view_id"), p.get("external_id")
        old = self._views.get(view_id or "") or next(
            (v for v in self._views.values() if external and v.get("external_id") == external), None
        )
        if old is None:
            raise SlackError("not_found")
        return self._store_view(p.parsed("view", "invalid_arguments"), old["id"], old, p.get("hash"))


async def _read_params(request: Request) -> JSON:
    params: JSON = dict(request.query_params)
    body = await request.body()
    if body and "json" in request.headers.get("content-type", ""):
        data = json.loads(body)
        if not isinstance(data, dict):
            raise SlackError("json_not_object")
        params.update(data)
    elif body:
        params.update(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    return params


def create_slack_emulator(
    *,
    bot_token: str = "xoxb-sandbox",  # noqa: S107
    users: list[EmulatedSlackUser] | None = None,
    channels: Mapping[str, str] | None = None,
    usergroups: Mapping[str, list[str]] | None = None,
    signing_secret: str = "sandbox-signing-secret",  # noqa: S107
    rate_limit_per_channel: float | None = None,
    rate_limit_burst: int = 3,
    app_token: str = SANDBOX_APP_TOKEN,
) -> FastAPI:
    """Build the emulator app; state is ``app.state.emulator`` (a SlackEmulator). ``channels``: id -> name."""
    emu = SlackEmulator(
        bot_token=bot_token,
        users=DEFAULT_USERS if users is None else users,
        channels=DEFAULT_CHANNELS if channels is None else channels,
        usergroups=DEFAULT_USERGROUPS if usergroups is None else usergroups,
        signing_secret=signing_secret,
        rate_limit_per_channel=rate_limit_per_channel,
        rate_limit_burst=rate_limit_burst,
        app_token=app_token,
    )
    app = FastAPI(title="Slack Web API emulator")
    app.state.emulator = emu
    emu.socket.install(app)  # apps.connections.open's WebSocket at /link/, and /_emulator/socket

    @app.api_route("/api/{method}", methods=["GET", "POST"])
    async def web_api(method: str, request: Request) -> JSONResponse:
        try:
            params = await _read_params(request)
        except SlackError as exc:
            return JSONResponse(exc.body)
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        base_url = str(request.url.replace(path=f"{request.scope.get('root_path', '')}/", query=""))  # mount-aware
        return await emu.handle(method, params, request.headers.get("authorization"), base_url)

    @app.get("/archives/{channel}/{p_ts}")
    async def permalink(channel: str, p_ts: str) -> JSONResponse:
        ts = f"{p_ts[1:-6]}.{p_ts[-6:]}"
        msg = emu.message(channel, ts)
        return JSONResponse(msg if msg else {"error": "message_not_found"}, status_code=200 if msg else 404)

    @app.post("/_emulator/faults")
    async def add_fault(request: Request) -> JSON:
        spec = await request.json()
        if spec.get("methods") is not None:
            spec["methods"] = set(spec["methods"])
        try:
            fault = emu.set_fault(**spec)
        except TypeError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "fault": asdict(fault) | {"methods": sorted(fault.methods or [])}}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> JSON:
        emu.clear_faults()
        return {"ok": True}

    @app.get("/_emulator/messages")
    async def get_messages(channel: str | None = None) -> JSON:
        return {"ok": True, "messages": emu.messages(channel)}

    @app.get("/_emulator/ephemerals")
    async def get_ephemerals(channel: str | None = None, user: str | None = None) -> JSON:
        return {"ok": True, "ephemerals": emu.ephemerals(channel, user)}

    @app.get("/_emulator/views")
    async def get_views() -> JSON:
        return {"ok": True, "views": emu.views()}

    @app.post("/_emulator/click")
    async def make_click(request: Request) -> JSON:
        """The signed request Slack would send for a click ({channel, ts, label, user}): the caller delivers it
        to the app's Request URL, standing in for Slack's network (``triage-bot demo --report`` does)."""
        data = await request.json()
        try:
            body, headers = emu.click(str(data["channel"]), str(data["ts"]), str(data["label"]), str(data["user"]))
        except (KeyError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "body": body, "headers": headers}

    @app.post("/_emulator/submit_view")
    async def make_submission(request: Request) -> JSON:
        """The signed view_submission for the newest modal ({user, values}), for the caller to deliver."""
        data = await request.json()
        try:
            body, headers = emu.submit_view(str(data["user"]), data["values"])
        except (KeyError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "body": body, "headers": headers}

    @app.get("/_emulator/requests")
    async def get_requests() -> JSON:
        return {"ok": True, "requests": emu.requests()}

    @app.post("/_emulator/reset")
    async def reset() -> JSON:
        emu.reset()
        return {"ok": True}

    return app
