"""host state in namespaces, and insert-only change logs instead of a revision counter

``scheduler_hosts`` rows move to ``scheduler_host_state``: ``disabled``,
``disabled_reason`` and ``availability_zone`` to the ``operator`` namespace,
``metrics`` to ``compute`` (generation 1, received when the row was last
written); rows of providers deleted since are dropped.
``scheduler_revisions`` and ``scheduler_aggregates.revision`` give way to
the change logs ``scheduler_state_changes`` and
``scheduler_aggregate_changes``.  The downgrade moves the two namespaces back
(other namespaces are lost) and starts the revision counter at 1.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPERATOR_FIELDS = ("disabled", "disabled_reason", "availability_zone")

_old_hosts = sa.table(
    "scheduler_hosts",
    sa.column("provider_uuid", sa.String),
    sa.column("disabled", sa.Boolean),
    sa.column("disabled_reason", sa.Unicode),
    sa.column("availability_zone", sa.Unicode),
    sa.column("metrics", sa.Text),
    sa.column("revision", sa.Integer),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)
_providers = sa.table("resource_providers", sa.column("uuid", sa.String))
_state = sa.table(
    "scheduler_host_state",
    sa.column("provider_uuid", sa.String),
    sa.column("namespace", sa.String),
    sa.column("generation", sa.Integer),
    sa.column("received_at", sa.DateTime),
    sa.column("body", sa.Text),
)
_revisions = sa.table(
    "scheduler_revisions", sa.column("name", sa.String), sa.column("value", sa.Integer)
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def upgrade() -> None:
    _create_state_tables()
    _move_hosts_to_namespaces()
    op.drop_index("ix_scheduler_hosts_revision", table_name="scheduler_hosts")
    op.drop_table("scheduler_hosts")
    op.drop_table("scheduler_revisions")
    with op.batch_alter_table("scheduler_aggregates") as batch:
        batch.drop_index("ix_scheduler_aggregates_revision")
        batch.drop_column("revision")


def _create_state_tables() -> None:
    op.create_table(
        "scheduler_host_state",
        sa.Column("provider_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("provider_uuid", "namespace", name=op.f("pk_scheduler_host_state")),
    )
    op.create_index(
        "ix_scheduler_host_state_namespace_received_at",
        "scheduler_host_state",
        ["namespace", "received_at"],
    )
    op.create_index("ix_scheduler_host_state_received_at", "scheduler_host_state", ["received_at"])
    op.create_table(
        "scheduler_state_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_state_changes")),
    )
    op.create_index("ix_scheduler_state_changes_at", "scheduler_state_changes", ["at"])
    op.create_table(
        "scheduler_aggregate_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aggregate_uuid", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_aggregate_changes")),
    )
    op.create_index("ix_scheduler_aggregate_changes_at", "scheduler_aggregate_changes", ["at"])


def _namespaces_of(row: Any) -> dict[str, dict[str, Any]]:
    """The namespaces a ``scheduler_hosts`` row becomes (only those it says something in)."""
    out: dict[str, dict[str, Any]] = {}
    operator = {
        "disabled": bool(row.disabled),
        "disabled_reason": row.disabled_reason,
        "availability_zone": row.availability_zone,
    }
    if operator["disabled"] or operator["disabled_reason"] or operator["availability_zone"]:
        out["operator"] = {k: v for k, v in operator.items() if v is not None}
    metrics = json.loads(row.metrics) if row.metrics else {}
    if metrics:
        out["compute"] = {"metrics": metrics}
    return out


def _move_hosts_to_namespaces() -> None:
    conn = op.get_bind()
    rows = []
    # A deleted provider's row was left behind: its state goes now.
    alive = sa.select(_old_hosts).where(
        _old_hosts.c.provider_uuid.in_(sa.select(_providers.c.uuid))
    )
    for row in conn.execute(alive):
        received = row.updated_at or row.created_at or _now()
        for namespace, body in _namespaces_of(row).items():
            rows.append(
                {
                    "provider_uuid": row.provider_uuid,
                    "namespace": namespace,
                    "generation": 1,
                    "received_at": received,
                    "body": json.dumps(body, separators=(",", ":")),
                }
            )
    if rows:
        conn.execute(sa.insert(_state), rows)


def downgrade() -> None:
    op.create_table(
        "scheduler_hosts",
        sa.Column("provider_uuid", sa.String(length=36), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Unicode(length=255), nullable=True),
        sa.Column("availability_zone", sa.Unicode(length=255), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("provider_uuid", name=op.f("pk_scheduler_hosts")),
    )
    op.create_index("ix_scheduler_hosts_revision", "scheduler_hosts", ["revision"])
    op.create_table(
        "scheduler_revisions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_revisions")),
    )
    with op.batch_alter_table("scheduler_aggregates") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch.create_index("ix_scheduler_aggregates_revision", ["revision"])
    _move_namespaces_to_hosts()
    op.drop_index("ix_scheduler_aggregate_changes_at", table_name="scheduler_aggregate_changes")
    op.drop_table("scheduler_aggregate_changes")
    op.drop_index("ix_scheduler_state_changes_at", table_name="scheduler_state_changes")
    op.drop_table("scheduler_state_changes")
    op.drop_index("ix_scheduler_host_state_received_at", table_name="scheduler_host_state")
    op.drop_index(
        "ix_scheduler_host_state_namespace_received_at", table_name="scheduler_host_state"
    )
    op.drop_table("scheduler_host_state")


def _move_namespaces_to_hosts() -> None:
    conn = op.get_bind()
    hosts: dict[str, dict[str, Any]] = {}
    wanted = sa.select(_state).where(_state.c.namespace.in_(["operator", "compute"]))
    for row in conn.execute(wanted):
        host = hosts.setdefault(
            row.provider_uuid,
            {
                "provider_uuid": row.provider_uuid,
                "disabled": False,
                "disabled_reason": None,
                "availability_zone": None,
                "metrics": "{}",
                "revision": 1,
                "created_at": row.received_at,
                "updated_at": row.received_at,
            },
        )
        host["updated_at"] = max(host["updated_at"], row.received_at)
        body = json.loads(row.body)
        if row.namespace == "operator":
            host["disabled"] = bool(body.get("disabled", False))
            host["disabled_reason"] = body.get("disabled_reason")
            host["availability_zone"] = body.get("availability_zone")
        else:
            host["metrics"] = json.dumps(body.get("metrics") or {})
    if hosts:
        conn.execute(sa.insert(_old_hosts), list(hosts.values()))
    conn.execute(sa.insert(_revisions).values(name="state", value=1))
