"""GET /api/tickets: what became of an alert (used by `triage-bot demo` and by operators' scripts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, col, select

from bot.db.models import Ticket, TicketHistory
from bot.runtime import Runtime
from bot.tickets.store import dedup_hash
from webhooks.auth import require_token
from webhooks.deps import RuntimeDep
from webhooks.errors import Refusal
from webhooks.openapi import BEARER, secured

router = APIRouter(prefix="/api", tags=["tickets"])


def public(runtime: Runtime, ticket: Ticket, history: list[TicketHistory] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ticket.id,
        "title": ticket.title,
        "state": ticket.state,
        "source": ticket.source,
        "environment": ticket.environment,
        "team": ticket.team,
        "assignee": ticket.assignee,
        "report_ref": ticket.report_ref,
        "customer": ticket.customer_sub,
        "priority": ticket.priority,
        "test": ticket.test,
        "alert_status": ticket.alert_status,
        "firing_alerts": sum(1 for a in ticket.alerts if a["status"] == "firing"),
        "jira_key": ticket.jira_key,
        "jira_url": runtime.jira.browse_url(ticket.jira_key) if ticket.jira_key else None,
        "slack_channel": ticket.slack_channel,
        "slack_ts": ticket.slack_ts,
        "generation": ticket.generation,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }
    if history is not None:
        out["history"] = [
            {
                "at": h.at.isoformat(),
                "actor": h.actor,
                "via": h.via,
                "from": h.from_state,
                "to": h.to_state,
                "note": h.note,
            }
            for h in history
        ]
    return out


@router.get("/tickets", openapi_extra=secured(BEARER))
async def list_tickets(
    request: Request,
    runtime: RuntimeDep,
    dedup_key: str | None = Query(default=None, max_length=4096),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    require_token(request, runtime.settings.effective_webhook_token())

    def read() -> list[dict[str, Any]]:
        with Session(runtime.engine) as session:
            query = select(Ticket).order_by(col(Ticket.id).desc()).limit(limit)
            if dedup_key is not None:
                query = query.where(Ticket.dedup_hash == dedup_hash(dedup_key))
            return [public(runtime, t) for t in session.exec(query)]

    return {"tickets": await run_in_threadpool(read)}


@router.get("/tickets/{ticket_id}", openapi_extra=secured(BEARER))
async def get_ticket(
    request: Request, runtime: RuntimeDep, ticket_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> dict[str, Any]:
    require_token(request, runtime.settings.effective_webhook_token())

    def read() -> dict[str, Any] | None:
        with Session(runtime.engine) as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                return None
            history = list(
                session.exec(
                    select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(col(TicketHistory.id))
                )
            )
            return public(runtime, ticket, history)

    found = await run_in_threadpool(read)
    if found is None:
        raise Refusal(404, "not_found", f"no ticket {ticket_id}")
    return found
