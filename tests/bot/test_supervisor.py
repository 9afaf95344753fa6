"""The supervisor alone, with stand-in children (small Python programs given the same arguments as a worker):
wakes reach them, a crash loop is slowed down, a child that will not stop is killed, and the end of the wake
pipe stops a child whose parent is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bot.supervisor import WorkerProcesses
from tests.harness import wait_until

# A child that counts the wakes it reads from its pipe (the fd after --supervised) into a file, one line each.
COUNTING = """
import os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so that the pipe's end of file alone stops it
fd = int(sys.argv[sys.argv.index("--supervised") + 1])
out = open(sys.argv[1], "a", buffering=1)
out.write(f"started {os.getpid()}\\n")
while True:
    data = os.read(fd, 4096)
    if not data:
        out.write("eof\\n")
        break
    out.write(f"wake {len(data)}\\n")
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_wakes_reach_every_child_and_stop_closes_their_pipes(tmp_path: Path) -> None:
    record = tmp_path / "record"
    procs = WorkerProcesses(2, 1, dict(os.environ), command=(sys.executable, "-c", COUNTING, str(record)))
    procs.start()
    try:
        wait_until(lambda: len([x for x in _lines(record) if x.startswith("started")]) == 2, what="two children")
        procs.wake()
        wait_until(lambda: len([x for x in _lines(record) if x.startswith("wake")]) >= 2, what="both woken")
        for _ in range(100_000):  # far more than a pipe holds: wake() never blocks, the surplus is dropped
            procs.wake()
    finally:
        procs.stop()
    assert _lines(record).count("eof") == 2
    assert procs.pids() == []


def test_a_crash_loop_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    record = tmp_path / "record"
    crashing = f"open({str(record)!r}, 'a').write('x'); raise SystemExit(3)"
    procs = WorkerProcesses(1, 1, dict(os.environ), command=(sys.executable, "-c", crashing))
    procs.start()
    try:
        time.sleep(4.0)  # delays 0.5, 1, 2: at most four starts in 4 s, not hundreds
    finally:
        procs.stop()
    starts = len(record.read_text())
    assert 2 <= starts <= 4, starts
    assert procs.restarts in (starts - 1, starts)  # the last one may still be starting when stopped


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    record = tmp_path / "record"
    stubborn = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(record)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    procs = WorkerProcesses(1, 1, dict(os.environ), grace_seconds=1.0, command=(sys.executable, "-c", stubborn))
    procs.start()
    wait_until(record.exists, what="the child")
    wait_until(lambda: record.read_text(), what="its pid")
    start = time.monotonic()
    procs.stop()
    assert time.monotonic() - start < 10
    assert procs.pids() == []


def test_a_worker_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    """``follow_parent`` in a child whose parent is killed: the end of the pipe stops it."""
    child = tmp_path / "child.py"
    child.write_text(
        "import os, sys, threading\n"
        "from bot import supervisor\n"
        "stop = threading.Event()\n"
        "supervisor.follow_parent(int(sys.argv[1]), lambda: print('woken', flush=True), stop.set)\n"
        "print('ready', flush=True)\n"
        "stop.wait(60)\n"
        "print('stopped' if stop.is_set() else 'timed out', flush=True)\n"
    )
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, str(child), str(read_fd)], pass_fds=(read_fd,), stdout=subprocess.PIPE, text=True
    )
    os.close(read_fd)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.write(write_fd, b"!")
    assert proc.stdout.readline().strip() == "woken"
    os.close(write_fd)  # what the kernel does when the parent dies
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read().strip() == "stopped"
