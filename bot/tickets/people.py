"""Who a Slack user is in Jira: Slack's name and e-mail address for them, then the Jira account with that address;
and the other way, who a Jira assignee is in Slack (by their e-mail address, ``users.lookupByEmail``).

Answers are kept in the ``people`` table: a found account for a day, "no such person" for an hour (so a
burst of assignments does not ask twice, and a newly invited Jira user is picked up soon). A failed call is
never kept: it raises, and the job that asked retries.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Person
from bot.jobs.retry import TryLater, classify
from bot.runtime import Runtime
from workflows.tickets import Someone

FOUND_FOR = timedelta(days=1)
MISSING_FOR = timedelta(hours=1)
log = logging.getLogger("triage.people")


class SlackUnavailable(TryLater):
    """Slack cannot say who the person is just now; the Jira work that needs it can wait, the rest need not."""


def jira_account(runtime: Runtime, slack_user: str) -> str | None:
    """The Jira account (Cloud accountId, Data Center username) of a Slack user, or None if there is none."""
    known = _known(runtime, slack_user)
    return known.jira_account if known is not None else _ask(runtime, slack_user).jira_account


def someone(runtime: Runtime, slack_user: str) -> Someone:
    """A Slack user as a Jira comment names them: their name, and their Jira account to mention. Never waits for
    Slack: while it cannot say, what was known before (or the bare id) will do. A Jira that cannot be reached
    raises (the comment that asks needs Jira all the same)."""
    known = _known(runtime, slack_user)
    if known is None or known.name is None:
        try:
            known = _ask(runtime, slack_user)
        except Exception as problem:
            if not isinstance(problem, SlackUnavailable) and classify(problem).retryable:
                raise
            log.warning("a comment names a Slack user by id", extra={"slack_user": slack_user, "error": str(problem)})
            known = _stored(runtime, slack_user)
    if known is None:
        return Someone(slack_user)
    return Someone(slack_user, known.name, known.jira_account)


def slack_user_of(runtime: Runtime, jira_account: str, email: str | None) -> str | None:
    """The Slack user of a Jira account (one someone assigned in Jira): the one known, else the Slack user with
    its e-mail address (``email`` when the webhook carried it, else Jira's, where Jira shows it). None when there
    is none, or when Slack or Jira cannot say just now: the card then names the person without a mention."""
    with transaction(runtime.engine) as session:
        known = session.exec(select(Person).where(Person.jira_account == jira_account)).first()
        if known is not None:
            return known.slack_user
    try:
        email = email or runtime.jira.user_email(jira_account)
        found = runtime.slack.user_by_email(email) if email else None
    except Exception as problem:
        log.warning(
            "cannot tell who a Jira assignee is in Slack", extra={"jira_account": jira_account, "error": str(problem)}
        )
        return None
    if found is None:
        return None
    _store(runtime, found.id, found.email or email, found.name, jira_account)
    return found.id


def _known(runtime: Runtime, slack_user: str) -> Person | None:
    """What the ``people`` table says of the person, while it is fresh."""
    stored = _stored(runtime, slack_user)
    if stored is not None and utcnow() - stored.checked_at < (FOUND_FOR if stored.jira_account else MISSING_FOR):
        return stored
    return None


def _stored(runtime: Runtime, slack_user: str) -> Person | None:
    with transaction(runtime.engine) as session:
        stored = session.get(Person, slack_user)
        if stored is not None:
            session.expunge(stored)
        return stored


def _ask(runtime: Runtime, slack_user: str) -> Person:
    """Ask Slack who the person is and Jira which account has their e-mail address; keep the answer."""
    try:
        found = runtime.slack.user(slack_user)
    except Exception as problem:
        if not classify(problem).retryable:
            raise
        raise SlackUnavailable(f"Slack cannot say who {slack_user} is: {problem}") from problem
    account = runtime.jira.find_account(found.email) if found.email else None
    if account is None:
        log.warning(
            "no Jira account for this Slack user",
            extra={"slack_user": slack_user, "why": "no e-mail in Slack" if not found.email else "no Jira user has it"},
        )
    return _store(runtime, slack_user, found.email, found.name, account)


def _store(runtime: Runtime, slack_user: str, email: str | None, name: str | None, account: str | None) -> Person:
    kept = Person(slack_user=slack_user, email=email, name=name, jira_account=account, checked_at=utcnow())
    try:
        with transaction(runtime.engine) as session:
            person = session.get(Person, slack_user) or Person(slack_user=slack_user)
            person.email, person.name, person.jira_account, person.checked_at = email, name, account, kept.checked_at
            session.add(person)
    except IntegrityError:
        pass  # another worker asked at the same moment and stored the same answer
    return kept


def forget(runtime: Runtime, slack_user: str | None) -> None:
    """Drop what is known of a person, so that the next assignment asks Slack and Jira again."""
    if slack_user is None:
        return
    with transaction(runtime.engine) as session:
        person = session.get(Person, slack_user)
        if person is not None:
            session.delete(person)
