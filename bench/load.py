"""Payloads and the HTTP client side: a closed loop of N requests over C connections, and a steady-rate sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.procs import machine_busy_seconds

PATH = "/alerts/alertmanager"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


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
    bodies: Sequence[bytes],
    connections: int,
    warmup: Sequence[bytes] = (),
    server_cpu: Callable[[], float | None] = lambda: None,
) -> ClosedLoopResult:
    """POST every body once, ``connections`` at a time (each connection sends its next as soon as it has an
    answer). ``warmup`` bodies go first, untimed, over the same connections."""
    async with _client(url, token, connections) as client:

        async def drain(items: Sequence[bytes], latencies: list[float], statuses: dict[int, int]) -> None:
            it = iter(items)

            async def one_connection() -> None:
                for body in it:
                    start = time.perf_counter()
                    answer = await client.post(PATH, content=body)
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
        errors=sum(n for status, n in statuses.items() if status != 202),
        seconds=seconds,
        latencies=latencies,
        client_cpu_seconds=cpu1 - cpu0,
        server_cpu_seconds=(server1 - server0) if server0 is not None and server1 is not None else None,
        machine_busy_seconds=busy1 - busy0,
        statuses=statuses,
    )


class RawConnection:
    """A keep-alive HTTP/1.1 connection that sends a prebuilt request in one write and reads a
    Content-Length response: next to no client CPU, so the server is what gets measured."""

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

    async def post(self, body: bytes) -> int:
        reader, writer = await self._connect()
        writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            raise RuntimeError(f"response without Content-Length: {head!r}")
        await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        self.reader = self.writer = None


async def raw_closed_loop(
    url: str,
    token: str | None,
    bodies: Sequence[bytes],
    connections: int,
    warmup: Sequence[bytes] = (),
    server_cpu: Callable[[], float | None] = lambda: None,
) -> ClosedLoopResult:
    """``closed_loop`` with ``RawConnection``s instead of httpx."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}Content-Length: "
    ).encode()
    pool = [RawConnection(host, port, head) for _ in range(connections)]

    async def drain(items: Sequence[bytes], latencies: list[float], statuses: dict[int, int]) -> None:
        it = iter(items)

        async def one_connection(conn: RawConnection) -> None:
            for body in it:
                start = time.perf_counter()
                status = await conn.post(body)
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
        errors=sum(n for status, n in statuses.items() if status != 202),
        seconds=seconds,
        latencies=latencies,
        client_cpu_seconds=cpu1 - cpu0,
        server_cpu_seconds=(server1 - server0) if server0 is not None and server1 is not None else None,
        machine_busy_seconds=busy1 - busy0,
        statuses=statuses,
    )


@dataclass
class Ack:
    index: int
    sent_at: float  # wall clock (time.time), comparable with the emulator's timestamps
    acked_at: float
    status: int
    dedup_key: str | None


async def steady(url: str, token: str, bodies: Sequence[bytes], rate: float, connections: int = 16) -> list[Ack]:
    """POST body i at start + i/rate (open loop: a slow answer does not delay the next send)."""
    acks: list[Ack] = []
    async with _client(url, token, connections) as client:

        async def send(index: int, body: bytes) -> None:
            sent = time.time()
            answer = await client.post(PATH, content=body)
            acked = time.time()
            key = answer.json().get("dedup_key") if answer.status_code == 202 else None
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
