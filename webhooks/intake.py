"""Reading a request body safely: content type, size before parsing, JSON shape."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from webhooks.errors import Refusal


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refusal(400, "bad_content_length", "Content-Length is not a number") from None
        if size > limit:
            raise Refusal(413, "body_too_large", f"the body is {size} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Refusal(413, "body_too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Refusal(
            415,
            "unsupported_media_type",
            f"send the body as application/json (got {content_type or 'no Content-Type'})",
        )
    raw = await read_body(request, limit)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Refusal(400, "invalid_json", "the body nests too deeply") from None
    if not isinstance(data, dict):
        raise Refusal(422, "invalid_request", "the body must be a JSON object")
    return raw, data
