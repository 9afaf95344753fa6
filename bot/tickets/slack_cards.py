"""A ticket's Slack work, in its ``slack:N`` lane: the card (a reconciliation: posted, or edited to show the
ticket as it is now, with its copies in the team's and QA's channels) and the lines in its thread (a log: each
its own job, with a marker to find it after an uncertain post). Never waits for Jira: a card is posted before
the Jira issue exists and edited when its key arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.clients.slack import CHANNEL_UNREACHABLE
from bot.db.engine import reading, transaction
from bot.db.models import Ticket, TicketCard
from bot.jobs.kinds import JobKind
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.effects import load, record_attempt, require, say, shown, ticket_id_of
from workflows import cards

log = logging.getLogger("triage.slack")
CLOCK_SKEW = 300.0  # seconds of leeway between our clock and Slack's when bounding a history search


def _post_card(
    runtime: Runtime,
    ticket: Ticket,
    channel: str,
    blocks: list[dict[str, Any]],
    uncertain: bool,
    record: Callable[[], None],
) -> str:
    """Post a card once: after an uncertain attempt, look for it in the channel first."""
    view = shown(runtime, ticket)
    metadata = cards.card_metadata(view)
    text = cards.fallback_text(view)
    since = ticket.created_at.timestamp() - CLOCK_SKEW
    ts = runtime.slack.find_posted(channel, metadata, since) if uncertain else None
    if ts is None:
        record()
        return runtime.slack.post(channel, text, blocks, metadata)
    runtime.slack.update(channel, ts, text, blocks)
    return ts


IMAGE_REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format"})  # e.g. Slack could not fetch the image


def slack_card(runtime: Runtime, ctx: JobContext) -> None:
    """Post or edit the ticket's card, and its copies in the team's and QA's channels. A card Slack refuses for
    its image block (an image Slack cannot fetch) goes without the block: the image stays a link on it."""
    try:
        _card(runtime, ctx, images=True)
    except SlackApiError as problem:
        with_image = cards.has_images(cards.card(shown(runtime, load(runtime, ticket_id_of(ctx)))))
        if problem.response.get("error") not in IMAGE_REFUSED or not with_image:
            raise
        log.warning("Slack refused a card with an image; posting it without", extra={"error": str(problem)[:300]})
        _card(runtime, ctx, images=False)


def _card(runtime: Runtime, ctx: JobContext, images: bool) -> None:
    ticket = load(runtime, ticket_id_of(ctx))
    view = shown(runtime, ticket)
    text = cards.fallback_text(view)
    home = ticket.slack_ts
    if home and not _edited(runtime, ticket.slack_channel, home, text, cards.card(view, images=images)):
        home = None  # someone deleted the card: post it again
        record_attempt(runtime, ticket, "slack_post_attempts")  # and look before posting, should this fail
    if not home:
        home = _post_card(
            runtime,
            ticket,
            ticket.slack_channel,
            cards.card(view, images=images),
            ticket.slack_post_attempts > 0,
            lambda: record_attempt(runtime, ticket, "slack_post_attempts"),
        )
        with transaction(runtime.engine) as session:
            row = session.get(Ticket, ticket.id)
            assert row is not None
            row.slack_ts = home
            session.add(row)
    copies = _copies(runtime, ticket)
    if copies:
        try:
            original: str | None = runtime.slack.permalink(ticket.slack_channel, home)
        except SlackApiError:
            original = None  # the copies say less, but they are still posted
        for copy in copies:
            _copy_card(runtime, ticket, copy, text, cards.card(view, original=original, images=images))


def _copy_card(runtime: Runtime, ticket: Ticket, copy: TicketCard, text: str, blocks: list[dict[str, Any]]) -> None:
    """Post or edit the card's copy in a team's or QA's channel. A channel the bot cannot post in does not hold
    up the ticket: the copy is dropped (the next move there tries again) and the original card's thread says so."""
    try:
        if copy.ts and _edited(runtime, copy.channel, copy.ts, text, blocks):
            return
        ts = _post_card(
            runtime, ticket, copy.channel, blocks, copy.post_attempts > 0, partial(_record_copy_attempt, runtime, copy)
        )
    except SlackApiError as problem:
        error = problem.response.get("error")
        if error not in CHANNEL_UNREACHABLE:
            raise
        log.error(
            "cannot post a ticket's card in a channel; invite the bot there",
            extra={"ticket_id": ticket.id, "channel": copy.channel, "error": error},
        )
        with transaction(runtime.engine) as session:
            card = session.get(TicketCard, copy.id)
            if card is not None:
                session.delete(card)
            say(
                session,
                ticket.id or 0,
                f"I cannot post this ticket's card in <#{copy.channel}> ({error}): please invite me there.",
            )
        return
    with transaction(runtime.engine) as session:
        card = session.get(TicketCard, copy.id)
        assert card is not None
        card.ts = ts
        session.add(card)


def _edited(runtime: Runtime, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> bool:
    """Edit a card in place; False when it is gone (someone deleted it)."""
    try:
        runtime.slack.update(channel, ts, text, blocks)
    except SlackApiError as problem:
        if problem.response.get("error") != "message_not_found":
            raise
        log.warning("a ticket's card was deleted; posting it again", extra={"channel": channel, "ts": ts})
        return False
    return True


def _copies(runtime: Runtime, ticket: Ticket) -> list[TicketCard]:
    with reading(runtime.engine) as session:
        rows = list(
            session.exec(select(TicketCard).where(TicketCard.ticket_id == ticket.id).order_by(col(TicketCard.id)))
        )
        for row in rows:
            session.expunge(row)
        return rows


def _record_copy_attempt(runtime: Runtime, copy: TicketCard) -> None:
    with transaction(runtime.engine) as session:
        row = session.get(TicketCard, copy.id)
        assert row is not None
        row.post_attempts += 1
        session.add(row)


def slack_note(runtime: Runtime, ctx: JobContext) -> None:
    """A line in the thread of the ticket's card: the original's, or with ``channel`` in the payload, the
    card in that channel (a reminder belongs where the people it mentions are)."""
    ticket = load(runtime, ticket_id_of(ctx))
    thread = require(ticket.slack_ts, JobKind.SLACK_CARD, f"the card of ticket {ticket.id}")
    payload = ctx.job.payload
    channel = ticket.slack_channel
    wanted = payload.get("channel")
    if wanted and wanted != channel:
        copy = next((c for c in _copies(runtime, ticket) if c.channel == wanted and c.ts), None)
        if copy is not None and copy.ts:
            channel, thread = copy.channel, copy.ts
    metadata = {"event_type": "triage_note", "event_payload": {"ticket_id": ticket.id, "job_id": ctx.job.id}}
    since = ctx.job.created_at.timestamp() - CLOCK_SKEW
    if ctx.job.attempts > 1 and runtime.slack.find_posted(channel, metadata, since, thread):
        return
    # "raw" is our own mrkdwn (mentions of ids we chose); "text" may quote outside words and is escaped.
    text = payload.get("raw") or cards.note_text(payload["text"], tuple(payload.get("mention", ())))
    runtime.slack.post(channel, text, None, metadata, thread_ts=thread)
