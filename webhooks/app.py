"""The FastAPI app factory: one app, one router per source, workers started with it.

``uvicorn --factory webhooks.app:create_app`` (what ``triage-bot serve`` runs) reads TRIAGE_* settings. The
workers are ``TRIAGE_WORKER_PROCESSES`` processes supervised from here (``bot.supervisor``), or with 0 of them
threads of this process; request handlers wake them after each commit (``webhooks.deps.Waker``).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry
from sqlmodel import Session

from bot import logs
from bot.clients.identity import SessionVerifier
from bot.clients.slack import GROUPS_TTL
from bot.db import migrate
from bot.jobs import queue
from bot.mail.mailer import Mailer
from bot.metrics import process_registry, register_queue_collector
from bot.pool import worker_pool
from bot.runtime import Runtime
from bot.settings import Settings, load_settings, package_version
from bot.supervisor import WorkerProcesses
from webhooks import alerts, docs, errors, health, jira, openapi, reports, tickets
from webhooks.console.web import Emulators
from webhooks.deps import Nobody
from webhooks.slack import app as slack

if TYPE_CHECKING:
    from bot.sandbox.jira_emulator import JiraEmulator
    from bot.sandbox.mail_catcher import MailCatcher

log = logging.getLogger("triage.server")


def _prepare_schema(runtime: Runtime) -> None:
    settings = runtime.settings
    state, revision = migrate.schema_state(runtime.engine)
    if state == "ahead":
        log.warning(
            "the database schema is newer than this release (a rolling update under way?): serving on it",
            extra={"schema": revision, "head": migrate.head_revision()},
        )
    elif settings.migrate_on_start:
        migrate.upgrade(settings.database_url)
    elif state != "current":
        raise SystemExit(
            f"the database schema is not current (at {revision or 'empty'}, "
            f"head {migrate.head_revision()}): run `triage-bot db upgrade` first"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    runtime = Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_prepare_schema, runtime)
        socket_mode = None
        if settings.slack_app_token is not None:
            from webhooks.slack.socket_mode import SlackSocketMode

            # Before the workers start: a token Slack refuses ends the start here (SystemExit, naming the variable).
            socket_mode = await SlackSocketMode.start(app.state.bolt, settings)
        if catcher is not None:
            catcher.start()  # the sandbox's SMTP server, on a free port: its mail at /sandbox/mail
            runtime.mailer = Mailer(settings, catcher.target)
        pool, processes = None, None
        if settings.workers and settings.worker_processes:
            processes = WorkerProcesses(
                settings.worker_processes,
                settings.workers,
                _worker_environment(settings, catcher),
                grace_seconds=settings.worker_stop_seconds + 5,  # the children's own wait, and their exit
            )
            processes.start()
            app.state.waker = processes
        elif settings.workers:
            pool = worker_pool(runtime, settings.workers)  # in this process: TRIAGE_WORKER_PROCESSES=0
            pool.start()
            app.state.waker = pool
        groups_stop = threading.Event()
        if pool is None:  # no worker here reads the policy's Slack user groups into this process's gateway
            threading.Thread(
                target=_keep_user_groups_known, args=(runtime, groups_stop), name="slack-user-groups", daemon=True
            ).start()
        if settings.sandbox:
            parts = settings.parts()
            emulated = [name for name, state, _ in parts if state == "emulated"]
            real = [name for name, state, _ in parts if state == "real"]
            log.warning(
                ("SANDBOX MODE: " if settings.full_sandbox else "PARTLY EMULATED: ")
                + f"emulated here: {', '.join(emulated)}; real: {', '.join(real) or 'nothing'}"
                + ("; nothing is sent outside this machine" if not real else ""),
                extra={name.lower(): f"{state}: {where}" for name, state, where in parts}
                | {"console": f"{settings.base_url}/console/" if settings.console_enabled else None},
            )
        log.info(
            "triage-bot ready",
            extra={
                "listen": settings.local_url,
                "worker_processes": settings.worker_processes if settings.workers else 0,
                "workers": settings.workers,
            },
        )
        try:
            yield
        finally:
            if app.state.verifier is not None:
                await app.state.verifier.aclose()
            if socket_mode is not None:
                await socket_mode.close()  # no more clicks in; the ones acked are stored already
            app.state.waker = Nobody()
            groups_stop.set()
            if processes is not None:
                await run_in_threadpool(processes.stop)  # they finish the jobs they are running
            if pool is not None:
                await run_in_threadpool(pool.stop)
            if catcher is not None:
                await run_in_threadpool(catcher.stop)  # after the workers, which may be sending to it
            runtime.engine.dispose()

    app = FastAPI(title="triage-bot", version=package_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.state.waker = Nobody()  # until the lifespan starts the workers, or for good when there are none
    registry = CollectorRegistry()
    register_queue_collector(registry, lambda: _queue_counts(runtime))
    app.state.metrics_registries = (_process_metrics(settings), registry)
    errors.install(app)
    docs.install(app)
    openapi.install(app)
    app.include_router(alerts.router)
    app.include_router(jira.router)
    app.state.bolt = slack.install(app, runtime, wake=lambda: app.state.waker.wake())
    app.include_router(tickets.router)
    app.state.verifier = SessionVerifier(settings) if settings.effective_identity() else None
    app.include_router(reports.router)
    app.include_router(health.router)
    emulators = Emulators()
    if settings.jira_sandbox:
        from bot.sandbox.jira_emulator import create_jira_emulator

        jira_app = create_jira_emulator()
        app.mount("/sandbox/jira", jira_app)
        emulators.jira = jira_app.state.emulator
        if settings.full_sandbox or settings.jira_webhook_secret is not None:  # never a real token in its URL
            _send_jira_webhooks(settings, jira_app.state.emulator)
    catcher = None
    if settings.mail_sandbox:
        from bot.sandbox.mail_catcher import MailCatcher, create_mail_catcher_app

        catcher = MailCatcher()
        app.mount("/sandbox/mail", create_mail_catcher_app(catcher))
        emulators.mail = catcher
    if settings.identity_sandbox:
        from bot.sandbox.identity_emulator import create_identity_emulator

        identity_app = create_identity_emulator()
        app.mount("/sandbox/identity", identity_app)
        emulators.identity = identity_app.state.emulator
    if settings.slack_sandbox:
        from bot.sandbox.slack_emulator import create_slack_emulator

        slack_app = create_slack_emulator()
        app.mount("/sandbox/slack", slack_app)
        emulators.slack = slack_app.state.emulator
    if settings.console_enabled:
        from webhooks.console.app import install as install_console

        install_console(app, runtime, emulators)
    return app


def _send_jira_webhooks(settings: Settings, emulator: JiraEmulator) -> None:
    """The sandbox's Jira tells the bot of changes made in it, as a Jira admin webhook does: signed with
    TRIAGE_JIRA_WEBHOOK_SECRET when it is set, otherwise with the token in the URL (as the README says to set it
    up)."""
    secret = settings.jira_webhook_secret.get_secret_value() if settings.jira_webhook_secret else None
    url = f"{settings.local_url}/jira/webhook"
    if secret is None:
        url += "?" + urllib.parse.urlencode({"token": settings.effective_webhook_token()})
    emulator.add_webhook(url, secret=secret, events=["jira:issue_updated", "comment_created"])


def _worker_environment(settings: Settings, catcher: MailCatcher | None) -> dict[str, str]:
    """The worker processes' environment: this one's, plus what was decided here at start."""
    env = {
        **os.environ,
        "TRIAGE_DATABASE_URL": settings.database_url,  # the sandbox's default is decided here
        "TRIAGE_HOST": settings.host,  # where the sandbox emulators are: in this process
        "TRIAGE_PORT": str(settings.port),
    }
    if catcher is not None:
        # The sandbox mail catcher listens on a port picked at start, in this process: the workers send to it.
        target = catcher.target
        env["TRIAGE_SMTP_URL"] = f"smtp://{target.host}:{target.port}?starttls=off"
    return env


def _keep_user_groups_known(runtime: Runtime, stop: threading.Event) -> None:
    """The Slack listeners open forms with the policy's user groups as this process last read them (the ack cannot
    wait for Slack). Workers in this process read them as they decide; without any, they are read here: at start
    (again every 2 s until Slack answers) and then before they go stale."""
    lists = [a.users for a in runtime.policy.audiences() if any(u.startswith("S") for u in a.users)]
    while lists:
        for users in lists:
            try:
                runtime.slack.members(users)  # a group Slack cannot list keeps its last known members
            except Exception as exc:
                log.warning("cannot read the policy's Slack user groups", extra={"error": str(exc)[:300]})
        unknown = any(runtime.slack.known_members(users) is None for users in lists)
        if stop.wait(2.0 if unknown else GROUPS_TTL / 2):
            return


def _process_metrics(settings: Settings) -> CollectorRegistry:
    """Where this process's metrics (and its worker processes') are read."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") and settings.workers and settings.worker_processes:
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: /metrics shows this process's counters only, not the worker "
            "processes' (start with `triage-bot serve`, which sets it)"
        )
    return process_registry()


def _queue_counts(runtime: Runtime) -> dict[str, int]:
    with Session(runtime.engine) as session:
        return queue.stats(session).counts
