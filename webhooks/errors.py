"""Every refusal is a JSON body that says what is wrong: {"error": code, "detail": text}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as db_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.metrics import INBOUND_REJECTED

log = logging.getLogger("triage.http")
DATABASE_RETRY_AFTER = 2  # seconds: a database restart takes a few


class Refusal(Exception):
    def __init__(self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unknown")


def install(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> JSONResponse:
        INBOUND_REJECTED.labels(_route(request), str(exc.status)).inc()
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        INBOUND_REJECTED.labels(_route(request), "422").inc()
        return JSONResponse({"error": "invalid_request", "detail": jsonable_errors(exc.errors())}, status_code=422)

    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        # Nothing was stored (or, if the commit landed and its answer was lost, the sender's retry is a
        # redelivery, which changes nothing): never a 2xx, and a status every sender retries.
        INBOUND_REJECTED.labels(_route(request), "503").inc()
        log.warning(
            "the database is unreachable; answered 503", extra={"path": request.url.path, "error": type(exc).__name__}
        )
        return JSONResponse(
            {"error": "database_unavailable", "detail": "the database cannot be reached right now; try again"},
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )

    for away in (db_errors.OperationalError, db_errors.InterfaceError, db_errors.TimeoutError):
        app.add_exception_handler(away, _database_away)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return JSONResponse(
            {"error": "internal_error", "detail": "an unexpected error; it has been logged"}, status_code=500
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": "http_error", "detail": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors without the input echoed back (it may be large or hold secrets)."""
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]
