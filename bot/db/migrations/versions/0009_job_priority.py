"""Jobs get a priority (0: opens a ticket or answers a person; 1: brings an existing ticket up to date), and
claims walk the pending jobs in the order they are taken (priority, then the longest ready) through an index
that starts with the status, so a claim stops at the first free job however long the backlog.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"))
        batch_op.drop_index("ix_jobs_status_id")
        batch_op.create_index("ix_jobs_claim_order", ["status", "priority", "run_after", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claim_order")
        batch_op.create_index("ix_jobs_status_id", ["status", "id"], unique=False)
        batch_op.drop_column("priority")
