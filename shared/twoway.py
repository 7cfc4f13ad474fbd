"""Two-way sync's cross-service contract: the Slack buttons the worker draws and the API reads, the vendors'
signature headers, the actor names of outside changes, and the tags that tie outside objects to incidents."""

from __future__ import annotations

import enum

SLACK_ACTIONS_BLOCK = "incident-actions"
SLACK_SIGNATURE_HEADER = "x-slack-signature"
SLACK_TIMESTAMP_HEADER = "x-slack-request-timestamp"
JIRA_SIGNATURE_HEADER = "x-hub-signature"
JIRA_DELIVERY_HEADER = "x-atlassian-webhook-identifier"
ZENDESK_SIGNATURE_HEADER = "x-zendesk-webhook-signature"
ZENDESK_TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
ZENDESK_INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
SIGNATURE_WINDOW_SECONDS = 300
"""Slack's and Zendesk's signed timestamps may be at most this far from now, either way."""
OUTSIDE_VENDORS = ("slack", "jira", "zendesk")


class ButtonAction(enum.StrEnum):
    """A Slack button's `action_id`; its text is the capitalised word."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REOPEN = "reopen"

    @property
    def text(self) -> str:
        return self.value.capitalize()


def button_value(incident_id: int, version: int) -> str:
    """What a button carries: the incident and the version the message was drawn for."""
    return f"{incident_id}:{version}"


def parse_button_value(value: str) -> tuple[int, int] | None:
    incident, sep, version = value.partition(":")
    if not sep or not incident.isdigit() or not version.isdigit() or not incident.isascii() or not version.isascii():
        return None
    if len(incident) > 19 or len(version) > 19:
        return None
    return int(incident), int(version)


def outside_actor(vendor: str, name: str) -> str:
    """`slack:<user name>`, `jira:<display name>`, `zendesk:<name>`."""
    return f"{vendor}:{' '.join(name.split())[:100] or 'unknown'}"


def is_outside_actor(actor: str | None) -> bool:
    return bool(actor) and str(actor).partition(":")[0] in OUTSIDE_VENDORS and ":" in str(actor)


def incident_of_tag(tag: str | None) -> int | None:
    """The incident id in a Jira label or Zendesk external_id `incident-<id>`."""
    if not tag or not tag.startswith("incident-"):
        return None
    digits = tag.removeprefix("incident-")
    if not digits.isdigit() or not digits.isascii() or len(digits) > 19 or int(digits) < 1:
        return None
    return int(digits)
