"""The operations pages, in every mode: tickets, a ticket's timeline, the job queue (retry and drop the failed
jobs) and the policy with a dry run. Reads go through ``bot.tickets.operations``; nothing is decided here."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from bot.tickets import operations
from webhooks.console.web import Console, ConsoleRefusal
from workflows.alerts import parse_any
from workflows.reports import mask_email, reporter
from workflows.routing import what_it_would_do
from workflows.states import TicketState

PAYLOAD_LIMIT = 1_000_000
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def masked(text: str) -> str:
    """Customer addresses stay masked on every page (an SMTP error may quote one)."""
    return _ADDRESS.sub(lambda m: mask_email(m.group(0)), text)


def register(router: APIRouter, console: Console) -> None:
    runtime = console.runtime

    def read_tickets(query: operations.TicketQuery) -> tuple[list[dict[str, Any]], list[str]]:
        with Session(runtime.engine) as session:
            found = [_row(console, t) for t in operations.tickets(session, query)]
            return found, operations.sources(session)

    @router.get("/tickets")
    async def tickets(request: Request) -> Response:
        visit = console.visit(request)
        params = request.query_params
        query = operations.TicketQuery(
            state=params.get("state") if params.get("state") in {s.value for s in TicketState} else None,
            team=params.get("team") if params.get("team") in (*runtime.policy.teams, "-") else None,
            source=(params.get("source") or None),
            text=(params.get("q") or None),
        )
        found, sources = await console.blocking(read_tickets, query)
        return console.page(
            visit,
            "tickets.html",
            title="Tickets",
            section="tickets",
            regions={"tickets": "regions/tickets.html"},
            tickets=found,
            query=query,
            states=list(TicketState),
            teams=list(runtime.policy.teams),
            sources=sources,
        )

    def read_timeline(ticket_id: int) -> dict[str, Any] | None:
        with Session(runtime.engine) as session:
            found = operations.timeline(session, ticket_id)
            if found is None:
                return None
            ticket = found.ticket
            return {
                "ticket": _row(console, ticket),
                "history": [
                    {"at": h.at, "actor": _person(console, h.actor), "via": h.via, "from": h.from_state}
                    | {"to": h.to_state, "note": masked(h.note)}
                    for h in found.history
                ],
                "cards": [(ticket.slack_channel, ticket.slack_ts)] + [(c.channel, c.ts) for c in found.copies],
                "jobs": [_job(j) for j in found.jobs],
                "annotations": dict(ticket.annotations),
                "labels": {k: v for k, v in ticket.labels.items() if not k.startswith("meta.")},
                "alerts": ticket.alerts[:50],
            }

    @router.get("/tickets/{ticket_id}")
    async def ticket(request: Request, ticket_id: int) -> Response:
        visit = console.visit(request)
        if not 1 <= ticket_id <= 2**62:
            raise ConsoleRefusal(404, "No such ticket.")
        found = await console.blocking(read_timeline, ticket_id)
        if found is None:
            raise ConsoleRefusal(404, f"There is no ticket #{ticket_id}.")
        return console.page(
            visit,
            "ticket.html",
            title=f"Ticket #{ticket_id}",
            section="tickets",
            regions={"ticket": "regions/ticket.html"},
            slack_links=console.emulators.slack is not None,
            **found,
        )

    def read_queue() -> dict[str, Any]:
        with Session(runtime.engine) as session:
            seen = operations.queue_overview(session)
        kinds = sorted({kind for _, kind in seen.by_kind})
        statuses = ["pending", "running", "dead", "refused", "done"]
        return {
            "counts": {s: seen.counts.get(s, 0) for s in statuses},
            "statuses": statuses,
            "kinds": [(kind, [seen.by_kind.get((s, kind), 0) for s in statuses]) for kind in kinds],
            "oldest": seen.oldest_pending_age,
            "failed": [_job(j) for j in seen.failed],
        }

    @router.get("/queue")
    async def queue_page(request: Request) -> Response:
        visit = console.visit(request)
        return console.page(
            visit,
            "queue.html",
            title="Queue",
            section="queue",
            regions={"queue": "regions/queue.html"},
            **await console.blocking(read_queue),
        )

    async def act_on_job(request: Request, job_id: int, what: str) -> Response:
        visit, _ = await console.form(request)
        act = operations.retry_job if what == "retry" else operations.drop_job
        done = await console.blocking(act, runtime.engine, job_id, by=f"{visit.who} (console)")
        if done:
            console.flash(visit, f"Job {job_id} {'queued again' if what == 'retry' else 'dropped'}.")
            if what == "retry":
                request.app.state.waker.wake()
        else:
            console.flash(visit, f"Job {job_id} is not dead or refused (any more): nothing was done.")
        return console.back(visit, "/console/queue")

    @router.post("/queue/{job_id}/retry")
    async def retry(request: Request, job_id: int) -> Response:
        return await act_on_job(request, job_id, "retry")

    @router.post("/queue/{job_id}/drop")
    async def drop(request: Request, job_id: int) -> Response:
        return await act_on_job(request, job_id, "drop")

    def policy_page(visit: Any, payload: str = "", result: Any = None, problem: str | None = None) -> Response:
        try:
            text = runtime.settings.policy.read_text(encoding="utf-8")
        except OSError:
            text = "(the policy file cannot be read now)"
        return console.page(
            visit,
            "policy.html",
            title="Policy",
            section="policy",
            policy=runtime.policy,
            path=str(runtime.settings.policy),
            text=text,
            payload=payload,
            result=result,
            problem=problem,
        )

    @router.get("/policy")
    async def policy(request: Request) -> Response:
        return policy_page(console.visit(request))

    @router.post("/policy/dry-run")
    async def dry_run(request: Request) -> Response:
        """What ``triage-bot route`` says of a pasted payload: nothing is stored or sent."""
        visit, form = await console.form(request)
        payload = form.get("payload", "")[:PAYLOAD_LIMIT]
        try:
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise ValueError("the payload must be a JSON object")
            result = what_it_would_do(runtime.policy, parse_any(body))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
            return policy_page(visit, payload, problem=f"Not an Alertmanager, Grafana or Events v2 payload: {problems}")
        except (ValueError, RecursionError) as exc:
            return policy_page(visit, payload, problem=f"Not JSON: {exc}")
        return policy_page(visit, payload, result=result)


def _row(console: Console, ticket: Any) -> dict[str, Any]:
    jira = console.runtime.jira
    return {
        "id": ticket.id,
        "title": ticket.title,
        "state": TicketState(ticket.state),
        "source": ticket.source,
        "environment": ticket.environment,
        "team": ticket.team,
        "priority": ticket.priority,
        "assignee": _person(console, ticket.assignee) if ticket.assignee else None,
        "alert_status": ticket.alert_status,
        "jira_key": ticket.jira_key,
        "jira_url": _jira_link(console, ticket.jira_key),
        "jira_browse": jira.browse_url(ticket.jira_key) if ticket.jira_key else None,
        "report_ref": ticket.report_ref,
        "customer": reporter(ticket.customer_sub, ticket.customer_email) if ticket.report_ref else None,
        "slack_channel": ticket.slack_channel,
        "slack_ts": ticket.slack_ts,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
    }


def _jira_link(console: Console, key: str | None) -> str | None:
    if not key:
        return None
    if console.emulators.jira is not None:
        return f"/console/sandbox/jira/browse/{key}"
    return console.runtime.jira.browse_url(key)


def _person(console: Console, actor: str) -> str:
    """History names people as they came (a Slack id, a Jira name, a customer); addresses stay masked."""
    if "@" in actor:
        return mask_email(actor)
    slack = console.emulators.slack
    if slack is not None and actor in slack.users:
        user = slack.users[actor]
        return f"{user.real_name or user.name} ({actor})"
    return actor


def _job(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "lane": job.lane,
        "status": job.status,
        "attempts": job.attempts,
        "error": masked(job.last_error or ""),
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "run_after": job.run_after,
    }
