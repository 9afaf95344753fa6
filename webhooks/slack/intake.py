"""What every Slack listener does before its ack: store what Slack sent with its job, in one transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.db.engine import transaction
from bot.db.models import InboundEvent
from bot.jobs import queue
from bot.jobs.kinds import new_ticket_lane
from bot.runtime import Runtime


def persist(runtime: Runtime, body: dict[str, Any], delivery: str, kind: str, lane: str | None = None) -> bool:
    """Store what Slack sent and its job, before the ack; False if Slack sent it before (a retry)."""
    try:
        with transaction(runtime.engine) as session:
            event = InboundEvent(source="slack", delivery_id=delivery[:255], body=json.dumps(body))
            session.add(event)
            session.flush()
            lane = lane or new_ticket_lane(event.id or 0)  # a submission that opens a ticket
            # A person clicked or typed and is waiting to see it work.
            queue.enqueue(session, kind=kind, lane=lane, payload={"event_id": event.id}, priority=queue.URGENT)
        return True
    except IntegrityError:
        return False
