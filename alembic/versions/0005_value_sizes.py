"""Labels and firing alerts as MEDIUMTEXT on MariaDB: everything the API accepts fits.

MariaDB's TEXT holds 65,535 bytes. An incident's labels (64 of up to 1,024 characters, up to 4 UTF-8 bytes each,
or 6 once JSON escapes a control character) and an Alertmanager group's firing alerts (as many as a 1 MiB body
holds) can pass that; MEDIUMTEXT holds 16 MiB. Messages and comments (10,000 characters, at most 40,000 bytes)
fit in TEXT. SQLite's TEXT has no such limit, so nothing changes there. Existing rows keep their values.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("labels", "firing_alerts")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for name in COLUMNS:
        op.alter_column("incidents", name, type_=mysql.MEDIUMTEXT(), existing_type=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    # Fails (strict mode) rather than cut a value longer than TEXT holds.
    if op.get_bind().dialect.name == "sqlite":
        return
    for name in COLUMNS:
        op.alter_column("incidents", name, type_=sa.Text(), existing_type=mysql.MEDIUMTEXT(), existing_nullable=True)
