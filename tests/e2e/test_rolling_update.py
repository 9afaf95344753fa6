"""A rolling update migrates the database before the new replicas start, while the old ones still serve: a
replica keeps serving (and stays ready) on a schema newer than its own, and refuses one older than its own."""

from __future__ import annotations

import subprocess
from typing import Any

from sqlalchemy import text

from bot.db import migrate
from bot.db.engine import make_engine
from tests.harness import BotProcess, alertmanager_payload, run_cli


def _set_revision(database_url: str, revision: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def _db_current(database_url: str) -> subprocess.CompletedProcess[str]:
    return run_cli("db", "current", TRIAGE_DATABASE_URL=database_url)


def test_a_replica_serves_on_a_newer_schema_and_refuses_an_older_one(make_bot: Any, database_url: str) -> None:
    bot: BotProcess = make_bot()
    head = migrate.head_revision()
    assert head is not None
    # A newer release's migration ran (a revision this release does not know).
    _set_revision(database_url, "9999_from_a_newer_release")
    with bot.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["schema"] == "ok"
        assert client.post("/alerts/alertmanager", json=alertmanager_payload("RU")).status_code == 202
    current = _db_current(database_url)
    assert current.returncode == 0 and "newer than this version's" in current.stdout
    restarted = make_bot()  # an old replica restarted mid-rollout still starts
    assert "newer than this release" in restarted.log()
    # An older schema (a revision this release knows, before its head): not ready, and `db current` says so.
    older = sorted(migrate.known_revisions() - {head})[-1]
    _set_revision(database_url, older)
    with bot.client() as client:
        behind = client.get("/readyz")
        assert behind.status_code == 503 and behind.json()["checks"]["schema"].startswith(f"behind ({older})")
    assert _db_current(database_url).returncode == 1
    _set_revision(database_url, head)
