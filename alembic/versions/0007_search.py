"""Search and triage for the console: a full-text index over incidents and comments, and a severity rank.

- `severity_rank`: a virtual generated column (0 critical … 3 info, 4 none) with an index on
  (status, severity_rank, acknowledged, id): "open incidents, most severe first, unacknowledged first, newest
  first" (the console's triage order) reads an index.
- MariaDB: FULLTEXT indexes on lower-cased generated copies of incidents (message, source, labels) and of
  incident_comments (body).
- SQLite: an FTS5 table `incident_search` (rowid = incident id) kept by triggers, filled from existing rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEVERITY_RANK = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 WHEN 'info' THEN 3 ELSE 4 END"
)

SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE incident_search USING fts5(message, source, labels, comments)",
    "INSERT INTO incident_search (rowid, message, source, labels, comments) "
    "SELECT i.id, i.message, COALESCE(i.source, ''), COALESCE(i.labels, ''), "
    "COALESCE((SELECT group_concat(c.body, ' ') FROM incident_comments c WHERE c.incident_id = i.id), '') "
    "FROM incidents i",
    "CREATE TRIGGER incident_search_insert AFTER INSERT ON incidents BEGIN "
    "INSERT INTO incident_search (rowid, message, source, labels, comments) "
    "VALUES (new.id, new.message, COALESCE(new.source, ''), COALESCE(new.labels, ''), ''); END",
    "CREATE TRIGGER incident_search_update AFTER UPDATE OF message, source, labels ON incidents BEGIN "
    "UPDATE incident_search SET message = new.message, source = COALESCE(new.source, ''), "
    "labels = COALESCE(new.labels, '') WHERE rowid = new.id; END",
    "CREATE TRIGGER incident_search_comment AFTER INSERT ON incident_comments BEGIN "
    "UPDATE incident_search SET comments = comments || ' ' || new.body WHERE rowid = new.incident_id; END",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE incidents ADD COLUMN severity_rank INTEGER GENERATED ALWAYS AS ({SEVERITY_RANK}) VIRTUAL"
        )
        for statement in SQLITE_SEARCH:
            op.execute(statement)
    else:
        # Lower-cased copies: a FULLTEXT index follows its column's collation, and utf8mb4_bin is case-sensitive.
        op.execute(
            f"ALTER TABLE incidents ADD COLUMN severity_rank INT AS ({SEVERITY_RANK}) VIRTUAL, "
            "ADD COLUMN search_text MEDIUMTEXT AS (LOWER(CONCAT_WS(' ', message, source, labels))) PERSISTENT, "
            "ADD FULLTEXT INDEX ft_incidents_search_text (search_text)"
        )
        op.execute(
            "ALTER TABLE incident_comments ADD COLUMN search_text MEDIUMTEXT AS (LOWER(body)) PERSISTENT, "
            "ADD FULLTEXT INDEX ft_incident_comments_search_text (search_text)"
        )
    # id descending, as the order is: the newest come first within a rank, with no sort step.
    op.create_index("ix_incidents_triage", "incidents", ["status", "severity_rank", "acknowledged", sa.text("id DESC")])


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_incidents_triage", table_name="incidents")
    if bind.dialect.name == "sqlite":
        for name in ("incident_search_comment", "incident_search_update", "incident_search_insert"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE incident_search")
        op.execute("ALTER TABLE incidents DROP COLUMN severity_rank")
    else:
        op.execute("ALTER TABLE incident_comments DROP INDEX ft_incident_comments_search_text, DROP COLUMN search_text")
        op.execute(
            "ALTER TABLE incidents DROP INDEX ft_incidents_search_text, DROP COLUMN search_text, "
            "DROP COLUMN severity_rank"
        )
