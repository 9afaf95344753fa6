"""Server processes (the bot, the bare baseline) in their own process groups, their /proc figures, and
throw-away PostgreSQL databases. Everything started here is stopped by ``stop()`` / the context managers."""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent  # so that `-m bench.bare_app` resolves


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the highest resident set size the process has had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    """VmRSS: the resident set size the process has now."""
    kib = _status_kib(pid, "VmRSS")
    return kib * 1024 if kib is not None else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> list[int]:
    """``root`` and every living process descended from it, or in its process group or session (a child that
    was re-parented to init after its parent died is still found by its group)."""
    parents: dict[int, int] = {}
    group: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":  # gone, or a zombie (its memory is already freed)
            continue
        pid, ppid, pgrp, session = int(entry.name), int(fields[1]), int(fields[2]), int(fields[3])
        parents[pid] = ppid
        if pgrp == root or session == root:
            group.add(pid)
    tree = {root} if root in parents else set()
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sorted(tree | group)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _pss_kib(pid: int) -> int | None:
    """Pss: the process's resident memory with each shared page divided among the processes sharing it."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """Samples the memory of whole process trees (a bot and all its processes) from a thread, every
    ``interval`` seconds, until ``stop()``: each process's peak (VmHWM, the kernel's own high-water mark, read at
    every sample, so a process that exits between samples keeps the peak it had at the last one) and the highest
    sum of VmRSS over all of them at one moment."""

    def __init__(self, roots: list[int], interval: float = 0.25) -> None:
        self.roots, self.interval = list(roots), interval
        self.peaks: dict[int, int] = {}
        self.commands: dict[int, str] = {}
        self.max_total_rss = 0
        self.max_total_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def add_root(self, pid: int) -> None:
        self.roots.append(pid)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        total = pss_total = 0
        for root in list(self.roots):
            for pid in process_tree(root):
                peak, now = _status_kib(pid, "VmHWM"), _status_kib(pid, "VmRSS")
                if peak is None or now is None:
                    continue
                if pid not in self.commands:
                    self.commands[pid] = command_line(pid)
                self.peaks[pid] = max(self.peaks.get(pid, 0), peak * 1024)
                total += now * 1024
                pss_total += (_pss_kib(pid) or 0) * 1024
        self.max_total_rss = max(self.max_total_rss, total)
        self.max_total_pss = max(self.max_total_pss, pss_total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        """Stop sampling (after one last sample); the figures."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sample()
        return {
            "processes": [
                {"pid": pid, "command": self.commands.get(pid, ""), "peak_rss_bytes": peak}
                for pid, peak in sorted(self.peaks.items())
            ],
            "sum_of_peaks_bytes": sum(self.peaks.values()),  # an upper bound of the whole bot's peak
            "max_sampled_total_rss_bytes": self.max_total_rss,  # the highest total seen at one sample
            # The same with each page shared by several processes (the interpreter, the libraries, what a forked
            # child still shares) counted once, split among them: the memory the whole bot takes from the machine.
            "max_sampled_total_pss_bytes": self.max_total_pss,
        }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (all its threads) so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine have spent busy since boot (every process, not only ours)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def background_cpus(seconds: float = 0.5) -> float:
    """CPUs' worth of work the machine does while this process sleeps: other people's processes."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class Server:
    """One HTTP server process; ready when ``ready_path`` answers 200."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    ready_path: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    final_peak_rss: int | None = None
    ready_log: str | None = None  # with an empty ready_path: ready when the log has this text

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Server:
        self.spawn()
        return self.wait_ready(timeout)

    def spawn(self) -> None:
        args = [a.replace("{port}", str(self.port)) for a in self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                env=self.env | {"TRIAGE_PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> Server:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if not self.ready_path:  # no HTTP: ready when the log says so
                if self.ready_log and self.ready_log in self.log_tail(100_000):
                    return self
            else:
                try:
                    if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready on {self.url} within {timeout}s:\n{self.log_tail()}")

    def peak_rss(self) -> int | None:
        return peak_rss_bytes(self.pid) if self.proc is not None and self.proc.poll() is None else self.final_peak_rss

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid) if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; keeps the last peak RSS."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.final_peak_rss = peak_rss_bytes(proc.pid) or self.final_peak_rss
        family = {pid: command_line(pid) for pid in process_tree(proc.pid) if pid != proc.pid}  # its processes
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + grace
        for pid, command in family.items():  # a child in a group of its own, which our signal did not reach
            while _stat_fields(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if _stat_fields(pid) is not None and command_line(pid) == command:  # the same process, not a reuse
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any TRIAGE_* setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    return env | extra


def postgres_available() -> str | None:
    """None when the admin DSN answers, otherwise why not."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped (connections forced out) afterwards."""
    name = f"triage_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_sessions(database_url: str) -> int | None:
    """Sessions (connections) ever opened to the database of ``database_url``, from pg_stat_database;
    None for anything but PostgreSQL."""
    if not database_url.startswith("postgresql"):
        return None
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None
