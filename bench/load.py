"""Payloads and the HTTP client side: a closed loop of N requests over C connections, one request at a time, and
a steady-rate sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.procs import machine_busy_seconds

PATH = "/alerts/alertmanager"
NO_ANSWER = 0  # the status recorded for a post whose connection failed before an answer came
REPORTS_PATH = "/reports"
REPORT_CATEGORIES = ("billing", "crash", "login", "other")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def report_payload(index: int) -> dict[str, Any]:
    """A customer's report as an app sends it (README "Customer reports"): no attachments, a few metadata."""
    return {
        "subject": f"Checkout fails after the update (order {10_000 + index})",
        "description": "Tapping Pay shows a spinner that never ends; the card was not charged. Tried twice, "
        "same result on Wi-Fi and on mobile data.",
        "category": REPORT_CATEGORIES[index % len(REPORT_CATEGORIES)],
        "app": {"name": "Shop", "version": "4.2.0", "platform": ("ios", "android", "web")[index % 3]},
        "metadata": {"device": "iPhone 15", "locale": "en_GB", "build": 4200 + index % 7, "beta": False},
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _client(url: str, token: str | None, connections: int) -> httpx.AsyncClient:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120)


@dataclass(frozen=True)
class Post:
    """A body with headers of its own (a customer report's X-Session-Id and Idempotency-Key)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def header_lines(self) -> bytes:
        return "".join(f"{name}: {value}\r\n" for name, value in self.headers.items()).encode()


def _split(item: bytes | Post) -> tuple[bytes, bytes]:
    """(header lines, body) of a plain body or a Post."""
    return (item.header_lines(), item.body) if isinstance(item, Post) else (b"", item)


@dataclass
class ClosedLoopResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    client_cpu_seconds: float
    server_cpu_seconds: float | None
    machine_busy_seconds: float
    statuses: dict[int, int] = field(default_factory=dict)


async def closed_loop(
    url: str,
    token: str | None,
    bodies: Sequence[bytes | Post],
    connections: int,
    warmup: Sequence[bytes | Post] = (),
    server_cpu: Callable[[], float | None] = lambda: None,
    *,
    path: str = PATH,
    expect: int = 202,
) -> ClosedLoopResult:
    """POST every body once to ``path``, ``connections`` at a time (each connection sends its next as soon as it
    has an answer). ``warmup`` bodies go first, untimed, over the same connections. Any answer but ``expect`` is
    an error."""
    async with _client(url, token, connections) as client:

        async def drain(items: Sequence[bytes | Post], latencies: list[float], statuses: dict[int, int]) -> None:
            it = iter(items)

            async def one_connection() -> None:
                for item in it:
                    body, headers = (item.body, item.headers) if isinstance(item, Post) else (item, {})
                    start = time.perf_counter()
                    answer = await client.post(path, content=body, headers=headers)
                    latencies.append(time.perf_counter() - start)
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

            await asyncio.gather(*(one_connection() for _ in range(connections)))

        await drain(warmup, [], {})
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        cpu0, server0, busy0 = time.process_time(), server_cpu(), machine_busy_seconds()
        start = time.perf_counter()
        await drain(bodies, latencies, statuses)
        seconds = time.perf_counter() - start
        cpu1, server1, busy1 = time.process_time(), server_cpu(), machine_busy_seconds()
    return ClosedLoopResult(
        requests=len(bodies),
        errors=sum(n for status, n in statuses.items() if status != expect),
        seconds=seconds,
        latencies=latencies,
        client_cpu_seconds=cpu1 - cpu0,
        server_cpu_seconds=(server1 - server0) if server0 is not None and server1 is not None else None,
        machine_busy_seconds=busy1 - busy0,
        statuses=statuses,
    )


class RawConnection:
    """A keep-alive HTTP/1.1 connection that sends a prebuilt request in one write and reads a
    Content-Length response: next to no client CPU, so the server is what gets measured. ``head`` is the
    request line and the headers every request has, each line ending in CRLF."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.reader, self.writer

    async def post(self, body: bytes, headers: bytes = b"") -> int:
        """``headers``: this request's own header lines, each ending in CRLF."""
        return (await self.post_answer(body, headers))[0]

    async def post_answer(self, body: bytes, headers: bytes = b"") -> tuple[int, bytes]:
        """``post``, and the answer's body too."""
        reader, writer = await self._connect()
        writer.write(self.head + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            raise RuntimeError(f"response without Content-Length: {head!r}")
        answer = await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        self.reader = self.writer = None


def _raw_pool(url: str, token: str | None, path: str, connections: int) -> list[RawConnection]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}".encode()
    return [RawConnection(host, port, head) for _ in range(connections)]


async def raw_closed_loop(
    url: str,
    token: str | None,
    bodies: Sequence[bytes | Post],
    connections: int,
    warmup: Sequence[bytes | Post] = (),
    server_cpu: Callable[[], float | None] = lambda: None,
    *,
    path: str = PATH,
    expect: int = 202,
) -> ClosedLoopResult:
    """``closed_loop`` with ``RawConnection``s instead of httpx; any other ``path``, bodies with headers of their
    own (``Post``), and any answer but ``expect`` counted as an error."""
    pool = _raw_pool(url, token, path, connections)

    async def drain(items: Sequence[bytes | Post], latencies: list[float], statuses: dict[int, int]) -> None:
        it = iter(items)

        async def one_connection(conn: RawConnection) -> None:
            for item in it:
                headers, body = _split(item)
                start = time.perf_counter()
                try:
                    status = await conn.post(body, headers)
                except (OSError, asyncio.IncompleteReadError) as exc:  # no answer: counted as status 0, not sent again
                    await conn.close()
                    statuses[NO_ANSWER] = statuses.get(NO_ANSWER, 0) + 1
                    print(f"bench: a post got no answer: {type(exc).__name__}", file=sys.stderr)
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one_connection(conn) for conn in pool))

    try:
        await drain(warmup, [], {})
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        cpu0, server0, busy0 = time.process_time(), server_cpu(), machine_busy_seconds()
        start = time.perf_counter()
        await drain(bodies, latencies, statuses)
        seconds = time.perf_counter() - start
        cpu1, server1, busy1 = time.process_time(), server_cpu(), machine_busy_seconds()
    finally:
        for conn in pool:
            await conn.close()
    return ClosedLoopResult(
        requests=len(bodies),
        errors=sum(n for status, n in statuses.items() if status != expect),
        seconds=seconds,
        latencies=latencies,
        client_cpu_seconds=cpu1 - cpu0,
        server_cpu_seconds=(server1 - server0) if server0 is not None and server1 is not None else None,
        machine_busy_seconds=busy1 - busy0,
        statuses=statuses,
    )


async def one_by_one(
    url: str, token: str | None, items: Sequence[bytes | Post], path: str = PATH
) -> list[tuple[int, float]]:
    """POST each item in turn over one keep-alive connection, nothing else in flight: (status, seconds) of each,
    in order."""
    (conn,) = _raw_pool(url, token, path, 1)
    answers = []
    try:
        for item in items:
            headers, body = _split(item)
            start = time.perf_counter()
            status = await conn.post(body, headers)
            answers.append((status, time.perf_counter() - start))
    finally:
        await conn.close()
    return answers


@dataclass
class Ack:
    index: int
    sent_at: float  # wall clock (time.time), comparable with the emulator's timestamps
    acked_at: float
    status: int
    dedup_key: str | None


def _alert_key(answer: dict[str, Any]) -> str | None:
    key = answer.get("dedup_key")
    return key if isinstance(key, str) else None


async def steady(
    url: str,
    token: str | None,
    bodies: Sequence[bytes | Post],
    rate: float,
    connections: int = 16,
    *,
    path: str = PATH,
    expect: int = 202,
    dedup_key: Callable[[dict[str, Any]], str | None] = _alert_key,
) -> list[Ack]:
    """POST body i at start + i/rate (open loop: a slow answer does not delay the next send). An ``expect``
    answer's ticket is named by ``dedup_key`` of its JSON body."""
    acks: list[Ack] = []
    async with _client(url, token, connections) as client:

        async def send(index: int, item: bytes | Post) -> None:
            body, headers = (item.body, item.headers) if isinstance(item, Post) else (item, {})
            sent = time.time()
            answer = await client.post(path, content=body, headers=headers)
            acked = time.time()
            key = dedup_key(answer.json()) if answer.status_code == expect else None
            acks.append(Ack(index, sent, acked, answer.status_code, key))

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for index, body in enumerate(bodies):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(index, body)))
        await asyncio.gather(*tasks)
    return sorted(acks, key=lambda a: a.index)


# ---- storms: every post's answer kept, a connection error counted (never retried) ----------------------------
ANSWER_TIMEOUT = 120.0  # seconds a post may wait for its answer before it counts as unanswered
IDLE_CLOSE = 2.0  # the open loop closes a connection idle this long (uvicorn closes idle ones after 5 s)


@dataclass
class Answer:
    """What became of one post of a storm."""

    index: int
    due_at: float  # wall clock (time.time) when it was meant to go
    sent_at: float  # when it was written
    acked_at: float | None  # when its answer was read; None: no answer
    status: int | None  # None: no answer (see error)
    error: str | None = None  # the exception that ended it: ConnectionResetError, IncompleteReadError, ...
    body: bytes = b""

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body) if self.body else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


async def _one(conn: RawConnection, index: int, due: float, body: bytes) -> Answer:
    """Send one post; an error or a timeout closes the connection (the next post opens a new one) and is kept
    as the post's answer: the post is not sent again."""
    sent = time.time()
    try:
        status, answer = await asyncio.wait_for(conn.post_answer(body), ANSWER_TIMEOUT)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, RuntimeError) as exc:
        await conn.close()
        return Answer(index, due, sent, None, None, type(exc).__name__)
    return Answer(index, due, sent, time.time(), status, None, answer)


async def storm_closed_loop(url: str, token: str | None, bodies: Sequence[bytes], connections: int) -> list[Answer]:
    """Every body POSTed once, ``connections`` keep-alive connections each sending its next as soon as it has an
    answer (as fast as the server takes them); answers in order of the bodies."""
    pool = _raw_pool(url, token, PATH, connections)
    answers: list[Answer] = []
    it = iter(enumerate(bodies))

    async def one_connection(conn: RawConnection) -> None:
        for index, body in it:
            answers.append(await _one(conn, index, time.time(), body))

    try:
        await asyncio.gather(*(one_connection(conn) for conn in pool))
    finally:
        for conn in pool:
            await conn.close()
    return sorted(answers, key=lambda a: a.index)


async def storm_open_loop(
    url: str, token: str | None, bodies: Sequence[bytes], rate: float, max_connections: int = 256
) -> list[Answer]:
    """Body i POSTed at start + i/rate whatever the answers before it (open loop), each on an idle keep-alive
    connection (the most recently used; a new one when none is idle, at most ``max_connections`` in flight: past
    that a post waits, and its ``sent_at`` shows how late it went)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    (template,) = _raw_pool(url, token, PATH, 1)
    idle: list[tuple[RawConnection, float]] = []
    slots = asyncio.Semaphore(max_connections)
    answers: list[Answer] = []
    opened: list[RawConnection] = []

    def connection() -> RawConnection:
        now = time.monotonic()
        while idle:
            conn, since = idle.pop()
            if now - since < IDLE_CLOSE:
                return conn
            opened.append(conn)  # closed at the end; never used again
        conn = RawConnection(host, port, template.head)
        opened.append(conn)
        return conn

    async def send(index: int, due: float, body: bytes) -> None:
        async with slots:
            conn = connection()
            answer = await _one(conn, index, due, body)
            answers.append(answer)
            if answer.status is not None and conn.writer is not None:
                idle.append((conn, time.monotonic()))

    loop = asyncio.get_running_loop()
    start, wall = loop.time(), time.time()
    tasks = []
    try:
        for index, body in enumerate(bodies):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(index, wall + index / rate, body)))
        await asyncio.gather(*tasks)
    finally:
        for conn in opened:
            await conn.close()
    return sorted(answers, key=lambda a: a.index)
