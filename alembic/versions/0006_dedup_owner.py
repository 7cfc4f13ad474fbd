"""A dedup key belongs to the integration that sent it: `dedup_owner`, and one open incident per key and owner.

Existing rows get their owner: an Events v2 integration's incidents its name, an Alertmanager incident
`alertmanager:<the token name that opened it>` (the actor of its `created` event), the API's own incidents "".
The names match `services.api.alerts.service` (integration_owner, alertmanager_owner).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MAX_OWNER_LENGTH = 255


def _bounded(owner: str) -> str:
    if len(owner) <= MAX_OWNER_LENGTH:
        return owner
    return "sha256:" + hashlib.sha256(owner.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("dedup_owner", sa.String(255), nullable=False, server_default=sa.text("''")))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT i.id, i.integration, e.actor FROM incidents i "
            "LEFT JOIN incident_events e ON e.incident_id = i.id AND e.version = 1 "
            "WHERE i.integration IS NOT NULL"
        )
    ).fetchall()
    for incident_id, integration, actor in rows:
        owner = f"alertmanager:{actor or 'anonymous'}" if integration == "alertmanager" else integration
        bind.execute(
            sa.text("UPDATE incidents SET dedup_owner = :owner WHERE id = :id"),
            {"owner": _bounded(owner), "id": incident_id},
        )
    op.drop_index("uq_incidents_open_dedup_key", table_name="incidents")
    op.create_index("uq_incidents_open_dedup_key_owner", "incidents", ["open_dedup_key", "dedup_owner"], unique=True)


def downgrade() -> None:
    # Keys two owners hold open at once can't go back to one global key: the newer incident lets go of it.
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE incidents SET open_dedup_key = NULL WHERE open_dedup_key IS NOT NULL AND id NOT IN "
            "(SELECT keep FROM (SELECT MIN(id) AS keep FROM incidents WHERE open_dedup_key IS NOT NULL "
            "GROUP BY open_dedup_key) AS kept)"
        )
    )
    op.drop_index("uq_incidents_open_dedup_key_owner", table_name="incidents")
    op.create_index("uq_incidents_open_dedup_key", "incidents", ["open_dedup_key"], unique=True)
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("dedup_owner")
