"""The worker pool of a running bot: every job kind with its handler, and the timers that run beside them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from bot.jobs import housekeeping
from bot.jobs.worker import JobContext, Timer, WorkerPool
from bot.runtime import Runtime
from bot.tickets import escalation
from bot.tickets.alerts import KIND as ALERT_PROCESS
from bot.tickets.alerts import process_alert
from bot.tickets.clicks import EPHEMERAL, handle_slack_action, send_ephemeral
from bot.tickets.clicks import KIND as SLACK_ACTION
from bot.tickets.effects import HANDLERS as TICKET_EFFECTS
from bot.tickets.email import KIND as MAIL_SEND
from bot.tickets.email import send as send_mail
from bot.tickets.jira_events import KIND as JIRA_EVENT
from bot.tickets.jira_events import handle_jira_event
from bot.tickets.manual import KIND as TICKET_NEW
from bot.tickets.manual import open_ticket

RuntimeHandler = Callable[[Runtime, JobContext], None]

# Kinds retried for as long as their outage lasts (backoff capped at 5 minutes) instead of job_max_attempts:
# an e-mail to a customer must not be lost to a long SMTP outage.
PATIENT_KINDS = frozenset({MAIL_SEND})


def all_handlers() -> dict[str, RuntimeHandler]:
    return {
        ALERT_PROCESS: process_alert,
        JIRA_EVENT: handle_jira_event,
        SLACK_ACTION: handle_slack_action,
        EPHEMERAL: send_ephemeral,
        TICKET_NEW: open_ticket,
        MAIL_SEND: send_mail,
        **TICKET_EFFECTS,
    }


def worker_pool(runtime: Runtime, threads: int) -> WorkerPool:
    """Workers for every job kind, with the escalation scan and housekeeping on their timers."""
    settings = runtime.settings

    def tidy() -> bool:
        housekeeping.purge(runtime.engine, settings.event_retention_days)
        return False  # it queues nothing

    timers = (
        Timer("escalation", settings.escalation_scan_seconds, lambda: escalation.scan(runtime) > 0),
        Timer("housekeeping", housekeeping.SECONDS, tidy),
    )
    handlers = {kind: partial(handler, runtime) for kind, handler in all_handlers().items()}
    return WorkerPool(runtime.engine, settings, handlers, threads, patient=PATIENT_KINDS, timers=timers)
