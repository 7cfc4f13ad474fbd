"""Where a console stream starts, and the setting that bounds a catch-up."""

from __future__ import annotations

import pytest

from services.api.console.live import Start, parse_last_event_id, start_after
from services.api.settings import ApiSettings
from services.api.web.errors import BadRequest
from shared.config import ConfigError


def test_a_new_stream_starts_after_the_last_stored_event() -> None:
    assert start_after(None, last_seq=41, catchup_max=1000) == Start(first_seq=42, reset=False)


def test_a_resumed_stream_starts_right_after_the_last_event_seen() -> None:
    assert start_after(30, last_seq=41, catchup_max=1000) == Start(first_seq=31, reset=False)
    assert start_after(41, last_seq=41, catchup_max=1000) == Start(first_seq=42, reset=False)


def test_a_stream_too_far_behind_starts_now_and_asks_for_a_reload() -> None:
    assert start_after(10, last_seq=41, catchup_max=30) == Start(first_seq=42, reset=True)
    assert start_after(11, last_seq=41, catchup_max=30) == Start(first_seq=12, reset=False)


def test_an_id_from_another_stream_asks_for_a_reload() -> None:
    """The stream was recreated (its sequence is lower than what the browser saw)."""
    assert start_after(500, last_seq=41, catchup_max=1000) == Start(first_seq=42, reset=True)


@pytest.mark.parametrize(("raw", "parsed"), [(None, None), ("", None), ("12", 12), (" 7 ", 7), ("9" * 20, 10**20 - 1)])
def test_last_event_id_is_a_stream_sequence(raw: str | None, parsed: int | None) -> None:
    assert parse_last_event_id(raw) == parsed


@pytest.mark.parametrize("raw", ["x1", "-3", "1.5", "²", "٣", "9" * 21, "9" * 5000])
def test_a_malformed_last_event_id_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest, match="Last-Event-ID"):
        parse_last_event_id(raw)


def test_the_catchup_limit_is_a_setting_checked_at_start() -> None:
    assert ApiSettings.from_env({}).stream_catchup_max == 1000
    assert ApiSettings.from_env({"STREAM_CATCHUP_MAX_EVENTS": "50"}).stream_catchup_max == 50
    with pytest.raises(ConfigError, match="STREAM_CATCHUP_MAX_EVENTS"):
        ApiSettings.from_env({"STREAM_CATCHUP_MAX_EVENTS": "lots"})
    with pytest.raises(ConfigError, match="STREAM_CATCHUP_MAX_EVENTS"):
        ApiSettings.from_env({"STREAM_CATCHUP_MAX_EVENTS": "-1"})
