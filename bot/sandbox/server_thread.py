"""Run an ASGI app with uvicorn in a background thread (tests and the sandbox CLI)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class ServerThread:
    """Serve ``app`` on ``host:port`` (a free port when ``port`` is 0 or None) from a daemon thread.

    ``start()`` returns once the server accepts connections; use as a context manager or call
    ``stop()``. The socket is bound before the thread starts, so ``url`` is valid right away.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
        **uvicorn_options: Any,
    ) -> None:
        self.app, self.host, self.startup_timeout = app, host, startup_timeout
        options: dict[str, Any] = {"ws": "none", "lifespan": "auto", "timeout_graceful_shutdown": 2}
        self._config = uvicorn.Config(app, host=host, port=port or 0, log_level=log_level, **options | uvicorn_options)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port = port or 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        return f"http://{self.host}:{self._port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        self._socket, self._port = sock, sock.getsockname()[1]
        server = self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not (server.started and self._answers()):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on {self.url} did not start within {self.startup_timeout}s")
            time.sleep(0.01)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self._port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
