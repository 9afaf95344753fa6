"""Alert notifications from Alertmanager, Grafana and PagerDuty-style senders, as one shape.

Each sender has its own wire model (validated strictly where the field matters, loosely where senders
differ between versions); ``notifications_from`` turns any of them into ``GroupNotification``s: one per
problem, keyed by the dedup key that decides which ticket it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.escaping import one_line, without_nul

Status = Literal["firing", "resolved"]
LinkKind = Literal["source", "dashboard", "panel", "silence", "runbook", "image", "link"]

# Annotations that name a runbook (kube-prometheus writes runbook_url; others runbook, runbookUrl...).
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "runbookUrl", "runbook_link")
# The texts a title is made of, best first (kube-prometheus rules write ``message``, many only ``description``).
TITLE_ANNOTATIONS = ("summary", "message", "description")
DETAIL_LIMIT = 2000  # characters of one detail value kept (a PagerDuty custom detail can be a whole page)
DETAILS_KEPT = 30  # details of one alert kept
LINKS_KEPT = 20  # links of one alert kept
# Alertmanager's and Grafana's notification titles begin with the group's status ("[FIRING:2] ...",
# "[FIRING:1, RESOLVED:2] ...", "[RESOLVED] ..."), stale from the next notification on.
_STATUS_PREFIX = re.compile(r"^\s*\[\s*(?:FIRING|RESOLVED)\b[^\]]*\]\s*", re.IGNORECASE)
_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


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


def _no_null(value: Any) -> Any:
    return {} if value is None else value


class WireAlert(_Wire):
    status: Status | None = None  # some senders leave it out: the group's status is the alert's
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""

    _nulls = field_validator("labels", "annotations", mode="before")(_no_null)


def _group_status(status: Status | None, alerts: list[WireAlert] | list[GrafanaAlert]) -> Status:
    """The group's status as sent, or (left out) what its alerts say: firing while any of them fires."""
    if status is not None:
        return status
    statuses = {a.status for a in alerts}
    if "firing" in statuses:
        return "firing"
    if statuses == {"resolved"}:
        return "resolved"
    raise ValueError("the notification has no status, and its alerts do not say theirs: send status firing or resolved")


def _some_alerts(alerts: list[Any]) -> list[Any]:
    if not alerts:
        raise ValueError(
            "the notification carries no alerts: a group notification names at least one alert (nothing was opened)"
        )
    return alerts


class _GroupData(_Envelope):
    """Alertmanager's template ``Data`` plus the webhook envelope: what both Alertmanager and Grafana send."""

    groupKey: str = Field(min_length=1, max_length=4096)
    status: Status | None = None
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = Field(default=0, ge=0, le=2**31 - 1)  # stored in a 32-bit column

    _nulls = field_validator("groupLabels", "commonLabels", "commonAnnotations", mode="before")(_no_null)


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

    _alerts = field_validator("alerts")(_some_alerts)

    @model_validator(mode="after")
    def _status(self) -> AlertmanagerWebhook:
        self.status = _group_status(self.status, self.alerts)
        return self


class GrafanaAlert(WireAlert):
    dashboardURL: str = ""
    panelURL: str = ""
    silenceURL: str = ""
    imageURL: str = ""
    valueString: str = ""
    values: dict[str, float | int | str | None] | None = None


class GrafanaWebhook(_GroupData):
    """Grafana unified alerting webhook (version 1): Alertmanager's data plus Grafana's extras."""

    alerts: list[GrafanaAlert] = Field(max_length=10_000)
    orgId: int = 0
    title: str = ""
    version: str = "1"

    _alerts = field_validator("alerts")(_some_alerts)

    @model_validator(mode="after")
    def _status(self) -> GrafanaWebhook:
        self.status = _group_status(self.status, self.alerts)
        return self


class EventPayload(_Wire):
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None


class EventLink(_Wire):
    href: str = ""
    text: str = ""


class EventImage(_Wire):
    src: str = ""
    url: str = ""  # not in the spec, but PagerDuty's own Python client passes what it is given
    href: str = ""
    alt: str = ""


class Event(_Envelope):
    """A PagerDuty Events API v2 event."""

    routing_key: str = Field(min_length=1, max_length=255)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: EventPayload | None = None
    client: str | None = None
    client_url: str | None = None
    links: list[EventLink] = Field(default_factory=list, max_length=100)
    images: list[EventImage] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _complete(self) -> Event:
        if self.event_action == "trigger" and self.payload is None:
            raise ValueError("a trigger event needs a payload (summary, source, severity)")
        if self.event_action != "trigger" and not self.dedup_key:
            raise ValueError(f"an {self.event_action} event needs the dedup_key of the trigger it refers to")
        return self


@dataclass(frozen=True)
class Link:
    """A link the sender gave: where the alert comes from, its dashboard, panel, silence, runbook or image."""

    kind: LinkKind
    url: str
    text: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "url": self.url, "text": self.text}


def link(kind: LinkKind, url: str | None, text: str = "") -> Link | None:
    """A link, if ``url`` is one a person can open (http or https); anything else is not linked."""
    if not url:
        return None
    url = url.strip()
    return Link(kind, url, one_line(text) if text else "") if _URL.match(url) else None


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = ""
    generator_url: str = ""
    links: tuple[Link, ...] = ()  # the source link (generator_url) among them
    value: str = ""  # Grafana's valueString, or its values
    details: dict[str, str] = field(default_factory=dict)  # PagerDuty-style custom details, as text

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at,
            "generator_url": self.generator_url,
        }
        if self.links:
            data["links"] = [x.to_json() for x in self.links]
        if self.value:
            data["value"] = self.value
        if self.details:
            data["details"] = self.details
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        links = tuple(Link(x["kind"], x["url"], x.get("text", "")) for x in data.get("links", []))
        generator_url = data.get("generator_url", "")
        if not links and generator_url:  # stored before links were kept
            links = tuple(x for x in (link("source", generator_url),) if x is not None)
        return cls(
            fingerprint=data["fingerprint"],
            status=data["status"],
            labels=dict(data.get("labels", {})),
            annotations=dict(data.get("annotations", {})),
            starts_at=data.get("starts_at", ""),
            generator_url=generator_url,
            links=links,
            value=data.get("value", ""),
            details=dict(data.get("details", {})),
        )


@dataclass(frozen=True)
class Rule:
    """One alerting rule (alertname) of a group, with how many of its alerts fire."""

    name: str
    firing: int
    total: int


@dataclass(frozen=True)
class GroupNotification:
    """What one sender said about one problem at one moment."""

    source: Source
    dedup_key: str
    status: Status
    title: str  # what a ticket opened by this notification is called (kept for the ticket's life)
    labels: dict[str, str]
    annotations: dict[str, str]
    alerts: tuple[Alert, ...] = ()
    external_url: str = ""
    truncated_alerts: int = 0
    acknowledged: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    test: bool = False  # the sender's own test notification (Grafana's contact point "Test" button)

    @property
    def severities(self) -> tuple[str, ...]:
        """The severity words the sender gave, most telling first: the firing alerts' (all alerts' when none
        fires), then the group's labels, then a ``severity`` annotation."""
        firing = [a for a in self.alerts if a.status == "firing"] or list(self.alerts)
        words = [a.labels.get("severity", "") for a in firing]
        if not any(words):
            words = [self.labels.get("severity", "")]
        if not any(words):
            words = [self.annotations.get("severity", "")] + [a.annotations.get("severity", "") for a in firing]
        return tuple(dict.fromkeys(w.strip() for w in words if w and w.strip()))

    @property
    def selectors(self) -> dict[str, str]:
        """What the policy's ``match`` reads: the labels, and (PagerDuty-style events have no labels of their own)
        the short one-line custom details, such as ``env: production``."""
        details = {k: v for a in self.alerts[:1] for k, v in a.details.items() if _matchable(v)}
        return {**details, **self.labels} if self.source is Source.EVENTS else self.labels

    @property
    def severity(self) -> str:
        """The first severity word given (``routing`` chooses the highest by the policy)."""
        return next(iter(self.severities), "")

    @property
    def rules(self) -> tuple[Rule, ...]:
        return rules_of(self.alerts)

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


def rules_of(alerts: tuple[Alert, ...]) -> tuple[Rule, ...]:
    """The distinct alertnames of ``alerts`` in the order they first appear, with their counts."""
    counts: dict[str, list[int]] = {}
    for alert in alerts:
        seen = counts.setdefault(alert.name, [0, 0])
        seen[0] += alert.status == "firing"
        seen[1] += 1
    return tuple(Rule(name, firing, total) for name, (firing, total) in counts.items() if name)


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def plain(text: str) -> str:
    """A sender's text as a title: one line, without the status prefix Alertmanager's and Grafana's titles carry."""
    return one_line(_STATUS_PREFIX.sub("", one_line(text)))


def _label_values(labels: dict[str, str]) -> list[str]:
    """Values in the order Alertmanager's templates list them (``SortedPairs``: alertname first, then by name)."""
    return [labels[k] for k in sorted(labels, key=lambda k: (k != "alertname", k))]


def grafana_default_title(msg: GrafanaWebhook) -> str:
    """Grafana's default title (``DefaultMessageTitleEmbed``) without its status: the group's label values, then
    the other common labels' in brackets. A title that is only this says nothing the labels do not."""
    group = _label_values(msg.groupLabels)
    rest = _label_values({k: v for k, v in msg.commonLabels.items() if k not in msg.groupLabels})
    return one_line(" ".join(group) + (f" ({' '.join(rest)})" if rest else ""))


def choose_title(
    rules: tuple[Rule, ...],
    annotations: dict[str, str],
    group_labels: dict[str, str],
    sender_title: str = "",
    labels_only_title: str = "",
) -> str:
    """The best text the sender gave: its own title (Grafana's, when it is more than label values), else the
    group's summary, message or description, prefixed with the rule's name when the group has one rule; else the
    rules' names; else what the labels say."""
    names = [r.name for r in rules]
    own = plain(sender_title)
    if own and own != plain(labels_only_title):
        return own
    text = next((plain(annotations[k]) for k in TITLE_ANNOTATIONS if plain(annotations.get(k, ""))), "")
    if text:
        return f"{names[0]}: {text}" if len(names) == 1 and names[0] not in text else text
    if names:
        shown = ", ".join(names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    if own:
        return own
    if group_labels:
        return "Alerts " + ", ".join(f"{k}={v}" for k, v in sorted(group_labels.items()))
    return "Alert"


def _runbooks(annotations: dict[str, str]) -> list[Link | None]:
    return [link("runbook", annotations[name]) for name in RUNBOOK_ANNOTATIONS if name in annotations]


def _links(*found: Link | None) -> tuple[Link, ...]:
    unique = dict.fromkeys(x for x in found if x is not None)
    return tuple(unique)[:LINKS_KEPT]


def _number(value: float | int | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)


def _value(alert: GrafanaAlert) -> str:
    if alert.valueString.strip():
        return alert.valueString.strip()
    return ", ".join(f"{k}={_number(v)}" for k, v in sorted((alert.values or {}).items()))


def _alert(wire: WireAlert, group_status: Status, names: dict[str, str]) -> Alert:
    """One alert as the bot keeps it. An alert without a status has the group's (Alertmanager's own fixtures
    leave it out); one without an alertname, the group's (when the group has one)."""
    labels = dict(wire.labels)
    fingerprint = wire.fingerprint or _fingerprint(labels)
    if "alertname" not in labels and names.get("alertname"):
        labels["alertname"] = names["alertname"]
    found: list[Link | None] = [link("source", wire.generatorURL)]
    value = ""
    if isinstance(wire, GrafanaAlert):
        found += [
            link("dashboard", wire.dashboardURL),
            link("panel", wire.panelURL),
            link("silence", wire.silenceURL),
            link("image", wire.imageURL),
        ]
        value = _value(wire)
    return Alert(
        fingerprint=fingerprint,
        status=wire.status or group_status,
        labels=labels,
        annotations=wire.annotations,
        starts_at=wire.startsAt,
        generator_url=wire.generatorURL,
        links=_links(*found, *_runbooks(wire.annotations)),
        value=value,
    )


def is_grafana_test(msg: GrafanaWebhook) -> bool:
    """Grafana's contact point "Test" button: a made-up alert (TestAlert on instance Grafana), sent in a group of
    its own (``test-<fingerprint>-<time>`` since Grafana 10; older ones end in the time it was sent)."""
    made_up = all(
        a.labels.get("alertname") == "TestAlert" and a.labels.get("instance") == "Grafana" for a in msg.alerts
    )
    return msg.groupKey.startswith("test-") or made_up


def _group(
    source: Source, key: str, msg: AlertmanagerWebhook | GrafanaWebhook, title: str = "", labels_only_title: str = ""
) -> GroupNotification:
    status = _group_status(msg.status, msg.alerts)
    labels = {**msg.commonLabels, **msg.groupLabels}
    alerts = tuple(_alert(a, status, labels) for a in msg.alerts)
    annotations = dict(msg.commonAnnotations)
    if not annotations and len(alerts) == 1:
        annotations = dict(alerts[0].annotations)
    names = rules_of(alerts)
    if len(names) == 1 and "alertname" not in labels:
        labels["alertname"] = names[0].name
    return GroupNotification(
        source=source,
        dedup_key=key,
        status=status,
        title=choose_title(names, annotations, msg.groupLabels, title, labels_only_title),
        labels=labels,
        annotations=annotations,
        alerts=alerts,
        external_url=msg.externalURL,
        truncated_alerts=msg.truncatedAlerts,
        test=isinstance(msg, GrafanaWebhook) and is_grafana_test(msg),
    )


def from_alertmanager(msg: AlertmanagerWebhook) -> GroupNotification:
    # groupKey is the route path plus the group labels: stable per group, and the same on every peer of an
    # HA pair, so both peers' notifications land on one ticket.
    return _group(Source.ALERTMANAGER, f"alertmanager|{msg.receiver}|{msg.groupKey}", msg)


def from_grafana(msg: GrafanaWebhook) -> GroupNotification:
    return _group(Source.GRAFANA, f"grafana|{msg.orgId}|{msg.groupKey}", msg, msg.title, grafana_default_title(msg))


def _detail(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text[:DETAIL_LIMIT] + ("…" if len(text) > DETAIL_LIMIT else "")


def _matchable(value: str) -> bool:
    """A custom detail short and plain enough for the policy to match, like a label (``env: production``)."""
    return bool(value) and "\n" not in value and len(value) <= 256


def from_event(event: Event, generated_dedup_key: str) -> GroupNotification:
    """An Events v2 event; ``generated_dedup_key`` is used when a trigger comes without one. Its custom details
    are details, shown as such, not labels; the policy can match the short one-line ones (``selectors``)."""
    dedup = event.dedup_key or generated_dedup_key
    payload = event.payload
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    details: dict[str, str] = {}
    title = f"Event {dedup}"
    if payload is not None:
        custom = payload.custom_details or {}
        details = {k: _detail(v) for k, v in list(custom.items())[:DETAILS_KEPT]}
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
        title = plain(payload.summary) or payload.summary
    status: Status = "resolved" if event.event_action == "resolve" else "firing"
    found = [link("link", x.href, x.text) for x in event.links]
    found += [link("image", x.src or x.url, x.alt) for x in event.images]
    found += [link("link", x.href, x.alt) for x in event.images if x.href]
    alert = Alert(
        fingerprint=_fingerprint({"dedup_key": dedup}),
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=(payload.timestamp or "") if payload else "",
        links=_links(*found),
        details=details,
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
