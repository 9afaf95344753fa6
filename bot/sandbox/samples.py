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


def grafana_payload(
    group: str,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Grafana unified-alerting webhook body (version 1) with one alert, as a contact point sends it."""
    common = {"alertname": f"Alert{group}", "severity": "critical", "env": "production", **(labels or {})}
    notes = {"summary": f"problem {group}", **(annotations or {})}
    count = "1" if status == "firing" else "0"
    alert = {
        "status": status,
        "labels": {**common, "grafana_folder": "Sandbox"},
        "annotations": notes,
        "startsAt": "2026-11-22T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T11:00:00Z",
        "generatorURL": "http://grafana:3000/alerting/grafana/sandbox/view",
        "fingerprint": hashlib.sha256(f"grafana/{group}".encode()).hexdigest()[:16],
        "silenceURL": "http://grafana:3000/alerting/silence/new",
        "dashboardURL": "http://grafana:3000/d/sandbox",
        "panelURL": "http://grafana:3000/d/sandbox?viewPanel=1",
        "values": {"A": 1.0},
        "valueString": "[ var='A' labels={} value=1 ]",
    }
    return {
        "receiver": "triage-bot",
        "status": status,
        "orgId": 1,
        "alerts": [alert],
        "groupLabels": {"alertname": common["alertname"]},
        "commonLabels": alert["labels"],
        "commonAnnotations": notes,
        "externalURL": "http://grafana:3000/",
        "version": "1",
        "groupKey": f'{{}}/{{}}:{{alertname="{common["alertname"]}"}}',
        "truncatedAlerts": 0,
        "title": f"[{status.upper()}:{count}] {common['alertname']} (Sandbox)",
        "state": "alerting" if status == "firing" else "ok",
        "message": notes["summary"],
    }


def events_payload(
    group: str, status: str = "firing", severity: str = "critical", details: dict[str, str] | None = None
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event (trigger, or resolve for ``status="resolved"``)."""
    return {
        "routing_key": "sandbox-routing-key",
        "event_action": "trigger" if status == "firing" else "resolve",
        "dedup_key": f"sandbox-{group}",
        "payload": {
            "summary": f"problem {group}",
            "source": "sandbox-host-1",
            "severity": severity,
            "custom_details": {"env": "production", **(details or {})},
        },
    }
