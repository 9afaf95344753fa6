"""The triage-bot command line: serve, worker, db, policy, route, jobs, demo, sandbox, completion.

Exit codes: 0 success; 1 the command ran and failed (a check that did not pass, a database or server out of reach,
a job not found); 2 usage (bad arguments or configuration). An expected failure is said in one line, never as a
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import Settings, SettingsError, load_settings, package_version
from workflows.policy import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

OK, FAILED, USAGE = 0, 1, 2
JOB_STATUSES = ("pending", "running", "dead", "refused", "done")


def _fail(message: str, code: int = FAILED) -> int:
    print(f"triage-bot: {message}", file=sys.stderr)
    return code


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise SystemExit(_fail(str(exc), USAGE)) from None


def _shown(url: str) -> str:
    """A database URL fit to print: no password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database if url.startswith("sqlite") else None
    return Path(database) if database and database != ":memory:" else None


def _database(settings: Settings, *, create: bool) -> Engine:
    """The engine of the configured database, once it is known to be there: a SQLite file's folder is made only
    inside the current folder (and said), and a server that does not answer ends the command in one line.
    ``create=False`` (commands that only read) also refuses a SQLite file that does not exist yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.engine import make_engine

    path = _sqlite_path(settings.database_url)
    if path is not None:
        folder = path.parent.resolve()
        if not create and not path.exists():
            raise SystemExit(
                _fail(f"there is no database at {path} (TRIAGE_DATABASE_URL): `triage-bot db upgrade` creates one")
            )
        if not folder.is_dir():
            if not folder.is_relative_to(Path.cwd().resolve()):
                raise SystemExit(
                    _fail(
                        f"the folder {folder} of the SQLite database does not exist: create it "
                        f"(mkdir -p {folder}) or set TRIAGE_DATABASE_URL to another place"
                    )
                )
            folder.mkdir(parents=True)
            print(f"created the folder {path.parent} for the database {path.name}", file=sys.stderr)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SystemExit(_fail(_unreachable(settings.database_url, exc))) from None
    return engine


def _unreachable(url: str, exc: BaseException) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot use the database at {_shown(url)}: {reason[0] if reason else type(exc).__name__}"


def _port_taken(host: str, port: int) -> str | None:
    """Why ``serve`` could not listen on host:port, or None when it can (checked before anything is changed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a listener still refuses
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _invocation() -> str:
    """How this shell can run triage-bot again, as printed: ``triage-bot`` when that is on PATH, else the path
    it was started by (``.venv/bin/triage-bot``), else ``python -m bot.cli``."""
    started = Path(sys.argv[0])
    if started.name == "triage-bot":
        found = shutil.which("triage-bot")
        if found and Path(found).resolve() == started.resolve():
            return "triage-bot"
        try:
            return str(started.absolute().relative_to(Path.cwd()))
        except ValueError:
            return str(started.absolute())
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"{python} -m bot.cli"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.host:
        os.environ["TRIAGE_HOST"] = args.host
    if args.port:
        os.environ["TRIAGE_PORT"] = str(args.port)
    if args.workers is not None:
        os.environ["TRIAGE_WORKERS"] = str(args.workers)
    if args.processes is not None:
        os.environ["TRIAGE_WORKER_PROCESSES"] = str(args.processes)
    settings = _settings()
    # Everything that can stop the start is checked before anything is changed (the sandbox's database deleted).
    try:
        load_policy(settings.policy)
    except PolicyError as exc:
        return _fail(str(exc), USAGE)
    taken = _port_taken(settings.host, settings.port)
    if taken is not None:
        return _fail(
            f"cannot listen on {settings.host}:{settings.port}: {taken}. Is another triage-bot (make run) serving "
            "there? Stop it, or choose another port (--port or TRIAGE_PORT)"
        )
    metrics_dir = None
    if settings.workers and settings.worker_processes and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The worker processes count their jobs and calls too: every process writes its metrics to files here and
        # /metrics adds them up. prometheus_client decides where a process keeps its values when it is first
        # imported, so this comes before anything that imports it (the Jira check, the database's group commit);
        # the children inherit it.
        metrics_dir = _fresh_metrics_dir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        _remove_on_signal(metrics_dir)
    try:
        fresh = settings.full_sandbox and not os.environ.get("TRIAGE_DATABASE_URL")
        if fresh:
            # The emulators keep nothing across restarts, so neither may the tickets that point into them.
            for stale in Path("var").glob("sandbox.db*"):
                stale.unlink()
        _database(settings, create=True).dispose()
        jira = _check_jira(settings)
        print(_banner(settings, jira, fresh), file=sys.stderr)
        uvicorn.run(
            "webhooks.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=settings.http_keep_alive_seconds,
            timeout_graceful_shutdown=20,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return OK


def _check_jira(settings: Settings) -> str:
    """A real Jira, asked once at start who the bot is: the banner's words for it. A Jira out of reach or refusing
    the credentials is warned about loudly, and the start goes on (the jobs wait and retry until it answers)."""
    if settings.jira_sandbox:
        return ""
    from bot.clients.jira import JiraGateway

    try:
        me = JiraGateway(settings).client.myself()
    except Exception as exc:  # the jira library raises JIRAError, requests' errors, or its own for odd answers
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            problem = (
                f"Jira refused the credentials ({status}): check TRIAGE_JIRA_USER and TRIAGE_JIRA_TOKEN "
                "(Cloud: your e-mail and an API token; Data Center: no user, a personal access token)"
            )
        elif status is not None:
            problem = f"Jira answered {status} to GET /rest/api/2/myself: is TRIAGE_JIRA_URL the site's base URL?"
        else:
            reason = str(exc).strip().splitlines()
            problem = f"cannot reach Jira: {reason[-1][:200] if reason else type(exc).__name__}"
        print(f"\nWARNING: {problem}. Nothing can reach Jira until this is fixed.\n", file=sys.stderr)
        return f"NOT WORKING: {problem}"
    who = me.get("emailAddress") or me.get("displayName") or me.get("name") or "?"
    return f"signed in as {who}"


def _banner(settings: Settings, jira: str, fresh: bool) -> str:
    """What runs where, said exactly: each part emulated (and where to look at it) or real (and where it is)."""
    local = settings.local_url
    version = package_version()
    lines = [f"triage-bot {version} serving on {local}; policy {_relative(settings.policy)}"]
    for name, state, where in settings.parts():
        detail = f" ({jira})" if name == "Jira" and jira else ""
        lines.append(f"  {name:<9} {state:<9} {where}{detail}")
    database = _shown(settings.database_url)
    if fresh:
        database += " (new at each start, as the emulators keep nothing; set TRIAGE_DATABASE_URL to keep one)"
    lines.append(f"  {'database':<9} {database}")
    lines.append(f"  {'workers':<9} {_workers_line(settings)}")
    if settings.console_enabled:
        login = " (log in with TRIAGE_CONSOLE_TOKEN)" if settings.console_login else ""
        lines.append(f"  {'console':<9} {local}/console/{login}")
    if settings.full_sandbox:
        lines.append("SANDBOX MODE: Jira and Slack are emulated here; nothing is sent outside this machine.")
    elif settings.sandbox:
        emulated = [name for name, state, _ in settings.parts() if state == "emulated"]
        lines.append(f"PARTLY EMULATED: {' and '.join(emulated)} emulated here; the parts marked real are real.")
    if settings.sandbox:
        command = _invocation()
        url = "" if local == "http://127.0.0.1:8080" else f" --url {local}"
        lines.append(f"try it, in another shell:  {command} demo{url}")
        if settings.full_sandbox:
            lines.append(f"                           {command} demo --report{url}")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fresh_metrics_dir() -> str:
    """A new temporary folder named after this process, after removing those of `serve` processes that are gone
    (a SIGKILL leaves its folder behind)."""
    import tempfile

    for stale in Path(tempfile.gettempdir()).glob("triage-bot-metrics-*-*"):
        pid = stale.name.split("-")[3]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"triage-bot-metrics-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _remove_on_signal(path: str) -> None:
    """uvicorn ends its graceful shutdown by raising the SIGTERM or SIGINT it caught again, with the handler that
    was there before it: this one, which removes ``path`` and then lets the signal end the process as it would
    have."""

    def leave(sig: int, frame: object) -> None:
        shutil.rmtree(path, ignore_errors=True)
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        signal.raise_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, leave)


def _workers_line(settings: Settings) -> str:
    threads, processes = settings.workers, settings.worker_processes
    if not threads:
        return "none (TRIAGE_WORKERS=0: intake only; run `triage-bot worker` elsewhere)"
    if not processes:
        return f"{threads} threads inside this process (TRIAGE_WORKER_PROCESSES=0)"
    plural = "es" if processes > 1 else ""
    return (
        f"{processes} process{plural} of {threads} threads each, supervised by this one "
        "(TRIAGE_WORKER_PROCESSES, TRIAGE_WORKERS)"
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from bot import logs, supervisor
    from bot.db import migrate
    from bot.pool import worker_pool
    from bot.runtime import Runtime

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    _database(settings, create=False).dispose()
    runtime = Runtime.build(settings)
    if not migrate.is_usable(runtime.engine):
        return _fail("the database schema is not current: run `triage-bot db upgrade` first")
    pool = worker_pool(runtime, args.threads or settings.workers or 1)
    why: list[str] = []  # why it stops, noted by a signal handler or the wake pipe's thread

    signal.signal(signal.SIGTERM, lambda *_: why.append("SIGTERM"))
    if args.supervised is None:
        signal.signal(signal.SIGINT, lambda *_: why.append("SIGINT"))
    else:
        # Started by `serve`: Ctrl-C in a terminal reaches the whole process group, and `serve` stops its workers
        # itself (SIGTERM, or the wake pipe's end of file when it is gone).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.follow_parent(args.supervised, pool.wake, lambda: why.append("the wake pipe closed"))
    exporter = None
    port = args.metrics_port or settings.worker_metrics_port
    if port and args.supervised is None:  # a worker process of serve's is counted in serve's /metrics
        from bot.exporter import Exporter
        from bot.metrics import process_registry

        try:
            exporter = Exporter(
                settings.host, port, settings.effective_metrics_token(), pool.healthy, process_registry()
            )
        except OSError as exc:
            return _fail(f"cannot listen on {settings.host}:{port} for /metrics: {exc.strerror or exc}")
    pool.start()
    whose = f" (worker process of serve {os.getppid()})" if args.supervised is not None else "; Ctrl-C to stop"
    print(f"triage-bot worker {pool.name}: {pool.threads} threads{whose}", file=sys.stderr)
    if exporter is not None:
        exporter.start()
        print(f"  GET {exporter.url}/metrics (bearer token) and {exporter.url}/healthz", file=sys.stderr)
    while not why:
        # No lock is waited on here: a signal handler runs on this thread, and one that took a lock this thread
        # held (an Event's, inside wait) would never return.
        time.sleep(0.2)
    if exporter is not None:
        exporter.stop()
    began = time.monotonic()
    log = logging.getLogger("triage.worker")
    log.info("worker stopping", extra={"worker_name": pool.name, "reason": why[0]})
    pool.stop()  # the jobs running may end their outside calls
    log.info("worker stopped", extra={"worker_name": pool.name, "seconds": round(time.monotonic() - began, 3)})
    return OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.db import migrate

    settings = _settings()
    engine = _database(settings, create=True)
    before = migrate.current_revision(engine)
    migrate.upgrade(settings.database_url)
    after = migrate.current_revision(engine)
    engine.dispose()
    print(
        f"database schema: {before or 'empty'} -> {after}"
        if before != after
        else f"database schema already current ({after})"
    )
    return OK


def cmd_db_current(args: argparse.Namespace) -> int:
    """0 when this version can run on the schema (its newest, or a newer release's), 1 when not (after waiting
    ``--wait`` seconds for it)."""
    from bot.db import migrate

    settings = _settings()
    deadline = time.monotonic() + args.wait
    while True:
        engine = _database(settings, create=False)
        state, current = migrate.schema_state(engine)
        engine.dispose()
        if state in ("current", "ahead") or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    head = migrate.head_revision()
    if state == "current":
        print(f"database schema current ({head})")
        return OK
    if state == "ahead":
        print(f"database schema at {current}, newer than this version's {head}: a newer release migrated it")
        return OK
    print(f"database schema at {current or 'empty'}, this version needs {head}: run `triage-bot db upgrade`")
    return FAILED


def _policy(path: str | None, code: int = USAGE) -> Policy:
    try:
        return load_policy(path or _settings().policy)
    except PolicyError as exc:
        raise SystemExit(_fail(str(exc), code)) from None


def cmd_policy_check(args: argparse.Namespace) -> int:
    from workflows.severity import known_words

    policy = _policy(args.file, FAILED)
    envs = ", ".join(policy.environments) or "none"
    print(
        f"{args.file}: OK (project {policy.jira.project}; teams: {', '.join(policy.teams) or 'none'}; "
        f"environments: {envs})"
    )
    print("severity words and the Jira priority each gets (any other word, or none: the default):")
    named = {**policy.environments, "(default_environment)": policy.default_environment}
    for name, env in named.items():
        print(f"  {name} (default {env.default_priority}):")
        for priority, words in known_words(env).items():
            print(f"    {priority}: {', '.join(words)}")
    tests = policy.test_notifications
    matched = f", and alerts matching {[dict(m) for m in tests.match]}" if tests.match else ""
    print(f"test notifications (Grafana's Test button{matched}): {tests.action}")
    return OK


def cmd_route(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from workflows.alerts import parse_any
    from workflows.routing import what_it_would_do

    policy = _policy(args.policy)
    try:
        body = json.loads(Path(args.alert).read_text(encoding="utf-8"))
    except OSError as exc:
        return _fail(f"cannot read {args.alert}: {exc.strerror or exc}", USAGE)
    except json.JSONDecodeError as exc:
        return _fail(f"{args.alert} is not JSON: {exc}")
    if not isinstance(body, dict):
        return _fail(f"{args.alert} is a JSON {type(body).__name__}, not an object: no sender posts that")
    try:
        note = parse_any(body)
    except ValidationError:
        return _fail(f"{args.alert} fits none of the senders the bot takes:\n" + _why_no_source(body))
    result = what_it_would_do(policy, note)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            if isinstance(value, list):
                value = ("\n" + " " * (width + 2)).join(value) or "(none)"
            print(f"{key:<{width}}  {value}")
    return 0


def _why_no_source(body: dict[str, Any]) -> str:
    """For each sender, in words, why the payload is not one of its notifications."""
    from pydantic import ValidationError

    from workflows.alerts import Source, notification_from

    names = {Source.ALERTMANAGER: "Alertmanager", Source.GRAFANA: "Grafana", Source.EVENTS: "Events API v2"}
    lines = []
    for source, name in names.items():
        try:
            notification_from(source, body, "(generated on receipt)")
        except ValidationError as exc:
            lines.append(f"  {name} (POST /alerts/{source.value}): {_in_words(exc.errors())}")
    return "\n".join(lines)


def _in_words(errors: Any) -> str:
    """pydantic's errors as a sentence: the missing fields together, then the first few wrong ones."""

    def where(error: Any) -> str:
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        return path.removeprefix(".") or "the payload"

    def why(error: Any) -> str:
        message = str(error["msg"])
        return message.replace("Input should", "should", 1) if message.startswith("Input ") else message.lower()

    missing = [where(e) for e in errors if e["type"] == "missing"]
    wrong = [f"{where(e)} {why(e)}" for e in errors if e["type"] != "missing"]
    said = [f"missing {', '.join(missing)}"] if missing else []
    said += wrong[:3] + ([f"{len(wrong) - 3} more"] if len(wrong) > 3 else [])
    return "; ".join(said)


def _port(value: str) -> int:
    """A TCP port option: 1 to 65535 (anything else is a usage error, not a traceback)."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1 to 65535)")
    return int(value)


def _statuses(value: str) -> str:
    """--status: a comma list of job statuses (a usage error names the ones there are)."""
    wrong = [s for s in value.split(",") if s not in JOB_STATUSES]
    if wrong:
        raise argparse.ArgumentTypeError(f"no status {', '.join(wrong)}: choose from {','.join(JOB_STATUSES)}")
    return value


def cmd_jobs(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from bot.db import migrate
    from bot.jobs import queue

    settings = _settings()
    engine = _database(settings, create=False)
    if not migrate.is_usable(engine):
        return _fail(
            f"the database at {_shown(settings.database_url)} has no current schema: is this the server's "
            "TRIAGE_DATABASE_URL? (`triage-bot db upgrade` creates it)"
        )
    if args.action in ("retry", "drop"):
        act, done = {
            "retry": (queue.retry, "queued again"),
            "drop": (queue.drop, "dropped; later jobs of its lane can run"),
        }[args.action]
        code = OK
        for job_id in args.ids:
            if act(engine, job_id):
                print(f"job {job_id}: {done}")
            else:
                code = _fail(f"job {job_id}: not found, or neither dead nor refused")
        return code
    statuses = args.status.split(",")
    with Session(engine) as session:
        counts = queue.stats(session).counts
        jobs = queue.list_jobs(session, statuses, args.limit)
    print("queue: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in ("pending", "running", "dead", "refused", "done")))
    if not jobs:
        print(f"no {args.status} jobs")
        return OK
    print(f"{'ID':>7}  {'STATUS':<8} {'KIND':<16} {'TRIES':>5}  {'LANE':<28} LAST ERROR")
    for job in jobs:
        error = (job.last_error or "").splitlines()[0][:90] if job.last_error else ""
        print(f"{job.id:>7}  {job.status:<8} {job.kind:<16} {job.attempts:>5}  {job.lane[:28]:<28} {error}")
    if any(j.status in ("dead", "refused") for j in jobs):
        print(
            "\ndead: holds the later jobs of its lane; refused: an outside system said no, nothing waits for it.\n"
            "run one again with: triage-bot jobs retry ID   (or give up on it: triage-bot jobs drop ID)"
        )
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    import httpx

    from bot.settings import EXAMPLE_POLICY

    token = args.token or os.environ.get("TRIAGE_WEBHOOK_TOKEN") or "sandbox-webhook-token"
    headers = {"Authorization": f"Bearer {token}"}
    payload = json.loads((EXAMPLE_POLICY.parent / "alertmanager.json").read_text(encoding="utf-8"))
    payload["groupKey"] = f'{{}}:{{alertname="HighErrorRate", demo="{int(time.time())}"}}'
    with httpx.Client(base_url=args.url, headers=headers, timeout=10) as client:
        _check_server(client)
        print(f"-> POST {args.url}/alerts/alertmanager ({len(payload['alerts'])} alerts, group {payload['groupKey']})")
        answer = _send(client, "/alerts/alertmanager", payload)
        if answer.status_code != 202:
            return _fail(f"the server answered {answer.status_code}: {answer.text}")
        dedup = answer.json()["dedup_key"]
        print(f"<- 202 accepted, dedup key {dedup}")
        ticket: dict[str, Any] = {}
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            found = client.get("/api/tickets", params={"dedup_key": dedup}).json()["tickets"]
            ticket = found[0] if found else {}
            if ticket.get("jira_key") and ticket.get("slack_ts"):
                break
            print("   waiting for the workers...", file=sys.stderr)
            time.sleep(0.5)
        if not ticket.get("jira_key") or not ticket.get("slack_ts"):
            return _fail(f"no ticket and card after {args.wait}s; see `triage-bot jobs` and the server log")
        print(f"\nJira ticket {ticket['jira_key']}: {ticket['jira_url']}")
        print(f"  state {ticket['state']}, priority {ticket['priority']}, environment {ticket['environment']}")
        sandbox = client.get(
            f"/sandbox/jira/rest/api/2/issue/{ticket['jira_key']}", auth=("sandbox@example.com", "sandbox-token")
        )
        if sandbox.status_code == 200:
            fields = sandbox.json()["fields"]
            print(f"  summary: {fields['summary']}\n  labels:  {', '.join(fields['labels'])}")
        print(f"\nSlack card in {ticket['slack_channel']} (ts {ticket['slack_ts']}), as Slack shows it:")
        _print_card(client, ticket["slack_channel"], ticket["slack_ts"], ticket["jira_key"], args.wait)
    return 0


def _print_card(client: Any, channel: str, ts: str, jira_key: str | None = None, wait: float = 0.0) -> None:
    """The card as a person sees it in Slack (the emulator's copy), once it shows the Jira key if one is given."""
    from workflows.card_text import blocks_text

    deadline = time.monotonic() + wait
    while True:
        messages = client.get("/sandbox/slack/_emulator/messages", params={"channel": channel})
        found = [m for m in messages.json().get("messages", []) if m.get("ts") == ts] if messages.is_success else []
        blocks: list[dict[str, Any]] = found[0].get("blocks") or [] if found else []
        if not jira_key or jira_key in json.dumps(blocks) or time.monotonic() >= deadline:
            break
        time.sleep(0.3)  # the card is edited to show the key once Jira has answered
    if not blocks:
        print("  (the Slack emulator does not have it: is the server in sandbox mode?)")
        return
    for line in blocks_text(blocks, _names(client, blocks)):
        print(f"  | {line}".rstrip())


def _names(client: Any, blocks: list[dict[str, Any]]) -> dict[str, str]:
    """The names of the people a card mentions, as the Slack emulator knows them (users.info)."""
    from bot.settings import SANDBOX_SLACK_TOKEN

    names = {}
    for user in sorted(set(re.findall(r"<@([A-Z0-9]+)[|>]", json.dumps(blocks)))):
        answer = client.post(
            "/sandbox/slack/api/users.info",
            data={"user": user},
            headers={"Authorization": f"Bearer {SANDBOX_SLACK_TOKEN}"},
        )
        found = (answer.json().get("user") or {}) if answer.is_success else {}
        name = (found.get("profile") or {}).get("real_name") or found.get("real_name")
        if name:
            names[user] = str(name)
    return names


REPORT_STEPS = (  # (channel, button, who, form values): a billing report, routed straight to payments
    ("C0PAY", "Assign member", "U0PA1", {"member": {"member": "U0PA1"}}),
    ("C0PAY", "Resolve", "U0PA1", {"done": {"done": "Re-ran the failed refund."}}),
    ("C0OPS", "Close", "U0OP1", {"message": {"message": "Your refund was sent again today. Sorry for the wait!"}}),
)


def cmd_demo_report(args: argparse.Namespace) -> int:
    """The customer loop in the sandbox: a report from the app, its receipt, triage by clicks in the Slack
    emulator (the signed requests Slack would send, delivered here), and the closing e-mail."""
    import httpx

    token = args.token or os.environ.get("TRIAGE_WEBHOOK_TOKEN") or "sandbox-webhook-token"
    session = {"X-Session-Id": "sandbox-session-jane"}
    report = {
        "subject": "I was charged twice",
        "description": "My card was charged twice for order 1234.",
        "category": "billing",
        "app": {"name": "Shop", "version": "4.2.0", "platform": "ios"},
        "metadata": {"device": "iPhone 15", "locale": "en_GB"},
    }
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        _check_server(client)
        print(f"-> POST {args.url}/reports as the app of jane.doe@example.com (sandbox session)")
        answer = _send(client, "/reports", report, session)
        if answer.status_code != 201:
            return _fail(f"the server answered {answer.status_code}: {answer.text} (--report needs `make run`)")
        ref = answer.json()["id"]
        print(f"<- 201 report {ref}: {answer.json()['status_text']}")

        def ticket() -> dict[str, Any]:
            found = client.get("/api/tickets", params={"dedup_key": f"report:{ref}"}).json()["tickets"]
            return found[0] if found else {}

        def wait(what: str, ready: Any) -> Any:
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline:
                value = ready()
                if value:
                    return value
                time.sleep(0.3)
            raise SystemExit(_fail(f"{what} did not happen within {args.wait}s; see `triage-bot jobs`"))

        def mail(kind: str) -> dict[str, Any]:
            """The e-mail of this kind for this report, once the catcher has it."""

            def arrived() -> dict[str, Any] | None:
                messages: list[dict[str, Any]] = client.get("/sandbox/mail/_emulator/messages").json()
                return next((m for m in messages if f"{ref}.{kind}." in m["message_id"]), None)

            found: dict[str, Any] = wait(f"the {kind} e-mail", arrived)
            return found

        ticket_row = wait(
            "the ticket and its card", lambda: (t := ticket()).get("jira_key") and t.get("slack_ts") and t
        )
        print(f"   Jira {ticket_row['jira_key']} in project SUP, card in {ticket_row['slack_channel']}")
        receipt = mail("receipt")
        _print_mail(receipt)
        for channel, label, user, values in REPORT_STEPS:
            state_before = ticket()["state"]
            card = wait(
                f"{label} on the card in {channel}", lambda c=channel, b=label: _card_in(client, c, ticket()["id"], b)
            )
            views = len(client.get("/sandbox/slack/_emulator/views").json()["views"])
            _deliver(
                client,
                client.post(
                    "/sandbox/slack/_emulator/click",
                    json={"channel": channel, "ts": card, "label": label, "user": user},
                ).json(),
            )
            wait(
                f"the {label} form",
                lambda v=views: len(client.get("/sandbox/slack/_emulator/views").json()["views"]) > v,
            )
            _deliver(
                client,
                client.post("/sandbox/slack/_emulator/submit_view", json={"user": user, "values": values}).json(),
            )
            wait(f"{label}", lambda s=state_before: ticket()["state"] != s)
            status = client.get(f"/reports/{ref}", headers=session).json()
            print(f'   {user} pressed {label} in {channel}: the customer now sees "{status["status_text"]}"')
        # The card is edited after the move is stored: show it once it shows the closed ticket (Reopen alone).
        channel, ticket_id = ticket_row["slack_channel"], ticket()["id"]
        wait("the card's last edit", lambda: _card_buttons(client, channel, ticket_id) == ["Reopen"])
        print(f"\nThe card in {ticket_row['slack_channel']} now, as Slack shows it:")
        _print_card(client, ticket_row["slack_channel"], ticket_row["slack_ts"])
        print()
        _print_mail(mail("closed"))
    return 0


def _print_mail(message: dict[str, Any]) -> None:
    """An e-mail as its reader gets it: who it is to, its subject, and all of its text."""
    to = message["to"]
    print(f"   e-mail to {', '.join(to) if isinstance(to, list) else to}: {message['subject']}")
    for line in str(message.get("text") or "").rstrip().splitlines():
        print(f"   | {line}".rstrip())


def _check_server(client: Any) -> None:
    """Before the demo creates anything: the server is there and takes the token (its /api answers 200)."""
    import httpx

    try:
        answer = client.get("/api/tickets", params={"dedup_key": "-"})
    except httpx.HTTPError as exc:
        raise SystemExit(
            _fail(f"cannot reach {client.base_url}: {exc}; is `triage-bot serve` (make run) running?")
        ) from None
    if answer.status_code == 401:
        raise SystemExit(
            _fail(f"{client.base_url} refused the token (401): give the server's TRIAGE_WEBHOOK_TOKEN with --token")
        )
    if answer.status_code != 200:
        raise SystemExit(_fail(f"{client.base_url}/api/tickets answered {answer.status_code}: is this triage-bot?"))


def _send(client: Any, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST to the running server, or stop with what to do when it is not there."""
    import httpx

    try:
        return client.post(path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SystemExit(
            _fail(f"cannot reach {client.base_url}: {exc}; is `triage-bot serve` (make run) running?")
        ) from None


def _card(client: Any, channel: str, ticket_id: int) -> dict[str, Any] | None:
    """The ticket's card in ``channel`` as Slack holds it now (None: no card there)."""
    messages = client.get("/sandbox/slack/_emulator/messages", params={"channel": channel}).json()["messages"]
    for message in messages:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        if not message.get("thread_ts") and payload.get("ticket_id") == ticket_id:
            return dict(message)
    return None


def _card_in(client: Any, channel: str, ticket_id: int, button: str) -> str | None:
    """The ts of the ticket's card in ``channel``, once it shows ``button``."""
    card = _card(client, channel, ticket_id)
    return str(card["ts"]) if card is not None and button in json.dumps(card["blocks"]) else None


def _card_buttons(client: Any, channel: str, ticket_id: int) -> list[str] | None:
    """The labels of the buttons the ticket's card in ``channel`` shows now (None: no card there)."""
    card = _card(client, channel, ticket_id)
    if card is None:
        return None
    actions = [b for b in card.get("blocks") or [] if b.get("type") == "actions"]
    return [str(e.get("text", {}).get("text", "")) for b in actions for e in b.get("elements", [])]


def _deliver(client: Any, signed: dict[str, Any]) -> None:
    """Deliver a request the Slack emulator signed, as Slack's network would."""
    if not signed.get("ok"):
        raise SystemExit(_fail(f"the Slack emulator could not make the request: {signed.get('error')}"))
    answer = client.post("/slack/events", content=signed["body"], headers=signed["headers"])
    if answer.status_code != 200:
        raise SystemExit(_fail(f"/slack/events answered {answer.status_code}: {answer.text}"))


def cmd_sandbox(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from bot.sandbox.jira_emulator import create_jira_emulator
    from bot.sandbox.slack_emulator import create_slack_emulator

    app = FastAPI(title="triage-bot sandbox")
    app.mount("/jira", create_jira_emulator())
    app.mount("/slack", create_slack_emulator())
    print(
        f"Jira emulator at http://{args.host}:{args.port}/jira, Slack Web API at "
        f"http://{args.host}:{args.port}/slack/api/",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return OK


def cmd_completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["triage-bot"], shell=args.shell))
    return OK


class _Formatter(argparse.HelpFormatter):
    """Help that shows each option's default where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default not in (None, False, argparse.SUPPRESS)
            and "%(default)" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="triage-bot",
        description="Alerts and reports to Jira, triaged in Slack. Configuration: TRIAGE_* environment variables "
        "(see .env.example).",
        epilog="Exit codes: 0 success, 1 failed (a check that did not pass, something out of reach), 2 usage.",
        formatter_class=_Formatter,
    )
    root.add_argument("--version", action="version", version=f"triage-bot {package_version()}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=kwargs.pop("description", text), formatter_class=_Formatter)

    serve = command("serve", "run the webhook server and its workers")
    serve.add_argument("--host", help="address to listen on (default: TRIAGE_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: TRIAGE_PORT, else 8080)")
    serve.add_argument(
        "--workers", type=int, metavar="N", help="worker threads per worker process (0: no workers, intake only)"
    )
    serve.add_argument(
        "--processes", type=int, metavar="N", help="worker processes (0: the worker threads run in this process)"
    )
    serve.set_defaults(func=cmd_serve)

    worker = command("worker", "run workers only, beside servers started with TRIAGE_WORKERS=0 or to add capacity")
    worker.add_argument("--threads", type=int, metavar="N", help="worker threads (default: TRIAGE_WORKERS, else 8)")
    worker.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="answer GET /metrics and /healthz on this port (default: TRIAGE_WORKER_METRICS_PORT, else none)",
    )
    worker.add_argument("--supervised", type=int, metavar="FD", help=argparse.SUPPRESS)  # serve's wake pipe
    worker.set_defaults(func=cmd_worker)

    db = command("db", "the database schema (Alembic migrations)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser(
        "upgrade",
        help="migrate the schema to the newest (once per release, before the new replicas start)",
        description="Migrate the database at TRIAGE_DATABASE_URL to the newest schema this version knows. A SQLite "
        "file's folder is created only inside the current folder.",
        formatter_class=_Formatter,
    )
    upgrade.set_defaults(func=cmd_db_upgrade)
    current = db.add_parser(
        "current",
        help="say whether the schema is the newest (exit 1 when it is not)",
        description="Say whether the database's schema is the newest this version knows: exit 0 when it is, 1 when "
        "`db upgrade` is needed.",
        formatter_class=_Formatter,
    )
    current.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for it (an init container)"
    )
    current.set_defaults(func=cmd_db_current)

    policy = command("policy", "the routing policy").add_subparsers(dest="action", required=True, metavar="ACTION")
    check = policy.add_parser(
        "check",
        help="check a policy file (exit 1 with the line of each mistake)",
        description="Check a policy file: exit 0 when the bot would take it, 1 with the line of each mistake.",
        formatter_class=_Formatter,
    )
    check.add_argument("file", help="the policy YAML file")
    check.set_defaults(func=cmd_policy_check)

    route = command("route", "show what an alert payload would do, touching nothing")
    route.add_argument("alert", help="a JSON file: an Alertmanager, Grafana or Events API v2 payload")
    route.add_argument("--policy", help="policy file (default: TRIAGE_POLICY, else the shipped example)")
    route.add_argument("--json", action="store_true", help="print the decision as JSON")
    route.set_defaults(func=cmd_route)

    jobs = command(
        "jobs",
        "list jobs (dead and refused ones by default); retry or drop them",
        description="Dead jobs failed for good and hold their lane (the ticket's later work for that system waits); "
        "refused jobs are changes an outside system refused (said in the card's thread), holding nothing up.",
    )
    jobs.add_argument(
        "action", nargs="?", choices=["list", "retry", "drop"], default="list", help="what to do (default: list)"
    )
    jobs.add_argument("ids", nargs="*", type=int, metavar="ID", help="the jobs to retry or drop")
    jobs.add_argument(
        "--status", type=_statuses, default="dead,refused", help=f"comma list of: {', '.join(JOB_STATUSES)}"
    )
    jobs.add_argument("--limit", type=int, default=100, metavar="N", help="list at most this many")
    jobs.set_defaults(func=cmd_jobs)

    demo = command("demo", "send a sample alert group to a running server and show what it became")
    demo.add_argument("--url", default="http://127.0.0.1:8080", help="the running server")
    demo.add_argument("--token", help="its webhook token (default: TRIAGE_WEBHOOK_TOKEN, else the sandbox's)")
    demo.add_argument("--wait", type=float, default=30.0, metavar="SECONDS", help="how long to wait for each step")
    demo.add_argument(
        "--report", action="store_true", help="a customer report instead, through triage to the closing e-mail"
    )
    demo.set_defaults(func=lambda a: cmd_demo_report(a) if a.report else cmd_demo(a))

    sandbox = command("sandbox", "run the Jira and Slack emulators alone")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=_port, default=8081, help="port to listen on")
    sandbox.set_defaults(func=cmd_sandbox)

    completion = command(
        "completion",
        "print the shell completion script",
        description='Print the shell completion script, e.g. in ~/.bashrc: eval "$(triage-bot completion bash)"',
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish", "tcsh"], help="your shell")
    completion.set_defaults(func=cmd_completion)
    return root


def main(argv: list[str] | None = None) -> int:
    import argcomplete

    from bot.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    cli = parser()
    argcomplete.autocomplete(cli)
    args = cli.parse_args(argv)
    if args.command == "jobs" and args.action != "list" and not args.ids:
        cli.error(f"say which jobs: triage-bot jobs {args.action} ID [ID...]")
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _expected(exc)
        if message is None:
            raise
        return _fail(message)
    return result


def _expected(exc: Exception) -> str | None:
    """The one line for a failure that is no bug of ours (a database that does not answer), else None."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is not None and isinstance(exc, errors.OperationalError | errors.InterfaceError):
        return f"the database does not answer: {str(exc.orig or exc).strip().splitlines()[0]}"
    return None


if __name__ == "__main__":
    sys.exit(main())
