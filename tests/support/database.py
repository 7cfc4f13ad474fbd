"""Fresh, migrated databases for tests: a SQLite file, or a new schema on the shared MariaDB server."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic.config import Config

from alembic import command
from tests.support.mariadb import MariaDB
from tests.support.processes import ROOT


def migrate(url: str, revision: str = "head") -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


def downgrade(url: str, revision: str = "base") -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.downgrade(config, revision)


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'incidents.db'}"


def new_mysql_database(server_url: str, run_sql: object) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    assert callable(run_sql)
    run_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;")
    return f"{server_url}/{name}"


def migrated_database(server: MariaDB) -> str:
    """A new database on `server`, migrated to head. Sync on purpose: alembic runs its own event loop."""
    url = new_mysql_database(server.admin_url, server.sql)
    migrate(url)
    return url
