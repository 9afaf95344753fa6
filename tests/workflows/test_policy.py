from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import EXAMPLE_POLICY
from workflows.policy import PolicyError, load_policy, parse_policy

GOOD = """\
jira: {project: OPS, issue_type: Task}
operators: {channel: C0OPS, users: [U0OP1]}
teams:
  payments: {channel: C0PAY, users: [U0PA1, U0PA2]}
environments:
  production:
    match: {env: production}
    priorities: {critical: Highest, warning: High, info: Medium}
    routes:
      - match: {service: payments}
        team: payments
    on_resolve: comment
    reopen: 24h
"""


def test_the_issue_example_and_the_shipped_example_load() -> None:
    policy = parse_policy(GOOD)
    assert policy.jira.project == "OPS"
    assert policy.environments["production"].routes[0].team == "payments"
    assert policy.jira.transitions["closed"] == "Done"
    assert load_policy(EXAMPLE_POLICY).qa is not None


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.yaml")
    return [str(p) for p in caught.value.problems]


def test_errors_point_at_the_line_to_fix() -> None:
    bad = GOOD.replace("channel: C0PAY", "channel: payments-channel")
    assert _problems(bad) == [
        "line 4: teams.payments.channel: a Slack channel id looks like C0123ABCD (the id, not the #name)"
    ]


def test_unknown_team_in_a_route_names_its_line() -> None:
    problems = _problems(GOOD.replace("team: payments", "team: billing"))
    assert problems == [
        "line 11: environments.production.routes.0.team: unknown team 'billing'; teams are ['payments']"
    ]


def test_bad_duration_and_on_resolve_and_unknown_key() -> None:
    text = GOOD.replace("reopen: 24h", "reopen: soon").replace("on_resolve: comment", "on_resolve: close")
    text += "colour: blue\n"
    problems = _problems(text)
    assert any(p.startswith("line 13: environments.production.reopen:") and "1h30m" in p for p in problems)
    assert any(p.startswith("line 12: environments.production.on_resolve:") for p in problems)
    assert any("colour" in p and "line 14" in p for p in problems)


def test_missing_section_and_broken_yaml() -> None:
    assert _problems("operators: {channel: C0OPS}\n") == ["line 1: jira: Field required"]
    broken = _problems("jira: {project: OPS\noperators: [\n")
    assert len(broken) == 1 and broken[0].startswith("line 2: not valid YAML")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
