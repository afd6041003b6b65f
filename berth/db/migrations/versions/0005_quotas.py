"""quotas: limits per project and user, reservations, the per-project generation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_limits")),
        sa.UniqueConstraint(
            "project_id",
            "user_id",
            "resource",
            name=op.f("uq_quota_limits_project_id_user_id_resource"),
        ),
        sa.CheckConstraint("hard_limit >= 0", name=op.f("ck_quota_limits_hard_limit")),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
        sa.UniqueConstraint("uuid", "resource", name=op.f("uq_quota_reservations_uuid_resource")),
    )
    op.create_index(
        "ix_quota_reservations_project_expires",
        "quota_reservations",
        ["project_id", "expires_at"],
    )
    op.create_index("ix_quota_reservations_expires", "quota_reservations", ["expires_at"])
    op.create_table(
        "quota_projects",
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_quota_projects")),
    )


def downgrade() -> None:
    op.drop_table("quota_projects")
    op.drop_index("ix_quota_reservations_expires", table_name="quota_reservations")
    op.drop_index("ix_quota_reservations_project_expires", table_name="quota_reservations")
    op.drop_table("quota_reservations")
    op.drop_table("quota_limits")
