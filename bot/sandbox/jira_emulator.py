"""Jira REST emulator (Cloud or Data Center flavour) for sandbox mode and tests.

Serves what the pycontribs ``jira`` client uses under ``/rest/api/{2,3,latest}``, with Jira-like
validation and ``ErrorCollection`` errors, a per-project workflow, a JQL subset (:mod:`bot.sandbox.jql`),
a search index that can lag writes as Jira Cloud's does (:meth:`JiraEmulator.set_index_lag`), fault injection,
a steady rate limit shared by every client (:meth:`JiraEmulator.set_rate_limit`: 429 as Jira
Cloud sends it), ``/_emulator/*`` control routes and admin-webhook delivery (:meth:`JiraEmulator.add_webhook`).
Links (``self``, ``baseUrl``) are built from the request, so the app can be mounted under a prefix. State:
``app.state.emulator`` (:class:`JiraEmulator`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import hmac
import html
import itertools
import json
import logging
import math
import queue
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from bot.sandbox import jql

Json = dict[str, Any]
log = logging.getLogger(__name__)

REMOVED_SEARCH_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
CATEGORIES = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
PRIORITY_IDS = {p: str(i) for i, p in enumerate(PRIORITIES, 1)}
RESOLUTION_IDS = {r: str(10000 + i) for i, r in enumerate(("Done", "Won't Do", "Duplicate", "Cannot Reproduce"))}
ISSUE_TYPE_IDS = {"Task": "10001", "Bug": "10002", "Story": "10003", "Incident": "10004", "Epic": "10005"}
MAX_TEXT = 32767
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
FIELD_DEFS = [  # id, name, schema type, JQL clause names
    ("summary", "Summary", "string", ["summary"]),
    ("description", "Description", "string", ["description"]),
    ("labels", "Labels", "array", ["labels"]),
    ("priority", "Priority", "priority", ["priority"]),
    ("status", "Status", "status", ["status"]),
    ("statusCategory", "Status Category", "statusCategory", ["statusCategory"]),
    ("assignee", "Assignee", "user", ["assignee"]),
    ("reporter", "Reporter", "user", ["reporter"]),
    ("resolution", "Resolution", "resolution", ["resolution"]),
    ("resolutiondate", "Resolved", "datetime", ["resolutiondate", "resolved"]),
    ("created", "Created", "datetime", ["created", "createdDate"]),
    ("updated", "Updated", "datetime", ["updated", "updatedDate"]),
    ("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
    ("project", "Project", "project", ["project"]),
    ("comment", "Comment", "comments-page", ["comment"]),
    ("attachment", "Attachment", "array", ["attachments"]),
    ("issuekey", "Key", "string", ["id", "issue", "issuekey", "key"]),
]
ISSUE_FIELDS = [f[0] for f in FIELD_DEFS if f[0] not in ("statusCategory", "issuekey")]
WEBHOOK_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created"})
WEBHOOK_RETRY_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx; other answers are final
WEBHOOK_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # before retry 1, 2, ...; then Jira gives up
WEBHOOK_TIMEOUT = 5.0


@dataclass(frozen=True)
class EmulatedUser:
    account_id: str
    email: str
    display_name: str
    name: str  # Data Center username
    active: bool = True


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: Literal["new", "indeterminate", "done"]


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: str  # target status name; the transition is available from every other status


@dataclass(frozen=True)
class Workflow:
    statuses: tuple[Status, ...]  # the first one is the initial status
    transitions: tuple[Transition, ...]

    def status(self, name: str) -> Status:
        return next(s for s in self.statuses if s.name == name)


DEFAULT_WORKFLOW = Workflow(
    (
        Status("10000", "To Do", "new"),
        Status("3", "In Progress", "indeterminate"),
        Status("5", "Resolved", "done"),
        Status("10001", "Done", "done"),
    ),
    (
        Transition("21", "In Progress", "In Progress"),
        Transition("31", "Done", "Done"),
        Transition("41", "Resolved", "Resolved"),
        Transition("11", "Reopen", "To Do"),
    ),
)


@dataclass(frozen=True)
class EmulatedProject:
    key: str
    name: str
    id: str
    issue_types: tuple[str, ...] = ("Task", "Bug", "Incident")
    workflow: Workflow = DEFAULT_WORKFLOW


@dataclass(frozen=True)
class Credentials:
    basic: tuple[tuple[str, str], ...] = (("sandbox@example.com", "sandbox-token"),)
    pats: tuple[str, ...] = ("sandbox-pat",)  # Bearer tokens; they act as users[0]


DEFAULT_USERS = (
    EmulatedUser("557058:sandbox-bot", "sandbox@example.com", "Sandbox Bot", "sandbox"),
    EmulatedUser("712020:alice", "alice@example.com", "Alice Example", "alice"),
    EmulatedUser("712020:bob", "bob@example.com", "Bob Example", "bob"),
    # The Slack emulator's people, found by e-mail when a ticket is assigned in Slack. Petra Payments is
    # deliberately missing: a Slack user without a Jira account.
    EmulatedUser("712020:olivia", "olivia.ops@example.com", "Olivia Ops", "olivia.ops"),
    EmulatedUser("712020:paul", "paul.pay@example.com", "Paul Payments", "paul.pay"),
    EmulatedUser("712020:quinn", "quinn.qa@example.com", "Quinn QA", "quinn.qa"),
)
DEFAULT_PROJECTS = (EmulatedProject("OPS", "Operations", "10000"), EmulatedProject("SUP", "Support", "10001"))


@dataclass
class Fault:
    status: int | None = None
    count: int | None = None
    seconds: float | None = None
    retry_after: str | None = None
    latency: float = 0.0
    methods: set[str] | None = None
    path_contains: str | None = None
    fail_after_commit: bool = False
    expires: float | None = None
    headers: dict[str, str] | None = None  # sent as well, over the defaults (RateLimit-Reason, X-RateLimit-Reset)

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method.upper() in {m.upper() for m in self.methods}) and (
            self.path_contains is None or self.path_contains in path
        )

    def response(self) -> JSONResponse:
        status = self.status or 500
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        if status == 429:
            headers |= {"RateLimit-Reason": "jira-burst-based", "X-RateLimit-Remaining": "0"}
        headers |= self.headers or {}
        message = {429: "Rate limit exceeded.", 503: "Service Unavailable"}.get(status, HTTPStatus(status).phrase)
        return error_response(status, [message], headers=headers)


RATE_LIMIT_REASON = "jira-burst-based"


@dataclass
class RateLimit:
    """A steady request limit shared by every client of the site (Jira Cloud's burst limit, one bucket for every
    REST call): a token bucket of ``burst`` tokens refilled at ``per_second``. Each REST call takes a token; a
    call that finds none is answered 429 and takes nothing."""

    per_second: float
    burst: float
    tokens: float
    updated: float  # time.monotonic() of the last refill

    def take(self, now: float) -> float | None:
        """Take a token: None when there was one, otherwise the seconds until there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.per_second

    def response(self, wait: float, now_wall: float) -> JSONResponse:
        """The 429 Jira Cloud sends: ``Retry-After`` in whole seconds (at least 1), ``X-RateLimit-Reset`` the
        request's time plus that period (ISO 8601 UTC; Atlassian documents ``yyyy-MM-ddTHH:mmZ``, minutes only;
        this gives the seconds too, so a client can see when the bucket has a token again), the reason, the
        bucket's size and nothing remaining."""
        retry_after = max(1, math.ceil(wait))
        reset = datetime.fromtimestamp(now_wall + retry_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Reset": reset,
            "RateLimit-Reason": RATE_LIMIT_REASON,
            "X-RateLimit-Limit": str(math.floor(self.burst)),
            "X-RateLimit-Remaining": "0",
        }
        return error_response(429, ["Rate limit exceeded."], headers=headers)


@dataclass(frozen=True)
class ChangeEvent:
    """One change to an issue (see :meth:`JiraEmulator.on_change`); also drives webhook delivery."""

    kind: Literal["issue_created", "issue_updated", "issue_deleted"]
    issue_key: str
    user: str  # accountId of the actor
    items: tuple[Json, ...] = ()  # changelog items
    comment_id: str | None = None
    timestamp: float = field(default_factory=time.time)
    changelog_id: str | None = None  # the changelog entry holding ``items``


def webhook_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the raw body keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class _Delivery:
    event: str  # webhookEvent
    issue_key: str
    body: bytes
    identifier: str  # X-Atlassian-Webhook-Identifier, the same on every attempt


@dataclass
class _Webhook:
    id: str
    url: str
    secret: str | None
    events: frozenset[str] | None  # None: every event
    queue: queue.Queue[_Delivery | None] = field(default_factory=queue.Queue)
    stopped: threading.Event = field(default_factory=threading.Event)
    pending: int = 0  # queued or in flight; guarded by JiraEmulator.lock

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def stop(self) -> None:
        self.stopped.set()
        self.queue.put(None)


class JiraError(Exception):
    """Answered as ``status`` with ``{"errorMessages": messages, "errors": errors}``."""

    def __init__(self, status: int, messages: Iterable[str] = (), errors: dict[str, str] | None = None) -> None:
        self.status, self.messages, self.errors = status, list(messages), errors or {}
        super().__init__(status, self.messages, self.errors)


def error_response(
    status: int,
    messages: Iterable[str] = (),
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse({"errorMessages": list(messages), "errors": errors or {}}, status, headers=headers)


def _invalid(name: str, message: str) -> JiraError:
    return JiraError(400, [], {name: message})


@dataclass
class _Comment:
    id: str
    body: str
    author: str
    created: str
    properties: list[Json]
    visibility: Json | None = None


@dataclass
class _Issue:
    id: str
    key: str
    project: EmulatedProject
    status: str
    reporter: str
    created: str
    summary: str = ""
    issuetype: str = ""
    description: str | None = None
    labels: list[str] = field(default_factory=list)
    priority: str = "Medium"
    assignee: str | None = None
    resolution: str | None = None
    resolutiondate: str | None = None
    updated: str = ""
    comments: list[_Comment] = field(default_factory=list)
    changelog: list[Json] = field(default_factory=list)
    attachments: list[_Attachment] = field(default_factory=list)


@dataclass
class _Attachment:
    id: str
    filename: str
    mime_type: str
    data: bytes
    author: str
    created: str


def jira_time(ts: float | None = None) -> str:
    """Jira's timestamp format, e.g. ``2025-01-01T12:00:00.000+0000``."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def _adf_text(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    inner = "".join(_adf_text(c) for c in doc.get("content", []))
    return str(doc.get("text", "")) + inner + ("\n" if doc.get("type") == "paragraph" else "")


def _adf(text: str) -> Json:
    paras = [{"type": "paragraph", "content": [{"type": "text", "text": t}] if t else []} for t in text.split("\n")]
    return {"type": "doc", "version": 1, "content": paras}


@dataclass(frozen=True)
class Ctx:
    """Per-request rendering context: base URL (ends with "/") and REST version ("2", "3", "latest")."""

    base: str
    ver: str = "2"

    def api(self, path: str) -> str:
        return f"{self.base}rest/api/{self.ver}/{path}"


class JiraEmulator:
    """State and behaviour of one emulated Jira site. Public methods are thread-safe."""

    def __init__(
        self,
        users: Iterable[EmulatedUser] = DEFAULT_USERS,
        projects: Iterable[EmulatedProject] = DEFAULT_PROJECTS,
        deployment_type: Literal["Cloud", "Server"] = "Cloud",
        credentials: Credentials = Credentials(),
        rate_limit_per_second: float | None = None,
        rate_limit_burst: float | None = None,
    ) -> None:
        self.users, self.projects = list(users), {p.key: p for p in projects}
        self.deployment_type, self.cloud, self.credentials = deployment_type, deployment_type == "Cloud", credentials
        self.base_url = "http://127.0.0.1/"  # last base URL seen in a request; used by Python-side rendering
        self.lock = threading.RLock()
        self._status_ids = {s.name: s.id for p in self.projects.values() for s in p.workflow.statuses}
        self._listeners: list[Callable[[ChangeEvent], None]] = []
        self._webhooks: dict[str, _Webhook] = {}
        self._idle = threading.Condition(self.lock)  # notified when a webhook's queue drains
        self.webhook_retry_delays: tuple[float, ...] = WEBHOOK_RETRY_DELAYS  # tests may shorten them
        self.webhook_timeout = WEBHOOK_TIMEOUT
        self._rate_limit: RateLimit | None = None
        self.reset()
        self.set_rate_limit(rate_limit_per_second, rate_limit_burst)

    # ---- control surface ---------------------------------------------------------------------
    def reset(self) -> None:
        """Forget issues, faults, the request log, webhooks with their pending deliveries and the
        delivery log (users, projects and listeners stay)."""
        with self.lock:
            for hook in self._webhooks.values():
                hook.stop()
            self._webhooks.clear()
            self._deliveries: list[Json] = []
            self._idle.notify_all()
            self._issues: dict[str, _Issue] = {}
            self._faults: list[Fault] = []
            self._log: list[Json] = []
            self._ids, self._other_ids = itertools.count(10000), itertools.count(10000)  # issues; comments/changes
            self._numbers = {k: itertools.count(1) for k in self.projects}
            self._index_lag = 0.0
            self._index: dict[str, list[tuple[float, _Issue | None]]] = {}  # key -> (searchable from, as it was)
            self._rate_limited = 0  # 429s answered by the rate limit (faults not counted)
            if self._rate_limit is not None:  # the limit stays (as the Slack emulator's does); its bucket refills
                self._rate_limit.tokens, self._rate_limit.updated = self._rate_limit.burst, time.monotonic()

    def set_fault(
        self,
        status: int | None = None,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: str | None = None,
        latency: float = 0.0,
        methods: set[str] | None = None,
        path_contains: str | None = None,
        fail_after_commit: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Add (and return) a fault; the newest active matching fault wins, like the Slack emulator's.

        It lasts ``count`` matching requests, ``seconds``, or until :meth:`clear_faults`.
        ``path_contains`` is matched against the path below the mount point (``/rest/api/2/issue``).
        With ``fail_after_commit`` the request is processed normally and answered with ``status`` anyway.
        ``headers`` are sent with the answer too (a 429 says ``RateLimit-Reason: jira-burst-based`` unless told).
        """
        if status is None and not latency:
            raise ValueError("a fault needs a status or a latency")
        if status is not None:
            HTTPStatus(status)  # ValueError for nonsense
        expires = time.monotonic() + seconds if seconds is not None else None
        fault = Fault(
            status, count, seconds, retry_after, latency, methods, path_contains, fail_after_commit, expires, headers
        )
        with self.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def set_index_lag(self, seconds: float) -> None:
        """Make search eventually consistent, as Jira Cloud's ``/search/jql`` is: a write (a create, an edit, a
        comment, a deletion) shows in search results ``seconds`` after it was made; until then a search sees the
        issue as it was before (a new issue not at all). Reading an issue by key, and a search's
        ``reconcileIssues`` ids, always see it as it is. 0 (the default): search sees every write at once."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError("the lag must be a number of seconds, 0 or more")
        with self.lock:
            now = time.monotonic()
            # What exists now is indexed already; only writes from here on lag.
            self._index = {key: [(now, copy.deepcopy(iss))] for key, iss in self._issues.items()} if seconds else {}
            self._index_lag = float(seconds)

    def _indexed(self, iss: _Issue, *, deleted: bool = False) -> None:
        """Record a write for the search index (under the lock)."""
        if self._index_lag:
            entry = (time.monotonic() + self._index_lag, None if deleted else copy.deepcopy(iss))
            self._index.setdefault(iss.key, []).append(entry)

    def _searchable(self, reconciled: frozenset[str]) -> list[_Issue]:
        """The issues as search sees them now (under the lock); ``reconciled``: ids read as they are."""
        if not self._index_lag:
            return list(self._issues.values())
        now, seen = time.monotonic(), []
        for key in self._index.keys() | self._issues.keys():
            live = self._issues.get(key)
            if live is not None and live.id in reconciled:
                seen.append(live)
                continue
            entries = self._index.get(key)
            if not entries:
                if live is not None:
                    seen.append(live)
                continue
            shown = [entry for entry in entries if entry[0] <= now]
            if shown:
                del entries[: len(shown) - 1]  # older entries can never show again
                if shown[-1][1] is not None:
                    seen.append(shown[-1][1])
        return seen

    def set_rate_limit(self, per_second: float | None, burst: float | None = None) -> None:
        """Limit every REST call of every client together to ``per_second`` (None: no limit), with a bucket of
        ``burst`` calls (default: one second's worth, at least 1), starting full. Over the limit a call is
        answered 429 as Jira Cloud answers it (see :meth:`RateLimit.response`) and counted
        (:meth:`rate_limit_stats`). A fault that answers a call comes first and takes no token."""
        if per_second is not None and not (per_second > 0 and math.isfinite(per_second)):
            raise ValueError("per_second must be a positive number (or None for no limit)")
        if burst is not None and not (burst >= 1 and math.isfinite(burst)):
            raise ValueError("burst must be at least 1")
        with self.lock:
            if per_second is None:
                self._rate_limit = None
                return
            size = float(burst) if burst is not None else max(1.0, float(math.ceil(per_second)))
            self._rate_limit = RateLimit(per_second, size, size, time.monotonic())

    def rate_limit_stats(self) -> Json:
        """The limit in force and the 429s it has answered since the last :meth:`reset`."""
        with self.lock:
            limit = self._rate_limit
            return {
                "per_second": limit.per_second if limit else None,
                "burst": limit.burst if limit else None,
                "rate_limited": self._rate_limited,
            }

    @property
    def rate_limited(self) -> int:
        """429s answered by the rate limit since the last :meth:`reset`."""
        with self.lock:
            return self._rate_limited

    def take_rate_token(self) -> JSONResponse | None:
        """None when the call may go on, otherwise the 429 to answer (and counted)."""
        with self.lock:
            limit = self._rate_limit
            if limit is None:
                return None
            wait = limit.take(time.monotonic())
            if wait is None:
                return None
            self._rate_limited += 1
            return limit.response(wait, time.time())

    def requests(self) -> list[Json]:
        """Handled requests: method, path, query, status, time, duration, user, body (JSON), fault, and
        ``rate_limited: True`` on a call the rate limit answered."""
        with self.lock:
            return [dict(e) for e in self._log]

    def issues(self) -> list[Json]:
        """All issues as full JSON (all fields, comments with properties, changelog), oldest first."""
        with self.lock:
            return [self.issue_json(i, Ctx(self.base_url), None, full=True) for i in self._issues.values()]

    def issue(self, key: str) -> Json | None:
        """One issue (by key or id) as full JSON, or None."""
        with self.lock:
            try:
                return self.issue_json(self.get(key), Ctx(self.base_url), None, full=True)
            except JiraError:
                return None

    def on_change(self, listener: Callable[[ChangeEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` after every change, outside the lock, from the thread that made
        the change (the server's event loop for HTTP requests: keep it quick). Exceptions are logged.
        Returns a function that removes the listener."""
        with self.lock:
            self._listeners.append(listener)
        return functools.partial(self._listeners.remove, listener)

    def create_issue(self, fields: Json, update: Json | None = None, user: EmulatedUser | str | None = None) -> str:
        """Create an issue directly (seeding); ``fields`` as in ``POST issue``. Returns the key."""
        return self.create(fields, update or {}, self.actor(user), v3=False).key

    # ---- acting as a person in Jira (same code paths as the REST API: changelog, listeners, webhooks)
    def actor(self, user: EmulatedUser | str | None) -> EmulatedUser:
        """``user`` as an :class:`EmulatedUser`: itself, by accountId, username or e-mail; None: ``users[0]``."""
        if user is None or isinstance(user, EmulatedUser):
            return user or self.users[0]
        found = next((u for u in self.users if user in (u.account_id, u.name, u.email)), None)
        if found is None:
            raise ValueError(f"unknown user {user!r}")
        return found

    def transition(self, key: str, name: str, user: EmulatedUser | str | None = None) -> None:
        """Transition ``key`` by transition name (case-insensitive) or id, like ``POST issue/{key}/transitions``."""
        with self.lock:
            iss = self.get(key)
            tr = next((t for t in iss.project.workflow.transitions if name.lower() in (t.name.lower(), t.id)), None)
            if tr is None:
                raise JiraError(400, [f"Transition '{name}' is not valid for this issue."])
        self.edit(key, {"transition": {"id": tr.id}}, self.actor(user), v3=False, transition=True)

    def assign(self, key: str, account_id: str | None, user: EmulatedUser | str | None = None) -> None:
        """Assign ``key`` to ``account_id`` (None: unassign), like ``PUT issue/{key}/assignee``."""
        target = self.user(account_id)
        ref = {"accountId": account_id} if self.cloud else {"name": target.name if target else account_id}
        self.edit(key, {"fields": {"assignee": ref}}, self.actor(user), v3=False)

    def add_comment(self, key: str, body: str, user: EmulatedUser | str | None = None) -> Json:
        """Comment on ``key`` (plain text), like ``POST issue/{key}/comment``. Returns the comment JSON."""
        iss, comment = self.comment(key, {"body": body}, self.actor(user), v3=False)
        with self.lock:
            return self.comment_json(comment, iss, Ctx(self.base_url), False)

    def delete_issue(self, key: str, user: EmulatedUser | str | None = None) -> None:
        """Delete ``key`` (by key or id), like ``DELETE issue/{key}``."""
        self.delete(key, self.actor(user))

    # ---- webhooks (Jira Cloud admin webhooks) --------------------------------------------------
    def add_webhook(self, url: str, *, secret: str | None = None, events: Iterable[str] | None = None) -> str:
        """Register a webhook; returns its id. ``events``: webhookEvent names (default: all of
        :data:`WEBHOOK_EVENTS`). With ``secret`` deliveries carry ``X-Hub-Signature``. Deliveries run
        on a daemon thread per webhook, in order, retried on 408/409/425/429/5xx/connection errors
        after :attr:`webhook_retry_delays`."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s): {url!r}")
        if secret is not None and not isinstance(secret, str):
            raise ValueError("webhook secret must be a string")
        wanted = None if events is None else frozenset(events)
        if wanted is not None and (not wanted or not wanted <= WEBHOOK_EVENTS):
            raise ValueError(f"webhook events must be a non-empty subset of {sorted(WEBHOOK_EVENTS)}")
        hook = _Webhook(uuid.uuid4().hex[:12], url, secret, wanted)
        with self.lock:
            self._webhooks[hook.id] = hook
        threading.Thread(target=self._deliver_loop, args=(hook,), name=f"jira-webhook-{hook.id}", daemon=True).start()
        return hook.id

    def remove_webhook(self, webhook_id: str) -> bool:
        """Unregister a webhook and drop its pending deliveries; False if there is no such webhook."""
        with self.lock:
            hook = self._webhooks.pop(webhook_id, None)
            if hook is not None:
                hook.stop()
                self._idle.notify_all()
        return hook is not None

    def webhooks(self) -> list[Json]:
        with self.lock:
            return [
                {"id": h.id, "url": h.url, "events": sorted(h.events or WEBHOOK_EVENTS), "isSigned": bool(h.secret)}
                for h in self._webhooks.values()
            ]

    def deliveries(self) -> list[Json]:
        """Delivery attempts, oldest first: webhook, url, event, issue_key, identifier, attempt (1 = first),
        status (HTTP status or None), error (None or the connection error), at (epoch seconds)."""
        with self.lock:
            return [dict(d) for d in self._deliveries]

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until no webhook has a queued or in-flight delivery; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: all(h.pending == 0 for h in self._webhooks.values()), timeout)

    # ---- plumbing ----------------------------------------------------------------------------
    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            now = time.monotonic()
            self._faults = [f for f in self._faults if (f.expires is None or f.expires > now) and f.count != 0]
            fault = next((f for f in reversed(self._faults) if f.matches(method, path)), None)
            if fault and fault.count is not None:
                fault.count -= 1
            return fault

    def record(self, entry: Json) -> None:
        with self.lock:
            self._log.append(entry)

    def authenticate(self, header: str | None) -> EmulatedUser | None:
        scheme, _, cred = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            return self.users[0] if cred.strip() in self.credentials.pats else None
        try:
            name, _, secret = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if scheme.lower() != "basic" or (name, secret) not in self.credentials.basic:
            return None
        return next((u for u in self.users if name in (u.email, u.name)), self.users[0])

    def _emit(self, event: ChangeEvent, snapshot: Json | None = None) -> None:
        """Enqueue webhook deliveries, then call listeners. ``snapshot``: the issue of a deletion."""
        try:
            self._enqueue_webhooks(event, snapshot)
        except Exception:
            log.exception("Jira emulator could not enqueue webhooks")
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("Jira emulator change listener failed")

    def get(self, key: str) -> _Issue:
        with self.lock:
            found = self._issues.get(key.upper()) or next((i for i in self._issues.values() if i.id == key), None)
        if found is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return found

    def user(self, account_id: str | None) -> EmulatedUser | None:
        return next((u for u in self.users if u.account_id == account_id), None)

    def find_user(self, ref: Any, fld: str = "assignee") -> EmulatedUser | None:
        """Resolve ``{"accountId"}`` (Cloud) or ``{"name"}`` (Server); None or ``"-1"`` means nobody."""
        if ref is None:
            return None
        key = "accountId" if self.cloud else "name"
        if not isinstance(ref, dict) or key not in ref:
            raise _invalid(fld, f"Specify the user by '{key}'.")
        if ref[key] in (None, "-1"):
            return None
        found = next((u for u in self.users if ref[key] == (u.account_id if self.cloud else u.name)), None)
        if found is None:
            raise _invalid(fld, f"User '{ref[key]}' does not exist.")
        return found

    # ---- validation --------------------------------------------------------------------------
    def _convert(self, iss: _Issue, name: str, value: Any, v3: bool, transition: bool) -> Any:
        """Validate one field value; returns the stored form."""
        if name == "summary":
            if not isinstance(value, str) or not value.strip():
                raise _invalid(name, "You must specify a summary of the issue.")
            if len(value) > 255:
                raise _invalid(name, "Summary must be less than 255 characters.")
            if "\n" in value or "\r" in value:
                raise _invalid(name, "The summary is invalid because it contains newline characters.")
            return value
        if name == "description":
            if v3 and value is not None:
                if not isinstance(value, dict) or value.get("type") != "doc":
                    raise _invalid(
                        name, "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                    )
                value = _adf_text(value).rstrip("\n")
            if value is not None and not isinstance(value, str):
                raise _invalid(name, "Operation value must be a string")
            if value and len(value) > MAX_TEXT:
                raise _invalid(name, TOO_LONG)
            return value or None
        if name == "labels":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _invalid(name, "Operation value must be an array of strings")
            for label in value:
                if not label or any(c.isspace() for c in label):
                    raise _invalid(name, f"The label '{label}' contains spaces which is invalid.")
                if len(label) > 255:
                    raise _invalid(name, "The label exceeds the maximum length for a single label of 255 characters.")
            return list(dict.fromkeys(value))
        if name == "priority":
            return self._named(value, PRIORITY_IDS, name, "The priority selected is invalid.")
        if name == "issuetype":
            options = {t: ISSUE_TYPE_IDS.get(t, t) for t in iss.project.issue_types}
            return self._named(value, options, name, "Specify a valid issue type")
        if name in ("assignee", "reporter"):
            user = self.find_user(value, name)
            if name == "reporter" and user is None:
                raise _invalid(name, "Reporter is required.")
            return user.account_id if user else None
        if name == "resolution" and transition:
            return None if value is None else self._named(value, RESOLUTION_IDS, name, "Specify a valid resolution")
        raise _invalid(name, f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown.")

    @staticmethod
    def _named(ref: Any, options: dict[str, str], fld: str, message: str) -> str:
        """Resolve ``{"name"}`` or ``{"id"}`` against ``options`` (name -> id)."""
        for name, id_ in options.items():
            if isinstance(ref, dict) and (ref.get("name") == name or str(ref.get("id")) == id_):
                return name
        raise _invalid(fld, message)

    def _check_comment(self, body: Any, v3: bool, extra: Json | None = None) -> _Comment:
        if v3 and isinstance(body, dict):
            body = _adf_text(body).rstrip("\n")
        if not isinstance(body, str) or not body.strip():
            raise _invalid("comment", "Comment body can not be empty!")
        if len(body) > MAX_TEXT:
            raise _invalid("comment", TOO_LONG)
        props = (extra or {}).get("properties") or []
        if not isinstance(props, list) or not all(isinstance(p, dict) and "key" in p for p in props):
            raise JiraError(400, ["Comment properties must be a list of {key, value} objects."])
        return _Comment("", body, "", "", [dict(p) for p in props], (extra or {}).get("visibility"))

    def _plan(self, iss: _Issue, fields: Any, update: Any, v3: bool, transition: bool) -> tuple[Json, list[_Comment]]:
        """Validate ``fields`` + ``update`` without touching the issue: (new field values, new comments)."""
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise JiraError(400, ["Can not deserialize the request body: 'fields' and 'update' must be objects."])
        errors: dict[str, str] = {}
        values, label_ops, comments = dict(fields), [], []
        for name, ops in update.items():
            if name in fields:
                errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
            for op in ops if isinstance(ops, list) else [None]:
                for verb, arg in op.items() if isinstance(op, dict) else [("?", None)]:
                    if verb == "set" and name != "comment":
                        values[name] = arg
                    elif name == "labels" and verb in ("add", "remove"):
                        label_ops.append((verb, arg))
                    elif name == "comment" and verb == "add" and isinstance(arg, dict):
                        try:
                            comments.append(self._check_comment(arg.get("body"), v3, arg))
                        except JiraError as err:
                            errors.update(err.errors)
                    else:
                        errors[name] = f"Operation '{verb}' is not supported for field '{name}'."
        new: Json = {}
        for name, value in values.items():
            try:
                new[name] = self._convert(iss, name, value, v3, transition)
            except JiraError as err:
                errors.update(err.errors)
        if label_ops:
            labels = list(new.get("labels", iss.labels))
            for verb, label in label_ops:
                try:
                    self._convert(iss, "labels", [label], v3, transition)
                except JiraError as err:
                    errors.update(err.errors)
                if verb == "add" and label not in labels:
                    labels.append(label)
                elif verb == "remove" and label in labels:
                    labels.remove(label)
            new["labels"] = labels
        if errors:
            raise JiraError(400, [], errors)
        return new, comments

    # ---- changes -----------------------------------------------------------------------------
    def _item(self, name: str, old: Any, new: Any) -> Json:
        def show(v: Any) -> tuple[str | None, str | None]:
            if v is None:
                return None, None
            if name in ("assignee", "reporter"):
                return v, getattr(self.user(v), "display_name", v)
            if name == "labels":
                return None, " ".join(v)
            ids = {"status": self._status_ids, "priority": PRIORITY_IDS, "resolution": RESOLUTION_IDS}
            return ids.get(name, ISSUE_TYPE_IDS if name == "issuetype" else {}).get(v), str(v)

        (f, fs), (t, ts) = show(old), show(new)
        return {
            "field": name,
            "fieldtype": "jira",
            "fieldId": name,
            "from": f,
            "fromString": fs,
            "to": t,
            "toString": ts,
        }

    def _commit(self, iss: _Issue, new: Json, comments: list[_Comment], user: EmulatedUser) -> list[Json]:
        """Apply validated values and comments; record the changelog. Returns the changelog items."""
        now = jira_time()
        changed = [n for n, v in new.items() if getattr(iss, n) != v and n != "resolutiondate"]
        items = [self._item(name, getattr(iss, name), new[name]) for name in changed]
        for name, value in new.items():
            setattr(iss, name, value)
        for c in comments:
            c.id, c.author, c.created = str(next(self._other_ids)), user.account_id, now
            iss.comments.append(c)
        if items or comments:
            iss.updated = now
        if items:
            iss.changelog.append(
                {"id": str(next(self._other_ids)), "author": user.account_id, "created": now, "items": items}
            )
        return items

    def create(self, fields: Any, update: Any, user: EmulatedUser, v3: bool) -> _Issue:
        with self.lock:
            ref = fields.get("project")
            ref = ref if isinstance(ref, dict) else {}
            project = next(
                (p for p in self.projects.values() if p.key == ref.get("key") or p.id == str(ref.get("id"))), None
            )
            if project is None:
                raise _invalid("project", "Specify a valid project ID or key")
            iss = _Issue("", "", project, project.workflow.statuses[0].name, user.account_id, jira_time())
            errors: dict[str, str] = {}
            if "summary" not in fields:
                errors["summary"] = "You must specify a summary of the issue."
            if "issuetype" not in fields:
                errors["issuetype"] = "Specify an issue type"
            try:
                new, comments = self._plan(iss, {k: v for k, v in fields.items() if k != "project"}, update, v3, False)
            except JiraError as err:
                raise JiraError(400, err.messages, err.errors | errors) from None
            if errors:
                raise JiraError(400, [], errors)
            iss.id, iss.key = str(next(self._ids)), f"{project.key}-{next(self._numbers[project.key])}"
            self._commit(iss, new, comments, user)
            iss.changelog.clear()  # creation is not a change
            iss.updated = iss.created
            self._issues[iss.key] = iss
            self._indexed(iss)
        self._emit(ChangeEvent("issue_created", iss.key, user.account_id))
        for c in comments:
            self._emit(ChangeEvent("issue_updated", iss.key, user.account_id, comment_id=c.id))
        return iss

    def edit(self, key: str, body: Any, user: EmulatedUser, v3: bool, *, transition: bool = False) -> None:
        """``PUT issue`` (or, with ``transition``, ``POST issue/{key}/transitions``) with body ``body``."""
        body = body if isinstance(body, dict) else {"fields": None}
        with self.lock:
            iss = self.get(key)
            tr = self._find_transition(iss, body.get("transition")) if transition else None
            new, comments = self._plan(iss, body.get("fields") or {}, body.get("update") or {}, v3, transition)
            if tr is not None:
                new |= self._move(iss, tr, new.get("resolution", iss.resolution), "resolution" in new)
            items = self._commit(iss, new, comments, user)
            self._indexed(iss)
            changelog_id = iss.changelog[-1]["id"] if items else None
        for c in comments:
            self._emit(
                ChangeEvent("issue_updated", iss.key, user.account_id, tuple(items), c.id, changelog_id=changelog_id)
            )
            items, changelog_id = [], None
        if items:
            self._emit(ChangeEvent("issue_updated", iss.key, user.account_id, tuple(items), changelog_id=changelog_id))

    @staticmethod
    def _move(iss: _Issue, tr: Transition, resolution: str | None, explicit: bool) -> Json:
        """Field changes for entering ``tr.to``: done-category statuses carry a resolution."""
        done = iss.project.workflow.status(tr.to).category == "done"
        resolution = (resolution if explicit else resolution or "Done") if done else None
        stamp = (iss.resolutiondate or jira_time()) if resolution else None
        return {"status": tr.to, "resolution": resolution, "resolutiondate": stamp}

    def transitions_for(self, iss: _Issue) -> list[Transition]:
        return [t for t in iss.project.workflow.transitions if t.to != iss.status]

    def _find_transition(self, iss: _Issue, ref: Any) -> Transition:
        if not isinstance(ref, dict) or ref.get("id") is None:
            raise JiraError(400, ["Missing 'transition' identifier"])
        found = next((t for t in self.transitions_for(iss) if t.id == str(ref["id"])), None)
        if found is None:
            raise JiraError(400, [f"Transition id '{ref['id']}' is not valid for this issue."])
        return found

    def comment(self, key: str, body: Any, user: EmulatedUser, v3: bool) -> tuple[_Issue, _Comment]:
        """``POST issue/{key}/comment`` with body ``body``."""
        body = body if isinstance(body, dict) else {}
        with self.lock:
            iss = self.get(key)
            comment = self._check_comment(body.get("body"), v3, body)
            self._commit(iss, {}, [comment], user)
            self._indexed(iss)
        self._emit(ChangeEvent("issue_updated", iss.key, user.account_id, comment_id=comment.id))
        return iss, comment

    def delete(self, key: str, user: EmulatedUser) -> None:
        """``DELETE issue/{key}``."""
        with self.lock:
            iss = self.get(key)
            snapshot = self._webhook_issue(iss, Ctx(self.base_url))
            del self._issues[iss.key]
            self._indexed(iss, deleted=True)
        self._emit(ChangeEvent("issue_deleted", iss.key, user.account_id), snapshot)

    # ---- webhook delivery ----------------------------------------------------------------------
    def _webhook_issue(self, iss: _Issue, ctx: Ctx) -> Json:
        data = self.issue_json(iss, ctx, None)
        snapshot = {k: data[k] for k in ("id", "self", "key", "fields")}
        if self.cloud:  # Cloud's webhooks name people without their e-mail address (Data Center's keep it)
            fields = snapshot["fields"] = dict(snapshot["fields"])
            for name, value in fields.items():
                if isinstance(value, dict) and "accountId" in value:
                    fields[name] = {k: v for k, v in value.items() if k != "emailAddress"}
        return snapshot

    def _webhook_user(self, account_id: str, ctx: Ctx) -> Json | None:
        user = self.user(account_id)
        if user is None:
            return None
        data = {k: v for k, v in self.user_json(user, ctx).items() if k != "emailAddress"}
        avatar = f"{ctx.base}secure/useravatar?avatarId=10122"
        return data | {"avatarUrls": {s: f"{avatar}&size={s}" for s in ("16x16", "24x24", "32x32", "48x48")}}

    @staticmethod
    def _event_type_name(event: ChangeEvent) -> str:
        if event.kind != "issue_updated":
            return event.kind
        changed = {i["field"] for i in event.items}
        if "status" in changed:
            return "issue_generic"
        if changed == {"assignee"}:
            return "issue_assigned"
        return "issue_updated" if changed or not event.comment_id else "issue_commented"

    def _webhook_payloads(self, event: ChangeEvent, snapshot: Json | None) -> list[tuple[str, Json]]:
        """(webhookEvent, body) pairs for one change, rendered like Jira Cloud (REST v2 shapes)."""
        ctx, stamp = Ctx(self.base_url), int(event.timestamp * 1000)
        comment: Json | None = None
        if snapshot is None:
            try:
                iss = self.get(event.issue_key)
            except JiraError:  # deleted meanwhile
                return []
            snapshot = self._webhook_issue(iss, ctx)
            found = next((c for c in iss.comments if c.id == event.comment_id), None)
            comment = self.comment_json(found, iss, ctx, False) if found else None
        name = f"jira:{event.kind}"
        body: Json = {"timestamp": stamp, "webhookEvent": name, "issue_event_type_name": self._event_type_name(event)}
        body |= {"user": self._webhook_user(event.user, ctx), "issue": snapshot}
        if event.kind == "issue_updated" and event.items:
            body["changelog"] = {"id": event.changelog_id, "items": [dict(i) for i in event.items]}
        if comment is not None:
            body["comment"] = comment
        payloads = [(name, body)]
        if comment is not None:
            created = {"timestamp": stamp, "webhookEvent": "comment_created", "comment": comment, "issue": snapshot}
            payloads.append(("comment_created", created))
        return payloads

    def _enqueue_webhooks(self, event: ChangeEvent, snapshot: Json | None) -> None:
        with self.lock:
            if not self._webhooks:
                return
            for name, body in self._webhook_payloads(event, snapshot):
                raw = json.dumps(body, separators=(",", ":")).encode()
                for hook in self._webhooks.values():
                    if hook.wants(name):
                        hook.pending += 1
                        hook.queue.put(_Delivery(name, event.issue_key, raw, str(uuid.uuid4())))

    def _deliver_loop(self, hook: _Webhook) -> None:
        with httpx.Client(timeout=self.webhook_timeout) as client:
            while True:
                item = hook.queue.get()
                if item is None or hook.stopped.is_set():
                    return
                try:
                    self._deliver(hook, client, item)
                except Exception:
                    log.exception("Jira emulator webhook delivery failed")
                with self.lock:
                    hook.pending -= 1
                    self._idle.notify_all()

    def _deliver(self, hook: _Webhook, client: httpx.Client, item: _Delivery) -> None:
        """All attempts of one delivery: the first, then one retry after each retry delay."""
        headers = {
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": item.identifier,
            "X-Atlassian-Webhook-Flow": "Primary",
        }
        if hook.secret is not None:
            headers["X-Hub-Signature"] = webhook_signature(hook.secret, item.body)
        delays = self.webhook_retry_delays
        for attempt in range(len(delays) + 1):
            if attempt:
                if hook.stopped.wait(delays[attempt - 1]):
                    return
                headers["X-Atlassian-Webhook-Retry"] = str(attempt)
            status, error = None, None
            try:
                status = client.post(hook.url, content=item.body, headers=headers).status_code
            except httpx.HTTPError as err:
                error = f"{type(err).__name__}: {err}"
            with self.lock:
                if hook.stopped.is_set():
                    return
                self._deliveries.append(
                    {"webhook": hook.id, "url": hook.url, "event": item.event, "issue_key": item.issue_key}
                    | {"identifier": item.identifier, "attempt": attempt + 1, "status": status, "error": error}
                    | {"at": time.time()}
                )
            if status is not None and status not in WEBHOOK_RETRY_STATUSES and status < 500:
                return

    # ---- search ------------------------------------------------------------------------------
    def _values(self, iss: _Issue, name: str) -> list[str]:
        """What JQL compares for ``name``: every alias under which the value can be named."""
        status = iss.project.workflow.status(iss.status)
        cat_id, cat_name, _ = CATEGORIES[status.category]
        people = {n: self.user(iss.assignee if n == "assignee" else iss.reporter) for n in ("assignee", "reporter")}
        table: dict[str, list[str | None]] = {
            "project": [iss.project.key, iss.project.id, iss.project.name],
            "key": [iss.key, iss.id],
            "labels": list(iss.labels),
            "status": [status.name, status.id],
            "statuscategory": [status.category, cat_name, str(cat_id)],
            "resolution": [iss.resolution],
            "priority": [iss.priority],
            "issuetype": [iss.issuetype],
            "summary": [iss.summary],
            "description": [iss.description],
            "comment": [c.body for c in iss.comments],
            "text": [iss.summary, iss.description, *(c.body for c in iss.comments)],
            "created": [iss.created],
            "updated": [iss.updated],
            "resolutiondate": [iss.resolutiondate],
        }
        for n, u in people.items():
            table[n] = [u.account_id, u.email, u.name, u.display_name] if u else []
        return [v for v in table[name] if v]

    def _sort_key(self, iss: _Issue, name: str) -> Any:
        if name == "key":
            return (iss.project.key, int(iss.key.rsplit("-", 1)[1]))
        if name == "priority":
            return len(PRIORITIES) - PRIORITIES.index(iss.priority)
        if name == "status":
            return [s.name for s in iss.project.workflow.statuses].index(iss.status)
        vals = self._values(iss, name)
        return (0, vals[0].lower()) if vals else (1, "")

    def search(self, text: str, *, bounded: bool, reconcile: Iterable[str] = ()) -> list[_Issue]:
        """Issues matching ``text`` (JQL), ordered, as the search index shows them (:meth:`set_index_lag`;
        ``reconcile``: issue ids read as they are); ``bounded`` rejects queries without a restriction."""
        try:
            query = jql.parse(text)
        except jql.JqlError as err:
            raise JiraError(400, [str(err)]) from None
        if bounded and query.where is None:
            raise JiraError(
                400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."]
            )
        known = {
            "project": {v.lower() for p in self.projects.values() for v in (p.key, p.id, p.name)},
            "priority": {p.lower() for p in PRIORITIES},
            "resolution": {r.lower() for r in RESOLUTION_IDS},
            "status": {s.name.lower() for p in self.projects.values() for s in p.workflow.statuses},
        }
        for c in jql.clauses(query.where):
            for v in c.values:
                if c.field in known and v is not None and v.lower() not in known[c.field]:
                    raise JiraError(400, [f"The value '{v}' does not exist for the field '{c.field}'."])
        with self.lock:
            searchable = self._searchable(frozenset(reconcile))
            found = [i for i in searchable if jql.matches(query.where, functools.partial(self._values, i))]
            found.sort(key=lambda i: (i.created, int(i.id)), reverse=True)
            for name, desc in reversed(query.order_by):
                found.sort(key=functools.partial(self._sort_key, name=name), reverse=desc)
            return found

    # ---- rendering ---------------------------------------------------------------------------
    def user_json(self, user: EmulatedUser, ctx: Ctx) -> Json:
        data = {"displayName": user.display_name, "emailAddress": user.email, "active": user.active, "timeZone": "UTC"}
        if self.cloud:
            ident = {"accountId": user.account_id, "accountType": "atlassian"}
            return {"self": ctx.api(f"user?accountId={user.account_id}"), **ident, **data}
        return {"self": ctx.api(f"user?username={user.name}"), "name": user.name, "key": user.name, **data}

    def _person(self, account_id: str | None, ctx: Ctx) -> Json | None:
        user = self.user(account_id)
        return self.user_json(user, ctx) if user else None

    @staticmethod
    def status_json(status: Status, ctx: Ctx) -> Json:
        cid, cname, color = CATEGORIES[status.category]
        category = {"self": ctx.api(f"statuscategory/{cid}"), "id": cid, "key": status.category, "colorName": color}
        return {
            "self": ctx.api(f"status/{status.id}"),
            "description": "",
            "iconUrl": f"{ctx.base}images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": category | {"name": cname},
        }

    @staticmethod
    def issuetype_json(name: str, ctx: Ctx) -> Json:
        tid = ISSUE_TYPE_IDS.get(name, name)
        return {"self": ctx.api(f"issuetype/{tid}"), "id": tid, "description": "", "name": name, "subtask": False}

    def project_json(self, p: EmulatedProject, ctx: Ctx, *, types: bool = True) -> Json:
        data: Json = {"self": ctx.api(f"project/{p.id}"), "id": p.id, "key": p.key, "name": p.name}
        data |= {"projectTypeKey": "software", "simplified": False, "style": "classic", "isPrivate": False}
        if types:
            data["issueTypes"] = [self.issuetype_json(t, ctx) for t in p.issue_types]
        return data

    def comment_json(self, c: _Comment, iss: _Issue, ctx: Ctx, properties: bool) -> Json:
        author = self._person(c.author, ctx)
        data: Json = {
            "self": ctx.api(f"issue/{iss.id}/comment/{c.id}"),
            "id": c.id,
            "author": author,
            "body": _adf(c.body) if ctx.ver == "3" else c.body,
            "updateAuthor": author,
            "created": c.created,
            "updated": c.created,
            "jsdPublic": True,
        }
        if c.visibility:
            data["visibility"] = c.visibility
        if properties:
            data["properties"] = c.properties
        return data

    def attachment_json(self, att: _Attachment, ctx: Ctx) -> Json:
        return {
            "self": ctx.api(f"attachment/{att.id}"),
            "id": att.id,
            "filename": att.filename,
            "author": self._person(att.author, ctx),
            "created": att.created,
            "size": len(att.data),
            "mimeType": att.mime_type,
            "content": f"{ctx.base}secure/attachment/{att.id}/{urllib.parse.quote(att.filename)}",
        }

    def attach(
        self, key: str, files: list[tuple[str, str, bytes]], user: EmulatedUser
    ) -> tuple[_Issue, list[_Attachment]]:
        """``POST issue/{key}/attachments``: (filename, media type, content) for each ``file`` part."""
        with self.lock:
            iss = self.get(key)
            added = [
                _Attachment(str(next(self._other_ids)), name, mime, data, user.account_id, jira_time())
                for name, mime, data in files
            ]
            iss.attachments.extend(added)
            iss.updated = jira_time()
            self._indexed(iss)
        return iss, added

    def attachment(self, attachment_id: str) -> _Attachment | None:
        with self.lock:
            return next((a for i in self._issues.values() for a in i.attachments if a.id == attachment_id), None)

    def issue_json(
        self, iss: _Issue, ctx: Ctx, wanted: list[str] | None, *, full: bool = False, expand: str = ""
    ) -> Json:
        """``wanted``: items of the ``fields`` parameter (None: all fields; []: only the id)."""
        if wanted == []:
            return {"id": iss.id}
        names = ISSUE_FIELDS
        if wanted is not None:
            inc = {w for w in wanted if not w.startswith("-")}
            names = [n for n in names if ({"*all", "*navigable", n} & inc) and f"-{n}" not in wanted]
        pri, res = PRIORITY_IDS[iss.priority], RESOLUTION_IDS.get(iss.resolution or "")
        comments = [self.comment_json(c, iss, ctx, full) for c in iss.comments]
        values: Json = {
            "summary": iss.summary,
            "description": _adf(iss.description) if ctx.ver == "3" and iss.description else iss.description,
            "labels": list(iss.labels),
            "priority": {"self": ctx.api(f"priority/{pri}"), "name": iss.priority, "id": pri},
            "status": self.status_json(iss.project.workflow.status(iss.status), ctx),
            "assignee": self._person(iss.assignee, ctx),
            "reporter": self._person(iss.reporter, ctx),
            "resolution": {"self": ctx.api(f"resolution/{res}"), "id": res, "name": iss.resolution} if res else None,
            "resolutiondate": iss.resolutiondate,
            "created": iss.created,
            "updated": iss.updated,
            "issuetype": self.issuetype_json(iss.issuetype, ctx),
            "project": self.project_json(iss.project, ctx, types=False),
            "comment": {"comments": comments, "self": ctx.api(f"issue/{iss.id}/comment"), "maxResults": len(comments)}
            | {"total": len(comments), "startAt": 0},
            "attachment": [self.attachment_json(a, ctx) for a in iss.attachments],
        }
        data: Json = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"}
        data |= {
            "id": iss.id,
            "self": ctx.api(f"issue/{iss.id}"),
            "key": iss.key,
            "fields": {n: values[n] for n in names},
        }
        if full or "changelog" in expand.split(","):
            hist = [h | {"author": self._person(h["author"], ctx)} for h in reversed(iss.changelog)]
            data["changelog"] = {"startAt": 0, "maxResults": len(hist), "total": len(hist), "histories": hist}
        return data


def _fields_param(raw: Any) -> list[str]:
    """``fields`` given repeated and/or comma-separated (GET) or as a list/string (POST)."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _browse_html(data: Json) -> str:
    f, e = data["fields"], html.escape
    who = f["assignee"]["displayName"] if f["assignee"] else "Unassigned"
    notes = "".join(
        f"<li><b>{e((c['author'] or {}).get('displayName', '?'))}</b> {e(c['created'])}<pre>{e(c['body'])}</pre></li>"
        for c in f["comment"]["comments"]
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>[{e(data['key'])}] {e(f['summary'])}</title>"
        f"</head><body><h1>{e(data['key'])}: {e(f['summary'])}</h1><p>Status: {e(f['status']['name'])}"
        f" | Priority: {e(f['priority']['name'])} | Assignee: {e(who)} | Labels: {e(', '.join(f['labels']))}"
        f"</p><pre>{e(f['description'] or '')}</pre><h2>Comments</h2><ul>{notes}</ul></body></html>"
    )


def create_jira_emulator(
    *,
    users: list[EmulatedUser] | None = None,
    projects: list[EmulatedProject] | None = None,
    deployment_type: Literal["Cloud", "Server"] = "Cloud",
    credentials: Credentials | None = None,
    rate_limit_per_second: float | None = None,
    rate_limit_burst: float | None = None,
) -> FastAPI:
    """Build the emulator app; its state is ``app.state.emulator``. ``users[0]`` owns the PATs. With
    ``rate_limit_per_second`` every REST call counts against one limit (:meth:`JiraEmulator.set_rate_limit`)."""
    emu = JiraEmulator(
        users or DEFAULT_USERS,
        projects or DEFAULT_PROJECTS,
        deployment_type,
        credentials or Credentials(),
        rate_limit_per_second,
        rate_limit_burst,
    )
    app = FastAPI(title="Jira emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emu
    api = "/rest/api/{ver}"

    def ctx(request: Request) -> Ctx:
        ver = request.path_params.get("ver", "latest")
        if ver not in ("2", "3", "latest"):
            raise JiraError(404, [f"null for uri: {request.url}"])
        root = request.scope.get("root_path", "").rstrip("/")
        return Ctx(str(request.base_url.replace(path=root + "/")), ver)

    def me(request: Request) -> EmulatedUser:
        user: EmulatedUser = request.scope["jira_user"]
        return user

    async def body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise JiraError(400, ["Unexpected character in the request body: not valid JSON."]) from None

    async def params(request: Request) -> Json:
        if request.method == "POST":
            data = await body(request)
            return data if isinstance(data, dict) else {}
        q = request.query_params
        return {k: q.getlist(k) if k in ("fields", "reconcileIssues") else v for k, v in q.items()}

    @app.exception_handler(JiraError)
    async def _jira_error(_: Request, exc: JiraError) -> JSONResponse:
        return error_response(exc.status, exc.messages, exc.errors)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, [str(exc.detail)])

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, [f"Internal server error: {exc!r}"])

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()])

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Faults, latency, authentication and the request log, for everything but /_emulator."""
        root = request.scope.get("root_path", "")
        path = request.url.path.removeprefix(root) or "/"
        if path.startswith("/_emulator"):
            return await call_next(request)
        emu.base_url = str(request.base_url.replace(path=root.rstrip("/") + "/"))
        started, raw, header = time.time(), await request.body(), request.headers.get("authorization")
        fault = emu.take_fault(request.method, path)
        answered_by_fault = bool(fault and fault.status and not fault.fail_after_commit)
        limited = emu.take_rate_token() if path.startswith("/rest/") and not answered_by_fault else None
        user = emu.authenticate(header)
        if fault and fault.latency:
            await asyncio.sleep(fault.latency)
        anonymous_ok = header is None and path.endswith("/serverInfo")
        if fault and answered_by_fault:
            response: Response = fault.response()
        elif limited is not None:
            response = limited
        elif path.startswith("/rest/") and user is None and not anonymous_ok:
            message = "You are not authenticated. Authentication required to perform this operation."
            if header is not None:
                message = "Client must be authenticated to access this resource."
            response = error_response(401, [message], headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})
        else:
            request.scope["jira_user"] = user or emu.users[0]
            response = await call_next(request)
            if fault and fault.status:  # fail_after_commit: the change happened, the answer is lost
                async for _ in getattr(response, "body_iterator", _nothing()):
                    pass
                response = fault.response()
        try:
            sent = json.loads(raw) if raw else None
        except ValueError:
            sent = raw.decode(errors="replace")
        emu.record(
            {"method": request.method, "path": path, "query": request.url.query, "status": response.status_code}
            | {"time": started, "duration": time.time() - started, "user": user.account_id if user else None}
            | {"body": sent, "fault": bool(fault and fault.status)}
            | ({"rate_limited": True} if limited is not None else {})
        )
        return response

    @app.get(api + "/serverInfo")
    async def server_info(request: Request) -> Json:
        c = ctx(request)
        numbers = [1001, 0, 0] if emu.cloud else [9, 12, 15]
        version = ".".join(map(str, numbers)) + ("-SNAPSHOT" if emu.cloud else "")
        info: Json = {"baseUrl": c.base.rstrip("/"), "version": version, "versionNumbers": numbers}
        info |= {"deploymentType": emu.deployment_type, "buildNumber": 100280 if emu.cloud else 9120015}
        info |= {"buildDate": "2025-01-01T00:00:00.000+0000", "serverTime": jira_time(), "scmInfo": "0"}
        return info | {"serverTitle": "Jira"} | ({} if emu.cloud else {"serverTimeZone": "UTC"})

    @app.get("/rest/auth/1/session")
    async def session(request: Request) -> Json:
        u = me(request)
        login = {"failedLoginCount": 0, "loginCount": 1}
        return {"self": ctx(request).api(f"user?username={u.name}"), "name": u.name, "loginInfo": login}

    @app.get(api + "/myself")
    async def myself(request: Request) -> Json:
        return emu.user_json(me(request), ctx(request)) | {"locale": "en_US"}

    @app.get(api + "/field")
    async def fields(request: Request) -> list[Json]:
        ctx(request)
        return [
            {"id": i, "key": i, "name": n, "custom": False, "orderable": i not in ("status", "created", "updated")}
            | {"navigable": True, "searchable": True, "clauseNames": clauses, "schema": {"type": t, "system": i}}
            for i, n, t, clauses in FIELD_DEFS
        ]

    @app.get(api + "/project/{key}")
    async def project(request: Request, key: str) -> Json:
        found = next((p for p in emu.projects.values() if key in (p.key, p.id)), None)
        if found is None:
            raise JiraError(404, [f"No project could be found with key '{key}'."])
        return emu.project_json(found, ctx(request))

    @app.get(api + "/issuetype")
    async def issuetypes(request: Request) -> list[Json]:
        names = dict.fromkeys(t for p in emu.projects.values() for t in p.issue_types)
        return [emu.issuetype_json(n, ctx(request)) for n in names]

    @app.get(api + "/priority")
    async def priorities(request: Request) -> list[Json]:
        c = ctx(request)
        return [
            {"self": c.api(f"priority/{i}"), "id": str(i), "name": p, "description": p, "isDefault": p == "Medium"}
            for i, p in enumerate(PRIORITIES, 1)
        ]

    @app.post(api + "/issue", status_code=201)
    async def create(request: Request) -> Json:
        data, c = await body(request), ctx(request)
        if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
            raise JiraError(400, ["Can not deserialize the request body: 'fields' must be an object."])
        iss = emu.create(data["fields"], data.get("update") or {}, me(request), c.ver == "3")
        return {"id": iss.id, "key": iss.key, "self": c.api(f"issue/{iss.id}")}

    @app.get(api + "/issue/{key}")
    async def get_issue(request: Request, key: str) -> Json:
        wanted = _fields_param(request.query_params.getlist("fields")) or None
        with emu.lock:
            return emu.issue_json(emu.get(key), ctx(request), wanted, expand=request.query_params.get("expand", ""))

    @app.put(api + "/issue/{key}")
    async def edit(request: Request, key: str) -> Response:
        data, c = await body(request), ctx(request)
        emu.edit(key, data, me(request), c.ver == "3")
        if request.query_params.get("returnIssue", "").lower() == "true":
            with emu.lock:
                return JSONResponse(emu.issue_json(emu.get(key), c, None))
        return Response(status_code=204)

    @app.delete(api + "/issue/{key}", status_code=204)
    async def delete(request: Request, key: str) -> Response:
        ctx(request)
        emu.delete(key, me(request))
        return Response(status_code=204)

    @app.post(api + "/issue/{key}/comment", status_code=201)
    async def add_comment(request: Request, key: str) -> Json:
        data, c = await body(request), ctx(request)
        iss, comment = emu.comment(key, data, me(request), c.ver == "3")
        with emu.lock:
            return emu.comment_json(comment, iss, c, "properties" in request.query_params.get("expand", ""))

    @app.post(api + "/issue/{key}/attachments")
    async def add_attachments(request: Request, key: str) -> list[Json]:
        c = ctx(request)
        if request.headers.get("x-atlassian-token", "").lower() != "no-check":
            raise JiraError(403, ["XSRF check failed"])
        form = await request.form()
        parts = [p for p in form.getlist("file") if isinstance(p, StarletteUpload)]
        if not parts:
            raise JiraError(400, ["No attachments were found in the request (send them as multipart 'file' parts)."])
        files = [
            (p.filename or "attachment", p.content_type or "application/octet-stream", await p.read()) for p in parts
        ]
        _, added = emu.attach(key, files, me(request))
        with emu.lock:
            return [emu.attachment_json(a, c) for a in added]

    @app.get("/secure/attachment/{attachment_id}/{filename}")
    async def attachment_content(request: Request, attachment_id: str, filename: str) -> Response:
        ctx(request)
        att = emu.attachment(attachment_id)
        if att is None:
            raise JiraError(404, ["The attachment does not exist."])
        return Response(att.data, media_type=att.mime_type)

    @app.get(api + "/issue/{key}/comment")
    async def comments(request: Request, key: str, startAt: int = 0, maxResults: int = 5000) -> Json:
        c, props = ctx(request), "properties" in request.query_params.get("expand", "")
        with emu.lock:
            iss = emu.get(key)
            items = iss.comments[::-1] if request.query_params.get("orderBy", "").startswith("-") else iss.comments
            page = [emu.comment_json(x, iss, c, props) for x in items[startAt : startAt + maxResults]]
            return {"startAt": startAt, "maxResults": maxResults, "total": len(items), "comments": page}

    @app.get(api + "/issue/{key}/transitions")
    async def transitions(request: Request, key: str, transitionId: str | None = None) -> Json:
        c, flags = ctx(request), {"hasScreen": False, "isGlobal": True, "isInitial": False, "isAvailable": True}
        with emu.lock:
            iss = emu.get(key)
            return {
                "expand": "transitions",
                "transitions": [
                    {"id": t.id, "name": t.name, "to": emu.status_json(iss.project.workflow.status(t.to), c)}
                    | flags
                    | {"isConditional": False, "isLooped": False}
                    for t in emu.transitions_for(iss)
                    if transitionId in (None, t.id)
                ],
            }

    @app.post(api + "/issue/{key}/transitions", status_code=204)
    async def transition(request: Request, key: str) -> Response:
        data, c = await body(request), ctx(request)
        emu.edit(key, data, me(request), c.ver == "3", transition=True)
        return Response(status_code=204)

    @app.put(api + "/issue/{key}/assignee", status_code=204)
    async def assign(request: Request, key: str) -> Response:
        data, _ = await body(request), ctx(request)
        if not isinstance(data, dict):
            raise JiraError(400, ["Can not deserialize the request body."])
        emu.edit(key, {"fields": {"assignee": data}}, me(request), v3=False)
        return Response(status_code=204)

    @app.get(api + "/user")
    async def user_get(request: Request) -> Json:
        q, c = request.query_params, ctx(request)
        if emu.cloud and ("username" in q or "key" in q):
            raise JiraError(400, ["The query parameter 'username' is not supported in GDPR strict mode."])
        wanted = q.get("accountId") if emu.cloud else (q.get("username") or q.get("key"))
        if not wanted:
            raise JiraError(
                400,
                ["accountId must be provided" if emu.cloud else "Either the 'username' or the 'key' must be provided"],
            )
        found = next((u for u in emu.users if wanted in ((u.account_id,) if emu.cloud else (u.name,))), None)
        if found is None:
            raise JiraError(404, ["Specified user does not exist or you do not have required permissions"])
        return emu.user_json(found, c)

    @app.get(api + "/user/search")
    async def user_search(request: Request, startAt: int = 0, maxResults: int = 50) -> list[Json]:
        q, c = request.query_params, ctx(request)
        if emu.cloud and "username" in q:
            raise JiraError(400, ["The query parameter 'username' is not supported in GDPR strict mode."])
        term = (q.get("query") or q.get("accountId") or "") if emu.cloud else q.get("username", "")
        if not term:
            raise JiraError(
                400, ["One of 'query' or 'accountId' must be provided." if emu.cloud else "username missing"]
            )
        t, active, inactive = term.lower(), q.get("includeActive", "true"), q.get("includeInactive", "false")
        found = [
            u
            for u in emu.users
            if (active.lower() == "true" if u.active else inactive.lower() == "true")
            and (t == u.account_id.lower() or any(t in s.lower() for s in (u.email, u.display_name, u.name)))
        ]
        return [emu.user_json(u, c) for u in found[startAt : startAt + maxResults]]

    @app.api_route(api + "/search/jql", methods=["GET", "POST"])
    async def search_jql(request: Request) -> Json:
        c, p = ctx(request), await params(request)
        if not emu.cloud:
            raise JiraError(404, [f"null for uri: {request.url}"])
        wanted = _fields_param(p.get("fields"))
        try:
            token = p.get("nextPageToken")
            start = int(base64.urlsafe_b64decode(str(token)).decode()) if token else 0
            limit = max(1, min(int(p.get("maxResults") or 50), 100 if wanted else 5000))
        except (ValueError, binascii.Error):
            raise JiraError(400, ["Invalid 'nextPageToken' or 'maxResults'."]) from None
        ids = p.get("reconcileIssues") or []
        ids = [part.strip() for i in (ids if isinstance(ids, list) else [ids]) for part in str(i).split(",")]
        found = emu.search(str(p.get("jql") or ""), bounded=True, reconcile=ids)
        with emu.lock:
            page = [
                emu.issue_json(i, c, wanted, expand=str(p.get("expand") or "")) for i in found[start : start + limit]
            ]
        result: Json = {"issues": page, "isLast": start + limit >= len(found)}
        if not result["isLast"]:
            result["nextPageToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return result

    @app.api_route(api + "/search", methods=["GET", "POST"])
    async def search_classic(request: Request) -> Json:
        c, p = ctx(request), await params(request)
        if emu.cloud:
            raise JiraError(410, [REMOVED_SEARCH_MESSAGE])
        try:
            start, limit = int(p.get("startAt") or 0), min(int(p.get("maxResults") or 50), 1000)
        except ValueError:
            raise JiraError(400, ["'startAt' and 'maxResults' must be integers."]) from None
        found = emu.search(str(p.get("jql") or ""), bounded=False)
        wanted = _fields_param(p.get("fields")) or ["*navigable"]
        with emu.lock:
            page = [
                emu.issue_json(i, c, wanted, expand=str(p.get("expand") or "")) for i in found[start : start + limit]
            ]
        return {"expand": "schema,names", "startAt": start, "maxResults": limit, "total": len(found), "issues": page}

    @app.get("/browse/{key}")
    async def browse(key: str) -> HTMLResponse:
        data = emu.issue(key)
        if data is None:
            return HTMLResponse(f"<h1>Issue {html.escape(key)} does not exist</h1>", 404)
        return HTMLResponse(_browse_html(data))

    @app.post("/_emulator/faults")
    async def add_fault(request: Request) -> Json:
        data = await body(request)
        try:
            methods = data.pop("methods", None)
            emu.set_fault(**data, methods=set(methods) if methods else None)
        except (TypeError, ValueError, AttributeError) as err:
            raise JiraError(400, [f"Invalid fault: {err}"]) from None
        return {"ok": True}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> Json:
        emu.clear_faults()
        return {"ok": True}

    @app.post("/_emulator/index_lag")
    async def set_index_lag(request: Request) -> Json:
        data = await body(request)
        try:
            emu.set_index_lag(data["seconds"])
        except (TypeError, ValueError, KeyError) as err:
            raise JiraError(400, [f'Invalid index lag: {err}; expected {{"seconds": 10}}']) from None
        return {"seconds": data["seconds"]}

    @app.get("/_emulator/rate_limit")
    async def rate_limit() -> Json:
        return emu.rate_limit_stats()

    @app.post("/_emulator/rate_limit")
    async def set_rate_limit(request: Request) -> Json:
        data = await body(request)
        if not isinstance(data, dict) or set(data) - {"per_second", "burst"}:
            raise JiraError(400, ["Invalid rate limit: expected an object with per_second and burst."])
        try:
            emu.set_rate_limit(data.get("per_second"), data.get("burst"))
        except (TypeError, ValueError) as err:
            raise JiraError(400, [f"Invalid rate limit: {err}"]) from None
        return emu.rate_limit_stats()

    @app.get("/_emulator/issues")
    async def all_issues() -> list[Json]:
        return emu.issues()

    @app.get("/_emulator/requests")
    async def request_log() -> list[Json]:
        return emu.requests()

    @app.post("/_emulator/webhooks")
    async def add_webhook(request: Request) -> Json:
        data = await body(request)
        if not isinstance(data, dict) or set(data) - {"url", "secret", "events"}:
            raise JiraError(400, ["Invalid webhook: expected an object with url, secret, events."])
        try:
            events = data.get("events")
            if events is not None and not isinstance(events, list):
                raise ValueError("events must be a list")
            return {"id": emu.add_webhook(data.get("url", ""), secret=data.get("secret"), events=events)}
        except (TypeError, ValueError) as err:
            raise JiraError(400, [f"Invalid webhook: {err}"]) from None

    @app.get("/_emulator/webhooks")
    async def list_webhooks() -> list[Json]:
        return emu.webhooks()

    @app.delete("/_emulator/webhooks/{webhook_id}")
    async def remove_webhook(webhook_id: str) -> Json:
        if not emu.remove_webhook(webhook_id):
            raise JiraError(404, [f"No webhook with id '{webhook_id}'."])
        return {"ok": True}

    @app.get("/_emulator/deliveries")
    async def delivery_log() -> list[Json]:
        return emu.deliveries()

    @app.post("/_emulator/reset")
    async def reset() -> Json:
        emu.reset()
        return {"ok": True}

    return app


async def _nothing() -> Any:
    return
    yield  # an empty async generator
