"""A Slack message's blocks as plain text, the way a person sees them in Slack: for a terminal (``triage-bot demo``)
and for logs, where raw mrkdwn (``*Jira*\\n<http://…|OPS-1>``, ``<@U0PA1>``) is noise."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_CONTROL = re.compile(r"<([^<>\n]*)>")
_EMOJI = {"red_circle": "🔴", "large_green_circle": "🟢", "white_check_mark": "✅", "warning": "⚠️"}
_EMOJI_NAME = re.compile(r":([a-z0-9_+-]+):")


def _span(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    return re.compile(rf"(?<![\w{m}]){m}(?=\S)([^{m}\n]*?\S){m}(?![\w{m}])")


_STYLES = [_span("*"), _span("_"), _span("~")]


def mrkdwn_text(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as the words Slack shows: styling markers dropped, links as ``label (url)``, mentions as
    ``@name`` (``names``: display names by user, channel or group id), entities and emoji names as characters."""
    names = names or {}

    def control(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "@" + names.get(target[1:], label or target[1:])
        if target.startswith("#"):
            return "#" + (label or names.get(target[1:], target[1:]))
        if target.startswith("!subteam^"):
            group = target.removeprefix("!subteam^")
            return "@" + (label.lstrip("@") or names.get(group, group))
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    out: list[str] = []
    pos = 0
    for match in _CONTROL.finditer(text):
        out.append(_styled(text[pos : match.start()]))
        out.append(control(match))
        pos = match.end()
    out.append(_styled(text[pos:]))
    return _unslack("".join(out))


def _styled(text: str) -> str:
    for style in _STYLES:
        text = style.sub(lambda m: m.group(1), text)
    return _EMOJI_NAME.sub(lambda m: _EMOJI.get(m.group(1), m.group(0)), text)


def _unslack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: Mapping[str, Any], names: Mapping[str, str]) -> str:
    text = str(obj.get("text") or "")
    return mrkdwn_text(text, names) if obj.get("type") == "mrkdwn" else text


def blocks_text(blocks: list[dict[str, Any]], names: Mapping[str, str] | None = None) -> list[str]:
    """The lines a person reads in a message: the header underlined, each field as ``Label  value``, sections,
    buttons as ``[Label]``, images by their alt text, the context line."""
    names = names or {}
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text") or {}, names)
            lines += [title, "=" * len(title)]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block["text"], names).splitlines()
            pairs = [_text(f, names).partition("\n") for f in block.get("fields") or []]
            width = max((len(label) for label, _, _ in pairs), default=0)
            for label, _, value in pairs:
                first, *more = value.splitlines() or [""]
                lines.append(f"{label:<{width}}  {first}".rstrip())
                lines += [f"{'':<{width}}  {line}" for line in more]
        elif kind == "actions":
            buttons = [e for e in block.get("elements") or [] if e.get("type") == "button"]
            lines.append(" ".join(f"[{_text(b.get('text') or {}, names)}]" for b in buttons))
        elif kind == "context":
            lines.append("  ".join(_text(e, names) for e in block.get("elements") or [] if e.get("text")))
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text') or block.get('image_url', '')}]")
        elif kind == "divider":
            lines.append("-" * 40)
    return lines
