"""Text from outside is data, never markup: one place for Slack mrkdwn, Jira wiki markup and JQL quoting."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control(text: str) -> str:
    """Drop control characters other than newline, carriage return and tab."""
    return _CONTROL.sub("", text)


def slack_text(text: str) -> str:
    """Escape for Slack mrkdwn: ``&``, ``<`` and ``>`` are the only control characters Slack parses.

    After this, ``<!channel>`` or ``<@U123>`` in an alert is shown as text and pings nobody.
    """
    return strip_control(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_JIRA_SPECIAL = re.compile(r"([\\{}\[\]|*_^+~!?#-])")


def jira_text(text: str) -> str:
    """Escape Jira wiki markup so alert text cannot open macros, links, tables or mentions."""
    return _JIRA_SPECIAL.sub(r"\\\1", strip_control(text))


_URL_KEEP = re.compile(r"[^A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]")


def safe_url(url: str) -> str:
    """A URL from outside with every character that could end or change the markup around it percent-encoded
    (spaces, ``|``, ``<``, ``>``, brackets, braces, quotes...); what makes it a URL is kept."""
    return _URL_KEEP.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), strip_control(url).strip())


def slack_link(url: str, text: str) -> str:
    """A mrkdwn link ``<url|text>``: the URL safe, and ``&`` in it escaped as Slack asks; the text escaped."""
    return f"<{safe_url(url).replace('&', '&amp;')}|{slack_text(text).replace('|', '¦')}>"


def jira_link(url: str, text: str) -> str:
    """A Jira wiki link ``[text|url]``: the text escaped, the URL safe."""
    return f"[{jira_text(text)}|{safe_url(url)}]"


def jql_string(value: str) -> str:
    """Quote a value as a JQL string literal: backslash and double quote escaped, control characters gone."""
    escaped = strip_control(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces."""
    return " ".join(strip_control(text).split())


def _units(text: str) -> int:
    """Length as Jira and Slack count it: UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut to ``limit`` UTF-16 units, on a character boundary, ending with ``marker`` when something was cut."""
    if len(text) <= limit // 2 or _units(text) <= limit:
        return text
    budget = limit - _units(marker)
    out, used = [], 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            break
        out.append(char)
    return "".join(out) + marker


def without_nul(value: Any) -> Any:
    """NUL characters cannot be stored in PostgreSQL (text or JSONB) and mean nothing to a person: drop them,
    in a string or anywhere inside a JSON value."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value
