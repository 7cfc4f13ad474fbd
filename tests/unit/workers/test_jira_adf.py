"""Jira v3 wants Atlassian Document Format for text, and one-line summaries under 255 characters."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.workers.jira import api
from services.workers.jira.adf import document, plain_text, summary
from services.workers.jira.settings import JiraSettings
from shared.events import IncidentSnapshot


def test_each_line_is_a_paragraph_and_empty_lines_have_no_text_node() -> None:
    doc = document("first\n\nthird", "[incident-1 #1]")
    assert doc["type"] == "doc" and doc["version"] == 1
    assert doc["content"] == [
        {"type": "paragraph", "content": [{"type": "text", "text": "first"}]},
        {"type": "paragraph"},
        {"type": "paragraph", "content": [{"type": "text", "text": "third"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "[incident-1 #1]"}]},
    ]
    assert plain_text(doc) == "first\n\nthird\n[incident-1 #1]"


@given(st.text())
def test_summaries_are_one_line_and_short(message: str) -> None:
    text = summary(message, 123456)
    assert "\n" not in text and "\r" not in text and 0 < len(text) < 255
    assert text.startswith("Incident 123456")


def test_a_long_message_is_cut_with_an_ellipsis() -> None:
    text = summary("x" * 1000, 1)
    assert len(text) == 254 and text.endswith("…")


def test_the_create_request_carries_project_type_label_and_adf_description() -> None:
    settings = JiraSettings(project_key="OPS", issue_type="Bug")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    incident = IncidentSnapshot(
        id=9,
        status="unresolved",
        acknowledged="no",
        message="db down\nsee graphs",
        comments=[],
        version=1,
        created_at=now,
        updated_at=now,
    )
    request = api.create_issue(settings, incident)
    assert (request.method, request.path) == ("POST", "/rest/api/3/issue")
    fields = request.json["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Bug"}
    assert fields["labels"] == ["incident-9"] and fields["summary"] == "Incident 9: db down see graphs"
    assert plain_text(fields["description"]).startswith("db down\nsee graphs\n")
    search = api.search_by_label(settings, 9)
    assert search.path == "/rest/api/3/search/jql" and 'labels = "incident-9"' in search.json["jql"]
