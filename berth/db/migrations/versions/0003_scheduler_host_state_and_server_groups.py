"""scheduler: host attributes, aggregate metadata, server groups, workers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "scheduler_hosts",
        sa.Column("provider_uuid", sa.String(length=36), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Unicode(length=255), nullable=True),
        sa.Column("availability_zone", sa.Unicode(length=255), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("provider_uuid", name=op.f("pk_scheduler_hosts")),
    )
    op.create_index("ix_scheduler_hosts_revision", "scheduler_hosts", ["revision"])
    op.create_table(
        "scheduler_aggregates",
        sa.Column("aggregate_uuid", sa.String(length=36), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("aggregate_uuid", name=op.f("pk_scheduler_aggregates")),
    )
    op.create_index("ix_scheduler_aggregates_revision", "scheduler_aggregates", ["revision"])
    op.create_table(
        "scheduler_revisions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_revisions")),
    )
    op.create_table(
        "scheduler_server_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Unicode(length=255), nullable=True),
        sa.Column("project_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("max_server_per_host", sa.Integer(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_server_groups")),
        sa.UniqueConstraint("uuid", name=op.f("uq_scheduler_server_groups_uuid")),
    )
    op.create_table(
        "scheduler_server_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("host_uuid", sa.String(length=36), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint(
            "group_id", "instance_uuid", name=op.f("pk_scheduler_server_group_members")
        ),
    )
    op.create_index(
        "ix_scheduler_server_group_members_instance",
        "scheduler_server_group_members",
        ["instance_uuid"],
    )
    op.create_table(
        "scheduler_workers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_workers")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_workers")
    op.drop_index(
        "ix_scheduler_server_group_members_instance", table_name="scheduler_server_group_members"
    )
    op.drop_table("scheduler_server_group_members")
    op.drop_table("scheduler_server_groups")
    op.drop_table("scheduler_revisions")
    op.drop_index("ix_scheduler_aggregates_revision", table_name="scheduler_aggregates")
    op.drop_table("scheduler_aggregates")
    op.drop_index("ix_scheduler_hosts_revision", table_name="scheduler_hosts")
    op.drop_table("scheduler_hosts")
