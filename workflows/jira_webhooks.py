"""What Jira Cloud and Jira Data Center POST to a webhook, as pydantic models, with what the bot reads from it.

Jira sends REST API v2 shapes (api-facts.md §3; captures in shared/realworld/jira):

- issue events (``jira:issue_created``, ``jira:issue_updated``, ``jira:issue_deleted``): the ``user`` who acted,
  the ``issue`` (``id``, ``key``, ``self``, ``fields``); an update adds a ``changelog`` (``items`` of ``field``,
  ``fieldtype``, ``fieldId`` on Cloud only, ``from``, ``fromString``, ``to``, ``toString``) or, for a comment
  (``issue_event_type_name`` ``issue_commented``), the ``comment``;
- comment events (``comment_created``, ``comment_updated``, ``comment_deleted``): the ``comment`` (``id``,
  ``self``, ``body``, ``author``, ``updateAuthor``) and, on Cloud and recent Data Center, the ``issue``. Older
  Data Center sends no issue and no user: only the comment's ``self`` URL
  (``…/rest/api/2/issue/10003/comment/10000``) names the issue, by its id.

Cloud names people by ``accountId``; Data Center by ``name`` (the user name) and ``key``. The models are
strict where the bot relies on a field (``webhookEvent``, an issue it can name) and lenient where senders
differ: ids arrive as strings or numbers, ``timestamp`` as epoch milliseconds (or, in some captured fixtures,
a date string), and everything not modelled is kept as extra, never a reason to refuse a delivery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _id_text(value: object) -> object:
    """Jira's ids are strings, but some senders write them as JSON numbers: read both as the string."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


JiraId = Annotated[str, BeforeValidator(_id_text)]

# A comment's self URL names its issue by id: …/rest/api/2/issue/10003/comment/10000 (any context path).
_COMMENT_URL = re.compile(r"/rest/api/(?:\d+|latest)/issue/(\d+)/comment(?:/|$)")
SOMEONE = "someone in Jira"  # an actor Jira gave no name for


class _Jira(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class JiraUser(_Jira):
    accountId: str | None = None  # Cloud
    name: str | None = None  # Data Center: the user name
    key: str | None = None  # Data Center: the user key
    displayName: str | None = None
    emailAddress: str | None = None  # Data Center; Cloud leaves it out
    accountType: str | None = None  # Cloud: atlassian, app or customer
    url: str | None = Field(default=None, alias="self")
    # active, timeZone, avatarUrls: kept as extra (Atlassian's own example writes active as "true")

    @property
    def ids(self) -> frozenset[str]:
        """Every id Jira gave for the person: the Cloud account id, the Data Center user name and key."""
        return frozenset(i for i in (self.accountId, self.name, self.key) if i)


class JiraStatus(_Jira):
    id: JiraId | None = None
    name: str | None = None


class JiraIssueFields(_Jira):
    """The few fields the bot may read; every other field (custom ones included) is kept as extra."""

    summary: str | None = None
    status: JiraStatus | None = None
    assignee: JiraUser | None = None


class JiraIssue(_Jira):
    id: JiraId | None = None
    key: str | None = None
    url: str | None = Field(default=None, alias="self")
    fields: JiraIssueFields = Field(default_factory=JiraIssueFields)


class JiraChange(_Jira):
    """One changelog item: a field's value before and after (ids in ``from``/``to``, shown text in the
    ``…String`` members; for the assignee, ``to`` is the Cloud account id or the Data Center user name)."""

    field: str | None = None  # the field's name; custom fields' names (and, on some sites, all) are localised
    fieldtype: str | None = None
    fieldId: str | None = None  # Cloud only: the stable id (status, assignee, customfield_10010)
    from_: Annotated[str | None, BeforeValidator(_id_text)] = Field(default=None, alias="from")
    fromString: str | None = None
    to: Annotated[str | None, BeforeValidator(_id_text)] = None
    toString: str | None = None

    @property
    def field_id(self) -> str:
        """Which field changed, lower case: ``fieldId`` where Jira sends it (a localised site may call the
        status "Статус"), else the name (Data Center sends no ``fieldId``; its system fields' names are ids)."""
        return (self.fieldId or self.field or "").lower()


class JiraChangelog(_Jira):
    id: JiraId | None = None
    items: list[JiraChange] = Field(default_factory=list)


class JiraComment(_Jira):
    id: JiraId | None = None
    url: str | None = Field(default=None, alias="self")
    body: str | dict[str, Any] | None = None  # wiki markup text (REST v2); an ADF document from a v3 sender
    author: JiraUser | None = None
    updateAuthor: JiraUser | None = None
    created: str | None = None
    updated: str | None = None

    @property
    def text(self) -> str | None:
        """The comment as Jira's text (wiki markup), or None when it came as a document or not at all."""
        return self.body if isinstance(self.body, str) else None

    @property
    def issue_id(self) -> str | None:
        """The id of the issue the comment is on, as its ``self`` URL names it."""
        found = _COMMENT_URL.search(self.url or "")
        return found[1] if found else None


@dataclass(frozen=True)
class JiraActor:
    """Who made a change: every id Jira gave (to recognise the bot's own account) and a name to show."""

    ids: frozenset[str]
    name: str


class JiraWebhook(_Jira):
    """One delivery to ``POST /jira/webhook``: an issue or comment event that names its issue."""

    webhookEvent: str = Field(min_length=1)
    timestamp: int | str | None = None  # epoch milliseconds
    issue_event_type_name: str | None = None  # issue events only, e.g. issue_generic, issue_assigned
    user: JiraUser | None = None
    issue: JiraIssue | None = None
    changelog: JiraChangelog | None = None
    comment: JiraComment | None = None

    @model_validator(mode="after")
    def _names_an_issue(self) -> Self:
        if self.issue_key is None and self.issue_id is None:
            raise ValueError(
                "expected a Jira issue or comment event naming its issue: issue.key, issue.id, "
                "or a comment whose self URL names the issue"
            )
        return self

    @property
    def issue_key(self) -> str | None:
        """The issue's key (``OPS-12``), when Jira sent the issue."""
        return self.issue.key if self.issue is not None and self.issue.key else None

    @property
    def issue_id(self) -> str | None:
        """The issue's id (``10003``): from the issue, or else from the comment's self URL."""
        if self.issue is not None and self.issue.id:
            return self.issue.id
        return self.comment.issue_id if self.comment is not None else None

    @property
    def actor(self) -> JiraActor:
        """Who acted: the event's user, or else (comment events carry none on Data Center) the comment's
        author, its editor for ``comment_updated``."""
        author = None
        if self.comment is not None:
            edited = self.webhookEvent == "comment_updated" and self.comment.updateAuthor is not None
            author = self.comment.updateAuthor if edited else self.comment.author
        who = next((u for u in (self.user, author) if u is not None and (u.ids or u.displayName)), None)
        if who is None:
            return JiraActor(frozenset(), SOMEONE)
        return JiraActor(who.ids, who.displayName or who.name or SOMEONE)

    @property
    def changes(self) -> list[JiraChange]:
        """The changelog's items, in Jira's order (none when the event carries no changelog)."""
        return self.changelog.items if self.changelog is not None else []

    def change_of(self, field_id: str) -> JiraChange | None:
        """The change to ``field_id`` (``status``, ``assignee``, ``resolution``…), the last if Jira lists two."""
        return next((c for c in reversed(self.changes) if c.field_id == field_id.lower()), None)

    @property
    def status_change(self) -> JiraChange | None:
        """The status move: ``toString`` is the new status's name (``to`` its id)."""
        return self.change_of("status")

    @property
    def assignee_change(self) -> JiraChange | None:
        """The new assignee: ``to`` is the Cloud account id or Data Center user name (None: unassigned),
        ``toString`` the name shown."""
        return self.change_of("assignee")
