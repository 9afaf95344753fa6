"""Idle keep-alive connections: the server must not be the side that closes them first.

A client (Alertmanager's, or a load balancer's connection pool) that sends a request on an idle connection just
as the server closes it gets a connection reset and no answer. uvicorn's own default closes idle connections
after 5 s, less than every proxy and pool in front of it keeps them (nginx and AWS ALB: 60 s); a storm over 16
keep-alive connections lost a post that way. TRIAGE_HTTP_KEEP_ALIVE_SECONDS (default 75) holds them longer.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload


def _post(sock: socket.socket, name: str) -> int:
    """Send an alert on ``sock`` and read the answer's status; 0 when the connection gives no answer."""
    body = json.dumps(alertmanager_payload(name)).encode()
    head = (
        f"POST /alerts/alertmanager HTTP/1.1\r\nHost: bot\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                return 0  # closed by the server: no answer
            answer += chunk
    except (ConnectionResetError, BrokenPipeError):
        return 0
    headers = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    length = next(int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:"))
    rest = answer.split(b"\r\n\r\n", 1)[1]
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(headers[0].split()[1])


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_an_idle_keep_alive_connection_outlives_uvicorns_old_five_seconds(make_bot: Any) -> None:
    bot: BotProcess = make_bot(TRIAGE_WORKERS="0")
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as sock:
        assert _post(sock, "first") == 202
        time.sleep(6.5)  # idle past uvicorn's default of 5 s, as a pooled connection is between two storms
        assert _post(sock, "second") == 202  # the same connection: before, no answer (closed, or reset)


def test_the_server_closes_idle_connections_after_the_setting(make_bot: Any) -> None:
    bot: BotProcess = make_bot(TRIAGE_WORKERS="0", TRIAGE_HTTP_KEEP_ALIVE_SECONDS="1")
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as sock:
        assert _post(sock, "first") == 202
        assert _closed_by_server(sock, within=5.0)
