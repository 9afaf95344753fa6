"""The documented triage workflow as data: (state, action) -> (next state, who may).

``decide`` is pure: it checks a move against this table, the actor's roles and the ticket's version
*before* anything is written, and says why not when it refuses. The table follows product.md; the code
owns the final word.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workflows.states import TicketState

S = TicketState


class Action(StrEnum):
    RESOLVE = "resolve"
    ASSIGN_TEAM = "assign_team"
    ASSIGN_MEMBER = "assign_member"
    SEND_BACK = "send_back"
    REQUEST_QA = "request_qa"
    QA_PASS = "qa_pass"  # noqa: S105 - a button, not a password
    QA_FAIL = "qa_fail"
    CLOSE = "close"
    REOPEN = "reopen"

    @property
    def label(self) -> str:
        """The button's words."""
        return LABELS[self]


LABELS = {
    Action.RESOLVE: "Resolve",
    Action.ASSIGN_TEAM: "Assign team",
    Action.ASSIGN_MEMBER: "Assign member",
    Action.SEND_BACK: "Send back",
    Action.REQUEST_QA: "Request QA",
    Action.QA_PASS: "QA pass",
    Action.QA_FAIL: "QA fail",
    Action.CLOSE: "Close",
    Action.REOPEN: "Reopen",
}


class Role(StrEnum):
    OPERATOR = "operator"
    TEAM = "team"  # a member of the team that owns the ticket (the assignee is one)
    QA = "qa"


@dataclass(frozen=True)
class Move:
    to: TicketState
    who: frozenset[Role]


def _m(to: TicketState, *who: Role) -> Move:
    return Move(to, frozenset(who))


OPS, TEAM, QA = Role.OPERATOR, Role.TEAM, Role.QA

TABLE: dict[tuple[TicketState, Action], Move] = {
    (S.OPEN, Action.RESOLVE): _m(S.RESOLVED, OPS),
    (S.OPEN, Action.ASSIGN_TEAM): _m(S.ASSIGNED, OPS),
    (S.OPEN, Action.CLOSE): _m(S.CLOSED, OPS),
    (S.ASSIGNED, Action.ASSIGN_MEMBER): _m(S.IN_PROGRESS, TEAM),
    (S.ASSIGNED, Action.SEND_BACK): _m(S.OPEN, TEAM),
    (S.IN_PROGRESS, Action.RESOLVE): _m(S.RESOLVED, TEAM),
    (S.IN_PROGRESS, Action.ASSIGN_MEMBER): _m(S.IN_PROGRESS, TEAM),
    (S.RESOLVED, Action.CLOSE): _m(S.CLOSED, OPS),
    (S.RESOLVED, Action.REQUEST_QA): _m(S.IN_QA, OPS),
    (S.RESOLVED, Action.REOPEN): _m(S.IN_PROGRESS, OPS),
    (S.IN_QA, Action.QA_PASS): _m(S.RESOLVED, QA),
    (S.IN_QA, Action.QA_FAIL): _m(S.IN_PROGRESS, QA),
    (S.CLOSED, Action.REOPEN): _m(S.IN_PROGRESS, OPS),
}


def actions_for(state: TicketState) -> list[Action]:
    """The buttons that fit a state, in the table's order."""
    return [action for (at, action) in TABLE if at is state]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    to: TicketState | None = None
    reason: str = ""


def decide(
    state: TicketState,
    action: Action,
    roles: frozenset[Role],
    *,
    version: int,
    seen_version: int | None = None,
    has_assignee: bool = False,
    has_team: bool = False,
) -> Decision:
    """May someone with ``roles`` take ``action`` on a ticket in ``state``, having seen ``seen_version``?"""
    if seen_version is not None and seen_version != version:
        return Decision(False, reason="the ticket changed since you looked at it")
    move = TABLE.get((state, action))
    if move is None:
        allowed = ", ".join(a.label for a in actions_for(state)) or "nothing"
        return Decision(
            False, reason=f"a ticket that is {state.label.lower()} cannot take {action.label}; it can take: {allowed}"
        )
    if not roles & move.who:
        who = " or ".join(sorted(r.value for r in move.who))
        article = "an" if state.label[0] in "AEIOU" else "a"
        return Decision(False, reason=f"{action.label} on {article} {state.label.lower()} ticket is for the {who}")
    to = move.to
    if to is S.IN_PROGRESS and action is not Action.ASSIGN_MEMBER and not has_assignee:
        # Back to work (Reopen, QA fail), but nobody is working on it: to the team to pick someone, or, with no
        # team either (an operator resolved it from triage), back to triage. Never a state nobody may act in.
        to = S.ASSIGNED if has_team else S.OPEN
    return Decision(True, to=to)


def roles_of(
    user: str, *, operators: tuple[str, ...], team_members: tuple[str, ...], qa: tuple[str, ...]
) -> frozenset[Role]:
    """The roles a Slack user holds for one ticket (team membership is of the ticket's own team)."""
    roles = set()
    if user in operators:
        roles.add(Role.OPERATOR)
    if user in team_members:
        roles.add(Role.TEAM)
    if user in qa:
        roles.add(Role.QA)
    return frozenset(roles)
