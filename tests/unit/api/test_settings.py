"""The API's relay settings: bounded by the shared relay contract, a bad value stops the start."""

from __future__ import annotations

import pytest

from services.api.settings import ApiSettings
from shared.config import ConfigError
from shared.relay import MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES, NATS_MAX_PAYLOAD


def test_relay_settings_have_defaults_and_are_read_from_the_environment() -> None:
    assert ApiSettings.from_env({}).relay_batch_size == 500
    settings = ApiSettings.from_env(
        {"OUTBOX_BATCH_SIZE": str(MAX_EVENTS_PER_REQUEST), "RELAY_STALL_SECONDS": "30", "RELAY_RETRY_MAX_SECONDS": "2"}
    )
    assert (settings.relay_batch_size, settings.relay_stall_seconds, settings.relay_retry_max_seconds) == (
        MAX_EVENTS_PER_REQUEST,
        30.0,
        2.0,
    )


def test_a_batch_larger_than_the_event_handler_takes_stops_the_start() -> None:
    with pytest.raises(ConfigError, match=r"OUTBOX_BATCH_SIZE must be at most 1000 .*got 5000"):
        ApiSettings.from_env({"OUTBOX_BATCH_SIZE": "5000"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("OUTBOX_BATCH_SIZE", "0"), ("RELAY_STALL_SECONDS", "0.5"), ("RELAY_RETRY_MAX_SECONDS", "soon")],
)
def test_bad_relay_values_stop_the_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ApiSettings.from_env({name: value})


def test_the_limits_fit_in_one_nats_message() -> None:
    assert MAX_EVENT_BYTES < MAX_REQUEST_BYTES < NATS_MAX_PAYLOAD


def test_group_commit_max_is_bounded_so_one_insert_fits_sqlites_variable_limit() -> None:
    assert ApiSettings.from_env({}).group_commit_max == 256
    assert ApiSettings.from_env({"GROUP_COMMIT_MAX": "1000"}).group_commit_max == 1000
    with pytest.raises(ConfigError, match="GROUP_COMMIT_MAX"):
        ApiSettings.from_env({"GROUP_COMMIT_MAX": "1001"})
    with pytest.raises(ConfigError, match="GROUP_COMMIT_MAX"):
        ApiSettings.from_env({"GROUP_COMMIT_MAX": "0"})
