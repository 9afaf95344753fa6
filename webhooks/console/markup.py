"""Slack mrkdwn and Jira wiki markup as HTML, the way Slack and Jira show them, and safe: every character of the
text is HTML-escaped before any formatting is added, links go only to http(s) and mailto, and nothing a message
says can become a tag, an attribute or a script. Pure functions: text in, ``Markup`` out."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from markupsafe import Markup, escape

SAFE_SCHEMES = ("http://", "https://", "mailto:")
EMOJI = {  # the few the bot and its samples use; any other :name: stays as written
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "white_check_mark": "✅",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "fire": "🔥",
    "x": "❌",
    "eyes": "👀",
    "bell": "🔔",
    "hourglass": "⌛",
    "information_source": "\u2139\ufe0f",
}
_PRIVATE = re.compile("[\ue000-\ue002]")  # our placeholders; meaningless in a message, dropped from it first


def _unslack(text: str) -> str:
    """Slack's three entities back to the characters they stand for (Slack shows them so)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def safe_url(url: str) -> str | None:
    url = url.strip()
    return url if url.lower().startswith(SAFE_SCHEMES) and not any(c in url for c in "\"'<> \n\r\t") else None


def link(url: str, label: str) -> Markup:
    """``label`` linked to ``url`` when the URL is http(s) or mailto; the label alone otherwise."""
    target = safe_url(url)
    if target is None:
        return escape(label)
    return Markup('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>').format(target, label)


def _inline(escaped: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, tag in rules:
        escaped = pattern.sub(lambda m, t=tag: f"<{t}>{m.group(1)}</{t}>", escaped)  # type: ignore[misc]
    return escaped


def _span(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    return re.compile(rf"(?<![\w{m}]){m}(?=\S)([^{m}\n]*?\S){m}(?![\w{m}])")


_SLACK_RULES = [(re.compile(r"`([^`\n]+)`"), "code"), (_span("*"), "b"), (_span("_"), "i"), (_span("~"), "s")]
_SLACK_CONTROL = re.compile(r"<([^<>\n]*)>")
_SLACK_FENCE = re.compile(r"```(.*?)```", re.S)
_EMOJI_NAME = re.compile(r":([a-z0-9_+-]+):")


def _emoji(escaped: str) -> str:
    return _EMOJI_NAME.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), escaped)


def mrkdwn(text: str, names: Mapping[str, str] | None = None) -> Markup:
    """Slack mrkdwn as Slack shows it: bold, italic, strike, code, code blocks, links, mentions, emoji, line breaks.
    ``names``: display names of user, channel and user group ids."""
    names = names or {}
    text = _PRIVATE.sub("", text)
    out: list[str] = []
    for i, part in enumerate(_SLACK_FENCE.split(text)):
        if i % 2:
            out.append(f"<pre>{escape(_unslack(part.strip(chr(10))))}</pre>")
        else:
            out.append(_mrkdwn_text(part, names))
    return Markup("".join(out))  # noqa: S704 - every piece was escaped first


def _control(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    label = _unslack(label)
    if target.startswith("@"):
        return str(Markup('<span class="mention">@{}</span>').format(names.get(target[1:], label or target[1:])))
    if target.startswith("#"):
        return str(Markup('<span class="mention">#{}</span>').format(label or names.get(target[1:], target[1:])))
    if target.startswith("!subteam^"):
        group = target.removeprefix("!subteam^")
        return str(Markup('<span class="mention">@{}</span>').format(label.lstrip("@") or names.get(group, group)))
    if target.startswith("!"):
        return str(Markup('<span class="mention">@{}</span>').format(label or target[1:].split("^")[0]))
    url = _unslack(target)
    return str(link(url, label or url))


def _mrkdwn_text(text: str, names: Mapping[str, str]) -> str:
    out: list[str] = []
    pos = 0
    for match in _SLACK_CONTROL.finditer(text):
        out.append(_slack_plain(text[pos : match.start()]))
        out.append(_control(match.group(1), names))
        pos = match.end()
    out.append(_slack_plain(text[pos:]))
    return "".join(out)


def _slack_plain(text: str) -> str:
    escaped = str(escape(_unslack(text)))
    return _emoji(_inline(escaped, _SLACK_RULES)).replace("\n", "<br>")


def plain(text: str) -> Markup:
    """Slack's plain_text: shown as written (emoji names aside), line breaks kept."""
    return Markup(_emoji(str(escape(_PRIVATE.sub("", text)))).replace("\n", "<br>"))  # noqa: S704 - escaped


# ---- Jira wiki markup ------------------------------------------------------------------------------------------

_JIRA_ESCAPE = re.compile(r"\\(.)")
_JIRA_RULES = [
    (re.compile(r"\{\{(.+?)\}\}"), "code"),
    (_span("*"), "b"),
    (_span("_"), "i"),
    (_span("-"), "s"),
    (_span("+"), "u"),
]
_JIRA_LINK = re.compile(r"\[(?:([^\[\]|\n]*)\|)?([^\[\]|\n]+)\]")
_JIRA_BLOCK = re.compile(r"\{(code|noformat)(?::[^}]*)?\}(.*?)\{\1\}", re.S)
_HEADING = re.compile(r"^h([1-6])\.\s+(.*)$")
_BULLET = re.compile(r"^([*#-]+)\s+(.*)$")


_JIRA_MENTION = re.compile(r"\[~(?:accountid:)?([^\]\s|]+)\]")


def jira(text: str, names: Mapping[str, str] | None = None) -> Markup:
    """Jira wiki markup (what the bot writes and what people type in Jira) as Jira renders it: headings, lists,
    bold, italic, strike, monospace, links, mentions (``[~accountid:...]``, ``[~username]``: the person's name from
    ``names``), code and noformat blocks, and backslash escapes taken literally."""
    text = _PRIVATE.sub("", text or "")
    known = names or {}
    out: list[str] = []
    for i, part in enumerate(_JIRA_BLOCK.split(text)):
        if i % 3 == 1:
            continue  # the block's name
        if i % 3 == 2:
            out.append(f"<pre>{escape(part.strip(chr(10)))}</pre>")
        else:
            out.append(_jira_lines(part, known))
    return Markup("".join(out))  # noqa: S704 - every piece was escaped first


def _jira_lines(text: str, names: Mapping[str, str]) -> str:
    out: list[str] = []
    in_list = False
    for line in text.split("\n"):
        heading, bullet = _HEADING.match(line), _BULLET.match(line)
        if bullet and not (bullet.group(1) == "-" and not line.startswith("- ")):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_jira_inline(bullet.group(2), names)}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if heading:
            level = min(6, int(heading.group(1)) + 2)  # inside a page: never larger than its own headings
            out.append(f"<h{level}>{_jira_inline(heading.group(2), names)}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_jira_inline(line, names)}</p>")
    if in_list:
        out.append("</ul>")
    return "".join(out)


def _jira_inline(text: str, names: Mapping[str, str]) -> str:
    literals: list[str] = []

    def keep(match: re.Match[str]) -> str:
        literals.append(match.group(1))
        return f"\ue000{len(literals) - 1}\ue001"

    text = _JIRA_ESCAPE.sub(keep, text)
    links: list[str] = []

    def linked(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        shown = _restore(label or target, literals)
        links.append(str(link(_restore(target, literals), shown)))
        return f"\ue002{len(links) - 1}\ue002"

    def mentioned(match: re.Match[str]) -> str:
        who = _restore(match.group(1), literals)
        links.append(f'<span class="mention">@{escape(names.get(who, who))}</span>')
        return f"\ue002{len(links) - 1}\ue002"

    text = _JIRA_MENTION.sub(mentioned, text)
    text = _JIRA_LINK.sub(linked, text)
    escaped = _inline(str(escape(text)), _JIRA_RULES)
    escaped = re.sub("\ue002(\\d+)\ue002", lambda m: links[int(m.group(1))], escaped)
    return re.sub("\ue000(\\d+)\ue001", lambda m: str(escape(literals[int(m.group(1))])), escaped)


def _restore(text: str, literals: list[str]) -> str:
    return re.sub("\ue000(\\d+)\ue001", lambda m: literals[int(m.group(1))], text)


Renderer = Callable[[str], Markup]
