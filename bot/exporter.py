"""A `triage-bot worker` running apart from `serve` (its own container or host) answers for itself here: GET
/metrics (Prometheus text: its jobs, outside calls, 429s and pauses; the token is serve's metrics token, as a bearer
token or the password of basic auth) and GET /healthz (its worker threads alive). The standard library's HTTP
server: a worker loads no web framework, and a scrape every few seconds is all this ever serves. Connections are
few (CONNECTIONS at once; more are closed at once) and short (a client silent for TIMEOUT_SECONDS is dropped)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bot.credentials import presented_secret, token_matches

log = logging.getLogger("triage.exporter")

CONNECTIONS = 16
TIMEOUT_SECONDS = 10.0


class Exporter:
    def __init__(
        self, host: str, port: int, token: str, healthy: Callable[[], bool], registry: CollectorRegistry
    ) -> None:
        handler = type("Handler", (_Handler,), {"token": token, "healthy": staticmethod(healthy), "registry": registry})
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler)  # OSError when the port is taken
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # as many connections as it serves are open already
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("exporter connection failed", exc_info=True)  # a scraper that hung up: nothing to report


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    token: str
    healthy: Callable[[], bool]
    registry: CollectorRegistry
    timeout = TIMEOUT_SECONDS
    server_version = "triage-bot-worker"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        path = urlsplit(self.path).path  # a query string (?name[]=... from a scrape config) is ignored
        if path == "/healthz":
            if self.healthy():
                self._json(200, {"status": "ok"})
            else:
                self._json(503, {"status": "unhealthy", "detail": "a worker thread has stopped"})
        elif path == "/metrics":
            if self._authorized():
                self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": "not_found", "detail": "this worker serves GET /metrics and GET /healthz"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._json(405, {"error": "method_not_allowed", "detail": "only GET"}, {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The errors the standard library answers itself (a bad request line, headers too long, an unknown
        method) as JSON too, like every other answer of the bot's."""
        self.close_connection = True
        detail = message or self.responses.get(code, ("",))[0]  # e.g. "Request-URI Too Long"
        self._json(code, {"error": "bad_request" if code < 500 else "not_implemented", "detail": detail})

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        presented = presented_secret(header) if header else None
        if presented is not None and token_matches(presented, self.token):
            return True
        problem = (
            "the token is not valid"
            if header
            else "send Authorization: Bearer <TRIAGE_METRICS_TOKEN, or else TRIAGE_WEBHOOK_TOKEN>"
        )
        self._json(401, {"error": "unauthorized", "detail": problem}, {"WWW-Authenticate": 'Bearer realm="triage-bot"'})
        return False

    def _json(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("exporter request: " + format, *args)  # no request line at INFO: Prometheus scrapes all day
