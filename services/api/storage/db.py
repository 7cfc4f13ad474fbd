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
from databases.core import Connection, Transaction

DUPLICATE_KEY_ERRORS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, MySQLIntegrityError)
VALUE_REFUSED_ERRORS: tuple[type[BaseException], ...] = (sqlite3.DataError, MySQLDataError)
"""The database refused a value (too long, not valid text for its character set): the request's fault."""
DATA_TOO_LONG = 1406  # MariaDB's ER_DATA_TOO_LONG
LOCK_CONFLICTS = frozenset({1205, 1213})  # MariaDB's ER_LOCK_WAIT_TIMEOUT and ER_LOCK_DEADLOCK
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    MySQLOperationalError,
    MySQLInterfaceError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def is_lock_conflict(exc: BaseException) -> bool:
    """Another transaction held the rows (we were the deadlock's victim, or waited too long for a lock): the
    database is up, our transaction was rolled back, and running it again is all it takes."""
    return isinstance(exc, MySQLOperationalError) and bool(exc.args) and exc.args[0] in LOCK_CONFLICTS


def to_micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class _Transaction(Transaction):
    """databases' transaction, except that its connection is given back whatever BEGIN, COMMIT or ROLLBACK raise.

    databases 0.9 skips the release when the driver's call raises (a ROLLBACK on a connection that MariaDB's
    restart killed): the task's connection then keeps its count above zero and holds the dead driver
    connection for the rest of the task's life, so every later statement of a long-lived task (the relay,
    the group commit's writer) fails with `(0, 'Not connected')`, and the pool never gets the slot back.
    Given back, a broken or mid-transaction driver connection is closed by the pool instead of reused.
    """

    async def start(self) -> _Transaction:
        connection = self._connection
        self._transaction = backend = connection._connection.transaction()
        async with connection._transaction_lock:
            is_root = not connection._transaction_stack
            await connection.__aenter__()
            try:
                await backend.start(is_root=is_root, extra_options=self._extra_options)
            except BaseException:
                self._transaction = None
                await connection.__aexit__()
                raise
            connection._transaction_stack.append(self)
        return self

    async def commit(self) -> None:
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        connection = self._connection
        async with connection._transaction_lock:
            assert connection._transaction_stack[-1] is self
            connection._transaction_stack.pop()
            backend = self._transaction
            assert backend is not None
            self._transaction = None
            try:
                await (backend.commit() if commit else backend.rollback())
            finally:
                await connection.__aexit__()


class _Connection(Connection):
    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return _Transaction(lambda: self, force_rollback, **kwargs)


class _Database(Database):
    """A `databases.Database` whose connections always go back to the pool (see `_Transaction`)."""

    def connection(self) -> Connection:
        if self._global_connection is not None:
            return self._global_connection
        if not self._connection:
            self._connection = _Connection(self, self._backend)
        return self._connection

    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return _Transaction(self.connection, force_rollback=force_rollback, **kwargs)


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
            # Recycle below MariaDB's default wait_timeout (8 h) and keep the pool bounded. No connection is
            # opened at start: an API started while the database is down serves 503 and becomes ready when
            # it returns, instead of exiting (a crash loop that would outlast the database's own restart).
            options.update(min_size=0, max_size=pool_size, pool_recycle=3600, connect_timeout=5)
        self.database: Database = _Database(url, **options)
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

    async def ping(self) -> None:
        await asyncio.wait_for(self.database.fetch_val("SELECT 1"), timeout=2)
