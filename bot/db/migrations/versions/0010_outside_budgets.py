"""One request budget per outside system, shared by every worker and replica: a pause that a 429 began (no
worker takes that system's jobs until it ends), the rate its jobs ramp up from after it, and the next free slot of
that ramp or of an optional steady rate.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outside_budgets",
        sa.Column("system", sa.String(length=32), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("strikes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("ramp_rate", sa.Float(), nullable=True),
        sa.Column("next_slot", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("system"),
    )
    # The rows exist from the start, so that pausing and pacing only ever update (no insert races between replicas).
    op.execute("INSERT INTO outside_budgets (system, strikes) VALUES ('jira', 0), ('slack', 0)")


def downgrade() -> None:
    op.drop_table("outside_budgets")
