"""Request-scoped access to the running service (async: plain functions would cost a thread hop each)."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from bot.runtime import Runtime


class Waker(Protocol):
    """Whoever runs the jobs: told after a commit that new work is queued, so an idle worker looks at once
    rather than at its next poll. The in-process ``WorkerPool``, the supervised worker processes
    (``bot.supervisor.WorkerProcesses``), or nobody (intake only). Must not block."""

    def wake(self) -> None: ...


class Nobody:
    """No workers here (TRIAGE_WORKERS=0, workers run elsewhere): they find the work at their next poll."""

    def wake(self) -> None:
        return None


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_waker(request: Request) -> Waker:
    waker: Waker = request.app.state.waker
    return waker


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
WakerDep = Annotated[Waker, Depends(get_waker)]
