"""Outside text stays data in Slack, Jira and JQL; Jira's limits hold whatever comes in."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from workflows import cards, tickets
from workflows.alerts import Alert
from workflows.escaping import jira_text, jql_string, slack_text
from workflows.states import TicketState
from workflows.tickets import TicketView


def view(title: str = "Disk full", **extra: object) -> TicketView:
    base: dict[str, object] = dict(
        id=7,
        title=title,
        source="alertmanager",
        environment="production",
        priority="High",
        state=TicketState.OPEN,
        team=None,
        alert_status="firing",
        dedup_label="triage-abc-1",
    )
    base.update(extra)
    return TicketView(**base)  # type: ignore[arg-type]


def test_slack_mentions_in_alert_text_ping_nobody() -> None:
    assert slack_text("<!channel> & <@U123|bob>") == "&lt;!channel&gt; &amp; &lt;@U123|bob&gt;"
    blocks = cards.card(view("<!channel> fire", annotations={"summary": "<!here> now"}))
    mrkdwn = [t["text"] for t in _texts(blocks) if t["type"] == "mrkdwn"]
    assert not any("<!" in text for text in mrkdwn)
    assert any("&lt;!here&gt;" in text for text in mrkdwn)
    # The header is plain_text, which Slack never parses for mentions or links.
    assert blocks[0]["text"] == {"type": "plain_text", "text": "<!channel> fire", "emoji": False}
    assert "<!channel>" not in cards.fallback_text(view("<!channel> fire"))


def _texts(blocks: list[dict[str, object]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for block in blocks:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                out.append(block[key])  # type: ignore[arg-type]
        for key in ("fields", "elements"):
            out.extend(x for x in block.get(key, []) if isinstance(x, dict) and "text" in x)  # type: ignore[union-attr]
    return out


def test_jql_strings_cannot_break_out() -> None:
    assert jql_string('a" OR project = X') == '"a\\" OR project = X"'
    assert jql_string("back\\slash") == '"back\\\\slash"'


def test_jira_markup_is_escaped() -> None:
    assert jira_text("{noformat}[~admin]*bold*|x") == "\\{noformat\\}\\[\\~admin\\]\\*bold\\*\\|x"


def test_jira_limits_hold() -> None:
    long_title = "x" * 1000 + "\nsecond line"
    huge = view(
        long_title,
        alerts=tuple(
            Alert(fingerprint=f"{i:016x}", status="firing", labels={"k": "v" * 500}, annotations={}) for i in range(500)
        ),
        annotations={"description": "d" * 40_000},
    )
    assert len(tickets.summary(huge)) <= 255 and "\n" not in tickets.summary(huge)
    assert len(tickets.description(huge)) <= 32_767
    for label in tickets.labels(view(environment="prod env with spaces"), ("a b",)):
        assert " " not in label and 0 < len(label) <= 255


def test_card_fits_block_kit_limits() -> None:
    blocks = cards.card(
        view("t" * 500, annotations={"summary": "s" * 5000}, jira_key="OPS-1", jira_url="http://jira/browse/OPS-1")
    )
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
    assert "<http://jira/browse/OPS-1|OPS-1>" in json.dumps(blocks)


def test_limits_count_utf16_units_like_jira() -> None:
    title = "🔥" * 200  # 400 UTF-16 units
    cut = tickets.summary(view(title))
    assert len(cut.encode("utf-16-le")) // 2 <= 255
    assert cut.endswith("…") and "\ud83d" not in cut


def test_buttons_carry_the_ticket_and_version_as_cards_always_did() -> None:
    buttons = cards.button_elements(view(version=3))
    assert buttons and {b["value"] for b in buttons} == {'{"ticket":7,"version":3}'}  # the bytes on posted cards
    assert cards.ButtonValue.model_validate_json(buttons[0]["value"]) == cards.ButtonValue(ticket=7, version=3)
    assert cards.ButtonValue.model_validate_json('{"ticket": 7, "version": 3, "more": 1}').ticket == 7


@pytest.mark.parametrize(
    "value",
    ["", "click_me_123", "[]", "{}", '{"ticket":7}', '{"ticket":"seven","version":1}', '{"ticket":7.5,"version":1}'],
)
def test_a_button_value_that_is_not_ours_does_not_parse(value: str) -> None:
    with pytest.raises(ValidationError):
        cards.ButtonValue.model_validate_json(value)
