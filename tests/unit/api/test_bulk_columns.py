"""The write path's column lists come from tables.py: every column is written, in the table's order, by name."""

from __future__ import annotations

import re

import sqlalchemy as sa

from services.api.incidents.domain import AlertFields, Incident
from services.api.storage.bulk import UPDATE_COLUMNS, inserted_columns, multi_row_insert
from services.api.storage.repository import _incident_values
from services.api.storage.tables import incidents, metadata
from shared.events import utcnow


def _named(sql: str) -> list[str]:
    found = re.match(r"INSERT INTO \w+ \(([^)]*)\) VALUES", sql)
    assert found is not None, sql
    return [name.strip("`") for name in found.group(1).split(",")]


def test_an_insert_names_every_column_of_its_table_but_the_generated_ones() -> None:
    for table in metadata.sorted_tables:
        written = [c.name for c in table.columns if c is not table.autoincrement_column and c.computed is None]
        row = [None] * len(written)
        for sqlite in (True, False):
            sql, _ = multi_row_insert(table.name, [row], sqlite=sqlite)
            assert _named(sql) == written, table.name


def test_a_column_added_to_a_table_is_inserted_without_another_list() -> None:
    table = sa.Table(
        "probe",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(8)),
        sa.Column("rank", sa.Integer(), sa.Computed("1")),
        sa.Column("added", sa.String(8)),
    )
    assert inserted_columns(table) == ("name", "added")


def test_the_incident_row_has_a_value_for_every_written_column() -> None:
    incident = Incident.open("disk full", utcnow(), AlertFields(source="node-1", labels=(("team", "ops"),)))
    values = _incident_values(incident)
    assert sorted(values) == sorted(inserted_columns(incidents))
    assert set(UPDATE_COLUMNS) == set(values) - {"created_at"}


def test_mariadb_rows_are_literals_and_sqlite_rows_are_bound_in_column_order() -> None:
    rows = [("k1", "f1", 200, "{}", 1), ("k2", "f2", 201, "[]", 2)]
    sql, params = multi_row_insert("idempotency_keys", rows, sqlite=True, returning_ids=True)
    assert sql.endswith("VALUES (?,?,?,?,?),(?,?,?,?,?) RETURNING id")
    assert params == [value for row in rows for value in row]
    sql, params = multi_row_insert("idempotency_keys", rows, sqlite=False)
    assert params == []
    assert sql.endswith(f"VALUES (X'{b'k1'.hex()}',X'{b'f1'.hex()}',200,X'{b'{}'.hex()}',1),(" + sql.split("),(")[1])
    assert _named(sql) == ["key", "fingerprint", "status_code", "response", "created_at"]
