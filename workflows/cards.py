"""The Slack card of a ticket: one Block Kit message, edited in place as the ticket changes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from workflows.escaping import one_line, safe_url, slack_link, slack_text, truncate
from workflows.reports import app_line, reporter
from workflows.tickets import TicketView, alert_counts, detail_lines, details, links, rules_text
from workflows.transitions import Action, actions_for

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
VALUES_SHOWN = 3  # firing alerts whose value the card shows
IMAGE_URL_LIMIT = 3000  # Slack's limit for an image block's URL

_STATUS_EMOJI = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


def card_metadata(ticket: TicketView) -> dict[str, Any]:
    """Slack message metadata that lets an uncertain post be found again."""
    return {"event_type": "triage_ticket", "event_payload": {"ticket_id": ticket.id}}


def fallback_text(ticket: TicketView) -> str:
    key = f"{ticket.jira_key} " if ticket.jira_key else ""
    return truncate(slack_text(one_line(f"{key}{ticket.title} [{ticket.state.label}]")), 3000)


def card(ticket: TicketView, original: str | None = None, images: bool = True) -> list[dict[str, Any]]:
    """The card; ``original`` is a link to the ticket's first card, shown on its copies in other channels.
    ``images``: the sender's image as an image block (Slack refuses a message whose image it cannot fetch; the
    card is then posted without it, the image still linked)."""
    title = truncate(one_line(ticket.title), HEADER_LIMIT) or "Alert"
    jira = (
        f"<{ticket.jira_url}|{slack_text(ticket.jira_key)}>"
        if ticket.jira_key and ticket.jira_url
        else (slack_text(ticket.jira_key) if ticket.jira_key else "_not in Jira yet_")
    )
    fields = [
        f"*Jira*\n{jira}",
        f"*State*\n{ticket.state.label}",
        f"*Priority*\n{slack_text(ticket.priority)}",
        f"*Owner*\n{slack_text(('team ' + ticket.team) if ticket.team else 'operators')}",
        f"*Assignee*\n{assignee_text(ticket)}",
    ]
    if ticket.is_report:
        app = ticket.labels
        fields += [
            f"*Reported by*\n{slack_text(reporter(ticket.customer_sub, ticket.customer_email))}",
            f"*App*\n{slack_text(app_line(app))}",
            f"*Category*\n{slack_text(app.get('category', ''))}",
            f"*Reference*\n{slack_text(ticket.report_ref or '')}",
        ]
    else:
        fields += [f"*Environment*\n{slack_text(ticket.environment)}", f"*Source*\n{slack_text(ticket.source)}"]
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}}]
    if ticket.test:
        blocks.append(
            _section(
                f":test_tube: *A test notification* from {slack_text(ticket.source)}: no Jira issue "
                "was opened and nobody needs to act. Real alerts from this sender open tickets here."
            )
        )
        fields = [f"*Environment*\n{slack_text(ticket.environment)}", f"*Source*\n{slack_text(ticket.source)}"]
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]})
    blocks += _alert_blocks(ticket, images)
    buttons = [] if ticket.test else button_elements(ticket)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"triage-actions-{ticket.id}", "elements": buttons})
    context = [f"ticket #{ticket.id}"]
    if original:
        context.append(f"<{original}|original card and history>")
    if ticket.external_url:
        context.append(slack_text(ticket.external_url))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return blocks


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(mrkdwn, SECTION_LIMIT)}}


def _alert_blocks(ticket: TicketView, images: bool) -> list[dict[str, Any]]:
    """What the sender said: counts, rules, text, values, details, links and image."""
    blocks: list[dict[str, Any]] = []
    if ticket.alerts or ticket.truncated_alerts:
        status = f"{_STATUS_EMOJI.get(ticket.alert_status, '')} {ticket.alert_status}: {alert_counts(ticket)}"
        rules = rules_text(ticket)
        blocks.append(_section(status + (f"\n*Rules:* {slack_text(rules)}" if rules else "")))
    summary = ticket.annotations.get("summary") or ticket.annotations.get("description")
    if summary:
        blocks.append(_section(slack_text(summary)))
    values = list(dict.fromkeys(a.value for a in ticket.firing_first if a.value))[:VALUES_SHOWN]
    if values:
        blocks.append(_section("*Value*\n" + "\n".join(f"• {slack_text(one_line(v))}" for v in values)))
    said = details(ticket)
    if said:
        blocks.append(_section("\n".join(_detail(name, value) for name, value in said.items())))
    named = links(ticket)
    if named:
        text = " · ".join(slack_link(item.url, name) for name, item in named)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}]})
    image = next((item for _, item in named if item.kind == "image"), None)
    if images and image is not None and len(safe_url(image.url)) <= IMAGE_URL_LIMIT:
        alt = truncate(one_line(image.text or ticket.title), 2000) or "image"
        blocks.append({"type": "image", "image_url": safe_url(image.url), "alt_text": alt})
    return blocks


def _detail(name: str, value: str) -> str:
    """A detail as a line, or a multi-line one as a quoted block (bounded)."""
    if "\n" not in value.strip():
        return f"*{slack_text(name)}:* {slack_text(value.strip())}"
    quoted = "\n".join(f"> {slack_text(line)}" for line in detail_lines(value))
    return f"*{slack_text(name)}:*\n{quoted}"


def has_images(blocks: list[dict[str, Any]]) -> bool:
    return any(block["type"] == "image" for block in blocks)


def assignee_text(ticket: TicketView) -> str:
    """The Slack user working on it (a mention), else the name Jira gave, else nobody."""
    if ticket.assignee:
        return f"<@{ticket.assignee}>"
    return slack_text(one_line(ticket.assignee_name)) if ticket.assignee_name else "nobody yet"


ACTION_PREFIX = "triage."


class ButtonValue(BaseModel):
    """What a card's button carries as its ``value``: the ticket, and the card version it was shown at.

    Written with ``model_dump_json()``: ``{"ticket":12,"version":3}``, byte for byte what cards have always
    carried, so buttons on cards already posted in Slack keep working. Read with ``model_validate_json()``.
    """

    model_config = ConfigDict(frozen=True)

    ticket: int
    version: int


def button_elements(ticket: TicketView) -> list[dict[str, Any]]:
    """The buttons that fit the ticket's state; each carries the ticket and the version it was shown at."""
    value = ButtonValue(ticket=ticket.id, version=ticket.version).model_dump_json()
    return [
        {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}{action.value}",
            "value": value,
            "text": {"type": "plain_text", "text": action.label},
        }
        | ({"style": "primary"} if action in (Action.RESOLVE, Action.CLOSE, Action.QA_PASS) else {})
        for action in actions_for(ticket.state)
    ]


def note_text(text: str, mentions: tuple[str, ...] = ()) -> str:
    """A history line in the card's thread; ``mentions`` are Slack user or group ids from the policy."""
    people = " ".join(f"<!subteam^{u}>" if u.startswith("S") else f"<@{u}>" for u in mentions)
    return truncate(f"{people} {slack_text(text)}" if people else slack_text(text), SECTION_LIMIT)
