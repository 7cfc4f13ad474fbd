"""SQLAlchemy Core descriptions of the tables, for building parameterised queries. alembic owns the schema."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; MySQL gets BIGINT.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("acknowledged", sa.String(3), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),
    sa.Column("deleted_at", sa.BigInteger(), nullable=True),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("source", sa.String(255), nullable=True),
    sa.Column("labels", sa.Text(), nullable=True),
    sa.Column("dedup_key", sa.String(255), nullable=True),
    # The dedup key while the incident is open, else NULL: unique, so one open incident per key.
    sa.Column("open_dedup_key", sa.String(255), nullable=True),
    sa.Column("firing_alerts", sa.Text(), nullable=True),
    sa.Column("last_alert_at", sa.BigInteger(), nullable=True),
    sa.Column("integration", sa.String(64), nullable=True),
    sa.Column("alert_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
    # Who the dedup key belongs to ("" for the API's own clients): one open incident per key and owner.
    sa.Column("dedup_owner", sa.String(255), nullable=False, server_default=sa.text("''")),
    sa.Index("uq_incidents_open_dedup_key_owner", "open_dedup_key", "dedup_owner", unique=True),
    sqlite_autoincrement=True,
)

incident_comments = sa.Table(
    "incident_comments",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.BigInteger(), sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("incident_id", "position", name="uq_incident_comments_position"),
)

incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("incident_id", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("payload", LongText, nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("incident_id", "version", name="uq_incident_events_version"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_row_id", sa.BigInteger(), nullable=False),
    sa.Column("incident_id", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Index("ix_outbox_incident_id", "incident_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=False),
    sa.Column("response", sa.Text(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)
