"""Prometheus metrics. Queue depth is read from the database at scrape time, so every replica agrees."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("triage.metrics")

NOTIFICATIONS_RECEIVED = Counter(
    "triage_notifications_received_total", "Alert notifications (webhook posts) accepted, by source", ["source"]
)
ALERTS_RECEIVED = Counter("triage_alerts_received_total", "Alerts in accepted notifications, by source", ["source"])
INBOUND_REJECTED = Counter(
    "triage_inbound_rejected_total", "Inbound requests refused, by route and HTTP status", ["route", "status"]
)
TICKETS_CREATED = Counter("triage_tickets_created_total", "Jira issues created", ["source"])
TICKETS_UPDATED = Counter(
    "triage_tickets_updated_total", "Jira issue updates (fields, comments, transitions)", ["kind"]
)
REFUSALS = Counter(
    "triage_outside_refusals_total",
    "Changes an outside system refused for good (said in the card's thread, kept as refused jobs)",
    ["system", "what"],
)
MAILS_SENT = Counter("triage_mails_sent_total", "E-mails to customers accepted by the SMTP server", ["kind"])
REPORTS_RECEIVED = Counter("triage_reports_received_total", "Customer reports accepted", ["category"])
JOBS_FINISHED = Counter("triage_jobs_finished_total", "Jobs run to the end, by kind and outcome", ["kind", "outcome"])
JOBS_FAILED = Counter(
    "triage_jobs_failed_total", "Job attempts that failed, by kind and whether retried", ["kind", "retried"]
)
CALL_SECONDS = Histogram(
    "triage_outside_call_seconds",
    "Latency of calls to Jira, Slack and others",
    ["system", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)
CALL_ERRORS = Counter(
    "triage_outside_call_errors_total", "Failed calls to outside systems", ["system", "operation", "error"]
)
RATE_LIMITED = Counter(
    "triage_outside_rate_limited_total",
    "Calls an outside system answered 429, by whose limit it was (system: every lane paused; lane: one issue's)",
    ["system", "scope"],
)
PAUSED_SECONDS = Counter(
    "triage_outside_paused_seconds_total",
    "Seconds an outside system was paused after a 429 (no worker took its jobs), counted when each pause ends",
    ["system"],
)
PAUSED = Gauge(
    "triage_outside_paused",
    "1 while this process sees the outside system paused after a 429, else 0",
    ["system"],
)
PACED = Counter(
    "triage_outside_paced_total",
    "Jobs given back unstarted because their system's steady pace had no free slot yet",
    ["system"],
)
TICKET_LATENCY = Histogram(
    "triage_alert_to_ticket_seconds",
    "Time from the first alert of a problem to its Jira issue",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

ALERT_BATCH = Histogram(
    "triage_alert_batch_notifications",
    "Notifications of one alert group applied together in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100),
)
INTAKE_BATCH = Histogram(
    "triage_intake_batch_requests",
    "Inbound requests stored together in one commit (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@contextmanager
def outside_call(system: str, operation: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        CALL_ERRORS.labels(system, operation, type(exc).__name__).inc()
        raise
    finally:
        CALL_SECONDS.labels(system, operation).observe(time.perf_counter() - start)


class QueueCollector(Collector):
    """Jobs by status, read from the shared database when Prometheus scrapes."""

    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("triage_jobs", "Jobs in the queue by status", labels=["status"])
        try:
            counts = self._read()
        except Exception:
            counts = {}
        for status in ("pending", "running", "dead"):
            family.add_metric([status], counts.get(status, 0))
        yield family


def register_queue_collector(registry: CollectorRegistry, read: Callable[[], dict[str, int]]) -> QueueCollector:
    collector = QueueCollector(read)
    registry.register(collector)
    return collector


def process_registry() -> CollectorRegistry:
    """Where this process's metrics are read: its own registry or, when PROMETHEUS_MULTIPROC_DIR is set (`serve`
    with worker processes), the sum of the files every process writes there."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    if values.ValueClass is values.MutexValue:
        log.error(
            "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported: /metrics misses this "
            "process's own counters (set it before the first import, as `triage-bot serve` does)"
        )
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
