"""Every Jira call goes through here: one client setup, timeouts, metrics, and no retries of its own
(the job queue is the retry layer; see bot.retry)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from jira import JIRA

from bot.jobs.retry import jira_response_seen
from bot.metrics import outside_call
from bot.settings import Settings
from workflows.escaping import jql_string

MARKER_PROPERTY = "triage-bot.effect"


class TransitionUnavailable(Exception):
    """The issue's workflow offers no transition of that name from where the issue is: no retry will change it."""


class IssueRef(NamedTuple):
    """An issue's key (``OPS-12``) and id (``10012``): older Jira Data Center names an issue by its id alone."""

    key: str
    id: str


class JiraGateway:
    def __init__(self, settings: Settings) -> None:
        self._url, self._user, self._token = settings.effective_jira()
        self._timeout = settings.jira_timeout
        self._browse_base = (settings.jira_url or f"{settings.base_url}/sandbox/jira").rstrip("/")
        self._local = threading.local()
        self._server_lock = threading.Lock()
        self._server: tuple[str | None, tuple[int, ...]] | None = None
        self._identity: set[str] | None = None

    @property
    def client(self) -> JIRA:
        """One client per worker thread (requests sessions are not shared across threads). Only the first
        asks Jira for its server info (Cloud or Data Center decides the search and assignee calls)."""
        client: JIRA | None = getattr(self._local, "client", None)
        if client is None:
            auth: dict[str, Any] = (
                {"basic_auth": (self._user, self._token)} if self._user else {"token_auth": self._token}
            )
            with self._server_lock:
                known = self._server is not None
                with outside_call("jira", "server_info" if not known else "client"):
                    client = JIRA(
                        server=self._url, max_retries=0, timeout=self._timeout, get_server_info=not known, **auth
                    )
                if self._server is None:
                    self._server = (client.deploymentType, client._version)
                else:
                    client.deploymentType, client._version = self._server
            # Every 429 is noticed for the shared budget, also those a handler catches (bot.jobs.budget).
            client._session.hooks["response"].append(jira_response_seen)
            # The library translates friendly field names before a search, fetching every field of the site (GET
            # /field) the first time, and again after any failure: one more call per search, starving a
            # rate-limited Jira. The bot asks by field id only, so it tells the library the one name it uses.
            client._fields_cache_value = {"labels": "labels"}
            self._local.client = client
        return client

    def connect(self) -> None:
        """Make this thread's client now (the first one asks Jira for its server info), so that a failure to reach
        Jira at all is told apart from a failure of the call that follows."""
        _ = self.client

    def own_identity(self) -> set[str]:
        """The bot's own Jira account (Cloud accountId, Data Center name and key): its changes are not news."""
        if self._identity is None:
            with outside_call("jira", "myself"):
                me = self.client.myself()
            self._identity = {str(me[k]) for k in ("accountId", "name", "key") if me.get(k)}
        return self._identity

    def browse_url(self, key: str) -> str:
        return f"{self._browse_base}/browse/{key}"

    def find_by_label(self, project: str, label: str) -> IssueRef | None:
        jql = f"project = {jql_string(project)} AND labels = {jql_string(label)} ORDER BY created ASC"
        with outside_call("jira", "search"):
            found = self.client.search_issues(jql, maxResults=2, fields="labels")
        refs = [IssueRef(str(issue.key), str(issue.id)) for issue in found]
        return refs[0] if refs else None

    def create(self, fields: dict[str, Any]) -> IssueRef:
        with outside_call("jira", "create"):
            issue = self.client.create_issue(fields=fields, prefetch=False)
        return IssueRef(str(issue.key), str(issue.id))

    def update(self, key: str, fields: dict[str, Any], add_labels: list[str]) -> None:
        body = {"fields": fields, "update": {"labels": [{"add": label} for label in add_labels]}}
        client = self.client
        with outside_call("jira", "update"):
            # The library's Issue.update() fetches the issue before and after; one PUT is all we need.
            # (No notifyUsers=false: Jira allows that only to project administrators.)
            client._session.put(client._get_url(f"issue/{key}"), data=json.dumps(body))

    def has_comment(self, key: str, marker: str) -> bool:
        client = self.client
        start = 0
        while True:
            with outside_call("jira", "comments"):
                page = client._session.get(
                    client._get_url(f"issue/{key}/comment"),
                    params={"expand": "properties", "startAt": str(start), "maxResults": "100"},
                ).json()
            comments = page.get("comments", [])
            for comment in comments:
                for prop in comment.get("properties", []):
                    if prop.get("key") == MARKER_PROPERTY and prop.get("value", {}).get("id") == marker:
                        return True
            start += len(comments)
            if not comments or start >= page.get("total", 0):
                return False

    def add_comment(self, key: str, text: str, marker: str) -> None:
        """A comment carrying ``marker`` as an entity property, so an uncertain post can be found again."""
        client = self.client
        body = {"body": text, "properties": [{"key": MARKER_PROPERTY, "value": {"id": marker}}]}
        with outside_call("jira", "comment"):
            client._session.post(client._get_url(f"issue/{key}/comment"), data=json.dumps(body))

    def find_account(self, email: str) -> str | None:
        """The Jira account with exactly this e-mail address: its Cloud accountId or Data Center username.
        None when there is none, or when Jira hides e-mail addresses and the search cannot tell."""
        client = self.client
        cloud = client.deploymentType == "Cloud"
        params = {"query": email} if cloud else {"username": email}
        with outside_call("jira", "user_search"):
            found = client._session.get(client._get_url("user/search"), params=params | {"maxResults": "10"}).json()
        wanted = email.strip().lower()
        users = [u for u in (found if isinstance(found, list) else []) if u.get("active", True)]
        exact = [u for u in users if str(u.get("emailAddress") or "").lower() == wanted]
        # Cloud hides the address of people whose profile says so; the search still matched on it, so one
        # hidden-address match is that person.
        hidden = [u for u in users if not u.get("emailAddress")]
        chosen = exact[0] if exact else (hidden[0] if len(users) == 1 and hidden else None)
        account = (chosen or {}).get("accountId" if cloud else "name")
        return str(account) if account else None

    @property
    def cloud(self) -> bool:
        """Jira Cloud (people are account ids) rather than Data Center (people are user names)."""
        return self.client.deploymentType == "Cloud"

    def user_email(self, account: str) -> str | None:
        """The e-mail address of a Jira account (Cloud accountId, Data Center username): ``GET user``. None when
        Jira hides it (Cloud does, by the person's profile settings) or knows no such user."""
        client = self.client
        params = {"accountId": account} if self.cloud else {"username": account}
        with outside_call("jira", "user"):
            answer = client._session.get(client._get_url("user"), params=params)
        email = answer.json().get("emailAddress") if answer.status_code == 200 else None
        return str(email) if email else None

    def assign(self, key: str, account: str | None) -> None:
        """Set (or with None clear) the assignee: ``PUT issue/{key}/assignee``, one call."""
        client = self.client
        field = "accountId" if client.deploymentType == "Cloud" else "name"
        with outside_call("jira", "assign"):
            client._session.put(client._get_url(f"issue/{key}/assignee"), data=json.dumps({field: account}))

    def attach(self, key: str, filename: str, content_type: str, data: bytes) -> str:
        """Upload one file to the issue (multipart ``file``, with the XSRF opt-out Jira requires); its id."""
        client = self.client
        headers = {"X-Atlassian-Token": "no-check", "Content-Type": None}  # None: requests sets the boundary
        with outside_call("jira", "attach"):
            answer = client._session.post(
                client._get_url(f"issue/{key}/attachments"),
                files={"file": (filename, data, content_type)},
                headers=headers,
            ).json()
        return str(answer[0]["id"])

    def find_attachment(self, key: str, filename: str, size: int) -> str | None:
        """The id of an attachment with this name and size, if an uncertain upload landed."""
        with outside_call("jira", "attachments"):
            issue = self.client.issue(key, fields="attachment")
        for attachment in getattr(issue.fields, "attachment", None) or []:
            if attachment.filename == filename and int(attachment.size) == size:
                return str(attachment.id)
        return None

    def transition(self, key: str, name: str, already_there: Callable[[str], bool] = lambda _status: False) -> bool:
        """Move the issue by transition name; False when it is already where the move leads (by the
        transition's target status, or by ``already_there(current status name)``)."""
        client = self.client
        with outside_call("jira", "transitions"):
            issue = client.issue(key, fields="status")
            transitions = client.transitions(key)
        status = str(issue.fields.status.name)
        if already_there(status):
            return False
        wanted = next((t for t in transitions if str(t["name"]).lower() == name.lower()), None)
        if wanted is None:
            # Workflows offer no transition into the status an issue is in; our default names are the
            # status names. Otherwise the policy names a transition this workflow lacks (or lacks from here).
            if status.lower() == name.lower():
                return False
            available = ", ".join(sorted(str(t["name"]) for t in transitions)) or "none"
            raise TransitionUnavailable(
                f"it is in {status}, where the workflow offers {available}, not {name!r} "
                "(check jira.transitions in the policy)"
            )
        if str(wanted.get("to", {}).get("name", "")).lower() == status.lower():
            return False  # already there: a repeated job, or someone moved it in Jira first
        with outside_call("jira", "transition"):
            client.transition_issue(key, wanted["id"])
        return True
