"""Multi-row inserts are split so that each statement fits the databases' limits."""

from __future__ import annotations

from services.api.storage.bulk import MAX_STATEMENT_BYTES, MAX_STATEMENT_VALUES, _chunks, mysql_literal


def test_small_batches_are_one_statement() -> None:
    rows = [[i, "x"] for i in range(100)]
    assert _chunks(rows) == [rows]


def test_a_batch_over_the_bound_variable_limit_is_split_in_order() -> None:
    rows = [[i, "a", "b"] for i in range(MAX_STATEMENT_VALUES)]  # three values per row: 3x the limit
    chunks = _chunks(rows)
    assert len(chunks) == 3
    assert all(sum(len(r) for r in chunk) <= MAX_STATEMENT_VALUES for chunk in chunks)
    assert [row for chunk in chunks for row in chunk] == rows


def test_large_payloads_are_split_by_size_and_a_single_huge_row_still_goes() -> None:
    big = "p" * (MAX_STATEMENT_BYTES // 6)  # a third of a statement once sent as hex
    rows = [[i, big] for i in range(10)]
    chunks = _chunks(rows)
    assert len(chunks) == 5 and all(len(chunk) == 2 for chunk in chunks)
    for chunk in chunks:  # the values as MariaDB receives them fit
        assert sum(len(mysql_literal(value)) for row in chunk for value in row) <= MAX_STATEMENT_BYTES
    huge = [[0, "p" * (MAX_STATEMENT_BYTES * 2)]]
    assert _chunks(huge) == [huge]


def test_the_size_counts_utf8_bytes_of_text_not_characters() -> None:
    emoji = "🔥" * (MAX_STATEMENT_BYTES // 24)  # four bytes each: a third of a statement as hex
    rows = [[i, emoji] for i in range(6)]
    chunks = _chunks(rows)
    assert len(chunks) == 3
    for chunk in chunks:
        assert sum(len(mysql_literal(value)) for row in chunk for value in row) <= MAX_STATEMENT_BYTES
