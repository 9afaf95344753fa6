"""POST /reports and GET /reports/{id}: customer reports from the apps, authenticated by the customer's session.

The session id (``X-Session-Id``) is checked with the apps' identity service (RFC 7662) before anything else is
read; the report is validated whole, then stored with everything that follows from it in one transaction
(bot.reports) before the 201. Refusals are JSON and change nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bot.clients.identity import Customer, IdentityUnavailable, ScopeMissing, SessionRefused, SessionVerifier
from bot.metrics import REPORTS_RECEIVED
from bot.runtime import Runtime
from bot.tickets import reports
from webhooks.deps import RuntimeDep, WakerDep
from webhooks.errors import Refusal, jsonable_errors
from webhooks.intake import read_json_object
from webhooks.openapi import json_body
from workflows.reports import ReportIn, metric_category

router = APIRouter(prefix="/reports", tags=["reports"])
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_REF = re.compile(r"^R-[0-9A-Z]{10}$")
SUB_LIMIT = 128  # ticket_history.actor (tickets.customer_sub holds 255)
SessionHeader = Annotated[str | None, Header(alias="X-Session-Id")]


def body_limit(runtime: Runtime) -> int:
    """Room for the attachments (base64: 4 bytes for 3) and the text around them."""
    settings = runtime.settings
    # Half again over the decoded size: base64 is 4/3, and some encoders escape "/" as "\\/".
    return settings.report_attachments * (settings.report_attachment_bytes * 3 // 2 + 1024) + 256 * 1024


READ_SCOPE = "reports:read"


async def customer_of(request: Request, session_id: str | None, *, reading: bool = False) -> Customer:
    """The customer behind the session; for ``reading``, a session with the read scope (or the write one) will do."""
    verifier: SessionVerifier | None = request.app.state.verifier
    if verifier is None:
        raise Refusal(
            503, "reports_off", "reports are not configured on this server (TRIAGE_SESSION_INTROSPECTION_URL)"
        )
    if not session_id:
        raise Refusal(401, "no_session", "send the customer's session id in X-Session-Id")
    try:
        customer = await verifier.verify(session_id, scopes=frozenset() if reading else None)
    except SessionRefused as exc:
        raise Refusal(401, "invalid_session", str(exc)) from None
    except ScopeMissing as exc:
        raise Refusal(403, "insufficient_scope", str(exc)) from None
    except IdentityUnavailable as exc:
        raise Refusal(
            503,
            "identity_unavailable",
            "the session cannot be checked right now; try again later",
            {"Retry-After": str(exc.retry_after)},
        ) from None
    if reading and verifier.required_scopes and not customer.scopes & (verifier.required_scopes | {READ_SCOPE}):
        raise Refusal(403, "insufficient_scope", f"the session needs the scope {READ_SCOPE}")
    if len(customer.sub) > SUB_LIMIT:
        raise Refusal(401, "invalid_session", "the identity service named the customer with an over-long id")
    return customer


def _check_limits(runtime: Runtime, report: ReportIn) -> None:
    settings = runtime.settings
    if len(report.attachments) > settings.report_attachments:
        raise Refusal(422, "too_many_attachments", f"at most {settings.report_attachments} attachments")
    for index, attachment in enumerate(report.attachments):
        size = len(attachment.content)
        if size > settings.report_attachment_bytes:
            raise Refusal(
                413,
                "attachment_too_large",
                f"attachments.{index} is {size} bytes; the limit is {settings.report_attachment_bytes}",
            )


@router.post(
    "",
    status_code=201,
    openapi_extra=json_body(ReportIn, "the report; attachments' data in base64 (X-Session-Id: the customer's session)"),
)
async def create_report(
    request: Request,
    runtime: RuntimeDep,
    waker: WakerDep,
    x_session_id: SessionHeader = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """A customer's report: 201 with its reference and status (the first answer again for a repeated key)."""
    customer = await customer_of(request, x_session_id)
    if idempotency_key is not None and not _KEY.match(idempotency_key):
        raise Refusal(400, "bad_idempotency_key", "Idempotency-Key: 1 to 255 printable ASCII characters")
    _, data = await read_json_object(request, body_limit(runtime))
    try:
        report = await run_in_threadpool(ReportIn.model_validate, data)  # base64 of megabytes: off the event loop
    except ValidationError as exc:
        raise Refusal(422, "invalid_request", jsonable_errors(exc.errors())) from None
    _check_limits(runtime, report)
    try:
        answer = await run_in_threadpool(reports.accept, runtime, customer, report, idempotency_key)
    except reports.RateLimited as exc:
        raise Refusal(429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after)}) from None
    except reports.KeyReused as exc:
        raise Refusal(422, "idempotency_key_reused", str(exc)) from None
    if not answer.replayed:
        REPORTS_RECEIVED.labels(metric_category(runtime.policy, report.category)).inc()
        waker.wake()
    headers = {"Location": f"/reports/{answer.body['id']}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.get("/{ref}")
async def get_report(
    request: Request,
    runtime: RuntimeDep,
    ref: Annotated[str, Path(max_length=32)],
    x_session_id: SessionHeader = None,
) -> dict[str, Any]:
    """The status of one of the customer's own reports; anyone else's is not found."""
    customer = await customer_of(request, x_session_id, reading=True)
    found = await run_in_threadpool(reports.lookup, runtime, customer, ref) if _REF.match(ref) else None
    if found is None:
        raise Refusal(404, "not_found", f"no report {ref}")
    return found
