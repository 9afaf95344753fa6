"""Schema migrations through Alembic: ``triage-bot db upgrade``, and a check that serve runs on the head.

The check runs in every process at start and on every ``/readyz``: it reads the head from the migration files and
the database's ``alembic_version`` row itself, because importing Alembic (and Mako) for it would cost each process
about 9 MB for good. Only an upgrade imports Alembic (tests check that both ways agree)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_DECLARED = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)


class MigrationsError(Exception):
    """The migration files do not make one line of revisions."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@cache
def known_revisions() -> frozenset[str]:
    """Every revision this release's migrations know."""
    return frozenset(_declared()[0])


@cache
def head_revision() -> str | None:
    """The newest revision: the one no other migration revises."""
    revisions, revised = _declared()
    heads = revisions - revised
    if len(heads) > 1:
        raise MigrationsError(f"the migrations have several heads: {', '.join(sorted(heads))}")
    return next(iter(heads), None)


def _declared() -> tuple[set[str], set[str]]:
    """The revisions the migration files declare, and those they revise."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = _DECLARED.finditer(path.read_text(encoding="utf-8"))
        declared: dict[str, str] = {match[1]: match[2] for match in found}
        if "revision" in declared:
            revisions.add(declared["revision"])
        if "down_revision" in declared:
            revised.add(declared["down_revision"])
    return revisions, revised


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise MigrationsError(f"the database is at several revisions: {', '.join(sorted(rows))}")
    return rows[0] if rows else None


Schema = Literal["current", "ahead", "behind", "empty"]


def schema_state(engine: Engine) -> tuple[Schema, str | None]:
    """Where the database's schema stands for this release, and its revision. ``ahead``: a revision this release
    does not know, so a newer release's migration (a rolling update migrates before the new replicas start, while
    the old ones still serve)."""
    current = current_revision(engine)
    if current == head_revision():
        return "current", current
    if current is None:
        return "empty", None
    return ("behind" if current in known_revisions() else "ahead"), current


def is_usable(engine: Engine) -> bool:
    """This release may run on the schema: it is current, or a newer release's (whose migrations keep the one
    before working: each adds, and drops nothing the release before it still reads)."""
    return schema_state(engine)[0] in ("current", "ahead")
