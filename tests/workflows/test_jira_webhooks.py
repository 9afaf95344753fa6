"""What Jira Cloud and Data Center send to the webhook, read by workflows.jira_webhooks: every real payload
collected in shared/realworld/jira, Atlassian's documented example, and what must be refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from workflows.jira_webhooks import SOMEONE, JiraActor, JiraChange, JiraWebhook

REALWORLD = Path(__file__).resolve().parents[3] / "shared" / "realworld" / "jira"

# file -> (webhookEvent, issue key, issue id, actor, status now, assignee now (to, toString), comment (id, text))
EXPECTED: dict[str, tuple[Any, ...]] = {
    "j2m-cloud-epic-created-localised-field-names": (
        "jira:issue_created",
        "DTP-1",
        "13877",
        JiraActor(frozenset({"5b912e21fa38ae2c896099ae"}), "Jira Test"),
        "To Do",  # the changelog calls the field "Статус"; its fieldId says status
        None,
        None,
    ),
    "j2m-cloud-issue-assigned-accountid": (
        "jira:issue_updated",
        "INDEV-242",
        "19435",
        JiraActor(frozenset({"5c07f55ba1b46046f530e0f3"}), "jira_test"),
        None,
        ("5b912e21fa38ae2c896099ae", "Иванов Иван Иванович"),
        None,
    ),
    "j2m-cloud-status-changed-fieldid": (
        "jira:issue_updated",
        "INDEV-6",
        "11442",
        JiraActor(frozenset({"5bcede20b3e37a158c364fef"}), "jira_test"),
        "In Progress",
        None,
        None,
    ),
    "j2m-comment-created-no-issue-no-ids": (
        "comment_created",
        None,
        "26313",  # from the comment's self URL: no issue object, no user
        JiraActor(frozenset(), "ii_ivanov"),
        None,
        None,
        ("31039", "12345"),
    ),
    "jenkins-cloud-comment-created": (
        "comment_created",
        "TEST-24",
        "10023",
        JiraActor(frozenset({"admin", "557058:eb43b4a2-fad1-4ff6-a2d9-38eee0b088b9"}), "Wisen Tanasa"),
        None,
        None,
        ("10021", "comment body"),
    ),
    "jenkins-server-comment-created-no-issue": (
        "comment_created",
        None,
        "10003",
        JiraActor(frozenset({"admin"}), "admin"),
        None,
        None,
        ("10000", "comment body"),
    ),
    "jenkins-server-issue-commented": (
        "jira:issue_updated",
        "TEST-4",
        "10003",
        JiraActor(frozenset({"admin"}), "admin"),
        None,
        None,
        ("10000", "comment body"),
    ),
    "jenkins-server-issue-created": (
        "jira:issue_created",
        "TEST-4",
        "10003",
        JiraActor(frozenset({"admin"}), "admin"),
        None,
        None,
        None,
    ),
    "jenkins-server-issue-updated-status-done-resolution": (
        "jira:issue_updated",
        "TEST-12",
        "10011",
        JiraActor(frozenset({"admin"}), "admin"),
        "Done",
        None,
        None,
    ),
    "zulip-issue-updated-status-todo-to-inprogress": (
        "jira:issue_updated",
        "TEST-1",
        "10000",
        JiraActor(frozenset({"admin", "99:b8d8a054-2e12-4839-bd5f-5f2b7c5f5e3a"}), "James Williams"),
        "In Progress",
        None,
        None,
    ),
}


def test_every_collected_payload_is_expected_here() -> None:
    assert sorted(p.stem for p in REALWORLD.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_payloads_from_cloud_and_data_center(name: str) -> None:
    event = JiraWebhook.model_validate_json((REALWORLD / f"{name}.json").read_bytes())
    status, assignee, comment = event.status_change, event.assignee_change, event.comment
    assert (
        event.webhookEvent,
        event.issue_key,
        event.issue_id,
        event.actor,
        status.toString if status else None,
        (assignee.to, assignee.toString) if assignee else None,
        (comment.id, comment.text) if comment else None,
    ) == EXPECTED[name]


def test_what_a_real_status_move_says() -> None:
    done = JiraWebhook.model_validate_json(
        (REALWORLD / "jenkins-server-issue-updated-status-done-resolution.json").read_bytes()
    )
    assert [c.field_id for c in done.changes] == ["status", "resolution"]  # Data Center: no fieldId
    assert done.status_change == JiraChange(
        field="status", fieldtype="jira", from_="10000", fromString="To Do", to="10001", toString="Done"
    )
    resolution = done.change_of("Resolution")
    assert resolution is not None and resolution.toString == "Fixed"
    assert done.timestamp == 1481183713759  # epoch milliseconds
    assert done.issue is not None and done.issue.fields.status is not None
    assert (done.issue.fields.summary, done.issue.fields.status.name) == ("task summary", "Done")
    assert "customfield_10000" in (done.issue.fields.model_extra or {})  # what is not modelled is kept
    assert done.user is not None and done.user.emailAddress == "admin@example.com"


def test_the_documented_example_with_its_typo() -> None:
    """api-facts.md §3: Atlassian's own example writes ``accoundId`` and ``"active": "true"``."""
    event = JiraWebhook.model_validate(
        {
            "issue": {"id": "99291", "self": "https://x.atlassian.net/rest/api/2/issue/99291", "key": "JRA-20002"},
            "user": {
                "accoundId": "99:27935d01-92a7-4687-8272-a9b8d3b2ae2e",
                "accountType": "atlassian",
                "displayName": "Bryan Rollins [Atlassian]",
                "active": "true",
            },
            "changelog": {
                "items": [
                    {"toString": "A new summary.", "to": None, "fromString": "What?", "from": None, "field": "summary"},
                    {
                        "toString": "New Feature",
                        "to": "2",
                        "fromString": "Improvement",
                        "from": "4",
                        "field": "issuetype",
                    },
                ],
                "id": 10124,
            },
            "timestamp": 1606480436302,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
        }
    )
    assert event.actor == JiraActor(frozenset(), "Bryan Rollins [Atlassian]")
    assert event.changelog is not None and event.changelog.id == "10124"
    assert event.status_change is None and event.assignee_change is None
    assert event.change_of("issuetype") == JiraChange(
        field="issuetype", from_="4", fromString="Improvement", to="2", toString="New Feature"
    )


def delivery(**fields: Any) -> dict[str, Any]:
    return {"webhookEvent": "jira:issue_updated", "issue": {"id": "10000", "key": "OPS-1"}} | fields


def test_ids_may_come_as_numbers() -> None:
    event = JiraWebhook.model_validate(
        delivery(
            issue={"id": 10000, "key": "OPS-1"},
            changelog={"id": 7, "items": [{"field": "status", "from": 1, "to": 3, "toString": "Done"}]},
            comment={"id": 5, "body": "hi"},
        )
    )
    assert (event.issue_id, event.comment and event.comment.id) == ("10000", "5")
    assert event.status_change is not None and (event.status_change.from_, event.status_change.to) == ("1", "3")


def test_who_acted() -> None:
    alice = {"accountId": "712020:alice", "displayName": "Alice"}
    bob = {"name": "bob", "key": "JIRAUSER10100"}  # Data Center, no display name
    carol = {"accountId": "712020:carol", "displayName": "Carol"}
    comment = {"id": "1", "body": "x", "author": bob, "updateAuthor": carol}
    assert JiraWebhook.model_validate(delivery(user=alice, comment=comment)).actor.name == "Alice"
    assert JiraWebhook.model_validate(delivery(comment=comment)).actor == JiraActor(
        frozenset({"bob", "JIRAUSER10100"}), "bob"
    )
    edited = JiraWebhook.model_validate(delivery(webhookEvent="comment_updated", comment=comment))
    assert edited.actor == JiraActor(frozenset({"712020:carol"}), "Carol")
    assert JiraWebhook.model_validate(delivery(user={}, comment=comment)).actor.name == "bob"  # an empty user
    assert JiraWebhook.model_validate(delivery(user=None)).actor == JiraActor(frozenset(), SOMEONE)


def test_changes_and_comments() -> None:
    items = [
        {"field": "Статус", "fieldId": "status", "toString": "In Progress"},
        {"field": "assignee", "to": None, "toString": None},  # unassigned
        {"field": "status", "toString": "Done"},
    ]
    event = JiraWebhook.model_validate(delivery(changelog={"items": items}))
    assert [c.field_id for c in event.changes] == ["status", "assignee", "status"]
    assert event.status_change is not None and event.status_change.toString == "Done"  # the last move counts
    assert event.assignee_change == JiraChange(field="assignee")
    assert JiraWebhook.model_validate(delivery()).changes == []
    nameless = JiraWebhook.model_validate(delivery(changelog={"items": [{"field": None, "toString": "x"}]}))
    assert nameless.changes[0].field_id == "" and nameless.status_change is None
    adf = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x"}]}]}
    commented = JiraWebhook.model_validate(delivery(comment={"id": "3", "body": adf}))
    assert commented.comment is not None and commented.comment.text is None  # a document, not Jira's text


@pytest.mark.parametrize(
    "url",
    [
        "https://x.atlassian.net/rest/api/2/issue/10003/comment/10000",
        "http://localhost:2990/jira/rest/api/latest/issue/10003/comment/10000",
        "https://x.atlassian.net/rest/api/3/issue/10003/comment",
    ],
)
def test_a_comment_names_its_issue_by_its_url(url: str) -> None:
    event = JiraWebhook.model_validate({"webhookEvent": "comment_created", "comment": {"id": "1", "self": url}})
    assert (event.issue_key, event.issue_id) == (None, "10003")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"x": 1}, ["webhookEvent"]),
        ({"webhookEvent": ""}, ["webhookEvent"]),
        ({"webhookEvent": 7, "issue": {"key": "OPS-1"}}, ["webhookEvent"]),
        ({"webhookEvent": "jira:issue_updated"}, []),  # names no issue
        ({"webhookEvent": "jira:issue_updated", "issue": {"fields": {}}}, []),
        ({"webhookEvent": "jira:issue_updated", "issue": "OPS-1"}, ["issue"]),
        ({"webhookEvent": "jira:issue_updated", "issue": {"key": 12}}, ["issue", "key"]),
        ({"webhookEvent": "comment_created", "comment": {"self": "https://x/rest/api/2/issue/OPS-1/comment/1"}}, []),
        ({"webhookEvent": "project_created", "project": {"id": 10000, "key": "OPS"}}, []),
        (delivery(changelog={"items": "status"}), ["changelog", "items"]),
        (delivery(comment={"id": "1", "body": 12}), ["comment", "body"]),
    ],
)
def test_what_cannot_be_read_is_refused_with_where(body: dict[str, Any], where: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        JiraWebhook.model_validate(body)
    errors = caught.value.errors()
    assert [str(p) for p in errors[0]["loc"]][: len(where)] == where
    if not where:
        assert "naming its issue" in errors[0]["msg"]
