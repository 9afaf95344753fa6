"""Request-scoped access to the running service (async: plain functions would cost a thread hop each)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.jobs.worker import WorkerPool
from bot.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_pool(request: Request) -> WorkerPool | None:
    pool: WorkerPool | None = request.app.state.pool
    return pool


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PoolDep = Annotated[WorkerPool | None, Depends(get_pool)]
