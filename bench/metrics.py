"""Reading the bot's own numbers: its Prometheus text and its tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from bench.load import percentile
from bot.db.engine import make_engine
from bot.db.models import Job, Ticket
from bot.jobs import queue


@dataclass
class Histogram:
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count), ascending, ending with +Inf
    count: float
    total: float

    def minus(self, earlier: Histogram) -> Histogram:
        """What was observed between two scrapes (``earlier`` may be empty: nothing scraped yet)."""
        before = dict(earlier.buckets)
        return Histogram(
            [(le, n - before.get(le, 0.0)) for le, n in self.buckets],
            self.count - earlier.count,
            self.total - earlier.total,
        )

    def quantile(self, q: float) -> float:
        """Like PromQL's histogram_quantile: linear inside the bucket that holds the rank."""
        if not self.count:
            return float("nan")
        rank = q * self.count
        lower, below = 0.0, 0.0
        for upper, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower  # beyond the last finite bound: the bound is all that is known
                inside = cumulative - below
                return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = upper, cumulative
        return lower


def parse_prometheus(text: str) -> dict[str, Any]:
    """The ticket-latency histogram and the mean duration of each outside call, by system/operation."""
    ticket = Histogram([], 0.0, 0.0)
    calls: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "triage_alert_to_ticket_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    ticket.buckets.append((float(sample.labels["le"]), sample.value))
                elif sample.name.endswith("_count"):
                    ticket.count = sample.value
                elif sample.name.endswith("_sum"):
                    ticket.total = sample.value
        elif family.name == "triage_outside_call_seconds":
            for sample in family.samples:
                if sample.name.endswith(("_count", "_sum")):
                    name = f"{sample.labels['system']}.{sample.labels['operation']}"
                    entry = calls.setdefault(name, {"count": 0.0, "sum": 0.0})
                    entry["count" if sample.name.endswith("_count") else "sum"] = sample.value
    ticket.buckets.sort()
    return {
        "ticket_latency": ticket,
        "outside_calls": {
            name: {"count": int(v["count"]), "mean_ms": 1000 * v["sum"] / v["count"] if v["count"] else None}
            for name, v in sorted(calls.items())
        },
    }


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class Tables:
    tickets: list[Ticket]
    jobs: list[Job]


def queue_busy(database_url: str) -> int:
    """Jobs still pending or running."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with Session(engine) as session:
            counts = queue.stats(session).counts
    finally:
        engine.dispose()
    return counts.get("pending", 0) + counts.get("running", 0)


def read_tables(database_url: str) -> Tables:
    engine = make_engine(database_url, pool_size=1)
    try:
        with Session(engine, expire_on_commit=False) as session:
            tickets = list(session.exec(select(Ticket).order_by(Ticket.id)))  # type: ignore[arg-type]
            jobs = list(session.exec(select(Job).order_by(Job.id)))  # type: ignore[arg-type]
            for row in (*tickets, *jobs):
                session.expunge(row)
    finally:
        engine.dispose()
    return Tables(tickets, jobs)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    start, end = aware(start), aware(end)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def summary(values: Sequence[float]) -> dict[str, float | int]:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "n": len(clean),
        "p50": percentile(clean, 50),
        "p99": percentile(clean, 99),
        "max": max(clean) if clean else float("nan"),
        "mean": sum(clean) / len(clean) if clean else float("nan"),
    }
