"""Customer reports from the apps: what a report may contain, where it goes, and what the customer is told.

Pure: ``webhooks`` validates the request with ``ReportIn``, ``bot`` stores it and routes it with ``route``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from workflows.effects import Effect, EffectKind
from workflows.escaping import one_line, strip_control
from workflows.plans import Entry, Opening, Plan, opening_effects
from workflows.policy import MatchValue, Policy
from workflows.routing import matches
from workflows.states import TicketState, initial_state

SUBJECT_LIMIT = 200
DESCRIPTION_LIMIT = 20_000
METADATA_KEYS = 30
METADATA_VALUE_LIMIT = 500
SOURCE = "report"

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
# What a report's files may say they are; anything else goes to Jira as application/octet-stream, so nobody's
# browser renders or runs it from there.
SAFE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/heic",
        "text/plain",
        "text/csv",
        "application/json",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "video/mp4",
        "video/quicktime",
    }
)
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9 ._()+-]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppInfo(_Strict):
    name: Short
    version: Short
    platform: Short


class Attachment(_Strict):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: str
    data: str  # base64 (standard alphabet, padded)

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        """Only the last path part, in characters no system misreads."""
        name = _UNSAFE_FILENAME.sub("_", value.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
        if not name:
            raise ValueError("a file name is needed")
        return name[:255]

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str) -> str:
        value = value.strip().lower().split(";", 1)[0].strip()
        if not _CONTENT_TYPE.match(value):
            raise ValueError("a media type such as image/png or text/plain")
        return value if value in SAFE_TYPES else "application/octet-stream"

    @cached_property
    def content(self) -> bytes:
        """The file's bytes, decoded once (validation, the size check and storing all read them)."""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as problem:
            raise ValueError("data is not valid base64") from problem


class ReportIn(_Strict):
    """The body of ``POST /reports``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SUBJECT_LIMIT)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_LIMIT)] = ""
    category: str
    app: AppInfo
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)

    @field_validator("subject", "description")
    @classmethod
    def _text(cls, value: str) -> str:
        return strip_control(value).strip()

    @field_validator("subject")
    @classmethod
    def _subject_left(cls, value: str) -> str:
        if not value:
            raise ValueError("the subject has no visible text")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        value = value.strip()
        if not _CATEGORY.match(value):
            raise ValueError("letters, digits, space, '_', '.' or '-', at most 64")
        return value.lower()

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        if len(value) > METADATA_KEYS:
            raise ValueError(f"at most {METADATA_KEYS} entries")
        for key, item in value.items():
            if not _METADATA_KEY.match(key):
                raise ValueError(f"key {key[:64]!r}: letters, digits, '_', '.' or '-', at most 64")
            if isinstance(item, str) and len(item) > METADATA_VALUE_LIMIT:
                raise ValueError(f"{key}: at most {METADATA_VALUE_LIMIT} characters")
        return value

    @model_validator(mode="after")
    def _attachments_decode(self) -> ReportIn:
        for index, attachment in enumerate(self.attachments):
            try:
                attachment.content  # noqa: B018 - decoding is the check
            except ValueError as problem:
                raise ValueError(f"attachments.{index}.data: {problem}") from problem
        return self

    @property
    def title(self) -> str:
        return one_line(self.subject)


@dataclass(frozen=True)
class ReportRouting:
    team: str | None
    priority: str
    channel: str
    project: str
    issue_type: str


def route(policy: Policy, report: ReportIn) -> ReportRouting:
    """Where a report goes: the first route whose fields match, else the operators' triage."""
    reports = policy.reports
    # Matched without regard to case: "iOS" and "ios" are one platform, "Billing" and "billing" one category.
    fields = {"category": report.category, "app": report.app.name.lower(), "platform": report.app.platform.lower()}
    team: str | None = None
    priority = reports.default_priority if reports else "Medium"
    for candidate in reports.routes if reports else ():
        if matches(_lower(candidate.match), fields):
            team, priority = candidate.team, candidate.priority or priority
            break
    channel = policy.teams[team].channel if team in policy.teams else policy.operators.channel
    project = reports.jira.project if reports else policy.jira.project
    issue_type = reports.jira.issue_type if reports else policy.jira.issue_type
    return ReportRouting(team if team in policy.teams else None, priority, channel, project, issue_type)


# What the customer is told of each state (GET /reports/{id}); the words never reveal who works on it.
STATUS_TEXT = {
    TicketState.OPEN: "Received: we will look at it shortly",
    TicketState.ASSIGNED: "A team is looking at it",
    TicketState.IN_PROGRESS: "Someone is working on it",
    TicketState.RESOLVED: "A fix is ready and being checked",
    TicketState.IN_QA: "The fix is being tested",
    TicketState.CLOSED: "Closed",
}


def _lower(selector: dict[str, MatchValue]) -> dict[str, MatchValue]:
    return {k: [x.lower() for x in v] if isinstance(v, list) else v.lower() for k, v in selector.items()}


def metric_category(policy: Policy, category: str) -> str:
    """A category as a metric label: one the policy routes by, else "other" (customers write anything)."""
    known = {
        str(v).lower()
        for r in (policy.reports.routes if policy.reports else ())
        for v in ([r.match["category"]] if isinstance(r.match.get("category"), str) else r.match.get("category") or [])
    }
    return category if category in known else "other"


def reporter(sub: str | None, email: str | None) -> str:
    """Who reported it, for Slack: the customer's id and masked e-mail (an id that is an address is masked too)."""
    who = mask_email(sub) if sub and "@" in sub else (sub or "unknown")
    return f"{who} ({mask_email(email)})"


def mask_email(email: str | None) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com``: enough to recognise, not to write to."""
    if not email or "@" not in email:
        return "no e-mail"
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


def app_line(fields: dict[str, str]) -> str:
    """``Shop 4.2.0 (ios)`` from a report ticket's stored fields."""
    return f"{fields.get('app', '')} {fields.get('version', '')} ({fields.get('platform', '')})"


def unique_names(names: list[str]) -> list[str]:
    """``log.txt``, ``log (2).txt``...: an uncertain upload is found again by name and size, so no two alike."""
    taken: set[str] = set()
    unique = []
    for name in names:
        stem, dot, ext = name.rpartition(".") if "." in name.strip(".") else (name, "", "")
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem} ({n}){dot}{ext}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def plan_report(report: ReportIn, routing: ReportRouting, customer: str, *, has_email: bool) -> Opening:
    """A customer's report as a new ticket: to its team or to triage; its issue, card and files in Jira; the
    receipt to the customer when there is an address to send it to. (The files are named as ``unique_names``
    names them.)"""
    state = initial_state(routing.team)
    files = unique_names([a.filename for a in report.attachments])
    effects = [
        *opening_effects(),
        *(Effect(EffectKind.JIRA_ATTACH, {"filename": name}) for name in files),
    ]
    if has_email:
        effects.append(Effect(EffectKind.MAIL_SEND, {"kind": "receipt", "context": {}}))
    return Opening(
        state=state,
        team=routing.team,
        channel=routing.channel,
        plan=Plan(
            history=(Entry(customer, "app", f"reported from {report.app.name}", to=state),), effects=tuple(effects)
        ),
    )
