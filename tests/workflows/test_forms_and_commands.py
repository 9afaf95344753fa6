"""The forms behind buttons and the /triage command, as pure functions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import EXAMPLE_POLICY
from workflows.commands import (
    LIST_LIMIT,
    UNFINISHED,
    Command,
    NewTicket,
    NewTicketMetadata,
    listing,
    new_ticket_entered,
    new_ticket_modal,
    parse,
)
from workflows.forms import FORMS, TEXT_LIMIT, FormError, FormMetadata, entered, form_for, form_of_callback, modal
from workflows.policy import load_policy
from workflows.states import TicketState
from workflows.tickets import TicketView
from workflows.transitions import Action


def test_which_buttons_open_a_form() -> None:
    assert form_for(Action.RESOLVE, has_customer=False) is FORMS[Action.RESOLVE]
    assert form_for(Action.CLOSE, has_customer=False) is None  # nobody to write to: a plain click
    assert form_for(Action.CLOSE, has_customer=True) is FORMS[Action.CLOSE]
    assert form_for(Action.QA_PASS, has_customer=True) is None
    assert form_of_callback("triage.assign_member") is FORMS[Action.ASSIGN_MEMBER]
    assert form_of_callback("triage.nope") is None
    assert all(len(form.title) <= 24 for form in FORMS.values())  # Slack's limit for a modal title


def test_modal_shapes() -> None:
    members = modal(
        FORMS[Action.ASSIGN_MEMBER],
        ticket=1,
        version=2,
        channel="C1",
        choices=[(f"U{i}", "x" * 90) for i in range(150)],
    )
    options = members["blocks"][0]["element"]["options"]
    assert len(options) == 100 and len(options[0]["text"]["text"]) == 75  # Slack's limits
    resolve = modal(FORMS[Action.RESOLVE], ticket=1, version=2, channel="C1", choices=[])
    element = resolve["blocks"][0]["element"]
    assert element["type"] == "plain_text_input" and element["max_length"] == TEXT_LIMIT and element["multiline"]
    assert resolve["private_metadata"] == '{"ticket": 1, "version": 2, "channel": "C1"}'


def test_form_metadata_reads_what_forms_carry() -> None:
    expected = FormMetadata(ticket=1, version=2, channel="C1")
    assert FormMetadata.model_validate_json('{"ticket": 1, "version": 2, "channel": "C1"}') == expected
    assert FormMetadata.model_validate_json('{"ticket":1,"version":2,"channel":"C1"}') == expected
    for stale in ("", "A-1", "[]", '{"ticket": 1, "version": 2}', '{"ticket": "one", "version": 2, "channel": "C1"}'):
        with pytest.raises(ValidationError):
            FormMetadata.model_validate_json(stale)


def test_the_new_ticket_form_carries_its_channel() -> None:
    metadata = new_ticket_modal("C0OPS", ["payments"], ["High"])["private_metadata"]
    assert metadata == '{"channel": "C0OPS"}'  # what open forms carry
    assert NewTicketMetadata.model_validate_json(metadata).channel == "C0OPS"
    assert NewTicketMetadata.model_validate_json("{}").channel == ""
    with pytest.raises(ValidationError):
        NewTicketMetadata.model_validate_json("[]")


def test_what_a_form_said() -> None:
    form = FORMS[Action.RESOLVE]
    assert entered(form, {"done": {"done": {"type": "plain_text_input", "value": "  fixed it \n"}}}) == "fixed it"
    for values in ({}, {"done": {"done": {"value": "   "}}}, {"done": {"done": {"value": None}}}, {"done": None}):
        with pytest.raises(FormError, match="What was done is needed"):
            entered(form, values)
    with pytest.raises(FormError, match="At most"):
        entered(form, {"done": {"done": {"value": "x" * (TEXT_LIMIT + 1)}}})
    team = FORMS[Action.ASSIGN_TEAM]
    assert entered(team, {"team": {"team": {"selected_option": {"value": "payments"}}}}) == "payments"
    with pytest.raises(FormError):
        entered(team, {"team": {"team": {"selected_option": None}}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("  help ", Command("help")),
        ("new", Command("new")),
        ("list", Command("list", states=UNFINISHED)),
        ("list all", Command("list", states=tuple(TicketState))),
        ("list in_qa", Command("list", states=(TicketState.IN_QA,))),
        ("list In QA", Command("list", states=(TicketState.IN_QA,))),
        ("list in-progress", Command("list", states=(TicketState.IN_PROGRESS,))),
        ("list Payments", Command("list", states=UNFINISHED, team="payments")),
        ("ops-12", Command("show", key="OPS-12")),
        ("#12", Command("show", ticket_id=12)),
        ("12", Command("show", ticket_id=12)),
    ],
)
def test_parse(text: str, expected: Command) -> None:
    assert parse(text, ["payments"]) == expected


def test_parse_refusals_quote_safely() -> None:
    assert parse("list nope", ["payments"]).kind == "unknown"
    unknown = parse("OPS-1 <!channel>", [])
    assert unknown.kind == "unknown" and "&lt;!channel&gt;" in unknown.problem


def _view(n: int, title: str = "t") -> TicketView:
    return TicketView(
        id=n,
        title=title,
        source="alertmanager",
        environment="production",
        priority="High",
        state=TicketState.ASSIGNED,
        team="payments",
        alert_status="firing",
        dedup_label=f"triage-{n}",
        jira_key=f"OPS-{n}",
        jira_url=f"https://jira/browse/OPS-{n}",
        assignee="U0PA1",
    )


def test_listing() -> None:
    command = Command("list", states=UNFINISHED, team="payments")
    text = listing([_view(1, "disk <!here> & more")], command, more=False)
    assert text.splitlines() == [
        "*1 team payments's ticket*",
        "• <https://jira/browse/OPS-1|OPS-1> · Assigned · team payments · <@U0PA1> · disk &lt;!here&gt; &amp; more",
    ]
    many = listing([_view(n) for n in range(LIST_LIMIT)], Command("list", states=(TicketState.OPEN,)), more=True)
    assert many.startswith(f"*{LIST_LIMIT}+ open tickets*") and many.endswith(f"_Showing the newest {LIST_LIMIT}._")
    assert listing([], Command("list", states=UNFINISHED), more=False) == "*0 unfinished tickets*: nothing to do."


def test_new_ticket_form() -> None:
    def values(title: str, priority: str, owner: str) -> dict[str, object]:
        return {
            "title": {"title": {"value": title}},
            "description": {"description": {"value": None}},
            "priority": {"priority": {"selected_option": {"value": priority}}},
            "owner": {"owner": {"selected_option": {"value": owner}}},
        }

    assert new_ticket_entered(values(" Refunds\nstuck ", "High", "payments"), ["payments"], ["High"]) == NewTicket(
        "Refunds stuck", "", "High", "payments"
    )
    assert new_ticket_entered(values("x", "High", "-"), ["payments"], ["High"]) == NewTicket("x", "", "High", None)
    assert new_ticket_entered(values("", "Urgent!", "ghosts"), ["payments"], ["High"]) == {
        "title": "Say what is wrong.",
        "priority": "Pick a priority.",
        "owner": "That team is not in the policy.",
    }


def test_policy_priorities_and_state_labels() -> None:
    assert load_policy(EXAMPLE_POLICY).priorities() == ["Highest", "High", "Medium", "Low"]
    assert TicketState.IN_QA.label == "In QA" and TicketState.IN_PROGRESS.label == "In progress"
