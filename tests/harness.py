"""Test harness: databases, the bot as a real process, waiting for conditions. No project code is mocked."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from sqlalchemy import text as sa_text

from bot.sandbox.samples import alertmanager_payload as alertmanager_payload  # re-exported for the tests

PG_HOST = os.environ.get("TRIAGE_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_DSN = f"host={PG_HOST} port=5432 user=postgres dbname=postgres"
WEBHOOK_TOKEN = "test-webhook-token-0123456789"
SLACK_TOKEN = "xoxb-sandbox"
SLACK_SECRET = "sandbox-signing-secret"
JIRA_USER, JIRA_TOKEN = "sandbox@example.com", "sandbox-token"

T = TypeVar("T")


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `triage-bot` command as a subprocess, with none of this process's TRIAGE_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class BotProcess:
    """`triage-bot serve` (or `worker`) as a real process, configured only through its environment."""

    env: dict[str, str]
    log_path: Path
    command: tuple[str, ...] = ("serve",)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path | None = None  # where it runs (the sandbox's var/sandbox.db is relative to it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> BotProcess:
        env = {**os.environ, **self.env, "TRIAGE_PORT": str(self.port)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *self.command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.cwd,
        )
        if wait and self.command[0] == "serve":
            wait_until(self._ready, timeout=30, interval=0.1, what=f"bot at {self.url} (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, token: str | None = WEBHOOK_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def bot_env(database_url: str, jira_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    env = {
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_AUTO_MIGRATE": "true",
        "TRIAGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TRIAGE_JIRA_URL": jira_url,
        "TRIAGE_JIRA_USER": JIRA_USER,
        "TRIAGE_JIRA_TOKEN": JIRA_TOKEN,
        "TRIAGE_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "TRIAGE_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "TRIAGE_SLACK_API_URL": slack_url,
        "TRIAGE_PUBLIC_URL": "http://127.0.0.1:9",
        "TRIAGE_JOB_LEASE_SECONDS": "5",
        "TRIAGE_JOB_POLL_SECONDS": "0.05",
        "TRIAGE_JIRA_SEARCH_SETTLE_SECONDS": "1",
        "TRIAGE_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def table_counts(engine: Any) -> dict[str, int]:
    """Rows in every table of the bot's schema, and the highest id of those that have one: what "changes nothing"
    is checked against. ``engine``: a SQLAlchemy engine on the bot's database (kept open by the caller)."""
    from bot.db.models import SQLModel

    counted: dict[str, int] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            counted[table.name] = int(conn.execute(sa_text(f"SELECT count(*) FROM {table.name}")).scalar_one())
            if "id" in table.c:
                top = conn.execute(sa_text(f"SELECT max(id) FROM {table.name}")).scalar()
                counted[f"{table.name}.max_id"] = int(top or 0)
    return counted


class TcpProxy:
    """A TCP proxy on a free port in front of one or more backends (ports on 127.0.0.1). Each new connection goes
    to the next backend in turn (round robin) and, when that one refuses it, to the next one that accepts: a
    load balancer failing traffic over. ``refuse()`` closes the listening socket, so that clients get "connection
    refused" as from a server that is down; ``accept()`` listens again on the same port."""

    def __init__(self, *backends: int) -> None:
        self.backends = list(backends)
        self.port = free_port()
        self.connections: dict[int, int] = {b: 0 for b in backends}  # backend -> connections it took
        self._turn = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TcpProxy:
        self.accept()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refuse(cut=True)

    def accept(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def refuse(self, cut: bool = False) -> None:
        """Stop listening (new connections are refused); ``cut``: reset the open ones too."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if cut:
            with self._lock:
                for sock in list(self._open):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe_to_backend, args=(client,), daemon=True).start()

    def _pipe_to_backend(self, client: socket.socket) -> None:
        with self._lock:
            order = [self.backends[(self._turn + i) % len(self.backends)] for i in range(len(self.backends))]
            self._turn += 1
        for backend in order:
            try:
                upstream = socket.create_connection(("127.0.0.1", backend), timeout=2)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections[backend] += 1
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._copy, args=(source, sink), daemon=True).start()
            return
        client.close()  # no backend took it: the client sees its connection closed

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open -= {source, sink}


class PrivatePostgres:
    """A PostgreSQL server of its own (Debian's binaries, a cluster in a temporary folder, a free port), for the
    scenario that restarts PostgreSQL mid-storm without touching the one every other test shares. ``restart()``
    stops it (fast: every connection cut) and starts it again after ``down_seconds``; it is always stopped at the
    end, even when the test fails."""

    def __init__(self, folder: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
        self.bin = bins[-1].parent
        self.folder, self.data = folder, folder / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None  # initdb and postgres refuse to run as root

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def __enter__(self) -> PrivatePostgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.user:
            subprocess.run(["chown", "-R", self.user, str(self.folder)], check=True)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()
