"""A `triage-bot worker` running apart from `serve` (its own container or host) answers for itself here: GET
/metrics (Prometheus text: its jobs, outside calls, 429s and pauses; the bearer token is serve's metrics token) and
GET /healthz (its worker threads alive). The standard library's HTTP server in one thread: a worker loads no web
framework, and a scrape every few seconds is all this ever serves."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("triage.exporter")

MAX_HEADER_BYTES = 8192


class Exporter:
    def __init__(
        self, host: str, port: int, token: str, healthy: Callable[[], bool], registry: CollectorRegistry
    ) -> None:
        handler = type("Handler", (_Handler,), {"token": token, "healthy": staticmethod(healthy), "registry": registry})
        self._server = ThreadingHTTPServer((host, port), handler)  # OSError when the port is taken
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    token: str
    healthy: Callable[[], bool]
    registry: CollectorRegistry
    server_version = "triage-bot-worker"
    sys_version = ""

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

    def do_POST(self) -> None:
        self._json(405, {"error": "method_not_allowed", "detail": "only GET"}, {"Allow": "GET"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, presented = header.partition(" ")
        if not header:
            problem = "send Authorization: Bearer <TRIAGE_METRICS_TOKEN, or else TRIAGE_WEBHOOK_TOKEN>"
        elif scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode("utf-8", "surrogateescape"), self.token.encode()
        ):
            return True
        else:
            problem = "the token is not valid"
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
