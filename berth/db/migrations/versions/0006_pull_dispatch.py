"""pull dispatch: work queues, requests, instances and the hosts that pull

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "pull_queues",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("flavor_uuid", sa.String(length=36), nullable=False),
        sa.Column("capabilities", sa.Text(), nullable=False),
        sa.Column("synced", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pull_queues")),
    )
    op.create_index("ix_pull_queues_flavor_uuid", "pull_queues", ["flavor_uuid"])
    op.create_table(
        "pull_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("flavor_uuid", sa.String(length=36), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.Column("required_traits", sa.Text(), nullable=False),
        sa.Column("forbidden_traits", sa.Text(), nullable=False),
        sa.Column("capabilities", sa.Text(), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("server_group", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_requests")),
        sa.UniqueConstraint("uuid", name=op.f("uq_pull_requests_uuid")),
    )
    op.create_table(
        "pull_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("request_uuid", sa.String(length=36), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reservation", sa.String(length=36), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_instances")),
        sa.UniqueConstraint("uuid", name=op.f("uq_pull_instances_uuid")),
    )
    op.create_index("ix_pull_instances_request_uuid", "pull_instances", ["request_uuid"])
    op.create_index("ix_pull_instances_state_queued_at", "pull_instances", ["state", "queued_at"])
    op.create_index("ix_pull_instances_state_host", "pull_instances", ["state", "host"])
    op.create_index("ix_pull_instances_published_state", "pull_instances", ["published", "state"])
    op.create_table(
        "pull_hosts",
        sa.Column("host_uuid", sa.String(length=36), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host_uuid", name=op.f("pk_pull_hosts")),
    )
    op.create_index("ix_pull_hosts_heartbeat_at", "pull_hosts", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_pull_hosts_heartbeat_at", table_name="pull_hosts")
    op.drop_table("pull_hosts")
    for name in ("published_state", "state_host", "state_queued_at", "request_uuid"):
        op.drop_index(f"ix_pull_instances_{name}", table_name="pull_instances")
    op.drop_table("pull_instances")
    op.drop_table("pull_requests")
    op.drop_index("ix_pull_queues_flavor_uuid", table_name="pull_queues")
    op.drop_table("pull_queues")
