"""Who is reporting: a customer's session id checked with the apps' identity service.

The check is OAuth 2.0 Token Introspection (RFC 7662): ``POST`` the session id as ``token`` to the
introspection endpoint, authenticated with the bot's own bearer token, and read ``active``, ``sub``,
``email``, ``scope`` and ``exp`` from the answer (:class:`IntrospectionAnswer`). Three outcomes, three
exceptions, three HTTP answers:

- :class:`SessionRefused` (401): the service says the session is not active (or it is unusable: malformed,
  expired, no subject). That is an answer, so it is cached briefly like a success.
- :class:`ScopeMissing` (403): an active session without the scope reports need.
- :class:`IdentityUnavailable` (503 with ``Retry-After``): no usable answer at all (no answer, an error status,
  or a body that is not an RFC 7662 answer: not a JSON object, or no boolean ``active``). Never cached: a
  failure is neither a success nor a refusal, and the next request asks again.

There is no retry here: the app's backend retries after ``Retry-After``, which is the one retry layer for
this call. Session ids and the bot's token never appear in messages, logs or cache keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, ValidationError

from bot.jobs.retry import parse_retry_after
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 5  # seconds, when the service gives no Retry-After of its own
MAX_SESSION_ID = 4096
CACHE_ENTRIES = 10_000
# A refusal is cached for less time than a success: a session the service has only just issued may not have
# reached every one of its replicas, and the customer should not be locked out for long by that.
REFUSAL_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Customer:
    sub: str  # the identity service's stable customer id
    email: str | None
    scopes: frozenset[str]


class SessionError(Exception):
    """Base of the session check's errors."""


class SessionRefused(SessionError):
    """The session is not usable (inactive, unknown, expired or malformed): answer 401."""


class ScopeMissing(SessionError):
    """The session is active but lacks a scope it needs: answer 403."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"the session lacks the scope {scope!r}")
        self.scope = scope


class IdentityUnavailable(SessionError):
    """No usable answer from the identity service: answer 503 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Answer:
    """What the service said about one session: a customer, or why the session is refused."""

    customer: Customer | None
    refusal: str = ""


def session_key(session_id: str) -> str:
    """The cache key of a session: a SHA-256 of its id, so that no raw session id is kept in memory longer
    than its request."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def check_session_id(session_id: str) -> None:
    """Refuse, without asking anyone, what cannot be a session id: empty, over-long, or anything but
    printable ASCII without spaces (RFC 6750's token characters are a subset)."""
    if not session_id:
        raise SessionRefused("no session id was given")
    if len(session_id) > MAX_SESSION_ID:
        raise SessionRefused(f"the session id is longer than {MAX_SESSION_ID} characters")
    if not all("\x21" <= c <= "\x7e" for c in session_id):
        raise SessionRefused("the session id may only hold printable ASCII characters without spaces")


class SessionVerifier:
    """Checks session ids with the identity service; one per process, closed with :meth:`aclose`.

    Built and used on one event loop (the HTTP client's connections and the in-flight requests belong to it).
    """

    def __init__(self, settings: Settings, *, cache_entries: int = CACHE_ENTRIES) -> None:
        identity = settings.effective_identity()
        if identity is None:
            raise ValueError(
                "reports are off: set TRIAGE_SESSION_INTROSPECTION_URL and TRIAGE_SESSION_INTROSPECTION_TOKEN"
            )
        self.url, token = identity
        self.required_scopes = frozenset(settings.session_scope.split())
        self.cache_seconds = settings.session_cache_seconds
        self.timeout = settings.session_timeout
        self.cache_entries = cache_entries
        self._cache: OrderedDict[str, tuple[float, _Answer]] = OrderedDict()  # key -> (monotonic expiry, answer)
        self._inflight: dict[str, asyncio.Task[_Answer]] = {}
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(settings.session_timeout),
            transport=httpx.AsyncHTTPTransport(retries=0),  # the app's caller retries, after Retry-After
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self._client.aclose()

    async def verify(self, session_id: str, *, scopes: frozenset[str] | None = None) -> Customer:
        """The customer behind ``session_id``; raises SessionRefused, ScopeMissing or IdentityUnavailable.
        ``scopes``: the scopes needed instead of TRIAGE_SESSION_SCOPE's (empty: any active session)."""
        check_session_id(session_id)
        key = session_key(session_id)
        answer = self._cached(key)
        if answer is None:
            answer = await self._ask_once(key, session_id)
        if answer.customer is None:
            raise SessionRefused(answer.refusal)
        missing = (self.required_scopes if scopes is None else scopes) - answer.customer.scopes
        if missing:
            raise ScopeMissing(" ".join(sorted(missing)))
        return answer.customer

    def _cached(self, key: str) -> _Answer | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if time.monotonic() >= expires:
            del self._cache[key]
            return None
        return answer

    def _remember(self, key: str, answer: _Answer, exp: float | None) -> None:
        seconds = self.cache_seconds if answer.customer else min(self.cache_seconds, REFUSAL_CACHE_SECONDS)
        if exp is not None:
            seconds = min(seconds, exp - time.time())  # never trust a session past its expiry
        if seconds <= 0:
            return
        self._cache[key] = (time.monotonic() + seconds, answer)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    async def _ask_once(self, key: str, session_id: str) -> _Answer:
        """One request per uncached session at a time: concurrent verifies of it wait for the same answer."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._introspect(key, session_id))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: a caller that gives up (its client went away) must not cancel the others' request
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[_Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waited for is not reported as lost

    async def _introspect(self, key: str, session_id: str) -> _Answer:
        try:
            async with asyncio.timeout(self.timeout):  # a budget for the whole call, not per phase
                response = await self._client.post(
                    self.url, data={"token": session_id, "token_type_hint": "access_token"}
                )
        except (TimeoutError, httpx.TimeoutException):
            raise self._unavailable(f"the identity service did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"the identity service is unreachable ({type(exc).__name__})") from None
        status = response.status_code
        if status in (401, 403):
            raise self._unavailable(
                f"the identity service refused the bot's credentials (HTTP {status}): "
                "check TRIAGE_SESSION_INTROSPECTION_TOKEN",
                response,
            )
        if status == 429 or status >= 500:
            raise self._unavailable(f"the identity service is unavailable (HTTP {status})", response)
        if status != 200:
            raise self._unavailable(f"the identity service answered HTTP {status} to an introspection request")
        try:
            answer, exp = _read(response.content)
        except _NotAnAnswer as exc:
            raise self._unavailable(str(exc)) from None
        self._remember(key, answer, exp)
        return answer

    def _unavailable(self, message: str, response: httpx.Response | None = None) -> IdentityUnavailable:
        seconds = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        retry_after = DEFAULT_RETRY_AFTER if seconds is None else max(1, math.ceil(seconds))
        log.warning("session check failed: %s", message, extra={"retry_after": retry_after})
        return IdentityUnavailable(message, retry_after)


def _epoch(value: object) -> float | None:
    """Seconds since the epoch: a finite JSON number (RFC 7662 says an integer; a fraction is read too)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _scopes(value: object) -> frozenset[str]:
    """RFC 7662's space-separated ``scope``; some services answer a JSON array, read as well."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


def _email(value: object) -> str | None:
    """The address as given, or None when there is none fit to write in a mail header."""
    if not isinstance(value, str) or "@" not in value or len(value) > 320:
        return None
    if any(c.isspace() or not c.isprintable() for c in value):
        return None
    return value


class IntrospectionAnswer(BaseModel):
    """An RFC 7662 §2.2 answer. ``active`` is its one required member and must be a JSON boolean; a body
    without one is no answer (the service is failing). The other members are read as leniently as services
    write them: what is unusable reads as None (an ``exp`` given but unreadable is still in
    ``model_fields_set``), and the session is then refused for what it lacks."""

    model_config = ConfigDict(extra="allow", frozen=True)

    active: StrictBool
    sub: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    email: Annotated[str | None, BeforeValidator(_email)] = None
    scope: Annotated[frozenset[str], BeforeValidator(_scopes)] = frozenset()
    exp: Annotated[float | None, BeforeValidator(_epoch)] = None
    nbf: Annotated[float | None, BeforeValidator(_epoch)] = None
    iat: Annotated[float | None, BeforeValidator(_epoch)] = None
    client_id: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    username: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    token_type: Annotated[str | None, BeforeValidator(_text_or_none)] = None


class _NotAnAnswer(Exception):
    """The identity service's body is not an RFC 7662 answer: the service is failing."""


def _read(body: bytes) -> tuple[_Answer, float | None]:
    """An RFC 7662 answer as (answer, exp in epoch seconds or None); _NotAnAnswer if it is none."""
    try:
        said = IntrospectionAnswer.model_validate_json(body)
    except ValidationError as exc:  # the messages never echo the body
        if any(error["loc"] == () for error in exc.errors()):
            raise _NotAnAnswer("the identity service's answer is not a JSON object") from None
        raise _NotAnAnswer("the identity service's answer has no boolean 'active'") from None
    if not said.active:
        return _Answer(None, "the session is not active"), None
    if said.exp is None and "exp" in said.model_fields_set:
        return _Answer(None, "the identity service gave the session an unreadable expiry"), None
    now = time.time()
    if said.exp is not None and said.exp <= now:
        return _Answer(None, "the session has expired"), None
    if said.nbf is not None and said.nbf > now:
        return _Answer(None, "the session is not valid yet"), None
    if said.sub is None or not said.sub.strip():
        return _Answer(None, "the identity service names no customer for the session"), None
    return _Answer(Customer(sub=said.sub, email=said.email, scopes=said.scope)), said.exp
