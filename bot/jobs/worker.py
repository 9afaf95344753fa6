"""Workers: threads that claim jobs from the queue and run their handlers.

A handler writes its results through ``JobContext.final()``, which marks the job done in the same
transaction; if the lease was lost meanwhile, that transaction rolls back and nothing is saved twice.
Failures go back to the queue with a delay (bot.retry) or, when no retry can help, are kept as dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Job
from bot.jobs import queue
from bot.jobs.budget import LANES, Budget, Pause, system_of_lane
from bot.jobs.kinds import SYSTEM_LANE_PREFIXES
from bot.jobs.retry import SYSTEM, Verdict, classify, delay_for, take_noticed
from bot.metrics import JOBS_FAILED, JOBS_FINISHED, RATE_LIMITED
from bot.settings import Settings

log = logging.getLogger("triage.worker")
HURRY_EVERY = 5.0  # seconds: how often one pool hurries the waiting jobs of a system that answers again


class JobContext:
    def __init__(self, engine: Engine, job: Job, worker_id: str) -> None:
        self.engine = engine
        self.job = job
        self.worker_id = worker_id
        self.finished = False

    @contextmanager
    def final(self) -> Iterator[Session]:
        """The handler's last write; the job is marked done in the same transaction."""
        with transaction(self.engine) as session:
            yield session
            queue.complete(session, self.job, self.worker_id)
        self.finished = True


Handler = Callable[[JobContext], None]


@dataclass(frozen=True)
class Timer:
    """Work the pool runs every ``seconds`` beside the jobs (escalation scans, housekeeping). ``run`` returns
    whether it queued jobs, so the workers look at once."""

    name: str
    seconds: float
    run: Callable[[], bool]


class WorkerPool:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        handlers: Mapping[str, Handler],
        threads: int,
        name: str = "",
        patient: frozenset[str] = frozenset(),
        holding: frozenset[str] | None = None,
        timers: tuple[Timer, ...] = (),
        budget: Budget | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        # Each outside system's shared request budget: its pauses after a 429, and its optional steady pace.
        self.budget = budget or Budget.from_settings(engine, settings)
        self.handlers = handlers
        self.patient = patient  # job kinds whose passing failures are retried for as long as they last
        # Job kinds whose failure for good holds their lane (kept as dead); any other is kept as refused and the
        # jobs after it run. None: every kind holds.
        self.holding = holding
        self.timers = timers
        self.threads = threads
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        # Idle threads wait here, one condition per kind of thread (urgent-only or not) on one lock, so that work
        # found can wake one thread of each kind. Both dicts are keyed by the kind and guarded by the lock.
        wake_lock = threading.Lock()
        self._wake = {kind: threading.Condition(wake_lock) for kind in (False, True)}
        self._wakes = dict.fromkeys((False, True), 0)  # wakes so far: a thread that missed one looks again at once
        self._looked = dict.fromkeys((False, True), 0.0)  # when a thread of the kind last looked at the queue
        self._found = dict.fromkeys((False, True), False)  # whether the kind's last look found a job
        self._running: dict[int, str] = {}
        self._running_lock = threading.Lock()
        self._hurried: dict[str, float] = {}
        self._threads: list[threading.Thread] = []
        # No outside system may hold every thread: a slow Jira leaves threads for Slack and the bot's own work. The
        # urgent-only thread is not counted against it where a thread is still left besides (a new ticket's issue
        # then never waits for a thread to come back from a routine update).
        self.per_system = max(1, threads - 2)
        self.urgent_beyond_share = threads - self.per_system >= 2
        self._busy: dict[str, int] = {}  # system -> threads running one of its jobs now

    def start(self) -> None:
        for index in range(self.threads):
            # With two threads or more, the first takes only urgent work (a new ticket's decision, issue and first
            # card; a click): a new problem never waits for a thread to come back from a slow update.
            urgent_only = index == 0 and self.threads > 1
            thread = threading.Thread(
                target=self._loop, args=(f"{self.name}/{index}", urgent_only), name=f"worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        beats = [threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)]
        beats += [
            threading.Thread(target=self._tick, args=(timer,), name=timer.name, daemon=True) for timer in self.timers
        ]
        for thread in beats:
            thread.start()
            self._threads.append(thread)
        log.info("workers started", extra={"workers": self.threads, "worker_name": self.name})

    def healthy(self) -> bool:
        """Started, and every thread still running (each catches its jobs' errors, so one that ended is a bug)."""
        threads = list(self._threads)
        return bool(threads) and all(thread.is_alive() for thread in threads)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs and wait up to ``timeout`` seconds in all (default: TRIAGE_*_TIMEOUT's longest, and 5 s)
        for the jobs running to end; a thread still in a job after that is left to its lease (the job runs again
        elsewhere)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + (self.settings.worker_stop_seconds if timeout is None else timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [thread.name for thread in self._threads if thread.is_alive()]
        if busy:
            log.warning(
                "workers still busy at stop; their jobs run again when their leases end", extra={"threads": busy}
            )
        self._threads.clear()

    def wake(self) -> None:
        """New work was committed: every idle thread looks at once, not at its next poll."""
        self._signal(every=True)

    def _pass_on(self) -> None:
        """A look found work, or a job ended (and may have queued more): one more idle thread of each kind looks,
        and so on while looks find work."""
        self._signal(every=False)

    def _signal(self, every: bool) -> None:
        for kind, condition in self._wake.items():
            with condition:
                self._wakes[kind] += 1
                if every:
                    condition.notify_all()
                else:
                    condition.notify()

    def _wakes_seen(self, urgent_only: bool) -> int:
        with self._wake[urgent_only]:
            return self._wakes[urgent_only]

    def _found_work(self, urgent_only: bool) -> None:
        with self._wake[urgent_only]:
            self._found[urgent_only] = True

    def _idle(self, urgent_only: bool, seen: int) -> None:
        """Wait for a wake or the next poll, after a look at the queue found nothing (``seen``: the wakes counted
        before that look; one since means work may have come in meanwhile: look again at once). An idle process
        looks about once a poll for each kind of thread, not once per thread: a thread whose poll comes less than
        a poll after another's look that found nothing waits on. While looks find work, each thread polls."""
        poll = self.settings.job_poll_seconds
        condition = self._wake[urgent_only]
        with condition:
            self._found[urgent_only] = False
            if self._wakes[urgent_only] != seen:
                return
            self._looked[urgent_only] = time.monotonic()
            deadline = time.monotonic() + poll
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    if condition.wait(remaining):
                        return  # woken
                    continue
                looked = self._looked[urgent_only]
                if self._found[urgent_only] or time.monotonic() - looked >= poll:
                    self._looked[urgent_only] = time.monotonic()  # this thread's look: the others wait on
                    return
                deadline = looked + poll

    def _loop(self, worker_id: str, urgent_only: bool = False) -> None:
        settings = self.settings
        while not self._stop.is_set():
            seen = self._wakes_seen(urgent_only)
            try:
                # A paused system's jobs are not claimed at all: its lanes wait, every other system's go on.
                exempt = urgent_only and self.urgent_beyond_share
                skip = self.budget.skip_lanes() + (() if exempt else self._full())
                job = queue.claim(
                    self.engine, worker_id, settings.job_lease_seconds, skip_lanes=skip, urgent_only=urgent_only
                )
                wait = self.budget.pace(job.lane) if job is not None else 0.0
            except Exception:
                log.exception("cannot claim jobs; the database may be down")
                self._stop.wait(min(5.0, settings.job_poll_seconds * 10))
                continue
            if job is None:
                self._idle(urgent_only, seen)
                continue
            self._found_work(urgent_only)
            if wait:
                # Its system's steady pace has no free slot yet: give the job back unstarted, its attempt too.
                try:
                    queue.fail(self.engine, job, worker_id, "paced: waiting for a free slot", wait, count_attempt=False)
                except Exception:
                    log.exception("cannot give a paced job back; its lease will expire", extra={"job_id": job.id})
                continue
            system = system_of_lane(job.lane)
            if not self._enter(system, exempt):
                # Threads that claimed at the same moment took the system's last free thread: give this one back.
                try:
                    queue.fail(
                        self.engine, job, worker_id, "its system holds its share of threads", 0.0, count_attempt=False
                    )
                except Exception:
                    log.exception("cannot give a job back; its lease will expire", extra={"job_id": job.id})
                continue
            self._pass_on()  # this look found work: there may be more
            try:
                self.run(job, worker_id)
                # What it queued (a decision's effects) may be for another thread: this one may take only urgent
                # work, and the others may be asleep until their next poll.
                self._pass_on()
            except Exception:
                log.exception(
                    "job runner failed; the job's lease will expire and it will run again", extra={"job_id": job.id}
                )
            finally:
                self._leave(system)
            # 429s the job's calls met that did not fail it (a handler caught them): their system waits all the same.
            for verdict in take_noticed():
                self._rate_limited(verdict, job)

    def _enter(self, system: str | None, exempt: bool = False) -> bool:
        """Take one of the system's ``per_system`` threads (``exempt``: the urgent-only thread, beyond them); False
        when they are all taken."""
        if system is None:
            return True
        with self._running_lock:
            if not exempt and self._busy.get(system, 0) >= self.per_system:
                return False
            self._busy[system] = self._busy.get(system, 0) + 1
            return True

    def _leave(self, system: str | None) -> None:
        if system is not None:
            with self._running_lock:
                self._busy[system] -= 1

    def _full(self) -> tuple[str, ...]:
        """Lane prefixes of the systems that hold their ``per_system`` threads already: not to be claimed."""
        with self._running_lock:
            full = [system for system, busy in self._busy.items() if busy >= self.per_system]
        return tuple(prefix for system in full for prefix in LANES.get(system, ()))

    def run(self, job: Job, worker_id: str) -> None:
        assert job.id is not None
        with self._running_lock:
            self._running[job.id] = worker_id
        context = JobContext(self.engine, job, worker_id)
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            handler(context)
            if not context.finished:
                with transaction(self.engine) as session:
                    queue.complete(session, job, worker_id)
            JOBS_FINISHED.labels(job.kind, "done").inc()
            self.budget.went_through(job.lane)
            if job.attempts > 1:
                self._recovered(job.lane)
        except queue.LostLease:
            log.warning("lease lost; another worker has the job", extra={"job_id": job.id, "kind": job.kind})
        except Exception as exc:
            self._failed(job, worker_id, exc)
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)

    def _recovered(self, lane: str) -> None:
        """A job that had failed went through: if its lane belongs to an outside system that was failing, the
        others waiting out their own backoff for it go now (once per system every few seconds)."""
        prefix = lane.split(":", 1)[0] + ":"
        if prefix not in SYSTEM_LANE_PREFIXES:
            return
        now = time.monotonic()
        with self._running_lock:
            if now - self._hurried.get(prefix, -HURRY_EVERY) < HURRY_EVERY:
                return
            self._hurried[prefix] = now
        try:
            hurried = queue.hurry(self.engine, prefix)
        except Exception:
            log.exception("cannot hurry the jobs waiting for a system that answers again")
            return
        if hurried:
            log.info(
                "an outside system answers again; its waiting jobs go now",
                extra={"lane_prefix": prefix, "jobs": hurried},
            )
            self.wake()

    def _failed(self, job: Job, worker_id: str, exc: Exception) -> None:
        verdict = classify(exc)
        rate_limited = verdict.rate_limited
        retry = verdict.retryable and (
            rate_limited or job.kind in self.patient or job.attempts < self.settings.job_max_attempts
        )
        delay = delay_for(job.attempts, verdict) if retry else None
        # The 429s this job's calls met before it failed: those of the system that failed it are this failure's.
        for other in take_noticed():
            if not (rate_limited and other.system == verdict.system):
                self._rate_limited(other, job)
        pause = self._rate_limited(verdict, job) if rate_limited else None
        paused = pause is not None
        if pause is not None:
            # The whole system waits (every worker, every replica); this job runs again when the pause ends.
            delay = max(0.0, (pause.until - utcnow()).total_seconds())
        error = f"{type(exc).__name__}: {exc}"
        fields = {
            "job_id": job.id,
            "kind": job.kind,
            "lane": job.lane,
            "attempt": job.attempts,
            "error": error[:500],
            "retry_in": delay,
        }
        if paused:
            log.debug("job waits for its system's pause to end", extra=fields)  # the pause itself is logged once
        elif retry:
            log.warning("job failed; will retry", extra=fields)
        else:
            log.error("job failed for good; kept as dead or refused (triage-bot jobs)", extra=fields)
            if not verdict.retryable:
                log.debug("traceback", extra={"traceback": traceback.format_exc()})
        JOBS_FAILED.labels(job.kind, str(retry).lower()).inc()
        holds = self.holding is None or job.kind in self.holding
        if not retry:
            JOBS_FINISHED.labels(job.kind, "dead" if holds else "refused").inc()
        try:
            queue.fail(self.engine, job, worker_id, error, delay, count_attempt=not rate_limited, holds=holds)
        except queue.LostLease:
            pass
        except Exception:
            log.exception("cannot record the failure; the lease will expire and the job run again")

    def _rate_limited(self, verdict: Verdict, job: Job) -> Pause | None:
        """Count a 429; when it was the whole system's, pause the system for everyone (None: only the lane waits,
        or the pause could not be recorded and the job waits alone)."""
        RATE_LIMITED.labels(verdict.system or "other", verdict.scope or "lane").inc()
        if verdict.scope != SYSTEM or verdict.system is None or verdict.system not in LANES:
            return None
        try:
            return self.budget.rate_limited(verdict.system, verdict.retry_after, verdict.reason)
        except Exception:
            log.exception("cannot record the pause; this job alone waits", extra={"job_id": job.id})
            return None

    def _heartbeat(self) -> None:
        lease = self.settings.job_lease_seconds
        while not self._stop.wait(lease / 3):
            with self._running_lock:
                by_worker: dict[str, list[int]] = {}
                for job_id, worker_id in self._running.items():
                    by_worker.setdefault(worker_id, []).append(job_id)
            for worker_id, ids in by_worker.items():
                try:
                    queue.extend_leases(self.engine, worker_id, ids, lease)
                except Exception:
                    log.exception("cannot extend job leases")

    def _tick(self, timer: Timer) -> None:
        while not self._stop.wait(timer.seconds):
            try:
                if timer.run():
                    self.wake()
            except Exception:
                log.exception("timed work failed", extra={"timer": timer.name})
