"""Indexes for claiming jobs in id order and checking a lane's earlier jobs by status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claim")
        batch_op.drop_index("ix_jobs_lane")
        batch_op.create_index("ix_jobs_status_id", ["status", "id"], unique=False)
        batch_op.create_index("ix_jobs_lane_status_id", ["lane", "status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_lane_status_id")
        batch_op.drop_index("ix_jobs_status_id")
        batch_op.create_index("ix_jobs_lane", ["lane", "id"], unique=False)
        batch_op.create_index("ix_jobs_claim", ["status", "run_after"], unique=False)
