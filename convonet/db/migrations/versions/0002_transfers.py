"""transfers: call record timestamps and hand-off, department message team

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_departments_team_id_teams"),
            "teams",
            ["team_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_id", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("leg_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("dialing_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("bridged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("dispositioned_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("outcome", sa.String(length=40), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("transcript", sa.JSON(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_call_records_transfer_id"), ["transfer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_records_transfer_id"))
        for column in (
            "transcript",
            "summary",
            "outcome",
            "dispositioned_at",
            "bridged_at",
            "dialing_at",
            "leg_id",
            "transfer_id",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_departments_team_id_teams"), type_="foreignkey")
        batch_op.drop_column("team_id")
