"""Alert fields on incidents (severity, source, labels, dedup key) and what alert ingestion needs.

`open_dedup_key` holds the dedup key only while the incident is open; its unique index makes "at most one open
incident per dedup key" hold under concurrent triggers on SQLite and MariaDB alike (NULLs never collide).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("severity", sa.String(16)),
    ("source", sa.String(255)),
    ("labels", sa.Text()),
    ("dedup_key", sa.String(255)),
    ("open_dedup_key", sa.String(255)),
    ("firing_alerts", sa.Text()),
    ("last_alert_at", sa.BigInteger()),
    ("integration", sa.String(64)),
)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.add_column(sa.Column("alert_count", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_index("uq_incidents_open_dedup_key", "incidents", ["open_dedup_key"], unique=True)
    op.create_index("ix_incidents_dedup_key_id", "incidents", ["dedup_key", "id"])
    op.create_index("ix_incidents_severity_id", "incidents", ["severity", "id"])
    op.create_index("ix_incidents_source_id", "incidents", ["source", "id"])
    op.create_index("ix_incidents_integration_last_alert_at", "incidents", ["integration", "last_alert_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_integration_last_alert_at", table_name="incidents")
    op.drop_index("ix_incidents_source_id", table_name="incidents")
    op.drop_index("ix_incidents_severity_id", table_name="incidents")
    op.drop_index("ix_incidents_dedup_key_id", table_name="incidents")
    op.drop_index("uq_incidents_open_dedup_key", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("alert_count")
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
