"""Alert notifications from Alertmanager, Grafana and PagerDuty-style senders, as one shape.

Each sender has its own wire model (validated strictly where the field matters, loosely where senders
differ between versions); ``notifications_from`` turns any of them into ``GroupNotification``s: one per
problem, keyed by the dedup key that decides which ticket it belongs to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.escaping import without_nul

Status = Literal["firing", "resolved"]


class Source(StrEnum):
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    EVENTS = "events"


class _Wire(BaseModel):
    """A part of a payload (cleaned by the envelope it came in)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Envelope(_Wire):
    """A whole payload: NUL characters dropped once, here, for every part inside it."""

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return without_nul(data)


class WireAlert(_Wire):
    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


class _GroupData(_Envelope):
    """Alertmanager's template ``Data`` plus the webhook envelope: what both Alertmanager and Grafana send."""

    groupKey: str = Field(min_length=1, max_length=4096)
    status: Status
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = Field(default=0, ge=0, le=2**31 - 1)  # stored in a 32-bit column


class AlertmanagerWebhook(_GroupData):
    """Alertmanager's webhook ``Message`` (version 4), as ``notify/webhook`` sends it."""

    version: str
    alerts: list[WireAlert] = Field(max_length=10_000)

    @field_validator("version")
    @classmethod
    def _v4(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"Alertmanager webhook version {value!r} is not supported; version 4 is")
        return value


class GrafanaAlert(WireAlert):
    dashboardURL: str = ""
    panelURL: str = ""
    silenceURL: str = ""
    valueString: str = ""


class GrafanaWebhook(_GroupData):
    """Grafana unified alerting webhook (version 1): Alertmanager's data plus Grafana's extras."""

    alerts: list[GrafanaAlert] = Field(max_length=10_000)
    orgId: int = 0
    title: str = ""
    version: str = "1"


class EventPayload(_Wire):
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None


class Event(_Envelope):
    """A PagerDuty Events API v2 event."""

    routing_key: str = Field(min_length=1, max_length=255)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: EventPayload | None = None
    client: str | None = None
    client_url: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Event:
        if self.event_action == "trigger" and self.payload is None:
            raise ValueError("a trigger event needs a payload (summary, source, severity)")
        if self.event_action != "trigger" and not self.dedup_key:
            raise ValueError(f"an {self.event_action} event needs the dedup_key of the trigger it refers to")
        return self


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = ""
    generator_url: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at,
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        return cls(
            fingerprint=data["fingerprint"],
            status=data["status"],
            labels=dict(data.get("labels", {})),
            annotations=dict(data.get("annotations", {})),
            starts_at=data.get("starts_at", ""),
            generator_url=data.get("generator_url", ""),
        )


@dataclass(frozen=True)
class GroupNotification:
    """What one sender said about one problem at one moment."""

    source: Source
    dedup_key: str
    status: Status
    title: str
    labels: dict[str, str]
    annotations: dict[str, str]
    alerts: tuple[Alert, ...] = ()
    external_url: str = ""
    truncated_alerts: int = 0
    acknowledged: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def completed_from(
        self, title: str, labels: dict[str, str], annotations: dict[str, str], alerts: tuple[Alert, ...]
    ) -> GroupNotification:
        """A bare acknowledge/resolve (Events v2 sends only the dedup key) with the problem's stored context."""
        if self.labels or self.alerts:
            return self
        return replace(
            self,
            title=title,
            labels=labels,
            annotations=annotations,
            alerts=tuple(replace(a, status=self.status) for a in alerts),
        )


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _title(labels: dict[str, str], annotations: dict[str, str]) -> str:
    name = labels.get("alertname", "")
    summary = annotations.get("summary", "")
    if name and summary:
        return f"{name}: {summary}"
    return name or summary or "Alert"


def _group(
    source: Source, key: str, msg: AlertmanagerWebhook | GrafanaWebhook, title: str | None = None
) -> GroupNotification:
    alerts = tuple(
        Alert(
            fingerprint=a.fingerprint or _fingerprint(a.labels),
            status=a.status,
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.startsAt,
            generator_url=a.generatorURL,
        )
        for a in msg.alerts
    )
    labels = {**msg.commonLabels, **msg.groupLabels}
    annotations = dict(msg.commonAnnotations)
    if not annotations and alerts:
        annotations = dict(alerts[0].annotations)
    if alerts and "alertname" not in labels and "alertname" in alerts[0].labels:
        labels["alertname"] = alerts[0].labels["alertname"]
    return GroupNotification(
        source=source,
        dedup_key=key,
        status=msg.status,
        title=title or _title(labels, annotations),
        labels=labels,
        annotations=annotations,
        alerts=alerts,
        external_url=msg.externalURL,
        truncated_alerts=msg.truncatedAlerts,
    )


def from_alertmanager(msg: AlertmanagerWebhook) -> GroupNotification:
    # groupKey is the route path plus the group labels: stable per group, and the same on every peer of an
    # HA pair, so both peers' notifications land on one ticket.
    return _group(Source.ALERTMANAGER, f"alertmanager|{msg.receiver}|{msg.groupKey}", msg)


def from_grafana(msg: GrafanaWebhook) -> GroupNotification:
    return _group(Source.GRAFANA, f"grafana|{msg.orgId}|{msg.groupKey}", msg)


def from_event(event: Event, generated_dedup_key: str) -> GroupNotification:
    """An Events v2 event; ``generated_dedup_key`` is used when a trigger comes without one."""
    dedup = event.dedup_key or generated_dedup_key
    payload = event.payload
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    title = f"Event {dedup}"
    if payload is not None:
        labels = {
            k: str(v)
            for k, v in (payload.custom_details or {}).items()
            if isinstance(v, str | int | float | bool) and len(str(v)) <= 1024
        }
        for name, value in (
            ("source", payload.source),
            ("component", payload.component),
            ("group", payload.group),
            ("class", payload.class_),
            ("severity", payload.severity),
        ):
            if value:
                labels[name] = value
        annotations = {"summary": payload.summary}
        title = payload.summary
    status: Status = "resolved" if event.event_action == "resolve" else "firing"
    alert = Alert(
        fingerprint=_fingerprint({"dedup_key": dedup}),
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=(payload.timestamp or "") if payload else "",
    )
    return GroupNotification(
        source=Source.EVENTS,
        dedup_key=f"events|{event.routing_key}|{dedup}",
        status=status,
        title=title,
        labels=labels,
        annotations=annotations,
        alerts=(alert,) if payload is not None else (),
        external_url=event.client_url or "",
        acknowledged=event.event_action == "acknowledge",
        extra={"client": event.client or "", "dedup_key": dedup},
    )


def notification_from(source: Source, body: dict[str, Any], generated_dedup_key: str = "") -> GroupNotification:
    """Validate a sender's payload (pydantic.ValidationError if it is not one) and read it as one notification."""
    if source is Source.EVENTS:
        return from_event(Event.model_validate(body), generated_dedup_key)
    if source is Source.GRAFANA:
        return from_grafana(GrafanaWebhook.model_validate(body))
    return from_alertmanager(AlertmanagerWebhook.model_validate(body))


def parse_any(body: dict[str, Any]) -> GroupNotification:
    """Recognise a payload of any supported sender (used by ``triage-bot route``)."""
    if "routing_key" in body or "event_action" in body:
        return notification_from(Source.EVENTS, body, "(generated on receipt)")
    if "orgId" in body or str(body.get("version")) == "1":
        return notification_from(Source.GRAFANA, body)
    return notification_from(Source.ALERTMANAGER, body)
