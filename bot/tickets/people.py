"""Who a Slack user is in Jira: Slack's e-mail address for them, then the Jira account with that address.

Answers are kept in the ``people`` table: a found account for a day, "no such person" for an hour (so a
burst of assignments does not ask twice, and a newly invited Jira user is picked up soon). A failed call is
never kept: it raises, and the job that asked retries.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Person
from bot.jobs.retry import TryLater, classify
from bot.runtime import Runtime

FOUND_FOR = timedelta(days=1)
MISSING_FOR = timedelta(hours=1)
log = logging.getLogger("triage.people")


class SlackUnavailable(TryLater):
    """Slack cannot say who the person is just now; the Jira work that needs it can wait, the rest need not."""


def jira_account(runtime: Runtime, slack_user: str) -> str | None:
    """The Jira account (Cloud accountId, Data Center username) of a Slack user, or None if there is none."""
    with transaction(runtime.engine) as session:
        known = session.get(Person, slack_user)
        if known is not None:
            age = utcnow() - known.checked_at
            if age < (FOUND_FOR if known.jira_account else MISSING_FOR):
                return known.jira_account
    try:
        email = runtime.slack.user_email(slack_user)
    except Exception as problem:
        if not classify(problem).retryable:
            raise
        raise SlackUnavailable(f"Slack cannot say who {slack_user} is: {problem}") from problem
    account = runtime.jira.find_account(email) if email else None
    if account is None:
        log.warning(
            "no Jira account for this Slack user",
            extra={"slack_user": slack_user, "why": "no e-mail in Slack" if not email else "no Jira user has it"},
        )
    try:
        with transaction(runtime.engine) as session:
            person = session.get(Person, slack_user) or Person(slack_user=slack_user)
            person.email, person.jira_account, person.checked_at = email, account, utcnow()
            session.add(person)
    except IntegrityError:
        pass  # another worker asked at the same moment and stored the same answer
    return account


def forget(runtime: Runtime, slack_user: str | None) -> None:
    """Drop what is known of a person, so that the next assignment asks Slack and Jira again."""
    if slack_user is None:
        return
    with transaction(runtime.engine) as session:
        person = session.get(Person, slack_user)
        if person is not None:
            session.delete(person)
