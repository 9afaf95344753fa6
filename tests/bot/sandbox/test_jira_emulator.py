"""The Jira emulator, driven by the real ``jira`` client over real HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from jira import JIRA, JIRAError

from bot.sandbox import jql
from bot.sandbox.jira_emulator import (
    REMOVED_SEARCH_MESSAGE,
    ChangeEvent,
    JiraEmulator,
    create_jira_emulator,
    webhook_signature,
)
from bot.sandbox.server_thread import ServerThread
from workflows.jira_webhooks import JiraWebhook

AUTH = ("sandbox@example.com", "sandbox-token")
SPEC_PATH = Path(__file__).resolve().parents[4] / "shared" / "specs" / "jira-platform-swagger-v3.v3.json"


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cloud_server() -> Iterator[tuple[ServerThread, JiraEmulator]]:
    app = create_jira_emulator()
    with ServerThread(app) as server:
        yield server, app.state.emulator


@pytest.fixture(scope="module")
def dc_server() -> Iterator[tuple[ServerThread, JiraEmulator]]:
    app = create_jira_emulator(deployment_type="Server")
    with ServerThread(app) as server:
        yield server, app.state.emulator


@pytest.fixture
def emu(cloud_server: tuple[ServerThread, JiraEmulator]) -> Iterator[JiraEmulator]:
    cloud_server[1].reset()
    yield cloud_server[1]
    cloud_server[1].reset()


@pytest.fixture
def url(cloud_server: tuple[ServerThread, JiraEmulator], emu: JiraEmulator) -> str:
    return cloud_server[0].url


@pytest.fixture
def jira(url: str) -> JIRA:
    return JIRA(url, basic_auth=AUTH, max_retries=0, timeout=10)


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, auth=AUTH, timeout=10) as client:
        yield client


def new_issue(jira: JIRA, summary: str = "Disk full on db-1", **fields: Any) -> Any:
    return jira.create_issue(
        fields={"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": summary} | fields
    )


# ---- spec conformance -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def conform(spec: dict[str, Any], value: Any, schema: dict[str, Any] | str, where: str = "$") -> list[str]:
    """Problems of ``value`` against a spec schema: required keys, undeclared keys, JSON types."""
    if isinstance(schema, str):
        schema = spec["components"]["schemas"][schema]
    if "$ref" in schema:
        return conform(spec, value, schema["$ref"].rsplit("/", 1)[1], where)
    if "allOf" in schema:
        return [p for part in schema["allOf"] for p in conform(spec, value, part, where)]
    if value is None:
        return []
    kind = schema.get("type")
    types = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict, "number": (int, float)}
    if kind in types and not isinstance(value, types[kind]):  # type: ignore[arg-type]
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    problems = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{where}: missing required {k!r}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: undeclared {k!r}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                problems += conform(spec, v, props[k], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += conform(spec, item, schema["items"], f"{where}[{i}]")
    return problems


def test_responses_conform_to_spec_schemas(spec: dict[str, Any], jira: JIRA, http: httpx.Client) -> None:
    info = http.get("/rest/api/3/serverInfo").json()
    assert {"versionNumbers", "deploymentType", "baseUrl"} <= info.keys()
    assert conform(spec, info, "ServerInformation") == []
    created = http.post(
        "/rest/api/2/issue",
        json={"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Bug"}, "summary": "x"}},
    )
    assert created.status_code == 201
    assert set(created.json()) == {"id", "key", "self"}
    assert conform(spec, created.json(), "CreatedIssue") == []
    key = created.json()["key"]
    http.post(f"/rest/api/2/issue/{key}/comment", json={"body": "hi"})
    checks = {
        f"/rest/api/2/issue/{key}": "IssueBean",
        f"/rest/api/2/issue/{key}/transitions": "Transitions",
        f"/rest/api/2/issue/{key}/comment": "PageOfComments",
        f"/rest/api/2/search/jql?jql=key={key}&fields=*all": "SearchAndReconcileResults",
        "/rest/api/2/myself": "User",
        "/rest/api/2/project/OPS": "Project",
    }
    for path, schema in checks.items():
        response = http.get(path)
        assert response.status_code == 200, path
        assert conform(spec, response.json(), schema) == [], path
    fields = http.get("/rest/api/2/field").json()
    assert all(conform(spec, f, "FieldDetails") == [] for f in fields)
    error = http.get("/rest/api/2/issue/NOPE-1")
    assert error.status_code == 404
    assert conform(spec, error.json(), "ErrorCollection") == []


# ---- issue lifecycle --------------------------------------------------------------------------
def test_create_get_update_comment_transition_assign(jira: JIRA, emu: JiraEmulator, url: str) -> None:
    assert jira._is_cloud
    issue = jira.create_issue(
        project="OPS", summary="Disk full", issuetype="Incident", description="*bold* wiki", labels=["alert"]
    )
    assert issue.key == "OPS-1"
    assert issue.self == f"{url}/rest/api/2/issue/{issue.id}"
    assert (issue.fields.status.name, issue.fields.status.statusCategory.key) == ("To Do", "new")
    assert issue.fields.priority.name == "Medium"
    assert issue.fields.issuetype.name == "Incident"
    assert issue.fields.resolution is None

    issue.update(fields={"summary": "Disk full on db-1", "priority": {"name": "High"}}, labels=[{"add": "fp-1"}])
    assert issue.fields.summary == "Disk full on db-1"
    assert issue.fields.labels == ["alert", "fp-1"]
    issue.update(update={"labels": [{"remove": "alert"}], "comment": [{"add": {"body": "via update"}}]})
    assert issue.fields.labels == ["fp-1"]

    comment = jira.add_comment(issue, "Seen again", is_internal=True)
    assert comment.body == "Seen again"
    assert comment.author.accountId == "557058:sandbox-bot"
    page = jira._session.get(f"{url}/rest/api/2/issue/{issue.key}/comment?expand=properties").json()
    assert (page["startAt"], page["total"]) == (0, 2)
    assert page["comments"][1]["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]
    assert [c.body for c in jira.comments(issue)] == ["via update", "Seen again"]

    names = [t["name"] for t in jira.transitions(issue)]
    assert names == ["In Progress", "Done", "Resolved"]  # "Reopen" leads to the current status
    jira.transition_issue(issue, "in progress")  # names match case-insensitively in the client
    jira.transition_issue(issue, "Resolved", comment="fixed")
    issue = jira.issue(issue.key)
    assert issue.fields.status.name == "Resolved"
    assert issue.fields.status.statusCategory.key == "done"
    assert issue.fields.resolution.name == "Done"
    assert issue.fields.resolutiondate
    assert issue.fields.comment.total == 3
    with pytest.raises(JIRAError) as err:  # not available from the current status
        jira.transition_issue(issue, "41")
    assert err.value.status_code == 400
    assert "not valid for this issue" in err.value.text
    jira.transition_issue(issue, "Reopen")
    issue = jira.issue(issue.key, fields="status,resolution,resolutiondate")
    assert (issue.fields.status.name, issue.fields.resolution, issue.fields.resolutiondate) == ("To Do", None, None)
    assert not hasattr(issue.fields, "summary")

    assert jira.assign_issue(issue, "alice@example.com")  # user search by e-mail, then accountId
    assert jira.issue(issue.key).fields.assignee.accountId == "712020:alice"
    assert jira.assign_issue(issue, "712020:bob")  # the client searches by accountId too
    assert jira.issue(issue.key).fields.assignee.displayName == "Bob Example"
    assert [u.accountId for u in jira.search_users(query="example.com")] == [
        "557058:sandbox-bot",
        "712020:alice",
        "712020:bob",
        "712020:olivia",
        "712020:paul",
        "712020:quinn",
    ]
    jira.assign_issue(issue, None)
    assert jira.issue(issue.key).fields.assignee is None

    full = emu.issue(issue.key)
    assert full is not None
    fields = [item["field"] for h in full["changelog"]["histories"] for item in h["items"]]
    assert {"summary", "priority", "labels", "status", "resolution", "assignee"} <= set(fields)
    status_items = [i for h in full["changelog"]["histories"] for i in h["items"] if i["field"] == "status"]
    assert status_items[-1] == {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": "10000",
        "fromString": "To Do",
        "to": "3",
        "toString": "In Progress",
    }


def test_put_return_issue_and_not_found(http: httpx.Client, jira: JIRA) -> None:
    issue = new_issue(jira)
    response = http.put(f"/rest/api/2/issue/{issue.key}?returnIssue=true", json={"fields": {"summary": "new"}})
    assert response.status_code == 200
    assert response.json()["fields"]["summary"] == "new"
    assert http.put(f"/rest/api/2/issue/{issue.key}", json={"fields": {"labels": ["a"]}}).status_code == 204
    missing = http.get("/rest/api/2/issue/OPS-999")
    assert missing.status_code == 404
    assert missing.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }
    bad = http.post(f"/rest/api/2/issue/{issue.key}/transitions", json={"transition": {"id": 99}, "fields": {}})
    assert bad.json()["errorMessages"] == ["Transition id '99' is not valid for this issue."]
    good = http.post(f"/rest/api/2/issue/{issue.key}/transitions", json={"transition": {"id": 31}, "fields": {}})
    assert (good.status_code, good.content) == (204, b"")


def test_validation_errors_are_error_collections(jira: JIRA, http: httpx.Client) -> None:
    cases = {
        "summary": {"summary": "x" * 256},
        "labels": {"labels": ["has space"]},
        "priority": {"priority": {"name": "Urgent"}},
        "issuetype": {"issuetype": {"name": "Saga"}},
        "description": {"description": "d" * 32768},
        "customfield_10001": {"customfield_10001": "x"},
    }
    for field, override in cases.items():
        with pytest.raises(JIRAError) as err:
            new_issue(jira, **override)
        assert err.value.status_code == 400, field
        body = err.value.response.json()
        assert body["errorMessages"] == []
        assert list(body["errors"]) == [field]
    with pytest.raises(JIRAError, match="Summary must be less than 255 characters"):
        new_issue(jira, summary="y" * 300)
    with pytest.raises(JIRAError, match="contains spaces which is invalid"):
        new_issue(jira, labels=["ok", "not ok"])
    response = http.post("/rest/api/2/issue", json={"fields": {"project": {"key": "NOPE"}, "summary": "x"}})
    assert response.status_code == 400
    assert response.json() == {"errorMessages": [], "errors": {"project": "Specify a valid project ID or key"}}
    response = http.post("/rest/api/2/issue", json={"fields": {"project": {"id": "10001"}}})
    assert set(response.json()["errors"]) == {"summary", "issuetype"}
    assert new_issue(jira, summary="x" * 255, labels=["l" * 255]).key.startswith("OPS-")
    assert http.post("/rest/api/2/issue", content=b"{not json").status_code == 400
    assert http.get("/rest/api/9/serverInfo").status_code == 404


# ---- search -----------------------------------------------------------------------------------
def test_search_and_pagination_cloud(jira: JIRA, http: httpx.Client, emu: JiraEmulator) -> None:
    keys = [new_issue(jira, f"issue {n}", labels=["batch"]).key for n in range(7)]
    emu.create_issue({"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "other", "labels": ["batch"]})

    found = jira.search_issues("project = OPS AND labels = batch ORDER BY key ASC")
    assert [i.key for i in found] == keys
    assert found[0].fields.summary == "issue 0"

    page = jira.enhanced_search_issues("labels = batch ORDER BY created DESC", maxResults=3, fields="summary")
    assert len(page) == 3
    assert page.nextPageToken
    rest = jira.enhanced_search_issues("labels = batch", nextPageToken=page.nextPageToken, maxResults=50)
    assert len(rest) == 5
    assert rest.nextPageToken is None
    assert len(jira.enhanced_search_issues("labels = batch", maxResults=0)) == 8
    posted = jira.enhanced_search_issues("labels = batch", maxResults=2, use_post=True, json_result=True)
    assert isinstance(posted, dict)
    assert (len(posted["issues"]), posted["isLast"], "total" in posted) == (2, False, False)

    raw = http.get("/rest/api/2/search/jql", params={"jql": "project = SUP"}).json()
    assert raw == {"issues": [{"id": raw["issues"][0]["id"]}], "isLast": True}  # no fields: ids only
    raw = http.get(
        "/rest/api/2/search/jql", params=[("jql", "key = OPS-1"), ("fields", "summary"), ("fields", "labels")]
    )
    assert set(raw.json()["issues"][0]["fields"]) == {"summary", "labels"}
    with pytest.raises(JIRAError, match="deprecated"):  # the client's own guard
        jira.search_issues("project = OPS", startAt=5)


def test_search_lags_writes_by_the_index_lag_while_reads_by_key_do_not(
    jira: JIRA, http: httpx.Client, emu: JiraEmulator
) -> None:
    """Jira Cloud's search is eventually consistent: a new issue, an edit and a deletion show in search only after
    the lag; the issue read by key, and an id passed in reconcileIssues, show at once."""
    old = new_issue(jira, "before the lag", labels=["lag"])
    emu.set_index_lag(0.6)
    fresh = new_issue(jira, "during the lag", labels=["lag"])
    found = lambda: [i.key for i in jira.enhanced_search_issues("labels = lag ORDER BY key ASC", fields="labels")]  # noqa: E731
    assert found() == [old.key]  # indexed before the lag began
    assert jira.issue(fresh.key).fields.summary == "during the lag"  # by key: as it is
    reconciled = http.get(
        "/rest/api/3/search/jql", params={"jql": "labels = lag", "reconcileIssues": fresh.id, "fields": "labels"}
    ).json()
    assert sorted(i["key"] for i in reconciled["issues"]) == sorted([old.key, fresh.key])
    jira.issue(old.key).update(fields={"labels": ["moved"]})
    emu.delete_issue(fresh.key)
    assert found() == [old.key]  # the edit and the deletion do not show yet, nor the new issue
    time.sleep(0.7)
    assert found() == []  # the new issue showed and went with its deletion; the old one's label changed
    assert [i.key for i in jira.enhanced_search_issues("labels = moved", fields="labels")] == [old.key]
    emu.set_index_lag(0)
    assert [i.key for i in jira.enhanced_search_issues("labels = moved", fields="labels")] == [old.key]
    with pytest.raises(ValueError, match="seconds"):
        emu.set_index_lag(-1)


def test_old_search_is_gone_on_cloud(http: httpx.Client, url: str) -> None:
    for response in (http.get("/rest/api/2/search", params={"jql": "project = OPS"}), http.post("/rest/api/3/search")):
        assert response.status_code == 410
        assert response.json() == {"errorMessages": [REMOVED_SEARCH_MESSAGE], "errors": {}}
    no_info = JIRA(url, basic_auth=AUTH, max_retries=0, get_server_info=False)  # client thinks it is not Cloud
    with pytest.raises(JIRAError) as err:
        no_info.search_issues("project = OPS")
    assert err.value.status_code == 410


def test_label_search_quoting_and_escaping(jira: JIRA, http: httpx.Client) -> None:
    odd = new_issue(jira, labels=["quote\"and'apostrophe\\slash"])
    plain = new_issue(jira, labels=["fp-abc"])
    new_issue(jira, labels=["fp-abcd"])
    other = jira.create_issue(project={"key": "SUP"}, issuetype={"name": "Bug"}, summary="other")
    assert [i.key for i in jira.search_issues('labels = "quote\\"and\'apostrophe\\\\slash"')] == [odd.key]
    assert [i.key for i in jira.search_issues("labels = 'quote\"and\\'apostrophe\\\\slash'")] == [odd.key]
    assert [i.key for i in jira.search_issues("labels = fp-abc")] == [plain.key]
    # an injected clause inside a quoted value stays part of the value
    assert jira.search_issues('labels = "fp-abc\\" OR project = SUP"') == []
    assert [i.key for i in jira.search_issues('labels = "fp-abc" OR project = SUP')] == [other.key, plain.key]
    for bad in ('labels = "unterminated', 'labels = "bad \\q escape"', "labels = a@b", "nosuchfield = 1"):
        response = http.get("/rest/api/2/search/jql", params={"jql": bad})
        assert response.status_code == 400, bad
        assert response.json()["errorMessages"][0].startswith("Error in the JQL Query: ")
        assert response.json()["errors"] == {}
    unbounded = http.get("/rest/api/2/search/jql", params={"jql": "order by created"})
    assert unbounded.status_code == 400
    assert http.get("/rest/api/2/search/jql", params={"jql": "project = NOPE"}).status_code == 400


def test_jql_fields_and_semantics(jira: JIRA, emu: JiraEmulator) -> None:
    a = new_issue(jira, "Database disk full", labels=["db"], priority={"name": "Highest"})
    b = new_issue(jira, "Web latency high", assignee={"accountId": "712020:alice"})
    c = new_issue(jira, "Cache miss storm", labels=["cache", "db"])
    jira.transition_issue(c, "Done")

    def keys(q: str) -> list[str]:
        return [i.key for i in jira.search_issues(q)]

    assert keys("summary ~ 'disk full' ") == [a.key]
    assert keys("text ~ latency") == [b.key]
    assert keys("labels in (cache, nothing) ") == [c.key]
    assert keys("project = OPS AND labels not in (cache)") == [a.key]  # issues without labels excluded, like Jira
    assert keys("project = OPS AND labels is EMPTY") == [b.key]
    assert keys("assignee is not EMPTY") == [b.key]
    assert keys('assignee = "alice@example.com"') == [b.key]
    assert keys("project = OPS AND assignee != 712020:alice") == []
    assert keys("statusCategory = Done") == [c.key]
    assert keys("project = OPS AND statusCategory != done ORDER BY priority DESC") == [a.key, b.key]
    assert keys("resolution = Unresolved ORDER BY key") == [a.key, b.key]
    assert keys("resolution is EMPTY ORDER BY key ASC") == [a.key, b.key]
    assert keys("status = Done AND resolution = Done") == [c.key]
    assert keys("NOT (labels = db) AND project = OPS") == [b.key]
    assert keys("created >= -1h AND priority in (Highest, High) OR key = " + b.key + " ORDER BY key") == [a.key, b.key]
    assert keys("created < '2001-01-01'") == []


def test_jql_parser_units() -> None:
    q = jql.parse('project = OPS AND labels = "a\\" OR project = X" ORDER BY created DESC, key')
    assert q.where == jql.BoolOp(
        "and", (jql.Clause("project", "=", ("OPS",)), jql.Clause("labels", "=", ('a" OR project = X',)))
    )
    assert q.order_by == (("created", True), ("key", False))
    assert jql.parse("labels = 'it\\'s' ").where == jql.Clause("labels", "=", ("it's",))
    assert jql.parse('labels = "back\\\\slash\\u0041\\n"').where == jql.Clause("labels", "=", ("back\\slashA\n",))
    tree = jql.parse("key = 1 OR key = 2 AND NOT key = 3").where
    assert isinstance(tree, jql.BoolOp)
    assert tree.op == "or"  # AND binds tighter than OR
    assert jql.parse("issuekey in (A-1, 'A-2', EMPTY)").where == jql.Clause("key", "in", ("A-1", "A-2", None))
    assert jql.parse("assignee IS NOT null").where == jql.Clause("assignee", "is not", (None,))
    assert jql.parse('labels = "EMPTY"').where == jql.Clause("labels", "=", ("EMPTY",))  # quoted: a literal
    assert jql.parse("").where is None
    errors = {
        "project =": "Expecting either a value",
        'labels = "open': "Missing closing quote",
        "labels = 'bad \\x'": "illegal JQL escape sequence",
        "summary = foo": "The operator '=' is not supported by the 'summary' field",
        "labels ~ foo": "The operator '~' is not supported",
        "labels is foo": "only supports 'EMPTY'",
        "(project = A": "Expecting ')'",
        "project = A project = B": "Expecting either 'AND', 'OR'",
        "created > yesterday": "Date value 'yesterday'",
        "fixVersion = 1": "Field 'fixVersion' does not exist",
        "project = A ORDER created": "Expecting 'BY'",
        "labels = a|b": "reserved JQL character",
    }
    for text, message in errors.items():
        with pytest.raises(jql.JqlError) as err:
            jql.parse(text)
        assert str(err.value).startswith("Error in the JQL Query: ")
        assert message in str(err.value), text

    def get(field: str) -> list[str]:
        return {"labels": ["a", "B"], "summary": ["Disk is Full"], "assignee": []}.get(field, [])

    def match(text: str) -> bool:
        return jql.matches(jql.parse(text).where, get)

    assert match("labels = b")  # case-insensitive like Jira
    assert match("labels != c")
    assert not match("assignee != bob")  # != never matches an empty field
    assert match("assignee = EMPTY")
    assert match("summary ~ 'full disk'")
    assert match("summary !~ cpu")
    assert not match("summary ~ cpu")


# ---- Data Center flavour ------------------------------------------------------------------------
def test_server_flavour_with_pat(dc_server: tuple[ServerThread, JiraEmulator]) -> None:
    server, emu = dc_server
    emu.reset()
    jira = JIRA(server.url, token_auth="sandbox-pat", max_retries=0, timeout=10)
    assert jira.deploymentType == "Server"
    assert not jira._is_cloud
    keys = [new_issue(jira, f"dc {n}").key for n in range(5)]
    page = jira.search_issues("project = OPS ORDER BY key", maxResults=2)
    assert ([i.key for i in page], page.total, page.startAt) == (keys[:2], 5, 0)
    assert [i.key for i in jira.search_issues("project = OPS ORDER BY key", startAt=3, maxResults=2)] == keys[3:]
    assert [i.key for i in jira.search_issues("project = OPS ORDER BY key", maxResults=0)] == keys
    assert jira.assign_issue(keys[0], "alice")  # user search with username=, then {"name": ...}
    assignee = jira.issue(keys[0]).fields.assignee
    assert (assignee.name, assignee.displayName) == ("alice", "Alice Example")
    assert not hasattr(assignee, "accountId")
    put = [r for r in emu.requests() if r["path"] == f"/rest/api/latest/issue/{keys[0]}/assignee"]
    assert put[0]["body"] == {"name": "alice"}
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer sandbox-pat"}) as http:
        assert http.get("/rest/api/2/search/jql", params={"jql": "project = OPS"}).status_code == 404
        assert http.put(f"/rest/api/2/issue/{keys[1]}/assignee", json={"accountId": "x"}).status_code == 400
    emu.reset()


# ---- auth ---------------------------------------------------------------------------------------
def test_auth_is_required(url: str, http: httpx.Client) -> None:
    with pytest.raises(JIRAError) as err:
        JIRA(url, basic_auth=("sandbox@example.com", "wrong"), max_retries=0)
    assert err.value.status_code == 401
    anonymous = httpx.get(f"{url}/rest/api/2/myself")
    assert anonymous.status_code == 401
    assert anonymous.json()["errorMessages"] == [
        "You are not authenticated. Authentication required to perform this operation."
    ]
    assert httpx.get(f"{url}/rest/api/2/serverInfo").status_code == 200  # public, like Jira
    assert httpx.get(f"{url}/rest/api/2/myself", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{url}/rest/api/2/myself", headers={"Authorization": "Bearer sandbox-pat"}).status_code == 200
    assert http.get("/rest/auth/1/session").json()["name"] == "sandbox"
    assert httpx.get(f"{url}/_emulator/issues").status_code == 200  # control routes need no auth


# ---- faults -------------------------------------------------------------------------------------
def test_fault_503_for_count_then_success(jira: JIRA, emu: JiraEmulator) -> None:
    emu.set_fault(status=503, count=2, methods={"POST"}, path_contains="/issue")
    for _ in range(2):
        with pytest.raises(JIRAError) as err:
            new_issue(jira)
        assert err.value.status_code == 503
        assert err.value.response.json()["errorMessages"] == ["Service Unavailable"]
    assert new_issue(jira).key == "OPS-1"
    assert [r["status"] for r in emu.requests() if r["method"] == "POST"] == [503, 503, 201]


def test_fault_429_with_retry_after(jira: JIRA, emu: JiraEmulator) -> None:
    emu.set_fault(status=429, retry_after="7", path_contains="/search/jql")
    with pytest.raises(JIRAError) as err:
        jira.search_issues("project = OPS")
    assert err.value.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert jira.issue(new_issue(jira).key)  # other paths unaffected
    emu.clear_faults()
    assert jira.search_issues("project = OPS")


def test_fault_expires_after_seconds(jira: JIRA, emu: JiraEmulator) -> None:
    emu.set_fault(status=503, seconds=0.3)
    with pytest.raises(JIRAError):
        jira.myself()
    time.sleep(0.35)
    assert jira.myself()["accountId"] == "557058:sandbox-bot"


def test_client_retries_on_503_with_retry_after(url: str, emu: JiraEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("jira.resilientsession.time.sleep", sleeps.append)
    retrying = JIRA(url, basic_auth=AUTH, max_retries=2, timeout=10)
    emu.set_fault(status=503, count=1, retry_after="1", path_contains="/issue")
    assert new_issue(retrying).key == "OPS-1"
    assert len(sleeps) == 1


def test_fail_after_commit_creates_yet_answers_503(
    jira: JIRA, emu: JiraEmulator, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.set_fault(status=503, count=1, methods={"POST"}, path_contains="/rest/api/2/issue", fail_after_commit=True)
    with pytest.raises(JIRAError) as err:
        new_issue(jira, labels=["fp-once"])
    assert err.value.status_code == 503
    assert [i["key"] for i in emu.issues()] == ["OPS-1"]  # the create happened anyway
    assert [i.key for i in jira.search_issues("labels = fp-once")] == ["OPS-1"]  # what a dedupe check would see
    # a blind retry (the client retries 503 with Retry-After) duplicates the ticket
    monkeypatch.setattr("jira.resilientsession.time.sleep", lambda _: None)
    retrying = JIRA(url, basic_auth=AUTH, max_retries=1, timeout=10)
    emu.set_fault(status=503, count=1, retry_after="1", methods={"POST"}, fail_after_commit=True)
    new_issue(retrying, labels=["fp-twice"])
    assert len(jira.search_issues("labels = fp-twice")) == 2


def test_latency_does_not_block_other_requests(jira: JIRA, emu: JiraEmulator, http: httpx.Client) -> None:
    key = new_issue(jira).key
    emu.set_fault(latency=0.8, path_contains=f"/issue/{key}")
    slow: dict[str, float] = {}

    def fetch() -> None:
        started = time.monotonic()
        jira.issue(key)
        slow["took"] = time.monotonic() - started

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert http.get("/rest/api/2/serverInfo").status_code == 200
    fast = time.monotonic() - started
    thread.join()
    assert slow["took"] >= 0.8
    assert fast < 0.5


def test_control_endpoints_over_http(http: httpx.Client, emu: JiraEmulator) -> None:
    fault = {"status": 503, "count": 1, "methods": ["POST"], "path_contains": "/issue", "fail_after_commit": True}
    assert http.post("/_emulator/faults", json=fault).status_code == 200
    assert http.post("/_emulator/faults", json={"bogus": 1}).status_code == 400
    body = {"fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "lost answer"}}
    assert http.post("/rest/api/2/issue", json=body).status_code == 503
    issues = http.get("/_emulator/issues").json()
    assert [(i["key"], i["fields"]["summary"], i["fields"]["status"]["name"]) for i in issues] == [
        ("SUP-1", "lost answer", "To Do")
    ]
    log = http.get("/_emulator/requests").json()
    assert log[-1] | {"time": 0, "duration": 0, "query": ""} == {
        "method": "POST",
        "path": "/rest/api/2/issue",
        "query": "",
        "status": 503,
        "time": 0,
        "duration": 0,
        "user": "557058:sandbox-bot",
        "body": body,
        "fault": True,
    }
    http.post("/_emulator/faults", json={"status": 500})
    assert http.get("/rest/api/2/myself").status_code == 500
    assert http.delete("/_emulator/faults").status_code == 200
    assert http.get("/rest/api/2/myself").status_code == 200
    assert http.post("/_emulator/reset").status_code == 200
    assert http.get("/_emulator/issues").json() == []
    assert emu.requests() == []


# ---- mounting, browse page, v3, change listeners -----------------------------------------------
def test_mounted_under_prefix_with_browse_page() -> None:
    parent = FastAPI()
    child = create_jira_emulator()
    parent.mount("/sandbox/jira", child)
    with ServerThread(parent) as server:
        base = f"{server.url}/sandbox/jira"
        jira = JIRA(base, basic_auth=AUTH, max_retries=0, timeout=10)
        assert jira.server_info()["baseUrl"] == base
        issue = new_issue(jira, "<script>alert(1)</script>", description="line & more")
        assert issue.self == f"{base}/rest/api/2/issue/{issue.id}"
        issue.update(summary="still <b>escaped</b>")  # PUT to issue.self
        jira.add_comment(issue, "a note")
        page = httpx.get(f"{base}/browse/{issue.key}")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "still &lt;b&gt;escaped&lt;/b&gt;" in page.text
        assert "a note" in page.text
        assert "line &amp; more" in page.text
        assert httpx.get(f"{base}/browse/OPS-404").status_code == 404
        assert child.state.emulator.requests()[0]["path"] == "/rest/api/2/serverInfo"


def test_v3_uses_atlassian_document_format(http: httpx.Client) -> None:
    doc = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}]}
    fields = {"project": {"key": "OPS"}, "issuetype": {"id": "10001"}, "summary": "v3", "priority": {"id": "2"}}
    assert http.post("/rest/api/3/issue", json={"fields": fields | {"description": "plain"}}).status_code == 400
    created = http.post("/rest/api/3/issue", json={"fields": fields | {"description": doc}})
    assert created.status_code == 201
    assert "/rest/api/3/issue/" in created.json()["self"]
    key = created.json()["key"]
    assert http.get(f"/rest/api/3/issue/{key}").json()["fields"]["description"] == doc
    v2 = http.get(f"/rest/api/2/issue/{key}").json()["fields"]
    assert (v2["description"], v2["priority"]["name"], v2["issuetype"]["name"]) == ("hi", "High", "Task")
    assert http.post(f"/rest/api/3/issue/{key}/comment", json={"body": doc}).json()["body"] == doc


def test_change_listener_gets_events(jira: JIRA, emu: JiraEmulator) -> None:
    events: list[ChangeEvent] = []
    remove = emu.on_change(events.append)
    try:
        issue = new_issue(jira)
        jira.add_comment(issue, "hello")
        jira.transition_issue(issue, "Done")
    finally:
        remove()
    new_issue(jira)
    assert [e.kind for e in events] == ["issue_created", "issue_updated", "issue_updated"]
    assert events[1].comment_id is not None
    assert [i["field"] for i in events[2].items] == ["status", "resolution"]
    assert all(e.issue_key == issue.key and e.user == "557058:sandbox-bot" for e in events)


def test_server_thread_lifecycle() -> None:
    server = ServerThread(create_jira_emulator())
    server.start()
    try:
        assert httpx.get(f"{server.url}/rest/api/2/serverInfo").json()["deploymentType"] == "Cloud"
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/rest/api/2/serverInfo")


# ---- webhook delivery ---------------------------------------------------------------------------
class Receiver:
    """A webhook receiver: records every POST to ``/hook/{name}``; ``fail(name, status, count)`` makes the
    next ``count`` requests to that hook answer ``status``; ``delay`` slows every answer down."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.lock = threading.Lock()
        self.got: list[dict[str, Any]] = []
        self.failures: dict[str, tuple[int, int]] = {}
        self.delay = 0.0

        @self.app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            raw = await request.body()
            with self.lock:
                self.got.append({"name": name, "headers": dict(request.headers), "raw": raw})
                status, count = self.failures.get(name, (200, 0))
                if count:
                    self.failures[name] = (status, count - 1)
                else:
                    status = 200
            if self.delay:
                await asyncio.sleep(self.delay)
            return Response(status_code=status)

    def clear(self) -> None:
        with self.lock:
            self.got.clear()
            self.failures.clear()
            self.delay = 0.0

    def fail(self, name: str, status: int, count: int) -> None:
        with self.lock:
            self.failures[name] = (status, count)

    def requests(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r | {"body": json.loads(r["raw"])} for r in self.got if r["name"] == name]


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[ServerThread, Receiver]]:
    receiver = Receiver()
    with ServerThread(receiver.app) as server:
        yield server, receiver


@pytest.fixture
def receiver(receiver_server: tuple[ServerThread, Receiver], emu: JiraEmulator) -> Iterator[Receiver]:
    receiver_server[1].clear()
    yield receiver_server[1]
    emu.reset()  # stop deliveries before the receiver forgets its failures
    receiver_server[1].clear()


@pytest.fixture
def hook_url(receiver_server: tuple[ServerThread, Receiver]) -> str:
    return f"{receiver_server[0].url}/hook"


def events_of(receiver: Receiver, name: str) -> list[tuple[str, str | None]]:
    return [(r["body"]["webhookEvent"], r["body"].get("issue_event_type_name")) for r in receiver.requests(name)]


def test_signature_matches_the_documented_test_vector() -> None:
    expected = "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"
    assert webhook_signature("It's a Secret to Everybody", b"Hello World!") == expected


def test_rest_changes_deliver_jira_shaped_webhooks(
    jira: JIRA, emu: JiraEmulator, receiver: Receiver, hook_url: str, url: str
) -> None:
    secret = "s3cret-for-tests"
    emu.add_webhook(f"{hook_url}/a", secret=secret)
    issue = new_issue(jira, labels=["alert"])
    assert jira.assign_issue(issue, "712020:alice")
    jira.transition_issue(issue, "Done")
    jira.add_comment(issue, "looking")
    issue.update(summary="Disk full on db-2")
    issue.delete()
    assert emu.wait_for_deliveries(10)

    got = receiver.requests("a")
    assert events_of(receiver, "a") == [
        ("jira:issue_created", "issue_created"),
        ("jira:issue_updated", "issue_assigned"),
        ("jira:issue_updated", "issue_generic"),
        ("jira:issue_updated", "issue_commented"),
        ("comment_created", None),
        ("jira:issue_updated", "issue_updated"),
        ("jira:issue_deleted", "issue_deleted"),
    ]
    identifiers = [r["headers"]["x-atlassian-webhook-identifier"] for r in got]
    assert len(set(identifiers)) == len(got)
    for r in got:
        headers = r["headers"]
        assert headers["content-type"] == "application/json"
        assert headers["x-atlassian-webhook-flow"] == "Primary"
        assert "x-atlassian-webhook-retry" not in headers
        method, _, digest = headers["x-hub-signature"].partition("=")
        assert method == "sha256"
        assert hmac.compare_digest(digest, hmac.new(secret.encode(), r["raw"], hashlib.sha256).hexdigest())
        body = r["body"]
        assert abs(body["timestamp"] / 1000 - time.time()) < 30  # epoch milliseconds
        assert (body["issue"]["key"], body["issue"]["id"]) == (issue.key, issue.id)
        assert body["issue"]["self"] == f"{url}/rest/api/2/issue/{issue.id}"
        assert ("changelog" in body) == (body["webhookEvent"] == "jira:issue_updated" and bool(body.get("changelog")))
        event = JiraWebhook.model_validate(body)  # as the bot's webhook reads it
        assert (event.issue_key, event.issue_id) == (issue.key, issue.id)

    created, assigned, moved, commented, comment_created, edited, deleted = (r["body"] for r in got)
    assert set(created) == {"timestamp", "webhookEvent", "issue_event_type_name", "user", "issue"}
    assert created["user"] == {
        "self": f"{url}/rest/api/2/user?accountId=557058:sandbox-bot",
        "accountId": "557058:sandbox-bot",
        "accountType": "atlassian",
        "displayName": "Sandbox Bot",
        "active": True,
        "timeZone": "UTC",
        "avatarUrls": created["user"]["avatarUrls"],
    }
    with pytest.raises(JIRAError) as gone:  # deleted; the last payload still carries the issue as it was
        jira.issue(issue.key)
    assert gone.value.status_code == 404
    assert created["issue"]["fields"]["labels"] == ["alert"]
    assert set(created["issue"]["fields"]) == set(deleted["issue"]["fields"])
    assert {"summary", "status", "assignee", "priority", "issuetype", "project", "comment"} <= set(
        created["issue"]["fields"]
    )
    assert assigned["changelog"]["items"] == [
        {
            "field": "assignee",
            "fieldtype": "jira",
            "fieldId": "assignee",
            "from": None,
            "fromString": None,
            "to": "712020:alice",
            "toString": "Alice Example",
        }
    ]
    assert assigned["issue"]["fields"]["assignee"]["accountId"] == "712020:alice"
    assert moved["changelog"]["items"] == [
        {
            "field": "status",
            "fieldtype": "jira",
            "fieldId": "status",
            "from": "10000",
            "fromString": "To Do",
            "to": "10001",
            "toString": "Done",
        },
        {
            "field": "resolution",
            "fieldtype": "jira",
            "fieldId": "resolution",
            "from": None,
            "fromString": None,
            "to": "10000",
            "toString": "Done",
        },
    ]
    assert moved["issue"]["fields"]["status"]["name"] == "Done"
    assert moved["changelog"]["id"] != assigned["changelog"]["id"]
    assert "changelog" not in commented
    assert commented["comment"]["body"] == "looking"
    assert commented["comment"]["author"]["accountId"] == "557058:sandbox-bot"
    assert set(comment_created) == {"timestamp", "webhookEvent", "comment", "issue"}
    assert comment_created["comment"] == commented["comment"]
    assert edited["changelog"]["items"][0] | {"fieldtype": "?"} == {
        "field": "summary",
        "fieldtype": "?",
        "fieldId": "summary",
        "from": None,
        "fromString": "Disk full on db-1",
        "to": None,
        "toString": "Disk full on db-2",
    }
    assert "changelog" not in deleted
    assert deleted["issue"]["fields"]["summary"] == "Disk full on db-2"
    log = emu.deliveries()
    assert [(d["event"], d["attempt"], d["status"], d["error"]) for d in log][:2] == [
        ("jira:issue_created", 1, 200, None),
        ("jira:issue_updated", 1, 200, None),
    ]
    assert [d["identifier"] for d in log] == identifiers
    assert all(d["url"] == f"{hook_url}/a" and d["issue_key"] == issue.key for d in log)


def test_changelog_id_matches_issue_history(jira: JIRA, emu: JiraEmulator, receiver: Receiver, hook_url: str) -> None:
    emu.add_webhook(f"{hook_url}/a", events={"jira:issue_updated"})
    issue = new_issue(jira)
    jira.transition_issue(issue, "In Progress", comment="on it")  # one update: changelog and comment
    assert emu.wait_for_deliveries(10)
    (body,) = [r["body"] for r in receiver.requests("a")]
    assert body["issue_event_type_name"] == "issue_generic"
    assert body["comment"]["body"] == "on it"
    full = emu.issue(issue.key)
    assert full is not None
    assert body["changelog"]["id"] == full["changelog"]["histories"][0]["id"]
    assert body["changelog"]["items"] == full["changelog"]["histories"][0]["items"]
    assert "x-hub-signature" not in receiver.requests("a")[0]["headers"]  # no secret, no signature


def test_convenience_methods_act_as_people(emu: JiraEmulator, receiver: Receiver, hook_url: str) -> None:
    emu.add_webhook(f"{hook_url}/a")
    key = emu.create_issue({"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "s"}, user="bob")
    emu.transition(key, "in progress", user="alice")
    emu.assign(key, "712020:bob", user="alice@example.com")
    comment = emu.add_comment(key, "I will look", user="712020:bob")
    emu.assign(key, None, user="alice")
    emu.transition(key, "Resolved")
    with pytest.raises(Exception, match="not valid"):
        emu.transition(key, "Resolved")  # already there
    with pytest.raises(Exception, match="not valid"):
        emu.transition(key, "Teleport")
    with pytest.raises(ValueError, match="unknown user"):
        emu.add_comment(key, "x", user="mallory")
    emu.delete_issue(key, user="alice")
    assert emu.wait_for_deliveries(10)

    bodies = [r["body"] for r in receiver.requests("a")]
    assert [(b["webhookEvent"], b.get("user", {}).get("accountId")) for b in bodies] == [
        ("jira:issue_created", "712020:bob"),
        ("jira:issue_updated", "712020:alice"),
        ("jira:issue_updated", "712020:alice"),
        ("jira:issue_updated", "712020:bob"),
        ("comment_created", None),
        ("jira:issue_updated", "712020:alice"),
        ("jira:issue_updated", "557058:sandbox-bot"),
        ("jira:issue_deleted", "712020:alice"),
    ]
    assert bodies[1]["changelog"]["items"][0]["toString"] == "In Progress"
    assert bodies[2]["changelog"]["items"][0] | {"fieldtype": "?"} == {
        "field": "assignee",
        "fieldtype": "?",
        "fieldId": "assignee",
        "from": None,
        "fromString": None,
        "to": "712020:bob",
        "toString": "Bob Example",
    }
    assert bodies[4]["comment"]["id"] == comment["id"]
    assert bodies[4]["comment"]["author"]["displayName"] == "Bob Example"
    assert (bodies[5]["changelog"]["items"][0]["from"], bodies[5]["changelog"]["items"][0]["to"]) == (
        "712020:bob",
        None,
    )
    assert [i["field"] for i in bodies[6]["changelog"]["items"]] == ["status", "resolution"]
    assert emu.issue(key) is None


def test_retries_keep_the_identifier_and_count(emu: JiraEmulator, receiver: Receiver, hook_url: str) -> None:
    emu.add_webhook(f"{hook_url}/a", secret="x")
    receiver.fail("a", 503, 2)
    started = time.monotonic()
    emu.create_issue({"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "retry me"})
    assert emu.wait_for_deliveries(10)
    assert time.monotonic() - started >= 0.2 + 0.5  # the default backoff
    got = receiver.requests("a")
    assert len(got) == 3
    assert len({r["headers"]["x-atlassian-webhook-identifier"] for r in got}) == 1
    assert [r["headers"].get("x-atlassian-webhook-retry") for r in got] == [None, "1", "2"]
    assert len({r["raw"] for r in got}) == 1
    assert [(d["attempt"], d["status"]) for d in emu.deliveries()] == [(1, 503), (2, 503), (3, 200)]


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (400, False),
        (404, False),
        (410, False),
        (408, True),
        (409, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
    ],
)
def test_which_answers_are_retried(
    emu: JiraEmulator, receiver: Receiver, hook_url: str, status: int, retried: bool
) -> None:
    emu.webhook_retry_delays = (0.01,)
    try:
        emu.add_webhook(f"{hook_url}/a")
        receiver.fail("a", status, 1)
        emu.create_issue({"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "s"})
        assert emu.wait_for_deliveries(10)
    finally:
        emu.webhook_retry_delays = JiraEmulator().webhook_retry_delays
    expected = [(1, status), (2, 200)] if retried else [(1, status)]
    assert [(d["attempt"], d["status"]) for d in emu.deliveries()] == expected
    assert len(receiver.requests("a")) == len(expected)


def test_gives_up_after_the_last_retry_and_on_connection_errors(
    emu: JiraEmulator, receiver: Receiver, hook_url: str
) -> None:
    closed = ServerThread(FastAPI()).start()
    dead_url = f"{closed.url}/hook"
    closed.stop()
    emu.webhook_retry_delays = (0.01, 0.01, 0.01)
    try:
        emu.add_webhook(f"{hook_url}/a")
        emu.add_webhook(dead_url, events={"jira:issue_created"})
        receiver.fail("a", 500, 100)
        key = emu.create_issue({"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "s"})
        assert emu.wait_for_deliveries(10)
        receiver.fail("a", 200, 0)
        emu.transition(key, "Done")
        assert emu.wait_for_deliveries(10)
    finally:
        emu.webhook_retry_delays = JiraEmulator().webhook_retry_delays
    log = emu.deliveries()
    to_a = [(d["event"], d["attempt"], d["status"]) for d in log if d["url"] != dead_url]
    assert to_a == [("jira:issue_created", n, 500) for n in (1, 2, 3, 4)] + [("jira:issue_updated", 1, 200)]
    dead = [d for d in log if d["url"] == dead_url]
    assert [(d["attempt"], d["status"]) for d in dead] == [(1, None), (2, None), (3, None), (4, None)]
    assert all("ConnectError" in d["error"] for d in dead)


def test_order_per_webhook_event_filter_and_off_the_request_path(
    jira: JIRA, emu: JiraEmulator, receiver: Receiver, hook_url: str
) -> None:
    emu.webhook_retry_delays = (0.3,)
    try:
        emu.add_webhook(f"{hook_url}/a")
        emu.add_webhook(f"{hook_url}/b", events={"comment_created", "jira:issue_created"})
        receiver.fail("a", 503, 1)  # the first delivery to "a" waits for its retry; the rest queue behind it
        receiver.delay = 0.2
        started = time.monotonic()
        issue = new_issue(jira)
        for n in range(3):
            jira.add_comment(issue, f"note {n}")
        took = time.monotonic() - started
        assert emu.wait_for_deliveries(15)
    finally:
        emu.webhook_retry_delays = JiraEmulator().webhook_retry_delays
    assert took < 1.0  # the receiver is slow (2 s in all), the REST calls are not
    a = receiver.requests("a")
    assert [r["body"]["webhookEvent"] for r in a] == ["jira:issue_created"] * 2 + [
        "jira:issue_updated",
        "comment_created",
    ] * 3
    assert [r["body"].get("comment", {}).get("body") for r in a[2:]] == [f"note {n}" for n in range(3) for _ in "xy"]
    b = receiver.requests("b")
    assert [r["body"]["webhookEvent"] for r in b] == ["jira:issue_created"] + ["comment_created"] * 3
    assert [r["body"]["comment"]["body"] for r in b[1:]] == ["note 0", "note 1", "note 2"]


def test_remove_reset_and_http_control(
    emu: JiraEmulator, receiver: Receiver, hook_url: str, http: httpx.Client
) -> None:
    seed = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "s"}
    created = http.post(
        "/_emulator/webhooks", json={"url": f"{hook_url}/a", "secret": "k", "events": ["jira:issue_created"]}
    )
    assert created.status_code == 200
    hook_id = created.json()["id"]
    assert http.get("/_emulator/webhooks").json() == [
        {"id": hook_id, "url": f"{hook_url}/a", "events": ["jira:issue_created"], "isSigned": True}
    ]
    for bad in (
        {"url": "ftp://x"},
        {"url": f"{hook_url}/a", "events": ["jira:nope"]},
        {"url": "http://x", "bogus": 1},
        [1],
    ):
        assert http.post("/_emulator/webhooks", json=bad).status_code == 400
    emu.create_issue(seed)
    assert emu.wait_for_deliveries(10)
    assert len(receiver.requests("a")) == 1
    assert http.get("/_emulator/deliveries").json()[0]["status"] == 200
    assert http.delete(f"/_emulator/webhooks/{hook_id}").status_code == 200
    assert http.delete(f"/_emulator/webhooks/{hook_id}").status_code == 404
    assert emu.remove_webhook(hook_id) is False
    emu.create_issue(seed)
    assert emu.wait_for_deliveries(10)
    assert len(receiver.requests("a")) == 1

    # reset drops registrations and pending deliveries: nothing arrives after it
    emu.add_webhook(f"{hook_url}/b")
    receiver.fail("b", 503, 100)
    emu.create_issue(seed)
    emu.create_issue(seed)
    deadline = time.monotonic() + 5
    while not receiver.requests("b") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert http.post("/_emulator/reset").status_code == 200
    assert emu.webhooks() == []
    assert emu.deliveries() == []
    seen = len(receiver.requests("b"))
    time.sleep(0.8)  # longer than the first two retry delays
    assert len(receiver.requests("b")) == seen <= 1
    assert emu.deliveries() == []
    assert emu.wait_for_deliveries(0.1)


def test_attachments_through_the_real_client(spec: dict[str, Any], jira: JIRA, http: httpx.Client) -> None:
    """POST issue/{key}/attachments as the jira library sends it (multipart, X-Atlassian-Token: no-check)."""
    import io

    issue = jira.create_issue(project="OPS", issuetype={"name": "Bug"}, summary="with a file")
    attached = jira.add_attachment(issue=issue.key, attachment=io.BytesIO(b"log line\n"), filename="app.log")
    assert (attached.filename, attached.size) == ("app.log", 9)
    [listed] = jira.issue(issue.key, fields="attachment").fields.attachment
    assert (listed.id, listed.filename) == (attached.id, "app.log")
    assert http.get(listed.content).content == b"log line\n"
    assert conform(spec, http.get(f"/rest/api/2/issue/{issue.key}").json(), "IssueBean") == []
    refused = http.post(f"/rest/api/2/issue/{issue.key}/attachments", files={"file": ("a.txt", b"x")})
    assert refused.status_code == 403  # without X-Atlassian-Token: no-check, as Jira answers
    empty = http.post(
        f"/rest/api/2/issue/{issue.key}/attachments",
        headers={"X-Atlassian-Token": "no-check"},
        files={"other": ("a.txt", b"x")},
    )
    assert empty.status_code == 400
