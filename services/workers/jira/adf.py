"""Atlassian Document Format for descriptions and comments, and one-line summaries."""

from __future__ import annotations

import re
from typing import Any

_SPACES = re.compile(r"\s+")
SUMMARY_MAX = 254  # Jira rejects summaries of 255 characters or more


def document(*paragraphs: str) -> dict[str, Any]:
    """An ADF doc: one paragraph per non-empty line. ADF forbids empty text nodes."""
    content: list[dict[str, Any]] = []
    for block in paragraphs:
        for line in block.splitlines() or [""]:
            node: dict[str, Any] = {"type": "paragraph"}
            if line:
                node["content"] = [{"type": "text", "text": line}]
            content.append(node)
    return {"type": "doc", "version": 1, "content": content}


def plain_text(node: Any) -> str:
    """All text of an ADF node, lines joined by newlines."""
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        inner = [plain_text(child) for child in node.get("content", [])]
        sep = "\n" if node.get("type") == "doc" else ""
        return sep.join(inner)
    if isinstance(node, list):
        return "".join(plain_text(child) for child in node)
    return ""


def summary(message: str, incident_id: int) -> str:
    """One line under 255 characters: Jira refuses newlines and longer summaries."""
    line = _SPACES.sub(" ", message).strip()
    text = f"Incident {incident_id}: {line}" if line else f"Incident {incident_id}"
    if len(text) > SUMMARY_MAX:
        text = text[: SUMMARY_MAX - 1].rstrip() + "…"
    return text
