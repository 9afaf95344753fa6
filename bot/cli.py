"""The triage-bot command line: serve, worker, db, policy, route, jobs, demo, sandbox."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot.settings import Settings, SettingsError, load_settings
from workflows.policy import Policy, PolicyError, load_policy


def _fail(message: str, code: int = 2) -> int:
    print(f"triage-bot: {message}", file=sys.stderr)
    return code


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise SystemExit(_fail(str(exc))) from None


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
    if settings.full_sandbox and not os.environ.get("TRIAGE_DATABASE_URL"):
        # The emulators keep nothing across restarts, so neither may the tickets that point into them.
        for stale in Path("var").glob("sandbox.db*"):
            stale.unlink()
        print("sandbox: a fresh database at var/sandbox.db (set TRIAGE_DATABASE_URL to keep one)", file=sys.stderr)
    try:
        load_policy(settings.policy)
    except PolicyError as exc:
        return _fail(str(exc))
    metrics_dir = None
    if settings.workers and settings.worker_processes and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The worker processes count their jobs and calls too: every process writes its metrics to files here and
        # /metrics adds them up. Set before anything imports prometheus_client; the children inherit it.
        metrics_dir = _fresh_metrics_dir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        _remove_on_signal(metrics_dir)
    mode = "SANDBOX MODE (built-in Jira and/or Slack emulators)" if settings.sandbox else "live"
    print(f"triage-bot serving on {settings.local_url} in {mode}; policy {settings.policy}", file=sys.stderr)
    print(f"  workers: {_workers_line(settings)}", file=sys.stderr)
    if settings.sandbox:
        print(f"  Jira emulator:  {settings.local_url}/sandbox/jira/_emulator/issues", file=sys.stderr)
        print(f"  Slack emulator: {settings.local_url}/sandbox/slack/_emulator/messages", file=sys.stderr)
        print(f"  try it:         triage-bot demo --url {settings.local_url}", file=sys.stderr)
    try:
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
    return 0


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
    runtime = Runtime.build(settings)
    if not migrate.is_current(runtime.engine, settings.database_url):
        return _fail("the database schema is not current: run `triage-bot db upgrade` first")
    pool = worker_pool(runtime, args.threads or settings.workers or 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.supervised is None:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    else:
        # Started by `serve`: Ctrl-C in a terminal reaches the whole process group, and `serve` stops its workers
        # itself (SIGTERM, or the wake pipe's end of file when it is gone).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.follow_parent(args.supervised, pool.wake, stop.set)
    pool.start()
    whose = f" (worker process of serve {os.getppid()})" if args.supervised is not None else "; Ctrl-C to stop"
    print(f"triage-bot worker {pool.name}: {pool.threads} threads{whose}", file=sys.stderr)
    stop.wait()
    pool.stop()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from bot.db import migrate
    from bot.db.engine import make_engine

    settings = _settings()
    engine = make_engine(settings.database_url)
    if args.action == "upgrade":
        before = migrate.current_revision(engine)
        migrate.upgrade(settings.database_url)
        after = migrate.current_revision(engine)
        print(
            f"database schema: {before or 'empty'} -> {after}"
            if before != after
            else f"database schema already current ({after})"
        )
    else:
        current, head = migrate.current_revision(engine), migrate.head_revision(settings.database_url)
        print(f"current {current or 'empty'}, head {head}: {'up to date' if current == head else 'run db upgrade'}")
    return 0


def _policy(path: str | None) -> Policy:
    try:
        return load_policy(path or _settings().policy)
    except PolicyError as exc:
        raise SystemExit(_fail(str(exc))) from None


def cmd_policy(args: argparse.Namespace) -> int:
    from workflows.severity import known_words

    policy = _policy(args.file)
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
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from workflows.alerts import parse_any
    from workflows.routing import dedup_label, is_test, route
    from workflows.tickets import LINK_NAMES

    policy = _policy(args.policy)
    try:
        body = json.loads(Path(args.alert).read_text(encoding="utf-8"))
        note = parse_any(body)
    except (OSError, json.JSONDecodeError) as exc:
        return _fail(f"cannot read {args.alert}: {exc}")
    except ValidationError as exc:
        return _fail(f"{args.alert} is not an Alertmanager, Grafana or Events v2 payload:\n{exc}")
    routing = route(policy, note)
    env = policy.environment_named(routing.environment)
    result = {
        "source": note.source.value,
        "status": note.status,
        "title": note.title,
        "environment": routing.environment,
        "dedup_key": note.dedup_key,
        "jira_label": dedup_label(note.dedup_key, 1),
        "severity": routing.severity or "(none)",
        "priority": routing.priority,
        "owner": routing.owner,
        "channel": routing.channel,
        "on_resolve": env.on_resolve,
        "reopen": env.reopen,
        "alerts": len(note.alerts),
        "rules": ", ".join(f"{r.name} ({r.firing} of {r.total} firing)" for r in note.rules) or "(none)",
        "test": policy.test_notifications.action if is_test(policy, note) else "no",
        "links": list(dict.fromkeys(f"{LINK_NAMES[x.kind]}: {x.url}" for a in note.alerts for x in a.links)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            if isinstance(value, list):
                value = ("\n" + " " * (width + 2)).join(value) or "(none)"
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from bot.db import migrate
    from bot.db.engine import make_engine
    from bot.jobs import queue

    settings = _settings()
    engine = make_engine(settings.database_url)
    if not migrate.is_current(engine, settings.database_url):
        return _fail(
            f"the database at {settings.database_url} has no current schema: is this the server's "
            "TRIAGE_DATABASE_URL? (`triage-bot db upgrade` creates it)"
        )
    if args.action in ("retry", "drop"):
        act, done = {
            "retry": (queue.retry, "queued again"),
            "drop": (queue.drop, "dropped; later jobs of its lane can run"),
        }[args.action]
        if not args.ids:
            return _fail(f"say which jobs: triage-bot jobs {args.action} ID [ID...]")
        code = 0
        for job_id in args.ids:
            if act(engine, job_id):
                print(f"job {job_id}: {done}")
            else:
                code = _fail(f"job {job_id}: not found, or neither dead nor refused", 1)
        return code
    statuses = args.status.split(",")
    with Session(engine) as session:
        counts = queue.stats(session).counts
        jobs = queue.list_jobs(session, statuses, args.limit)
    print("queue: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in ("pending", "running", "dead", "refused", "done")))
    if not jobs:
        print(f"no {args.status} jobs")
        return 0
    print(f"{'ID':>7}  {'STATUS':<8} {'KIND':<16} {'TRIES':>5}  {'LANE':<28} LAST ERROR")
    for job in jobs:
        error = (job.last_error or "").splitlines()[0][:90] if job.last_error else ""
        print(f"{job.id:>7}  {job.status:<8} {job.kind:<16} {job.attempts:>5}  {job.lane[:28]:<28} {error}")
    if any(j.status in ("dead", "refused") for j in jobs):
        print(
            "\ndead: holds the later jobs of its lane; refused: an outside system said no, nothing waits for it.\n"
            "run one again with: triage-bot jobs retry ID   (or give up on it: triage-bot jobs drop ID)"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import httpx

    from bot.settings import EXAMPLE_POLICY

    token = args.token or os.environ.get("TRIAGE_WEBHOOK_TOKEN") or "sandbox-webhook-token"
    headers = {"Authorization": f"Bearer {token}"}
    payload = json.loads((EXAMPLE_POLICY.parent / "alertmanager.json").read_text(encoding="utf-8"))
    payload["groupKey"] = f'{{}}:{{alertname="HighErrorRate", demo="{int(time.time())}"}}'
    with httpx.Client(base_url=args.url, headers=headers, timeout=10) as client:
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
            return _fail(f"no ticket and card after {args.wait}s; see `triage-bot jobs` and the server log", 1)
        print(f"\nJira ticket {ticket['jira_key']}: {ticket['jira_url']}")
        print(f"  state {ticket['state']}, priority {ticket['priority']}, environment {ticket['environment']}")
        sandbox = client.get(
            f"/sandbox/jira/rest/api/2/issue/{ticket['jira_key']}", auth=("sandbox@example.com", "sandbox-token")
        )
        if sandbox.status_code == 200:
            fields = sandbox.json()["fields"]
            print(f"  summary: {fields['summary']}\n  labels:  {', '.join(fields['labels'])}")
        print(f"\nSlack card in {ticket['slack_channel']} (ts {ticket['slack_ts']})")
        messages = client.get("/sandbox/slack/_emulator/messages", params={"channel": ticket["slack_channel"]})
        if messages.status_code == 200:
            for message in messages.json().get("messages", []):
                if message.get("ts") == ticket["slack_ts"]:
                    for block in message.get("blocks", []):
                        texts = [block.get("text", {}).get("text", "")] + [
                            f.get("text", "") for f in block.get("fields", [])
                        ]
                        for text in filter(None, texts):
                            print("  | " + text.replace("\n", ": "))
    return 0


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
            raise SystemExit(_fail(f"{what} did not happen within {args.wait}s; see `triage-bot jobs`", 1))

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
        print(f"   e-mail to {receipt['to']}: {receipt['subject']}")
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
        closing = mail("closed")
        print(f"   e-mail to {closing['to']}: {closing['subject']}")
        for line in closing["text"].splitlines()[:8]:
            print(f"   | {line}")
    return 0


def _send(client: Any, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST to the running server, or stop with what to do when it is not there."""
    import httpx

    try:
        return client.post(path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SystemExit(
            _fail(f"cannot reach {client.base_url}: {exc}; is `triage-bot serve` (make run) running?")
        ) from None


def _card_in(client: Any, channel: str, ticket_id: int, button: str) -> str | None:
    """The ts of the ticket's card in ``channel``, once it shows ``button``."""
    messages = client.get("/sandbox/slack/_emulator/messages", params={"channel": channel}).json()["messages"]
    for message in messages:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        if (
            not message.get("thread_ts")
            and payload.get("ticket_id") == ticket_id
            and button in json.dumps(message["blocks"])
        ):
            return str(message["ts"])
    return None


def _deliver(client: Any, signed: dict[str, Any]) -> None:
    """Deliver a request the Slack emulator signed, as Slack's network would."""
    if not signed.get("ok"):
        raise SystemExit(_fail(f"the Slack emulator could not make the request: {signed.get('error')}", 1))
    answer = client.post("/slack/events", content=signed["body"], headers=signed["headers"])
    if answer.status_code != 200:
        raise SystemExit(_fail(f"/slack/events answered {answer.status_code}: {answer.text}", 1))


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
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="triage-bot", description="Alerts and reports to Jira, triaged in Slack.")
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook server (and its workers)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker threads per worker process (0: no workers, intake only)")
    serve.add_argument("--processes", type=int, help="worker processes (0: the worker threads run in this process)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run workers only")
    worker.add_argument("--threads", type=int)
    worker.add_argument("--supervised", type=int, metavar="FD", help=argparse.SUPPRESS)  # serve's wake pipe
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(func=cmd_db)

    policy = sub.add_parser("policy", help="check a policy file")
    policy.add_argument("action", choices=["check"])
    policy.add_argument("file")
    policy.set_defaults(func=cmd_policy)

    route = sub.add_parser("route", help="show what an alert payload would do, touching nothing")
    route.add_argument("alert", help="a JSON file: Alertmanager, Grafana or Events v2 payload")
    route.add_argument("--policy", help="policy file (default: TRIAGE_POLICY or the example)")
    route.add_argument("--json", action="store_true")
    route.set_defaults(func=cmd_route)

    jobs = sub.add_parser(
        "jobs",
        help="list jobs (dead and refused ones by default); retry or drop them",
        description="Dead jobs failed for good and hold their lane (the ticket's later work for that system waits); "
        "refused jobs are changes an outside system refused (said in the card's thread), holding nothing up.",
    )
    jobs.add_argument("action", nargs="?", choices=["list", "retry", "drop"], default="list")
    jobs.add_argument("ids", nargs="*", type=int)
    jobs.add_argument("--status", default="dead,refused", help="comma list: pending,running,dead,refused,done")
    jobs.add_argument("--limit", type=int, default=100)
    jobs.set_defaults(func=cmd_jobs)

    demo = sub.add_parser("demo", help="send a sample alert group to a running server and show the result")
    demo.add_argument("--url", default="http://127.0.0.1:8080")
    demo.add_argument("--token")
    demo.add_argument("--wait", type=float, default=30.0)
    demo.add_argument("--report", action="store_true", help="a customer report, through triage to the closing e-mail")
    demo.set_defaults(func=lambda a: cmd_demo_report(a) if a.report else cmd_demo(a))

    sandbox = sub.add_parser("sandbox", help="run the Jira and Slack emulators alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.set_defaults(func=cmd_sandbox)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
