"""A lane per outside system: what the Jira issue was last brought to, and the queued jobs moved to their lanes.

Tickets remember what their Jira issue shows (status, assignee, a digest of its fields) so that ``jira.sync``
reconciles instead of replaying moves. Unfinished jobs of the old shared ``ticket:N`` lane move to the lane of
their system (``jira:N``, ``slack:N``; Jira's own changes to ``jira-in:N``), e-mails from ``mail:<reference>`` to
``mail:N``, ``/triage new`` submissions from ``slack:E`` to ``new:E``; queued transitions and assignments become a
``jira.sync`` forced to bring that part over; dead jobs of kinds that no longer hold their lane become refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = "status IN ('pending', 'running', 'dead')"


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jira_status_synced", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("jira_assignee_synced", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("jira_fields_synced", sa.String(length=64), nullable=True))
    # Issues that exist show the ticket as the old jobs left it; the fields are brought over on the next sync.
    op.execute(
        "UPDATE tickets SET jira_status_synced = state, jira_assignee_synced = COALESCE(assignee, '') "
        "WHERE jira_key IS NOT NULL"
    )
    # Order matters: /triage new submissions leave slack:E before tickets' Slack work arrives in slack:N.
    op.execute(f"UPDATE jobs SET lane = 'new:' || substr(lane, 7) WHERE kind = 'ticket.new' AND {UNFINISHED}")
    for kind, part in (("jira.transition", "status"), ("jira.assign", "assignee")):
        op.execute(
            sa.text(
                f"UPDATE jobs SET kind = 'jira.sync', payload = :forced WHERE kind = :kind AND {UNFINISHED}"
            ).bindparams(forced=f'{{"force":["{part}"]}}', kind=kind)
        )
    op.execute(
        "UPDATE jobs SET lane = 'mail:' || (SELECT tickets.id FROM tickets WHERE tickets.report_ref = substr(jobs.lane, 6)) "
        f"WHERE kind = 'mail.send' AND lane LIKE 'mail:R-%' AND {UNFINISHED} "
        "AND EXISTS (SELECT 1 FROM tickets WHERE tickets.report_ref = substr(jobs.lane, 6))"
    )
    for kinds, prefix in (
        ("kind = 'jira.event'", "jira-in"),
        ("kind LIKE 'jira.%' AND kind <> 'jira.event'", "jira"),
        ("kind LIKE 'slack.%'", "slack"),
    ):
        op.execute(
            f"UPDATE jobs SET lane = '{prefix}:' || substr(lane, 8) WHERE lane LIKE 'ticket:%' AND {kinds} AND {UNFINISHED}"
        )
    # Failed for good, of kinds whose failure no longer holds up what comes after them in their lane.
    op.execute(
        "UPDATE jobs SET status = 'refused' WHERE status = 'dead' AND kind NOT IN "
        "('alert.process', 'slack.action', 'jira.event', 'ticket.new', 'jira.create', 'slack.card')"
    )


def downgrade() -> None:
    find = "strpos" if op.get_bind().dialect.name == "postgresql" else "instr"
    op.execute(
        f"UPDATE jobs SET lane = 'ticket:' || substr(lane, {find}(lane, ':') + 1) "
        f"WHERE (lane LIKE 'jira:%' OR lane LIKE 'jira-in:%' OR lane LIKE 'slack:%') AND {UNFINISHED}"
    )
    op.execute(f"UPDATE jobs SET lane = 'slack:' || substr(lane, 5) WHERE kind = 'ticket.new' AND {UNFINISHED}")
    # Refused jobs held nothing up; as dead ones they would hold the whole old lane: done, with their error kept.
    op.execute("UPDATE jobs SET status = 'done' WHERE status = 'refused'")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("jira_fields_synced")
        batch_op.drop_column("jira_assignee_synced")
        batch_op.drop_column("jira_status_synced")
