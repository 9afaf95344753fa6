"""Sample payloads as real senders shape them, for the demo, the tests and the benchmark."""

from __future__ import annotations

import hashlib
from typing import Any


def alertmanager_payload(
    group: str,
    alerts: int = 1,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    first: int = 0,
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body, shaped as notify/webhook sends it."""
    common = {"alertname": f"Alert{group}", "severity": "critical", "env": "production", **(labels or {})}
    notes = {"summary": f"problem {group}", **(annotations or {})}
    items = [
        {
            "status": status,
            "labels": {**common, "instance": f"host-{i}"},
            "annotations": notes,
            "startsAt": "2026-11-22T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T11:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": hashlib.sha256(f"{group}/{i}".encode()).hexdigest()[:16],
        }
        for i in range(first, first + alerts)
    ]
    return {
        "receiver": "triage-bot",
        "status": status,
        "alerts": items,
        "groupLabels": {"alertname": common["alertname"]},
        "commonLabels": common,
        "commonAnnotations": notes,
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{common["alertname"]}"}}',
        "truncatedAlerts": 0,
    }
