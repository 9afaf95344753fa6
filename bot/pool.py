"""The worker pool of a running bot: every job kind with its handler, and the timers that run beside them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from bot.jobs import housekeeping
from bot.jobs.kinds import HOLDS_ITS_LANE, PATIENT, JobKind
from bot.jobs.worker import JobContext, Timer, WorkerPool
from bot.runtime import Runtime
from bot.tickets import clicks, email, escalation, jira_sync, slack_cards
from bot.tickets.alerts import process_alert
from bot.tickets.jira_events import handle_jira_event
from bot.tickets.manual import open_ticket

RuntimeHandler = Callable[[Runtime, JobContext], None]

HANDLERS: dict[JobKind, RuntimeHandler] = {
    JobKind.ALERT_PROCESS: process_alert,
    JobKind.SLACK_ACTION: clicks.handle_slack_action,
    JobKind.JIRA_EVENT: handle_jira_event,
    JobKind.TICKET_NEW: open_ticket,
    JobKind.JIRA_CREATE: jira_sync.jira_create,
    JobKind.JIRA_SYNC: jira_sync.jira_sync,
    JobKind.JIRA_COMMENT: jira_sync.jira_comment,
    JobKind.JIRA_ATTACH: jira_sync.jira_attach,
    JobKind.SLACK_CARD: slack_cards.slack_card,
    JobKind.SLACK_NOTE: slack_cards.slack_note,
    JobKind.MAIL_SEND: email.send,
    JobKind.SLACK_EPHEMERAL: clicks.send_ephemeral,
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
    handlers = {kind.value: partial(handler, runtime) for kind, handler in HANDLERS.items()}
    return WorkerPool(
        runtime.engine,
        settings,
        handlers,
        threads,
        patient=frozenset(PATIENT),
        holding=frozenset(HOLDS_ITS_LANE),
        timers=timers,
    )
