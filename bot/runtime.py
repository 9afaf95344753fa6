"""What a running triage-bot holds: settings, database engine, policy and the outside-system gateways."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bot.clients.jira import JiraGateway
from bot.clients.slack import SlackGateway
from bot.db.engine import make_engine
from bot.db.group_commit import GroupCommit
from bot.mail.mailer import Mailer, MailTemplates, load_templates
from bot.settings import Settings
from workflows.policy import Policy, load_policy


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    policy: Policy
    jira: JiraGateway
    slack: SlackGateway
    mail_templates: MailTemplates
    mailer: Mailer | None = None  # None: no e-mail (no SMTP server; the sandbox sets its catcher's at start)
    intake: GroupCommit = field(init=False)  # inbound requests stored together, one commit per batch

    def __post_init__(self) -> None:
        self.intake = GroupCommit(self.engine)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url, pool_size=settings.workers + 20),  # + the request threads
            policy=load_policy(settings.policy),
            jira=JiraGateway(settings),
            slack=SlackGateway(settings),
            mail_templates=load_templates(settings),  # a broken override stops the start, naming the file
            mailer=Mailer(settings) if settings.smtp_url is not None else None,
        )
