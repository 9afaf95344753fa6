"""The workflow table: every documented move, who may make it, and what is refused before anything is written."""

from __future__ import annotations

import pytest

from workflows.states import TicketState as S
from workflows.transitions import TABLE, Action, Role, actions_for, decide

OPS, TEAM, QA = frozenset({Role.OPERATOR}), frozenset({Role.TEAM}), frozenset({Role.QA})

# The documented path: open, Assign team, Assign member, Resolve, Request QA, QA fail, Resolve, Request QA,
# QA pass, Close.
PATH = [
    (S.OPEN, Action.ASSIGN_TEAM, OPS, S.ASSIGNED),
    (S.ASSIGNED, Action.ASSIGN_MEMBER, TEAM, S.IN_PROGRESS),
    (S.IN_PROGRESS, Action.RESOLVE, TEAM, S.RESOLVED),
    (S.RESOLVED, Action.REQUEST_QA, OPS, S.IN_QA),
    (S.IN_QA, Action.QA_FAIL, QA, S.IN_PROGRESS),
    (S.IN_PROGRESS, Action.RESOLVE, TEAM, S.RESOLVED),
    (S.RESOLVED, Action.REQUEST_QA, OPS, S.IN_QA),
    (S.IN_QA, Action.QA_PASS, QA, S.RESOLVED),
    (S.RESOLVED, Action.CLOSE, OPS, S.CLOSED),
]


@pytest.mark.parametrize(("state", "action", "roles", "to"), PATH)
def test_the_documented_path(state: S, action: Action, roles: frozenset[Role], to: S) -> None:
    assert decide(state, action, roles, version=3, seen_version=3, has_team=True, has_assignee=True).to is to


def test_every_move_is_refused_to_every_other_role() -> None:
    for (state, action), move in TABLE.items():
        for role in Role:
            decision = decide(state, action, frozenset({role}), version=1)
            assert decision.allowed is (role in move.who), (state, action, role)
            if not decision.allowed:
                assert "is for the" in decision.reason


def test_stale_version_and_impossible_moves_are_refused_with_a_reason() -> None:
    stale = decide(S.OPEN, Action.ASSIGN_TEAM, OPS, version=4, seen_version=3)
    assert not stale.allowed and "changed since" in stale.reason
    impossible = decide(S.OPEN, Action.QA_PASS, QA, version=1)
    assert not impossible.allowed
    assert impossible.reason.endswith("it can take: Resolve, Assign team, Close")


def test_buttons_per_state_and_reopen_targets() -> None:
    assert [a.label for a in actions_for(S.RESOLVED)] == ["Close", "Request QA", "Reopen"]
    assert [a.label for a in actions_for(S.CLOSED)] == ["Reopen"]
    assert decide(S.CLOSED, Action.REOPEN, OPS, version=1, has_assignee=True).to is S.IN_PROGRESS
    assert decide(S.CLOSED, Action.REOPEN, OPS, version=1, has_assignee=False).to is S.OPEN
    assert decide(S.CLOSED, Action.REOPEN, OPS, version=1, has_team=True).to is S.ASSIGNED
    # Resolved from triage (no team, nobody assigned), then sent back to work: back to triage, not to a state
    # only a team could act in.
    qa = frozenset({Role.QA})
    assert decide(S.IN_QA, Action.QA_FAIL, qa, version=1).to is S.OPEN
    assert decide(S.IN_QA, Action.QA_FAIL, qa, version=1, has_team=True).to is S.ASSIGNED
    assert decide(S.IN_QA, Action.QA_FAIL, qa, version=1, has_team=True, has_assignee=True).to is S.IN_PROGRESS
    assert decide(S.RESOLVED, Action.REOPEN, OPS, version=1).to is S.OPEN
    team = frozenset({Role.TEAM})
    assert decide(S.ASSIGNED, Action.ASSIGN_MEMBER, team, version=1, has_team=True).to is S.IN_PROGRESS
