"""Multi-row inserts straight on the driver under `databases`: one round trip per table for a whole batch.

Compiling SQL through `databases` and SQLAlchemy cost more CPU than the database itself; a batch of N
creates here is one statement per table (incidents, events, outbox, idempotency keys, comments when
there are any) whatever N is, more only past the statement size limits below.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from services.api.storage.db import Db
from services.api.storage.tables import incidents, metadata


def inserted_columns(table: sa.Table) -> tuple[str, ...]:
    """The columns an INSERT names, in the table's order: all but the auto-increment id and computed ones."""
    return tuple(c.name for c in table.columns if c is not table.autoincrement_column and c.computed is None)


_COLUMNS = {table.name: inserted_columns(table) for table in metadata.sorted_tables}
# What a change may rewrite: everything an insert writes but the creation time.
UPDATE_COLUMNS = tuple(c for c in _COLUMNS[incidents.name] if c != "created_at")
# A row's values in its table's column order, from a mapping of column names: one C call per row.
_VALUES: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    name: operator.itemgetter(*columns) for name, columns in _COLUMNS.items()
}
_UPDATE_VALUES: Callable[[Mapping[str, Any]], tuple[Any, ...]] = operator.itemgetter(*UPDATE_COLUMNS)


# One statement stays under SQLite's bound-variable limit (32,766) and far under MariaDB's max_allowed_packet
# (16 MiB by default): a change's event carries the whole incident, up to 1 MiB with many comments.
MAX_STATEMENT_VALUES = 30_000
MAX_STATEMENT_BYTES = 4 * 1024 * 1024


def _chunks(rows: Sequence[Sequence[Any]]) -> list[Sequence[Sequence[Any]]]:
    chunks: list[Sequence[Sequence[Any]]] = []
    start, values, size = 0, 0, 0
    for index, row in enumerate(rows):
        row_size = _sent_size(row)
        if index > start and (values + len(row) > MAX_STATEMENT_VALUES or size + row_size > MAX_STATEMENT_BYTES):
            chunks.append(rows[start:index])
            start, values, size = index, 0, 0
        values += len(row)
        size += row_size
    chunks.append(rows[start:])
    return chunks


def _sent_size(row: Sequence[Any]) -> int:
    """Bytes a row's values take in the statement: text goes to MariaDB as hex, two characters a UTF-8 byte.
    One loop, no call per value: this runs for every value of every row written."""
    size = 0
    for value in row:
        if isinstance(value, str):
            size += 2 * (len(value) if value.isascii() else len(value.encode())) + 3
        elif isinstance(value, bytes):
            size += 2 * len(value) + 3
        else:
            size += 8
    return size


async def insert_rows(
    db: Db, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, returning_ids: bool = False
) -> list[int]:
    """Insert `rows` (each a mapping of the table's column names) inside the current transaction, in as few
    statements as the limits allow; the new ids in insertion order.

    Both MariaDB (≥ 10.5) and SQLite (≥ 3.35) take `INSERT ... RETURNING`. Auto-increment ids grow within
    one statement and from one statement to the next, so sorting the returned ids of each statement gives
    them in the order of the rows.
    """
    values = list(map(_VALUES[table.name], rows))
    found: list[int] = []
    for chunk in _chunks(values) if values else []:
        sql, params = multi_row_insert(table.name, chunk, sqlite=db.is_sqlite, returning_ids=returning_ids)
        found += await _insert(db, sql, params, returning_ids)
    return found


def multi_row_insert(
    table: str, rows: Sequence[Sequence[Any]], *, sqlite: bool, returning_ids: bool = False
) -> tuple[str, list[Any]]:
    """One INSERT of `rows` (values in the order of the table's inserted columns) and its parameters: bound
    variables on SQLite, literals in the text on MariaDB (none left to bind)."""
    columns = _COLUMNS[table]  # only our own table and column names are ever put into the SQL
    names = ",".join(f"`{c}`" if c == "key" else c for c in columns)
    returning = " RETURNING id" if returning_ids else ""
    if sqlite:
        one = "(" + ",".join(["?"] * len(columns)) + ")"
        sql = f"INSERT INTO {table} ({names}) VALUES {','.join([one] * len(rows))}{returning}"  # noqa: S608
        return sql, [value for row in rows for value in row]
    values = ",".join("(" + ",".join(map(mysql_literal, row)) + ")" for row in rows)
    return f"INSERT INTO {table} ({names}) VALUES {values}{returning}", []  # noqa: S608


async def _insert(db: Db, sql: str, params: list[Any], returning_ids: bool) -> list[int]:
    raw = db.database.connection().raw_connection
    if db.is_sqlite:
        cursor = await raw.execute(sql, params)
        try:
            found = await cursor.fetchall() if returning_ids else []
        finally:
            await cursor.close()
    else:
        async with raw.cursor() as cursor:
            await cursor.execute(sql)
            found = await cursor.fetchall() if returning_ids else []
    return sorted(int(row[0]) for row in found)


def mysql_literal(value: str | bytes | int | None) -> str:
    """A value as MariaDB reads it back exactly. Text as a hex literal: nothing to escape, so nothing that
    depends on sql_mode or the connection's character set, and several times cheaper than the driver's
    escaping, which walks every character (measured: half the client CPU of a 20-row insert).

    Only exact `str`, `bytes`, `int` and `None`: a subclass (an enum, a bool) may render as something else
    than its value, and the driver's fallback escapes with backslashes, which `NO_BACKSLASH_ESCAPES` reads
    differently. Anything else is a bug of the caller, refused before it reaches the database."""
    if type(value) is str:
        return "X'" + value.encode().hex() + "'"
    if type(value) is int:
        return str(value)
    if value is None:
        return "NULL"
    if type(value) is bytes:
        return "X'" + value.hex() + "'"
    raise TypeError(f"no SQL literal for a value of type {type(value).__name__}: pass str, bytes, int or None")


async def update_incidents(db: Db, changes: Sequence[tuple[Mapping[str, Any], int, int]]) -> int:
    """Each change: the incident's column values by name, its id and the version it was loaded at. One
    prepared statement of UPDATE_COLUMNS for all (no SQL compiled per change); the number of rows updated."""
    if not changes:
        return 0
    rows = [(*_UPDATE_VALUES(values), incident_id, version) for values, incident_id, version in changes]
    mark = "?" if db.is_sqlite else "%s"
    sets = ",".join(f"{column}={mark}" for column in UPDATE_COLUMNS)
    sql = f"UPDATE incidents SET {sets} WHERE id={mark} AND version={mark}"  # noqa: S608
    raw = db.database.connection().raw_connection
    if db.is_sqlite:
        cursor = await raw.executemany(sql, rows)
        try:
            return int(cursor.rowcount)
        finally:
            await cursor.close()
    async with raw.cursor() as cursor:
        await cursor.executemany(sql, rows)
        return int(cursor.rowcount)
