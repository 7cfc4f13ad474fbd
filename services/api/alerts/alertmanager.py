"""Prometheus Alertmanager webhook notifications (payload version 4) and what they mean for an incident."""

from __future__ import annotations

import hashlib
import re
from typing import Literal

import msgspec

from services.api.incidents.domain import (
    MAX_DEDUP_KEY_LENGTH,
    MAX_LABEL_KEY_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    MAX_MESSAGE_LENGTH,
    MAX_SOURCE_LENGTH,
    NOT_BLANK,
    AlertFields,
    InvalidInput,
    Severity,
)

_NOT_BLANK = re.compile(NOT_BLANK)  # compiled once: checked on every notification of a storm

# Alertmanager setups name severities in many ways; anything else unknown counts as a warning.
SEVERITY_ALIASES = {
    "critical": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "p1": Severity.CRITICAL,
    "high": Severity.ERROR,
    "error": Severity.ERROR,
    "err": Severity.ERROR,
    "major": Severity.ERROR,
    "p2": Severity.ERROR,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "minor": Severity.WARNING,
    "p3": Severity.WARNING,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "notice": Severity.INFO,
    "low": Severity.INFO,
    "debug": Severity.INFO,
    "none": Severity.INFO,
    "p4": Severity.INFO,
    "p5": Severity.INFO,
}


class Alert(msgspec.Struct):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    # Alertmanager's own field names.
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None

    @property
    def key(self) -> str:
        """The alert's identity: Alertmanager's fingerprint, or a hash of its labels."""
        if self.fingerprint:
            return self.fingerprint
        return hashlib.sha256(msgspec.json.encode(sorted(self.labels.items()))).hexdigest()[:16]


class Notification(msgspec.Struct):
    """One webhook notification for an alert group."""

    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    truncatedAlerts: int = 0


class NotificationResult(msgspec.Struct):
    status: str
    """INCIDENT CREATED, ALERTS RECORDED, INCIDENT RESOLVED or NOTHING TO RESOLVE."""
    dedup_key: str
    ID: str | None = None
    """The incident's id, named as `POST /incident/` names it."""


def dedup_key(notification: Notification) -> str:
    """The group's key; a hash of it when it is longer than a dedup key may be."""
    key = notification.groupKey
    if not _NOT_BLANK.search(key):
        raise InvalidInput("groupKey must not be empty")
    if len(key) <= MAX_DEDUP_KEY_LENGTH:
        return key
    return "alertmanager:" + hashlib.sha256(key.encode()).hexdigest()


def severity(labels: dict[str, str]) -> Severity | None:
    raw = labels.get("severity")
    if raw is None or not raw.strip():
        return None
    return SEVERITY_ALIASES.get(raw.strip().lower(), Severity.WARNING)


def message(notification: Notification) -> str:
    summary = notification.commonAnnotations.get("summary", "").strip()
    if summary:
        return summary[:MAX_MESSAGE_LENGTH]
    name = notification.groupLabels.get("alertname") or notification.commonLabels.get("alertname") or ""
    name = name.strip() if _NOT_BLANK.search(name) else "Alert"
    rest = ", ".join(f"{k}={v}" for k, v in sorted(notification.groupLabels.items()) if k != "alertname")
    return (f"{name} ({rest})" if rest else name)[:MAX_MESSAGE_LENGTH]


# Annotations that point a responder somewhere, kept as labels (the console shows URL values as links).
LINK_ANNOTATIONS = ("runbook_url", "dashboard_url", "dashboard", "grafana_url")


def links(notification: Notification) -> dict[str, str]:
    found = {
        name: notification.commonAnnotations[name]
        for name in LINK_ANNOTATIONS
        if name in notification.commonAnnotations
    }
    generator = next((a.generatorURL for a in notification.alerts if a.generatorURL), None)
    if generator:
        found["generator_url"] = generator
    return {k: v.strip() for k, v in found.items() if v.strip()}


def alert_fields(notification: Notification) -> AlertFields:
    kept = links(notification)
    common = [(k, v) for k, v in sorted(notification.commonLabels.items()) if k and k not in kept]
    labels = {
        k[:MAX_LABEL_KEY_LENGTH]: v[:MAX_LABEL_VALUE_LENGTH]
        for k, v in (common[: MAX_LABELS - len(kept)] + sorted(kept.items()))
    }
    source = notification.externalURL.strip()[:MAX_SOURCE_LENGTH] or None
    return AlertFields.of(severity(notification.commonLabels), source, labels, dedup_key(notification))


def firing(notification: Notification) -> frozenset[str]:
    return frozenset(a.key for a in notification.alerts if a.status == "firing")


def describe(notification: Notification) -> dict[str, str]:
    """Each alert as a line for the incident's comments: its name and the labels it does not share."""
    common = notification.commonLabels
    found = {}
    for alert in notification.alerts:
        name = alert.labels.get("alertname", "alert")
        own = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname" and k not in common)
        summary = alert.annotations.get("summary", "")
        text = f"{name} ({own})" if own else name
        found[alert.key] = f"{text}: {summary}" if summary else text
    return found
