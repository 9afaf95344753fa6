"""Slack mrkdwn and Jira wiki markup as the console shows them: formatted as Slack and Jira do, and never more
than text where the text came from outside."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from webhooks.console.markup import jira, mrkdwn, plain
from workflows.escaping import jira_text, slack_text

SAFE_TAGS = {"a", "b", "i", "s", "u", "code", "pre", "br", "p", "ul", "li", "h5", "span"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.attributes += attrs


def test_mrkdwn_formats_as_slack_does() -> None:
    shown = mrkdwn(
        "*Jira*\n<https://x.example/browse/OPS-1|OPS-1> _soon_ ~old~ `code` <@U1> <#C1|ops> :red_circle:",
        {"U1": "Olivia"},
    )
    assert shown == (
        '<b>Jira</b><br><a href="https://x.example/browse/OPS-1" target="_blank" rel="noopener noreferrer">OPS-1</a>'
        ' <i>soon</i> <s>old</s> <code>code</code> <span class="mention">@Olivia</span>'
        ' <span class="mention">#ops</span> \U0001f534'
    )
    assert mrkdwn("```a <b>\n*x*```") == "<pre>a &lt;b&gt;\n*x*</pre>"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        '"><svg onload=alert(1)>',
        "<javascript:alert(1)|click me>",
        '<http://a.example/"onmouseover="alert(1)|x>',
        "<data:text/html,<script>alert(1)</script>|x>",
    ],
)
def test_outside_text_stays_text(hostile: str) -> None:
    for shown in (
        mrkdwn(slack_text(hostile)),
        mrkdwn(hostile),
        plain(hostile),
        jira(jira_text(hostile)),
        jira(hostile),
    ):
        tags = _Tags()
        tags.feed(str(shown))
        assert tags.seen <= SAFE_TAGS, shown
        for name, value in tags.attributes:
            assert name in ("href", "target", "rel", "class"), shown
            assert name != "href" or (value or "").startswith(("http://", "https://", "mailto:")), shown


def test_escaped_slack_text_reads_as_written() -> None:
    assert mrkdwn(slack_text("a < b & <!channel>")) == "a &lt; b &amp; &lt;!channel&gt;"


def test_jira_markup_renders_and_escapes_stay_literal() -> None:
    text = "*Problem:* " + jira_text("5% [errors] *now*") + "\nh3. Alerts\n* one\n* two\n[runbook|https://r.example]"
    shown = jira(text)
    assert shown.startswith("<p><b>Problem:</b> 5% [errors] *now*</p><h5>Alerts</h5><ul><li>one</li><li>two</li></ul>")
    assert '<a href="https://r.example"' in shown
    assert jira("{code}<b>{code}") == "<pre>&lt;b&gt;</pre>"
    assert jira("[x|javascript:alert(1)]") == "<p>x</p>"


def test_jira_mentions_show_the_persons_name() -> None:
    names = {"712020:paul": "Paul Payments", "paul.pay": "Paul Payments"}
    cloud = jira("Assign member by Olivia: now In progress (assignee: [~accountid:712020:paul])", names)
    assert '<span class="mention">@Paul Payments</span>' in cloud and "accountid" not in cloud
    assert '<span class="mention">@Paul Payments</span>' in jira("[~paul.pay] looks", names)
    assert jira("[~someone<b>]", names) == '<p><span class="mention">@someone&lt;b&gt;</span></p>'  # unknown: as given
