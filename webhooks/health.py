"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bot.db import migrate
from bot.db.engine import ping
from bot.runtime import Runtime
from webhooks.auth import require_token
from webhooks.deps import RuntimeDep
from webhooks.openapi import BEARER, secured

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked: a database outage must not restart every replica)."""
    return {"status": "ok"}


def _readiness(runtime: Runtime) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        ping(runtime.engine)
        checks["database"] = "ok"
        state, revision = migrate.schema_state(runtime.engine)
        checks["schema"] = {
            "current": "ok",
            "ahead": "ok",  # a newer release migrated it: this replica serves on until it is replaced
            "behind": f"behind ({revision}): run triage-bot db upgrade",
            "empty": "empty: run triage-bot db upgrade",
        }[state]
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    return all(v == "ok" for v in checks.values()), checks


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready to take traffic: the database answers and its schema is current."""
    ready, checks = await run_in_threadpool(_readiness, runtime)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", openapi_extra=secured(BEARER))
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus text format; needs the webhook token (or TRIAGE_METRICS_TOKEN) as a bearer token."""
    require_token(request, runtime.settings.effective_metrics_token())
    # This process's metrics (with its worker processes', when there are some) and the queue, read at scrape time.
    registries: tuple[CollectorRegistry, ...] = request.app.state.metrics_registries
    body = await run_in_threadpool(lambda: b"".join(generate_latest(registry) for registry in registries))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
