"""Tickets keep their Jira issue's id (older Jira Data Center names the issue of a comment event by its id alone)
and whether they are a test notification's card (no Jira issue, closed from the start).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jira_issue_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index("ix_tickets_jira_issue_id", ["jira_issue_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_jira_issue_id")
        batch_op.drop_column("test")
        batch_op.drop_column("jira_issue_id")
