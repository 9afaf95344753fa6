"""What /slack/events checks before Bolt sees a request: the body's size, Slack's signature over the raw bytes
(with its timestamp, against replays), and that the body is the shape Slack sends. Bolt parses a body before it
checks the signature, and some bodies broke it (found by fuzzing): a ``payload`` that is not a JSON object, bytes
that are not UTF-8, a timestamp that is not a number or a signature that is not ASCII answered 500, and a slash
command whose text held the word "payload" was read as an empty request and dropped. Here each is a JSON
refusal (4xx) or read correctly."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

from fastapi import Request
from slack_bolt.async_app import AsyncBoltRequest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context

from webhooks.errors import Refusal
from webhooks.intake import read_body

REPLAY_WINDOW_SECONDS = 300  # Slack's advice, and Bolt's


def check_signature(raw: bytes, timestamp: str | None, signature: str | None, secret: str) -> None:
    if not timestamp or not signature:
        raise Refusal(401, "missing_signature", "X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not timestamp.isascii() or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        raise Refusal(401, "stale_signature", "X-Slack-Request-Timestamp is not within 5 minutes of now")
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().encode("utf-8", "surrogateescape"), expected.encode()):
        raise Refusal(401, "bad_signature", "the X-Slack-Signature does not match the body")


def parse(text: str, content_type: str) -> dict[str, Any]:
    """The body as Slack sends it: JSON (the Events API), or a form holding a JSON ``payload`` (interactivity) or
    the fields of a slash command."""
    if content_type == "application/json" or text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise Refusal(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Refusal(422, "invalid_request", "the body must be a JSON object")
        return data
    fields = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    if "payload" not in fields:
        return fields
    try:
        payload = json.loads(fields["payload"])
    except (json.JSONDecodeError, RecursionError):
        raise Refusal(400, "invalid_json", "the payload field is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Refusal(422, "invalid_request", "the payload field must be a JSON object")
    return payload


async def bolt_request(request: Request, secret: str, limit: int) -> AsyncBoltRequest:
    """The request for Bolt, once it is known to come from Slack and to be readable."""
    raw = await read_body(request, limit)
    headers = request.headers
    check_signature(raw, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature"), secret)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "invalid_body", "the body is not UTF-8") from None
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    body = parse(text, content_type)
    prepared = AsyncBoltRequest(body=text, query=request.query_params, headers=headers)  # type: ignore[arg-type]
    if prepared.body != body:  # Bolt reads any form with "payload" anywhere in it as an interaction
        prepared.body = body
        prepared.context = build_async_context(AsyncBoltContext({}), body)
    return prepared
