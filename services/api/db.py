"""The `databases` connection: SQLite (WAL) by default, MySQL through asyncmy; the only module that opens it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from asyncmy.errors import DataError as MySQLDataError
from asyncmy.errors import IntegrityError as MySQLIntegrityError
from asyncmy.errors import InterfaceError as MySQLInterfaceError
from asyncmy.errors import OperationalError as MySQLOperationalError
from databases import Database

DUPLICATE_KEY_ERRORS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, MySQLIntegrityError)
VALUE_REFUSED_ERRORS: tuple[type[BaseException], ...] = (sqlite3.DataError, MySQLDataError)
"""The database refused a value (too long, not valid text for its character set): the request's fault."""
DATA_TOO_LONG = 1406  # MariaDB's ER_DATA_TOO_LONG
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    MySQLOperationalError,
    MySQLInterfaceError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def to_micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class Db:
    """A `databases.Database` plus what the dialects need: SQLite writers serialise in-process."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "mysql"
        options: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            options["timeout"] = 30
        else:
            # Recycle below MariaDB's default wait_timeout (8 h) and keep the pool bounded.
            options.update(min_size=1, max_size=pool_size, pool_recycle=3600, connect_timeout=5)
        self.database = Database(url, **options)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def connect(self) -> None:
        await self.database.connect()
        if self.is_sqlite:
            await self.database.execute("PRAGMA journal_mode=WAL")

    async def disconnect(self) -> None:
        await self.database.disconnect()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """A write transaction. On SQLite, writers take a process lock so none hits SQLITE_BUSY."""
        if self._write_lock is None:
            async with self.database.transaction():
                yield
            return
        async with self._write_lock, self.database.connection() as connection:
            await connection.execute("PRAGMA synchronous=NORMAL")
            async with connection.transaction():
                yield

    def session(self) -> Any:
        """Hold one connection for several reads (on SQLite each bare statement opens a connection)."""
        return self.database.connection()

    async def affected_rows(self) -> int:
        query = "SELECT changes()" if self.is_sqlite else "SELECT ROW_COUNT()"
        return int(await self.database.fetch_val(query) or 0)

    async def ping(self) -> None:
        await asyncio.wait_for(self.database.fetch_val("SELECT 1"), timeout=2)
