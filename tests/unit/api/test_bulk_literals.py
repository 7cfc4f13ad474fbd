"""The SQL literals of the group's multi-row inserts: only exact str, bytes, int and None become SQL text."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.api.storage.bulk import mysql_literal
from shared.events import EventType


class Text(str):
    """A str subclass, as a library or an enum hands one over."""


class Mode(enum.StrEnum):
    QUOTE = "it's \\ here"


def test_exact_text_bytes_integers_and_null_become_literals() -> None:
    assert mysql_literal("it's") == "X'69742773'"
    assert mysql_literal("é\\'\0") == "X'" + "é\\'\0".encode().hex() + "'"
    assert mysql_literal(b"\x00\xff") == "X'00ff'"
    assert mysql_literal(-42) == "-42"
    assert mysql_literal(2**63 - 1) == str(2**63 - 1)
    assert mysql_literal(None) == "NULL"


@pytest.mark.parametrize(
    "value",
    [
        Text("it's \\ here"),
        Mode.QUOTE,
        EventType.CREATED,
        True,
        False,
        1.5,
        Decimal("1.5"),
        datetime(2026, 12, 5, tzinfo=UTC),
        bytearray(b"x"),
        ["a"],
        {"a": "b"},
    ],
    ids=lambda value: type(value).__name__,
)
def test_anything_else_is_refused_before_the_driver_escapes_it(value: Any) -> None:
    # A str subclass must never reach the driver's backslash escaping (read differently under
    # NO_BACKSLASH_ESCAPES), and a bool must not become 1 by accident of its type.
    with pytest.raises(TypeError, match="no SQL literal"):
        mysql_literal(value)
