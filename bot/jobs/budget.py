"""One request budget per outside system (Jira, Slack), shared by every worker thread and every replica through a
row of ``outside_budgets``.

A 429 that names the whole system (Jira's burst and quota limits, any Slack limit) **pauses** it: until the time
the server gave (``Retry-After``, else Jira's ``X-RateLimit-Reset``, else our own backoff, doubling while 429s keep
coming without a stated time), no worker claims a job of that system's lanes at all, so fifty lanes do not each
retry on their own and starve one another, and no thread sleeps holding a job. The other systems' work goes on.
When the pause ends, claims take the most urgent jobs first (creates, first cards: see queue.claim).

Workers learn of pauses by reading the rows at most every ``CACHE_SECONDS`` (one SELECT of two rows per process);
a worker that hit the 429 knows at once. One line is logged when a pause begins (by the worker that began it)
and one when it ends (by the first worker of any replica to see it ended).

When a pause ends, the system's jobs do not all start at once (eight workers per replica would meet the limit
again together): they **ramp up**, doubling every ``RAMP_DOUBLING`` seconds until past ``RAMP_OFF`` per second. The
ramp starts where the limit was found: at ``RAMP_FROM_MEASURED`` of the rate at which this process's jobs of that
system went through in the ``MEASURE_SECONDS`` before the 429 (since the last pause ended, if sooner), or, when too
few went through to tell, at half the rate a ramp on had reached, or at ``RAMP_START``. Under a token-bucket limit
pausing for what the server said costs little (the bucket refills meanwhile) and sending at or above the limit
costs nothing but a few 429s; sending below it after a pause is what loses time. Optionally, a steady pace per
system as well (``TRIAGE_JIRA_REQUESTS_PER_SECOND``, ``TRIAGE_SLACK_REQUESTS_PER_SECOND``). Both are kept by a
GCRA in the same row: one conditional UPDATE per claimed job of that system while it is paced. A job that finds no
free slot is given back unstarted, and this process skips the system until the next slot.

The rate is measured per process: with several worker processes, the ramp starts at one process's share and its
doubling finds the rest within seconds.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.clock import utcnow
from bot.db.engine import reading, transaction
from bot.db.models import OutsideBudget
from bot.jobs.kinds import JobKind, system_prefix
from bot.metrics import PACED, PAUSED, PAUSED_SECONDS
from bot.settings import Settings
from workflows.effects import System

log = logging.getLogger("triage.budget")

# The lanes whose jobs call each system: its per-ticket lanes, and Slack's words to one person.
LANES: Mapping[str, tuple[str, ...]] = {
    System.JIRA.value: (system_prefix(System.JIRA),),
    System.SLACK.value: (system_prefix(System.SLACK), f"{JobKind.SLACK_EPHEMERAL.value}:"),
}
CACHE_SECONDS = 0.2  # how stale a worker's view of the pauses may be
UNSTATED_FIRST, UNSTATED_MAX = 1.0, 60.0  # our pause when the server named no time: 1 s, doubling up to a minute
# A 429 without a stated time this long after the last pause ended starts the backoff over.
STRIKES_FORGOTTEN = timedelta(seconds=UNSTATED_MAX)
PACE_BURST_SECONDS = 1.0  # a paced system may take up to a second's worth of jobs back to back
RAMP_START = 1.0  # jobs per second when a pause ends and no ramp was on
RAMP_DOUBLING = 2.0  # seconds
RAMP_MIN = 0.2  # a ramp never starts slower than a job every 5 s
RAMP_OFF = 64.0  # past this, the ramp is over: no pacing (unless a steady rate is configured)
MEASURE_SECONDS = 3.0  # the window over which the rate a system let through is measured when a 429 comes
MEASURE_MIN_JOBS = 5  # fewer jobs than this in the window tell nothing of the limit
MEASURE_MIN_SECONDS = 0.5  # nor does a shorter window
RAMP_FROM_MEASURED = 0.9  # a ramp starts just under the rate measured


def ramp_at(ramp_rate: float | None, pause_end: datetime | None, now: datetime) -> float | None:
    """The rate a ramp allows at ``now`` (None: no ramp): ``ramp_rate`` from the pause's end, doubling."""
    if ramp_rate is None or pause_end is None:
        return None
    elapsed = max(0.0, (now - pause_end).total_seconds())
    if elapsed > RAMP_DOUBLING * math.log2(RAMP_OFF / ramp_rate):
        return None
    return float(ramp_rate * 2 ** (elapsed / RAMP_DOUBLING))


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; they were stored as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def system_of_lane(lane: str) -> str | None:
    return next((system for system, prefixes in LANES.items() if lane.startswith(prefixes)), None)


@dataclass(frozen=True)
class Pause:
    system: str
    until: datetime
    began: bool  # this 429 began the pause (else it fell inside one already on, or lengthened it)


class Budget:
    def __init__(
        self,
        engine: Engine,
        rates: Mapping[str, float | None] | None = None,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.rates = {system: rate for system, rate in (rates or {}).items() if rate}
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._paused: dict[str, datetime] = {}  # system -> end of its pause, as last read
        self._ramps: dict[str, tuple[float, datetime]] = {}  # system -> (ramp rate, from when), as last read
        self._not_before: dict[str, float] = {}  # pacing: system -> (clock) when its next slot is free
        self._through: dict[str, deque[float]] = {}  # system -> (clock) when each recent job of it went through

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> Budget:
        return cls(engine, {"jira": settings.jira_requests_per_second, "slack": settings.slack_requests_per_second})

    # -- what the workers ask before each claim ------------------------------------------------------------------

    def paused(self) -> dict[str, datetime]:
        """The systems paused now, with when each pause ends (read at most every ``cache_seconds``)."""
        now = utcnow()
        with self._lock:
            if self._clock() - self._read_at >= self.cache_seconds:
                self._refresh(now)
            return {system: until for system, until in self._paused.items() if until > now}

    def skip_lanes(self) -> tuple[str, ...]:
        """Lane prefixes no worker may claim now: those of paused systems, and of paced ones with no free slot."""
        waiting = set(self.paused())
        tick = self._clock()
        with self._lock:
            waiting |= {system for system, at in self._not_before.items() if at > tick}
        return tuple(prefix for system in sorted(waiting) for prefix in LANES.get(system, ()))

    def _refresh(self, now: datetime) -> None:
        with reading(self.engine) as session:
            rows = session.exec(select(OutsideBudget)).all()
        self._read_at = self._clock()
        paused: dict[str, datetime] = {}
        ramps: dict[str, tuple[float, datetime]] = {}
        for row in rows:
            until, since = _aware(row.paused_until), _aware(row.paused_since)
            if until is not None and until > now:
                paused[row.system] = until
            elif since is not None:
                self._ended(row.system, since, until or now, now)
            if row.ramp_rate is not None and until is not None:
                ramps[row.system] = (row.ramp_rate, until)
        for system in LANES:
            PAUSED.labels(system).set(1 if system in paused else 0)
        self._paused, self._ramps = paused, ramps

    def _ended(self, system: str, since: datetime, until: datetime, now: datetime) -> None:
        """A pause is over: the first worker of any replica to see it says so, once."""
        with transaction(self.engine) as session:
            result = session.execute(
                update(OutsideBudget)
                .where(
                    col(OutsideBudget.system) == system,
                    col(OutsideBudget.paused_since).is_not(None),
                    col(OutsideBudget.paused_until) <= now,
                )
                .values(paused_since=None)
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            seconds = max(0.0, (until - since).total_seconds())
            PAUSED_SECONDS.labels(system).inc(seconds)
            log.info(
                "outside system resumed: its jobs are taken again, the most urgent first",
                extra={"system": system, "paused_seconds": round(seconds, 3)},
            )

    # -- what a worker reports of the jobs it ran -----------------------------------------------------------------

    def went_through(self, lane: str) -> None:
        """A job of the lane's system finished without a 429: counted for the rate measured when one comes."""
        system = system_of_lane(lane)
        if system is None:
            return
        tick = self._clock()
        with self._lock:
            times = self._through.setdefault(system, deque())
            times.append(tick)
            while times and times[0] < tick - MEASURE_SECONDS:
                times.popleft()

    def measured_rate(self, system: str, now: datetime) -> float | None:
        """Jobs of ``system`` per second that went through in this process while it was not paused, over at most
        the last ``MEASURE_SECONDS``; None when too few did to tell."""
        tick = self._clock()
        with self._lock:
            times = self._through.get(system, deque())
            ramp = self._ramps.get(system)
            window = MEASURE_SECONDS
            if ramp is not None:  # only since the last pause ended: a pause lets nothing through by design
                window = min(window, max(0.0, (now - ramp[1]).total_seconds()))
            recent = [at for at in times if at >= tick - window]
            if recent:  # work that began within the window is measured from its beginning
                window = min(window, tick - recent[0])
        if len(recent) < MEASURE_MIN_JOBS or window < MEASURE_MIN_SECONDS:
            return None
        return len(recent) / window

    # -- what a worker reports when a call was answered 429 ------------------------------------------------------

    def rate_limited(self, system: str, retry_after: float | None, reason: str | None = None) -> Pause:
        """Pause ``system`` for every worker: for ``retry_after`` seconds (what the server said), or when it said
        nothing, for our own backoff. A pause already on is only ever lengthened, never shortened; 429s of calls
        that were in flight when it began do not lengthen a pause of our own choosing."""
        now = utcnow()
        measured = self.measured_rate(system, now)
        with transaction(self.engine) as session:
            row = session.exec(
                select(OutsideBudget).where(col(OutsideBudget.system) == system).with_for_update()
            ).first()
            if row is None:  # a system the migration did not seed
                row = OutsideBudget(system=system)
            until = _aware(row.paused_until)
            on = until is not None and until > now
            if retry_after is not None:
                stated = now + timedelta(seconds=retry_after)
                end = max(until, stated) if on and until is not None else stated
                row.strikes = 0
            elif on and until is not None:
                end = until
            else:
                if until is None or now - until > STRIKES_FORGOTTEN:
                    row.strikes = 0
                row.strikes += 1
                seconds = min(UNSTATED_MAX, UNSTATED_FIRST * 2 ** (row.strikes - 1))
                end = now + timedelta(seconds=seconds * (1 + random.random() / 10))  # noqa: S311 - jitter
            began = not on
            if began:
                # The jobs start again just under the rate the server was seen to let through; when that is not
                # known, at half the rate a ramp on had reached, or RAMP_START.
                current = ramp_at(row.ramp_rate, until, now)
                if measured is not None:
                    row.ramp_rate = max(RAMP_MIN, measured * RAMP_FROM_MEASURED)
                else:
                    row.ramp_rate = max(RAMP_MIN, current / 2) if current is not None else RAMP_START
                row.paused_since = now
                row.reason = (reason or "")[:64] or None
            row.paused_until = end
            session.add(row)
        with self._lock:
            self._paused[system] = max(end, self._paused.get(system, end))
            if row.ramp_rate is not None:
                self._ramps[system] = (row.ramp_rate, end)
        PAUSED.labels(system).set(1)
        if began:
            log.warning(
                "outside system paused after a 429: no worker takes its jobs until the pause ends",
                extra={
                    "system": system,
                    "reason": reason,
                    "pause_seconds": round((end - now).total_seconds(), 3),
                    "stated_by_server": retry_after is not None,
                    "until": end.isoformat(),
                },
            )
        return Pause(system, end, began)

    # -- pacing -------------------------------------------------------------------------------------------------

    def pace(self, lane: str) -> float:
        """Take a slot of the lane's system's steady pace: 0.0 when the job may start now, else the seconds until
        the next free slot (the job should be given back; this process skips the system until then)."""
        system = system_of_lane(lane)
        if system is None:
            return 0.0
        rates = [self.rates.get(system)]
        with self._lock:
            ramp = self._ramps.get(system)
        if ramp is not None:
            rates.append(ramp_at(ramp[0], ramp[1], utcnow()))
        rate = min((r for r in rates if r), default=None)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        tolerance = max(0.0, PACE_BURST_SECONDS - interval)
        now = time.time()
        slot = col(OutsideBudget.next_slot)
        with transaction(self.engine) as session:
            taken = session.execute(
                update(OutsideBudget)
                .where(col(OutsideBudget.system) == system, or_(slot.is_(None), slot <= now + tolerance))
                .values(next_slot=case((slot > now, slot + interval), else_=now + interval))
            ).rowcount  # type: ignore[attr-defined]
            if taken:
                return 0.0
            free_at = session.exec(select(OutsideBudget.next_slot).where(OutsideBudget.system == system)).first()
        wait = max(0.0, (free_at or now) - tolerance - now) or interval
        with self._lock:
            self._not_before[system] = self._clock() + wait
        PACED.labels(system).inc()
        return wait
