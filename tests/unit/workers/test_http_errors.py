"""Outside answers mapped to the error tree: 429 and 5xx retry later, other 4xx are permanent."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.workers.deadline import sync_deadline
from services.workers.errors import PermanentError, RateLimited, RetryableError, WorkerError
from services.workers.http import Request, VendorHttp, parse_retry_after
from services.workers.httpclient import ConnectFailed, Response, TransportError
from shared.config import ConfigError
from tests.fakes.sender import Handler, HandlerSender, Sent, answer


def vendor(handler: Handler) -> VendorHttp:
    return VendorHttp("test", HandlerSender(handler), "https://vendor.example/api/")


def answering(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None
) -> VendorHttp:
    return vendor(lambda sent: answer(status, body, headers, text=text))


def failing(exc: Exception) -> VendorHttp:
    def handler(sent: Sent) -> Response:
        raise exc

    return vendor(handler)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable_and_may_have_been_applied(status: int) -> None:
    with pytest.raises(RetryableError) as caught:
        await answering(status, {"error": "boom"}).json(Request("POST", "/things"))
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.maybe_applied and str(status) in str(caught.value)


async def test_429_is_rate_limited_for_its_retry_after() -> None:
    with pytest.raises(RateLimited) as caught:
        await answering(429, headers={"Retry-After": "3"}).json(Request("GET", "/things"))
    assert caught.value.retry_after == 3.0 and caught.value.delay == 3.0
    assert not caught.value.maybe_applied


async def test_409_is_retryable_and_surely_not_applied() -> None:
    """Zendesk answers 409 to concurrent updates of one ticket and expects a retry."""
    with pytest.raises(RetryableError) as caught:
        await answering(409, {"error": "RecordInvalid"}).json(Request("PUT", "/tickets/1.json"))
    assert not isinstance(caught.value, RateLimited)
    assert not caught.value.maybe_applied and caught.value.delay is None
    with pytest.raises(RetryableError) as caught:
        await answering(409, headers={"Retry-After": "4"}).json(Request("PUT", "/tickets/1.json"))
    assert caught.value.delay == 4.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_permanent(status: int) -> None:
    with pytest.raises(PermanentError):
        await answering(status, {"errorMessages": ["no"]}).json(Request("POST", "/things"))


async def test_a_refused_connection_surely_did_nothing() -> None:
    with pytest.raises(RetryableError) as caught:
        await failing(ConnectFailed("refused")).json(Request("POST", "/things"))
    assert not caught.value.maybe_applied


async def test_a_read_timeout_may_have_been_applied() -> None:
    with pytest.raises(RetryableError) as caught:
        await failing(TimeoutError()).json(Request("POST", "/things"))
    assert caught.value.maybe_applied


async def test_a_connection_lost_after_sending_may_have_been_applied() -> None:
    with pytest.raises(RetryableError) as caught:
        await failing(TransportError("the server closed the connection", sent=True)).json(Request("POST", "/x"))
    assert caught.value.maybe_applied


async def test_a_2xx_that_is_not_json_is_retried() -> None:
    with pytest.raises(RetryableError):
        await answering(200, text="<html>maintenance</html>").json(Request("GET", "/things"))


async def test_an_empty_2xx_is_none_and_the_url_joins_base_and_path() -> None:
    sender = HandlerSender(lambda sent: answer(204))
    http = VendorHttp("test", sender, "https://vendor.example/api/")
    result = await http.json(Request("PUT", "/x/1", json={"a": 1}, params={"q": "z"}))
    assert result is None
    assert sender.sent[0].url == "https://vendor.example/api/x/1?q=z"
    assert sender.sent[0].json() == {"a": 1}


def test_retry_after_accepts_seconds_and_http_dates_and_defaults_when_missing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 30
    assert parse_retry_after(None) == parse_retry_after("garbage") == 10.0
    assert parse_retry_after("0") == 0.0 and parse_retry_after("99999") == 3600.0
    # not delta-seconds (RFC 9110) nor a date: the default, as for any unreadable value
    assert parse_retry_after("-5") == parse_retry_after("nan") == parse_retry_after("1e9") == 10.0


def test_the_error_tree() -> None:
    assert issubclass(RateLimited, RetryableError) and issubclass(RetryableError, WorkerError)
    assert issubclass(PermanentError, WorkerError) and not issubclass(PermanentError, RetryableError)


async def test_a_call_still_unanswered_at_the_sync_deadline_may_have_been_applied() -> None:
    async def slow(sent: Sent) -> Response:
        await asyncio.Event().wait()  # a vendor that never answers
        return answer(200)

    started = time.monotonic()
    with sync_deadline(0.2), pytest.raises(RetryableError, match="deadline") as caught:
        await vendor(slow).json(Request("POST", "/things"))
    assert caught.value.maybe_applied and time.monotonic() - started < 5


async def test_no_call_is_sent_once_the_sync_deadline_has_passed() -> None:
    sender = HandlerSender(lambda sent: answer(200))
    with sync_deadline(0.0), pytest.raises(RetryableError, match="not sent") as caught:
        await VendorHttp("test", sender, "https://vendor.example/api/").json(Request("GET", "/x"))
    assert not caught.value.maybe_applied and sender.sent == []


def test_a_base_url_without_a_host_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        VendorHttp("test", HandlerSender(lambda sent: answer(200)), "https://")
