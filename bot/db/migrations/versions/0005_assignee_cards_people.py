"""Assignee, the ticket's cards in other channels, and the Slack-to-Jira people cache.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=32), nullable=True))
    op.create_table(
        "ticket_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("post_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "channel", name="uq_ticket_card_channel"),
    )
    op.create_index(op.f("ix_ticket_cards_ticket_id"), "ticket_cards", ["ticket_id"], unique=False)
    op.create_table(
        "people",
        sa.Column("slack_user", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("jira_account", sa.String(length=128), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slack_user"),
    )
    op.create_index(op.f("ix_people_jira_account"), "people", ["jira_account"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_people_jira_account"), table_name="people")
    op.drop_table("people")
    op.drop_index(op.f("ix_ticket_cards_ticket_id"), table_name="ticket_cards")
    op.drop_table("ticket_cards")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("assignee")
