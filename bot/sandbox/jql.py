"""A small JQL subset for the Jira emulator: tokenizer, parser and evaluator.

Supported: ``field OP value`` with ``= != ~ !~ < > <= >= IN, NOT IN, IS [NOT] EMPTY|NULL``,
``AND``/``OR``/``NOT``, parentheses and ``ORDER BY field [ASC|DESC], ...``. Values are bare words or
strings quoted with ``"`` or ``'`` (escapes ``\\" \\' \\\\ \\n \\r \\t \\uXXXX``). Anything else raises
:class:`JqlError`, whose message reads like Jira's (``Error in the JQL Query: ...``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

LIST_FIELDS = frozenset(
    {"project", "key", "labels", "status", "statuscategory", "resolution"}
    | {"assignee", "reporter", "priority", "issuetype"}
)
TEXT_FIELDS = frozenset({"summary", "description", "comment", "text"})
DATE_FIELDS = frozenset({"created", "updated", "resolutiondate"})
ALIASES = {"issuekey": "key", "issue": "key", "id": "key", "type": "issuetype", "resolved": "resolutiondate"}
_OPS = {
    "list": {"=", "!=", "in", "not in", "is", "is not"},
    "text": {"~", "!~", "is", "is not"},
    "date": {"=", "!=", "<", ">", "<=", ">=", "in", "not in", "is", "is not"},
}
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>!=|!~|<=|>=|[=~<>(),])
    |(?P<word>[^\s"'=!<>()~,\[\]|&{}*/%+^$#@?;]+))""",
    re.X | re.S,
)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " "}
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
_CMP: dict[str, Callable[[datetime, datetime], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}  # fmt: skip


class JqlError(ValueError):
    """Invalid or unsupported JQL; ``str(err)`` is the Jira-style message."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Error in the JQL Query: {detail}")


@dataclass(frozen=True)
class Clause:
    field: str  # canonical lower-case name
    op: str  # "=", "!=", "~", "!~", "<", ">", "<=", ">=", "in", "not in", "is", "is not"
    values: tuple[str | None, ...]  # None stands for EMPTY / NULL


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Clause | BoolOp | Not


@dataclass(frozen=True)
class Query:
    where: Node | None
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)


@dataclass(frozen=True)
class _Tok:
    kind: Literal["str", "op", "word", "end"]
    text: str
    pos: int

    def kw(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _unquote(raw: str, pos: int) -> str:
    out: list[str] = []
    i = 1
    while i < len(raw) - 1:
        if raw[i] != "\\":
            out.append(raw[i])
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
            out.append(chr(int(raw[i + 2 : i + 6], 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise JqlError(f"'\\{nxt}' is an illegal JQL escape sequence. (line 1, character {pos + i + 1})")
    return "".join(out)


def tokenize(jql: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while jql[pos:].strip():
        m = _TOKEN.match(jql, pos)
        if m is None or m.lastgroup is None:
            at = len(jql) - len(jql[pos:].lstrip())
            if jql[at] in "\"'":
                raise JqlError(f"Missing closing quote {jql[at]} (line 1, character {at + 1})")
            raise JqlError(f"The character '{jql[at]}' is a reserved JQL character. (line 1, character {at + 1})")
        start = m.start(m.lastgroup)
        text = m.group(m.lastgroup)
        kind = cast(Literal["str", "op", "word"], m.lastgroup)
        toks.append(_Tok(kind, _unquote(text, start) if kind == "str" else text, start))
        pos = m.end()
    toks.append(_Tok("end", "", len(jql)))
    return toks


def parse_date(value: str, now: datetime) -> datetime:
    """Absolute ``yyyy-MM-dd[ HH:mm]`` (also with ``/``) or relative ``-5d``, ``-4w 2d``, ``-1h``, ``30m``."""
    v = value.strip()
    if m := re.fullmatch(r"([+-]?)((?:\s*\d+\s*[wdhmWDHM])+)", v):
        secs = sum(int(n) * _UNITS[u.lower()] for n, u in re.findall(r"(\d+)\s*([a-zA-Z])", m.group(2)))
        return now + timedelta(seconds=-secs if m.group(1) == "-" else secs)
    for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(v, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(value)


class _Parser:
    def __init__(self, jql: str) -> None:
        self.toks = tokenize(jql)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, expected: str) -> JqlError:
        got = "end of query" if self.tok.kind == "end" else f"'{self.tok.text}'"
        return JqlError(f"Expecting {expected} but got {got}. (line 1, character {self.tok.pos + 1})")

    def query(self) -> Query:
        where = None if self.tok.kind == "end" or self.tok.kw("order") else self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.tok.kw("order"):
            self.take()
            if not self.take().kw("by"):
                raise JqlError("Expecting 'BY' after 'ORDER'.")
            while True:
                field = self.field()
                if field in TEXT_FIELDS - {"summary"}:
                    raise JqlError(f"Field '{field}' does not support sorting.")
                desc = self.take().kw("desc") if self.tok.kw("asc", "desc") else False
                order.append((field, desc))
                if self.tok.text != "," or self.tok.kind != "op":
                    break
                self.take()
        if self.tok.kind != "end":
            raise self.fail("either 'AND', 'OR' or 'ORDER BY'" if where else "a field name")
        return Query(where, tuple(order))

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.tok.kw("or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.tok.kw("and"):
            self.take()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Node:
        if self.tok.kw("not"):
            self.take()
            return Not(self.not_expr())
        if self.tok.kind == "op" and self.tok.text == "(":
            self.take()
            node = self.or_expr()
            if self.take().text != ")":
                self.i -= 1
                raise self.fail("')'")
            return node
        return self.clause()

    def field(self) -> str:
        tok = self.tok
        if tok.kind not in ("word", "str") or (tok.kind == "word" and tok.text.lower() in _KEYWORDS):
            raise self.fail("a field name")
        self.take()
        name = ALIASES.get(tok.text.lower(), tok.text.lower())
        if name not in LIST_FIELDS | TEXT_FIELDS | DATE_FIELDS:
            raise JqlError(f"Field '{tok.text}' does not exist or you do not have permission to view it.")
        return name

    def value(self) -> str | None:
        tok = self.take()
        if tok.kind == "word" and tok.text.lower() in ("empty", "null"):
            return None
        if tok.kind == "str" or (tok.kind == "word" and tok.text.lower() not in _KEYWORDS):
            return tok.text
        self.i -= 1
        raise self.fail("either a value, 'EMPTY' or 'NULL'")

    def clause(self) -> Clause:
        field = self.field()
        tok = self.take()
        if tok.kind == "op" and tok.text in ("=", "!=", "~", "!~", "<", ">", "<=", ">="):
            op = tok.text
        elif tok.kw("in"):
            op = "in"
        elif tok.kw("not") and self.tok.kw("in"):
            self.take()
            op = "not in"
        elif tok.kw("is"):
            op = "is"
            if self.tok.kw("not"):
                self.take()
                op = "is not"
        else:
            self.i -= 1
            raise self.fail("operator")
        kind = "text" if field in TEXT_FIELDS else "date" if field in DATE_FIELDS else "list"
        if op not in _OPS[kind]:
            raise JqlError(f"The operator '{op.upper()}' is not supported by the '{field}' field.")
        if op in ("in", "not in"):
            if self.take().text != "(":
                self.i -= 1
                raise self.fail("'('")
            values = [self.value()]
            while self.tok.kind == "op" and self.tok.text == ",":
                self.take()
                values.append(self.value())
            if self.take().text != ")":
                self.i -= 1
                raise self.fail("')'")
        else:
            values = [self.value()]
        if field == "resolution":  # JQL's "Unresolved" is the empty resolution
            values = [None if v is not None and v.lower() == "unresolved" else v for v in values]
        if op.startswith("is") and values != [None]:
            raise JqlError(f"The operator '{op.upper()}' only supports 'EMPTY' or 'NULL'.")
        for v in values:
            if kind == "date" and v is not None:
                try:
                    parse_date(v, datetime.now(UTC))
                except ValueError:
                    raise JqlError(
                        f"Date value '{v}' for field '{field}' is invalid. Valid formats include: "
                        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
                        "or a period format e.g. '-5d', '4w 2d'."
                    ) from None
        return Clause(field, op, tuple(values))


def parse(jql: str) -> Query:
    """Parse a JQL string; raises :class:`JqlError`."""
    return _Parser(jql).query()


def clauses(node: Node | None) -> list[Clause]:
    """All clauses of a tree, left to right."""
    if node is None:
        return []
    if isinstance(node, Clause):
        return [node]
    if isinstance(node, Not):
        return clauses(node.item)
    return [c for item in node.items for c in clauses(item)]


def _jira_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def matches(node: Node | None, get: Callable[[str], list[str]], now: datetime | None = None) -> bool:
    """Evaluate ``node`` against one issue; ``get(field)`` returns the issue's comparable values.

    A field may return several aliases (project key, id and name); ``=`` matches any of them and
    ``!=``/``NOT IN`` match only non-empty fields none of whose values is listed, as in Jira.
    """
    if node is None:
        return True
    if isinstance(node, Not):
        return not matches(node.item, get, now)
    if isinstance(node, BoolOp):
        results = (matches(item, get, now) for item in node.items)
        return all(results) if node.op == "and" else any(results)
    vals = get(node.field)
    if node.op in ("is", "is not") or (node.op in ("=", "!=") and node.values == (None,)):
        return (not vals) == (node.op in ("is", "="))
    if node.op in ("~", "!~"):
        terms = re.findall(r"\w+", (node.values[0] or "").lower())
        text = "\n".join(vals).lower()
        return bool(terms) and all(t in text for t in terms) == (node.op == "~")
    if node.field in DATE_FIELDS and node.op not in ("in", "not in"):
        at = parse_date(node.values[0] or "", now or datetime.now(UTC)) if node.values[0] else None
        return bool(vals) and at is not None and _CMP[node.op](_jira_time(vals[0]), at)
    low = {v.lower() for v in vals}
    hit = any((w is None and not vals) or (w is not None and w.lower() in low) for w in node.values)
    return hit if node.op in ("=", "in") else (not hit and bool(vals))
