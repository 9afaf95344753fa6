"""`serve` with its workers in their own processes (TRIAGE_WORKER_PROCESSES): an alert still becomes one issue
and one card; a worker process that is SIGKILLed is restarted and its job still runs exactly once; SIGTERM (or
SIGKILL) to serve leaves no worker behind; and a commit wakes an idle worker process at once, not at its poll."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bot.db.engine import make_engine
from tests.conftest import Emulators
from tests.e2e.helpers import cards, click, issues, post_alert, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload, wait_until


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = raw[raw.rindex(")") + 2 :].split()[:2]  # the name, in parentheses, may hold spaces
    return state, int(ppid)


def _where(pids: list[int]) -> str:
    """What the processes left are doing, thread by thread (name, state, kernel wait channel): why one did not stop."""
    lines = []
    for pid in pids:
        for task in sorted(Path(f"/proc/{pid}/task").glob("*")) if alive(pid) else []:
            state = _stat(int(task.name)) or "?"
            lines.append(f"{pid}/{task.name} {_text(task / 'comm')} {state} wchan={_text(task / 'wchan')}")
    return "\n".join(lines)


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "?"  # the thread ended meanwhile


def worker_processes(bot: BotProcess, count: int) -> list[int]:
    """The bot's worker processes, once ``count`` of them have started their threads."""
    assert bot.proc is not None
    serve = bot.proc.pid

    def started() -> list[int] | None:
        pids = children(serve)
        ready = [p for p in pids if re.search(rf"triage-bot worker \S+:{p}:\S+: \d+ threads", bot.log())]
        return pids if len(pids) == count and len(ready) == count else None

    pids: list[int] = wait_until(started, timeout=30, what=f"{count} worker processes (log {bot.log_path})")
    return pids


def metric(bot: BotProcess, line: str) -> float:
    body = httpx.get(f"{bot.url}/metrics", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=10).text
    found = re.search(rf"^{re.escape(line)} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_worker_processes_take_an_alert_to_an_issue_and_a_card(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot = make_bot(TRIAGE_WORKER_PROCESSES="2", TRIAGE_WORKERS="2")
    assert "workers   2 processes of 2 threads each" in bot.log()
    workers = worker_processes(bot, 2)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("P", alerts=2))
        queue_drained(database_url)
    [issue] = issues(emulators)
    [card] = cards(emulators, "C0OPS")
    assert issue["key"] in json.dumps(card["blocks"])
    # The jobs ran in the worker processes, not in serve: their names carry the workers' process ids...
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ran_by = {row[0] for row in conn.execute(text("SELECT locked_by FROM jobs")).all()}
    finally:
        engine.dispose()
    pids = {int(name.split(":")[1]) for name in ran_by if name}
    assert pids and pids <= set(workers), (ran_by, workers)
    # ...and what they counted is in serve's /metrics, summed over the processes.
    assert metric(bot, 'triage_tickets_created_total{source="alertmanager"}') == 1.0
    assert metric(bot, 'triage_jobs_finished_total{kind="jira.create",outcome="done"}') == 1.0


def test_a_killed_worker_process_is_restarted_and_its_job_runs_once(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    emulators.jira.set_fault(latency=3.0, count=1, methods={"POST"}, path_contains="/issue")  # the create hangs
    bot = make_bot(TRIAGE_JOB_LEASE_SECONDS="2")
    [worker] = worker_processes(bot, 1)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("K"))
        engine = make_engine(database_url)
        try:

            def create_running() -> bool:
                with engine.connect() as conn:
                    sql = "SELECT count(*) FROM jobs WHERE kind = 'jira.create' AND status = 'running'"
                    return bool(conn.execute(text(sql)).scalar())

            wait_until(create_running, timeout=20, what="the Jira create to be running")
            time.sleep(0.5)  # the request is at the (slow) Jira now
            os.kill(worker, signal.SIGKILL)
            assert bot.proc is not None
            [again] = wait_until(
                lambda: [p for p in children(bot.proc.pid) if p != worker] or None, timeout=20, what="a new worker"
            )
            assert "worker process died (killed by SIGKILL); restarting it in" in bot.log()
            queue_drained(database_url, timeout=60)  # the lease (2 s) expires and the new worker runs the job
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT kind, attempts FROM jobs WHERE kind = 'jira.create'")).all()
        finally:
            engine.dispose()
    assert [kind for kind, _ in rows] == ["jira.create"] and rows[0][1] >= 2  # taken again after the kill
    [issue] = issues(emulators)  # the create the killed worker had sent is found, not made twice
    [card] = cards(emulators, "C0OPS")
    assert issue["key"] in json.dumps(card["blocks"])
    assert alive(again)


def test_sigterm_to_serve_stops_every_worker_process(make_bot: Any, database_url: str) -> None:
    bot = make_bot(TRIAGE_WORKER_PROCESSES="2", TRIAGE_WORKERS="2")
    workers = worker_processes(bot, 2)
    assert bot.proc is not None
    os.kill(bot.proc.pid, signal.SIGTERM)  # serve alone, not its process group
    bot.proc.wait(timeout=60)
    wait_until(lambda: not any(alive(p) for p in workers), timeout=10, what="the worker processes to stop")
    log = bot.log()
    assert "worker processes stopped" in log and "worker process died" not in log


def test_sigkill_to_serve_leaves_no_orphan(make_bot: Any, database_url: str, tmp_path: Path) -> None:
    # A temporary folder of this test's own: any other serve starting meanwhile (a test running beside this one)
    # would clean up the killed serve's folder too.
    bot = make_bot(TMPDIR=str(tmp_path))
    workers = worker_processes(bot, 1)
    assert bot.proc is not None
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")  # what serve gave its worker
    [metrics] = [Path(v.split(b"=", 1)[1].decode()) for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert metrics.is_dir()
    os.kill(bot.proc.pid, signal.SIGKILL)  # no shutdown at all: the workers see the wake pipe's end of file
    bot.proc.wait(timeout=30)
    try:
        wait_until(lambda: not any(alive(p) for p in workers), timeout=30, what="the orphaned workers to stop")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_where(workers)}\nlog:\n{bot.log()[-4000:]}") from None
    assert metrics.is_dir()  # nothing could remove it...
    make_bot(TMPDIR=str(tmp_path))
    assert not metrics.exists()  # ...until the next serve starts


def test_a_commit_wakes_an_idle_worker_process_at_once(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    """With a 10 s poll, the work is done in well under 10 s only if the commit woke the worker process: an
    alert (webhooks/alerts), then a click on its card (the Slack listeners)."""
    bot = make_bot(TRIAGE_JOB_POLL_SECONDS="10")
    worker_processes(bot, 1)
    time.sleep(1.0)  # every worker thread has looked at the empty queue and waits for its next poll
    with bot.client() as client:
        start = time.monotonic()
        post_alert(client, alertmanager_payload("W"))
        [card] = wait_until(lambda: cards(emulators, "C0OPS"), timeout=5, what="the card, woken")
        wait_until(lambda: issues(emulators), timeout=5, what="the issue, woken")
        assert time.monotonic() - start < 5
    time.sleep(1.0)
    start = time.monotonic()
    assert click(bot.url, emulators, "C0OPS", card["ts"], "Close", "U0OP1").status_code == 200
    [issue] = issues(emulators)
    wait_until(
        lambda: (emulators.jira.issue(issue["key"]) or {})["fields"]["status"]["name"] == "Done",
        timeout=5,
        what="the click's move in Jira, woken",
    )
    assert time.monotonic() - start < 5
