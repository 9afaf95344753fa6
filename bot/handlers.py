"""Job kind -> handler: everything the workers know how to do."""

from __future__ import annotations

from bot.alert_processing import KIND as ALERT_PROCESS
from bot.alert_processing import process_alert
from bot.jira_events import KIND as JIRA_EVENT
from bot.jira_events import handle_jira_event
from bot.mail_jobs import KIND as MAIL_SEND
from bot.mail_jobs import send as send_mail
from bot.manual_tickets import KIND as TICKET_NEW
from bot.manual_tickets import open_ticket
from bot.slack_actions import EPHEMERAL, handle_slack_action, send_ephemeral
from bot.slack_actions import KIND as SLACK_ACTION
from bot.ticket_effects import HANDLERS as TICKET_EFFECTS
from bot.worker import Handler

# Kinds retried for as long as their outage lasts (backoff capped at 5 minutes) instead of job_max_attempts:
# an e-mail to a customer must not be lost to a long SMTP outage.
PATIENT_KINDS = frozenset({MAIL_SEND})


def all_handlers() -> dict[str, Handler]:
    return {
        ALERT_PROCESS: process_alert,
        JIRA_EVENT: handle_jira_event,
        SLACK_ACTION: handle_slack_action,
        EPHEMERAL: send_ephemeral,
        TICKET_NEW: open_ticket,
        MAIL_SEND: send_mail,
        **TICKET_EFFECTS,
    }
