"""Group commit: the writes of concurrent requests share one transaction and one commit.

Every inbound request is stored before it is acknowledged; committing each alone costs a commit (and on
PostgreSQL a round trip and a WAL flush) per request. Here one thread takes the writes queued while the
previous commit ran and commits them together, then answers each: durability costs one commit per batch.
A write that fails (a duplicate delivery, a value the database refuses) must not fail the others: the batch
is rolled back and each write tried alone. A failed commit is never retried: whether it landed is unknown,
so each request is answered with the error and its sender retries, as it would without batching.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.db.engine import writer
from bot.metrics import INTAKE_BATCH

T = TypeVar("T")
log = logging.getLogger("triage.intake")


@dataclass
class _Write:
    run: Callable[[Session], Any]
    done: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class _CommitFailed(Exception):
    pass


class GroupCommit:
    def __init__(self, engine: Engine, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the committing thread (``submit`` starts it if need be)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def submit(self, run: Callable[[Session], T]) -> concurrent.futures.Future[T]:
        """Queue ``run`` (it adds rows to the session it is given; it must not commit) for the next commit."""
        if self._thread is None:
            self.start()
        write = _Write(run)
        self._queue.put(write)
        return write.done

    async def write(self, run: Callable[[Session], T]) -> T:
        """``run``'s result once it is committed."""
        return await asyncio.wrap_future(self.submit(run))

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        try:
            results = self._together(batch)
        except _CommitFailed as failed:
            cause = failed.__cause__ or failed
            for write in batch:
                write.done.set_exception(cause)
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].done.set_exception(exc)
                return
            log.info("a write of a group commit failed; storing each alone", extra={"writes": len(batch)})
            for write in batch:
                self._commit([write])
            return
        INTAKE_BATCH.observe(len(batch))
        for write, result in zip(batch, results, strict=True):
            write.done.set_result(result)

    def _together(self, batch: list[_Write]) -> list[Any]:
        with writer(self.engine), Session(self.engine, expire_on_commit=False) as session:
            try:
                results = [write.run(session) for write in batch]
                session.flush()
            except BaseException:
                session.rollback()
                raise
            try:
                session.commit()
            except Exception as exc:
                raise _CommitFailed("the commit failed; whether it landed is unknown") from exc
            return results
