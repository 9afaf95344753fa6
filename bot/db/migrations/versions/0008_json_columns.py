"""JSON held in the database in JSON columns (JSONB on PostgreSQL): job payloads, a ticket's labels, annotations
and alerts, a stored Idempotency-Key answer. Existing rows keep their values (the text they held is JSON).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "jobs": ("payload",),
    "tickets": ("labels", "annotations", "alerts"),
    "idempotent_requests": ("response",),
}
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # JSONB refuses the NUL character, which the text columns held escaped as \u0000: it means nothing to a
        # person and is dropped (as the bot now drops it on the way in).
        for table, columns in COLUMNS.items():
            for column in columns:
                nul = "'\\u0000'"  # the six characters backslash, u, 0, 0, 0, 0
                op.execute(
                    f"UPDATE {table} SET {column} = replace({column}, {nul}, '') WHERE strpos({column}, {nul}) > 0"
                )
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.Text(),
                    type_=JSON,
                    existing_nullable=False,
                    postgresql_using=f"{column}::jsonb",
                )


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=JSON,
                    type_=sa.Text(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::text",
                )
