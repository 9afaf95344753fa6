"""Worker processes beside the HTTP server: `serve` starts them, wakes them, restarts one that dies, stops them.

The workers used to be threads of the HTTP process, sharing its GIL with the event loop: a busy queue slowed the
intake. Now ``serve`` runs ``WorkerProcesses``: N children, each ``triage-bot worker`` with the same settings
(plus what the parent only learns at start, such as the sandbox mail catcher's port), each a ``WorkerPool`` of
``TRIAGE_WORKERS`` threads.

The parent holds one pipe per child. ``wake()`` (a request committed new work) writes one byte to each, never
blocking: a full pipe means a wake is pending already. In the child, ``follow_parent`` reads the pipe and wakes
its pool, so an idle worker looks at once instead of at its next poll. The same pipe is how a child knows its
parent is gone: end of file (the parent exited, or was killed, and the kernel closed its end), and the child
stops, finishing the jobs it is running (a lease covers any it cannot). On Linux the child also asks the kernel
for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``). Either way no worker outlives ``serve``.

A child that exits while the parent is not stopping is restarted, after a delay that doubles with each failure
in a row (0.5 s up to 30 s; a child that ran a minute starts the count again), so a crash loop does not spin.
``stop()`` asks every child to stop (SIGTERM and the pipe closed), waits for the jobs they are running, and kills
what is left after the grace period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("triage.supervisor")

FIRST_DELAY = 0.5  # seconds before restarting a worker process that died...
MAX_DELAY = 30.0  # ...doubling with each death in a row, up to this
STABLE_SECONDS = 60.0  # a worker process that ran this long before dying starts the count again
WATCH_SECONDS = 0.1  # how often the supervisor looks at its children


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    wake_fd: int | None = None  # the parent's (write) end of the child's wake pipe
    started_at: float = 0.0
    failures: int = 0  # deaths in a row
    start_at: float = 0.0  # monotonic time of the next start, while there is no process


class WorkerProcesses:
    """``count`` worker processes of ``threads`` threads each; ``env`` is their whole environment."""

    def __init__(
        self,
        count: int,
        threads: int,
        env: Mapping[str, str],
        grace_seconds: float = 30.0,
        command: Sequence[str] = (sys.executable, "-m", "bot.cli", "worker"),
    ) -> None:
        self.count = count
        self.threads = threads
        self.env = dict(env)
        self.grace_seconds = grace_seconds
        self.command = tuple(command)
        self.restarts = 0
        self._children = [_Child(index) for index in range(count)]
        self._lock = threading.Lock()  # guards the children's wake_fd (wake() against a restart closing it)
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the parent's side ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the children and the thread that watches them (which also starts every later child: on Linux a
        child's PR_SET_PDEATHSIG follows the thread that started it, and this one lives until ``stop``)."""
        if self._watcher is not None:
            raise RuntimeError("the worker processes are started already")
        self._watcher = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._watcher.start()

    def pids(self) -> list[int]:
        """The running children's process ids."""
        return [c.proc.pid for c in self._children if c.proc is not None and c.proc.poll() is None]

    def wake(self) -> None:
        """New work was committed: every idle worker process looks at once. Never blocks."""
        with self._lock:
            for child in self._children:
                if child.wake_fd is None:
                    continue
                try:
                    os.write(child.wake_fd, b"!")
                except BlockingIOError:
                    pass  # the pipe is full: the child has wakes to read already
                except OSError:
                    pass  # the child is gone; the watcher restarts it (and it looks at the queue when it starts)

    def stop(self) -> None:
        """Ask every child to stop, wait for the jobs they are running (``grace_seconds``), kill what is left."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        running = [c.proc for c in self._children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        with self._lock:
            for child in self._children:
                self._close_pipe(child)
        deadline = time.monotonic() + self.grace_seconds
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker process did not stop in time; killed (the leases of its jobs will expire)",
                    extra={"pid": proc.pid, "grace_seconds": self.grace_seconds},
                )
                proc.kill()
                proc.wait()
        log.info("worker processes stopped", extra={"worker_processes": self.count})

    def _watch(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            for child in self._children:
                if child.proc is None:
                    if now >= child.start_at:
                        self._spawn(child)
                elif (code := child.proc.poll()) is not None:
                    self._died(child, code, now)
            self._stopping.wait(WATCH_SECONDS)

    def _spawn(self, child: _Child) -> None:
        read_fd, write_fd = os.pipe()  # both ends close on exec; pass_fds keeps the child's own read end open
        os.set_blocking(write_fd, False)
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own command line, no shell
                [*self.command, "--threads", str(self.threads), "--supervised", str(read_fd)],
                env=self.env,
                pass_fds=(read_fd,),
            )
        except OSError:
            log.exception("cannot start a worker process", extra={"worker_process": child.index})
            os.close(write_fd)
            self._backoff(child, time.monotonic())
            return
        finally:
            os.close(read_fd)
        with self._lock:
            child.proc, child.wake_fd, child.started_at = proc, write_fd, time.monotonic()
        log.info(
            "worker process started",
            extra={"worker_process": child.index, "pid": proc.pid, "threads": self.threads},
        )

    def _died(self, child: _Child, code: int, now: float) -> None:
        assert child.proc is not None
        pid, ran = child.proc.pid, now - child.started_at
        with self._lock:
            self._close_pipe(child)
            child.proc = None
        if ran >= STABLE_SECONDS:
            child.failures = 0
        delay = self._backoff(child, now)
        self.restarts += 1
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        log.error(
            f"worker process died ({how}); restarting it in {delay:.1f}s (the leases of its jobs will expire and "
            "another worker takes them)",
            extra={"worker_process": child.index, "pid": pid, "ran_seconds": round(ran, 1), "restart_in": delay},
        )

    @staticmethod
    def _backoff(child: _Child, now: float) -> float:
        child.failures += 1
        delay = min(MAX_DELAY, FIRST_DELAY * float(2 ** (child.failures - 1)))
        child.start_at = now + delay
        return delay

    @staticmethod
    def _close_pipe(child: _Child) -> None:
        if child.wake_fd is not None:
            os.close(child.wake_fd)
            child.wake_fd = None


# -- the child's side -------------------------------------------------------------------------------------------


def follow_parent(wake_fd: int, wake: Callable[[], None], parent_gone: Callable[[], None]) -> threading.Thread:
    """In a worker process started by ``WorkerProcesses``: wake the pool on every byte from the parent, and call
    ``parent_gone`` at end of file (the parent stopped or died). Also asks the kernel (Linux) for SIGTERM when the
    parent dies, in case this thread cannot run."""
    _term_when_parent_dies()

    def read() -> None:
        while True:
            try:
                data = os.read(wake_fd, 4096)  # many wakes at once are one
            except OSError:
                data = b""
            if not data:
                log.info("the wake pipe is closed (serve is stopping, or gone): stopping")
                parent_gone()
                return
            wake()

    thread = threading.Thread(target=read, name="wake-pipe", daemon=True)
    thread.start()
    return thread


def _term_when_parent_dies() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) is not available; the wake pipe's end of file still stops this worker")
