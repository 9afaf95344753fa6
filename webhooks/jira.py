"""POST /jira/webhook: changes people make in Jira flow back to the bot's tickets and cards.

Signed with ``X-Hub-Signature: sha256=...`` when TRIAGE_JIRA_WEBHOOK_SECRET is set (Jira admin webhooks
with a secret); otherwise the webhook URL must carry ``?token=<TRIAGE_WEBHOOK_TOKEN>``. Deliveries are
deduplicated by ``X-Atlassian-Webhook-Identifier`` (the same across Jira's retries). The body is read by
``workflows.jira_webhooks.JiraWebhook``; what it cannot read is refused with 422 and the reasons.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.db.engine import transaction
from bot.db.models import InboundEvent, Ticket
from bot.jobs import queue
from bot.jobs.kinds import jira_in_lane
from bot.runtime import Runtime
from bot.tickets.jira_events import KIND
from webhooks.auth import hmac_matches, require_token
from webhooks.deps import RuntimeDep, WakerDep
from webhooks.errors import Refusal, jsonable_errors
from webhooks.intake import read_json_object
from webhooks.openapi import BEARER, json_body
from workflows.jira_webhooks import JiraWebhook

router = APIRouter(prefix="/jira", tags=["jira"])
IDENTIFIER = "X-Atlassian-Webhook-Identifier"


def _check_signature(request: Request, body: bytes, secret: str) -> None:
    header = request.headers.get("x-hub-signature", "")
    method, _, signature = header.partition("=")
    if method.lower() != "sha256" or not signature:
        raise Refusal(401, "missing_signature", "X-Hub-Signature: sha256=<hex> is required (a secret is set)")
    if not hmac_matches(secret, body, signature):
        raise Refusal(401, "bad_signature", "the X-Hub-Signature does not match the body")


def _authenticate(request: Request, runtime: Runtime, body: bytes) -> None:
    secret = runtime.settings.jira_webhook_secret
    if secret is not None:
        _check_signature(request, body, secret.get_secret_value())
        return
    token = request.query_params.get("token")
    expected = runtime.settings.effective_webhook_token()
    if token is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return
    require_token(request, expected)


def persist(runtime: Runtime, key: str | None, issue_id: str | None, delivery: str | None, body: str) -> str:
    """Store the delivery and queue its job in the ticket's lane; say what happened. The ticket is found by the
    issue's key, or (older Data Center comment events name no key) by the issue's id."""
    try:
        with transaction(runtime.engine) as session:
            by = Ticket.jira_key == key if key is not None else Ticket.jira_issue_id == issue_id
            ticket = session.exec(select(Ticket).where(by).order_by(col(Ticket.id).desc())).first()
            if ticket is None or ticket.id is None:
                return "ignored: not a triage-bot ticket"
            if issue_id and ticket.jira_issue_id is None:
                ticket.jira_issue_id = issue_id  # tickets opened before ids were kept learn theirs here
                session.add(ticket)
            event = InboundEvent(source="jira", delivery_id=delivery, body=body)
            session.add(event)
            session.flush()
            queue.enqueue(session, kind=KIND, lane=jira_in_lane(ticket.id), payload={"event_id": event.id})
            return "accepted"
    except IntegrityError:
        return "duplicate: this delivery was received before"


@router.post(
    "/webhook",
    openapi_extra=json_body(
        JiraWebhook,
        "a Jira issue or comment event (Cloud or Data Center)",
        "jiraSignature",
        "jiraUrlToken",
        BEARER,
    ),
)
async def jira_webhook(request: Request, runtime: RuntimeDep, waker: WakerDep) -> JSONResponse:
    """Jira (Cloud or Data Center) webhook for issue events."""
    if runtime.settings.jira_webhook_secret is None:
        _authenticate(request, runtime, b"")  # token in the URL or header: refuse before reading the body
    body, data = await read_json_object(request, runtime.settings.max_body_bytes)
    if runtime.settings.jira_webhook_secret is not None:
        _authenticate(request, runtime, body)
    try:
        event = JiraWebhook.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, "invalid_payload", jsonable_errors(exc.errors())) from None
    delivery = request.headers.get(IDENTIFIER)
    outcome = await run_in_threadpool(
        persist, runtime, event.issue_key, event.issue_id, delivery[:255] if delivery else None, body.decode()
    )
    if outcome == "accepted":
        waker.wake()
    return JSONResponse({"status": outcome.split(":")[0], "detail": outcome}, status_code=200)
