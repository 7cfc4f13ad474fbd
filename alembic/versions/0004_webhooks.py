"""Webhooks out: nothing in SQL.

Endpoints and their secrets live in the JetStream key-value bucket `webhook-endpoints`, which the
webhooks worker (which never sees the database) watches, and the delivery log on the stream
WEBHOOK_DELIVERIES (see docs/webhooks.md). Redelivery reads events from `incident_events`,
which exists already. The revision stays, empty, to keep the chain 0001 → 0004.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
