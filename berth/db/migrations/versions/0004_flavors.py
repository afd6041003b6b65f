"""scheduler: flavors and their change rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_flavors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Unicode(length=255), nullable=False),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.Column("required_traits", sa.Text(), nullable=False),
        sa.Column("forbidden_traits", sa.Text(), nullable=False),
        sa.Column("extra_specs", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_flavors")),
        sa.UniqueConstraint("uuid", name=op.f("uq_scheduler_flavors_uuid")),
        sa.UniqueConstraint("name", name=op.f("uq_scheduler_flavors_name")),
    )
    op.create_table(
        "scheduler_flavor_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flavor_uuid", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_flavor_changes")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_flavor_changes")
    op.drop_table("scheduler_flavors")
