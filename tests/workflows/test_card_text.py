"""A card as plain text, as a person sees it in Slack (what `triage-bot demo` prints)."""

from __future__ import annotations

from workflows.card_text import blocks_text, mrkdwn_text
from workflows.cards import card
from workflows.states import TicketState
from workflows.tickets import TicketView


def test_mrkdwn_as_the_words_slack_shows() -> None:
    names = {"U0PA1": "Paul Payments"}
    said = "*Jira*\n<http://j/browse/OPS-1|OPS-1> by <@U0PA1> in <#C0PAY|payments> for <!subteam^S0QA|@qa> &lt;b&gt;"
    assert mrkdwn_text(said, names) == "Jira\nOPS-1 (http://j/browse/OPS-1) by @Paul Payments in #payments for @qa <b>"
    assert mrkdwn_text("<@U0ZZ9> said _hi_ ~no~ :red_circle: :shrug:") == "@U0ZZ9 said hi no 🔴 :shrug:"


def test_a_card_with_its_fields_buttons_and_context() -> None:
    ticket = TicketView(
        id=4,
        title="Disk full",
        source="alertmanager",
        environment="production",
        priority="High",
        state=TicketState.IN_PROGRESS,
        team="payments",
        alert_status="firing",
        dedup_label="triage-x-1",
        jira_key="OPS-4",
        jira_url="http://j/browse/OPS-4",
        assignee="U0PA1",
    )
    lines = blocks_text(card(ticket), {"U0PA1": "Paul Payments"})
    assert lines[:2] == ["Disk full", "========="]
    assert "Jira         OPS-4 (http://j/browse/OPS-4)" in lines
    assert "Assignee     @Paul Payments" in lines and "Owner        team payments" in lines
    assert "[Resolve] [Assign member]" in lines
    assert lines[-1] == "ticket #4"
