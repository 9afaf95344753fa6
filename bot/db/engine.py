"""Engine and sessions. SQLite gets WAL and immediate write transactions so concurrent writers queue
instead of failing; PostgreSQL gets a pool. No engine is built at import time."""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size, max_overflow=pool_size
        )
        _SQLITE_WRITERS[engine] = _SqliteWriter(database if database and database != ":memory:" else None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, open transactions, so that BEGIN IMMEDIATE below applies.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Take the write lock up front: a read that later writes would otherwise deadlock-fail. A session
            # that only reads (``reading``) begins deferred: in WAL mode it neither waits for nor blocks a writer.
            read_only = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


# SQLite has one writer at a time. Writers queue on a lock, in order, instead of each polling the database's
# busy handler (which sleeps in steps of up to 100 ms: a long tail under load): a thread lock within a process,
# and an advisory lock on a file beside the database across processes (the server and its worker processes).
class _SqliteWriter:
    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}.writer-lock" if database else None
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, _SqliteWriter] = weakref.WeakKeyDictionary()


def writer(engine: Engine) -> AbstractContextManager[object]:
    """Held around a write transaction: SQLite's writers queue here (PostgreSQL needs nothing)."""
    lock = _SQLITE_WRITERS.get(engine)
    return lock if lock is not None else nullcontext()


READ_ONLY = "triage_read_only"


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads (what it loads stays usable after it closes). On SQLite it does not queue with
    the writers: job handlers read the ticket they work on without waiting for every other job's commit."""
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={READ_ONLY: True})
        yield session


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with writer(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
