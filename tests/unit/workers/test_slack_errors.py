"""Slack answers HTTP 200 with `ok: false`: those error codes map to retry-later or give-up."""

from __future__ import annotations

from typing import Any

import pytest

from services.workers.errors import PermanentError, RateLimited, RetryableError
from services.workers.http import Request
from services.workers.slack.api import slack_error
from services.workers.slack.settings import SlackSettings
from services.workers.slack.worker import SlackWorker
from tests.fakes.sender import HandlerSender, answer


def test_ok_true_is_no_error() -> None:
    assert slack_error("chat.postMessage", {"ok": True, "ts": "1.2"}) is None


@pytest.mark.parametrize("code", ["internal_error", "fatal_error", "service_unavailable", "request_timeout"])
def test_slack_side_trouble_is_retryable(code: str) -> None:
    error = slack_error("chat.postMessage", {"ok": False, "error": code})
    assert isinstance(error, RetryableError) and not isinstance(error, RateLimited)


def test_ratelimited_uses_the_retry_after_header() -> None:
    response = answer(200, headers={"Retry-After": "12"})
    error = slack_error("chat.update", {"ok": False, "error": "ratelimited"}, response)
    assert isinstance(error, RateLimited) and error.retry_after == 12.0


@pytest.mark.parametrize("code", ["channel_not_found", "invalid_auth", "not_in_channel", "msg_too_long"])
def test_other_codes_are_permanent(code: str) -> None:
    assert isinstance(slack_error("chat.postMessage", {"ok": False, "error": code}), PermanentError)


def test_a_body_that_is_not_an_object_is_permanent() -> None:
    assert isinstance(slack_error("chat.postMessage", None), PermanentError)


def slack_answering(status: int, body: Any, headers: dict[str, str] | None = None) -> SlackWorker:
    settings = SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "C1"})
    return SlackWorker(settings, HandlerSender(lambda sent: answer(status, body, headers)))


async def test_the_worker_raises_what_ok_false_means() -> None:
    with pytest.raises(PermanentError, match="channel_not_found"):
        await slack_answering(200, {"ok": False, "error": "channel_not_found"}).call(Request("POST", "/chat.update"))
    with pytest.raises(RetryableError, match="internal_error"):
        await slack_answering(200, {"ok": False, "error": "internal_error"}).call(Request("POST", "/chat.update"))


async def test_an_http_429_is_rate_limited() -> None:
    worker = slack_answering(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "4"})
    with pytest.raises(RateLimited) as caught:
        await worker.call(Request("POST", "/chat.postMessage"))
    assert caught.value.retry_after == 4.0


async def test_the_bot_token_is_sent_as_bearer() -> None:
    sender = HandlerSender(lambda sent: answer(200, {"ok": True}))
    settings = SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "C1"})
    await SlackWorker(settings, sender).call(Request("POST", "/chat.update", json={"channel": "C1"}))
    seen = sender.sent
    assert seen[0].headers["authorization"] == "Bearer xoxb-1"
    assert seen[0].url == "https://slack.com/api/chat.update"
