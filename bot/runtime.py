"""What a running triage-bot holds: settings, database engine, policy and the outside-system gateways."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bot.db import make_engine
from bot.jira_gateway import JiraGateway
from bot.settings import Settings
from bot.slack_gateway import SlackGateway
from workflows.policy import Policy, load_policy


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    policy: Policy
    jira: JiraGateway
    slack: SlackGateway

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url, pool_size=settings.workers + 20),  # + the request threads
            policy=load_policy(settings.policy),
            jira=JiraGateway(settings),
            slack=SlackGateway(settings),
        )
