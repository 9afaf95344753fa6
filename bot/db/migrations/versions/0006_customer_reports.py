"""Customer reports: the reporter and reference on tickets, attachments, idempotency keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_ref", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("customer_sub", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("customer_email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("jira_project", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("jira_issue_type", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_tickets_report_ref"), ["report_ref"])
        batch_op.create_index(batch_op.f("ix_tickets_customer_sub"), ["customer_sub"], unique=False)
    op.create_table(
        "report_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("jira_attachment_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_report_attachments_ticket_id"), "report_attachments", ["ticket_id"], unique=False)
    op.create_table(
        "idempotent_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_sub", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_sub", "key", name="uq_idempotency_customer_key"),
    )
    op.create_index(op.f("ix_idempotent_requests_created_at"), "idempotent_requests", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotent_requests_created_at"), table_name="idempotent_requests")
    op.drop_table("idempotent_requests")
    op.drop_index(op.f("ix_report_attachments_ticket_id"), table_name="report_attachments")
    op.drop_table("report_attachments")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_customer_sub"))
        batch_op.drop_constraint(batch_op.f("uq_tickets_report_ref"), type_="unique")
        batch_op.drop_column("jira_issue_type")
        batch_op.drop_column("jira_project")
        batch_op.drop_column("customer_email")
        batch_op.drop_column("customer_sub")
        batch_op.drop_column("report_ref")
