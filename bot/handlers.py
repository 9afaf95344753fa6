"""Job kind -> handler: everything the workers know how to do."""

from __future__ import annotations

from bot.alert_processing import KIND as ALERT_PROCESS
from bot.alert_processing import process_alert
from bot.ticket_effects import HANDLERS as TICKET_EFFECTS
from bot.worker import Handler


def all_handlers() -> dict[str, Handler]:
    return {ALERT_PROCESS: process_alert, **TICKET_EFFECTS}
