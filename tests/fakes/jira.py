"""A fake Jira Cloud (REST v3): issues, labels, ADF comments, transitions, and search that lags."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

STATUSES = ("To Do", "In Progress", "Done")
TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}  # id -> name (= target status)
CATEGORIES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
"""Each status's category: what custom workflows share, and what two-way sync maps by."""


def adf_text(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        joined = "\n" if node.get("type") == "doc" else ""
        return joined.join(adf_text(c) for c in node.get("content", []))
    return ""


def is_adf(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "doc" and node.get("version") == 1


@dataclass
class Issue:
    id: str
    key: str
    summary: str
    description: Any
    labels: list[str]
    issuetype: str
    status: str = "To Do"
    comments: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    def comment_texts(self) -> list[str]:
        return [adf_text(c["body"]) for c in self.comments]


def _bad(field_name: str, message: str) -> Reply:
    return Reply(400, {"errorMessages": [], "errors": {field_name: message}})


def _missing() -> Reply:
    message = "Issue does not exist or you do not have permission to see it."
    return Reply(404, {"errorMessages": [message], "errors": {}})


class FakeJira(FakeServer):
    vendor = "jira"

    def __init__(self, email: str = "bot@example.com", token: str = "jira-token", project: str = "OPS") -> None:
        super().__init__()
        self.email, self.token, self.project = email, token, project
        self.issues: dict[str, Issue] = {}
        self.search_lag = 0.0
        """Seconds before a new issue shows up in search/jql."""
        self.on_create: Callable[[Issue], None] | None = None
        self.on_comment: Callable[[Issue, str], None] | None = None
        self.account_id = "5b10ac8d82e05b22cc7d4ef5"
        """The API token's account (`GET /rest/api/3/myself`): the worker's own changes are made as it."""
        self.display_name = "Incidents Bot"
        self.on_status_change: Callable[[dict[str, Any]], None] | None = None
        """Called with the `jira:issue_updated` webhook payload of every status change (an admin webhook)."""
        self.webhooks_sent = 0
        self._next_id = 10000

    def authorized(self, request: FakeRequest) -> bool:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def unauthorized(self) -> Reply:
        return Reply(401, {"errorMessages": ["You are not authenticated."]})

    # -- inspection ------------------------------------------------------------------------------
    def with_label(self, label: str) -> list[Issue]:
        with self.lock:
            return [i for i in self.issues.values() if label in i.labels]

    def only(self, incident_id: int) -> Issue:
        found = self.with_label(f"incident-{incident_id}")
        assert len(found) == 1, f"expected exactly one issue for incident {incident_id}, found {len(found)}"
        return found[0]

    def move_by_person(self, key: str, status: str, account_id: str, display_name: str) -> None:
        """A person moves the issue in Jira's UI: the status changes and the admin webhook fires."""
        with self.lock:
            self._move(self.issues[key], status, {"accountId": account_id, "displayName": display_name})

    def _move(self, issue: Issue, status: str, user: dict[str, str]) -> None:
        before, issue.status = issue.status, status
        if self.on_status_change is None or before == status:
            return
        self.webhooks_sent += 1
        self.on_status_change(
            {
                "timestamp": int(time.time() * 1000),
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_generic",
                "user": {"accountId": user["accountId"], "displayName": user["displayName"], "active": True},
                "issue": {
                    "id": issue.id,
                    "key": issue.key,
                    "self": f"{self.url}/rest/api/3/issue/{issue.id}",
                    "fields": {
                        "summary": issue.summary,
                        "labels": list(issue.labels),
                        "status": {
                            "name": status,
                            "id": str(STATUSES.index(status) + 1),
                            "statusCategory": {"key": CATEGORIES[status], "name": status},
                        },
                    },
                },
                "changelog": {
                    "id": str(self.webhooks_sent),
                    "items": [
                        {
                            "field": "status",
                            "fieldtype": "jira",
                            "fieldId": "status",
                            "from": str(STATUSES.index(before) + 1),
                            "fromString": before,
                            "to": str(STATUSES.index(status) + 1),
                            "toString": status,
                        }
                    ],
                },
            }
        )

    # -- handlers --------------------------------------------------------------------------------
    def myself(self, request: FakeRequest) -> Reply:
        return Reply(
            200,
            {
                "accountId": self.account_id,
                "accountType": "atlassian",
                "emailAddress": self.email,
                "displayName": self.display_name,
                "active": True,
            },
        )

    def create_issue(self, request: FakeRequest) -> Reply:
        fields = (request.json() or {}).get("fields") or {}
        if (fields.get("project") or {}).get("key") != self.project:
            return _bad("project", "valid project is required")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary or "\n" in summary or len(summary) >= 255:
            return _bad("summary", "Summary must be one line of less than 255 characters.")
        if not is_adf(fields.get("description")):
            return _bad("description", "Operation value must be an Atlassian Document.")
        issuetype = (fields.get("issuetype") or {}).get("name")
        if issuetype not in ("Task", "Bug"):
            return _bad("issuetype", "Specify a valid issue type")
        self._next_id += 1
        key = f"{self.project}-{self._next_id - 10000}"
        labels = list(fields.get("labels") or [])
        if any(not isinstance(label, str) or not label or any(c.isspace() for c in label) for label in labels):
            return _bad("labels", "Labels cannot contain spaces.")
        issue = Issue(str(self._next_id), key, summary, fields["description"], labels, issuetype)
        self.issues[key] = issue
        if self.on_create is not None:
            self.on_create(issue)
        return Reply(201, {"id": issue.id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue.id}"})

    def search(self, request: FakeRequest) -> Reply:
        jql = str((request.json() or {}).get("jql", ""))
        label = re.search(r'labels\s*=\s*"?([\w-]+)"?', jql)
        project = re.search(r'project\s*=\s*"?(\w+)"?', jql)
        visible_before = time.time() - self.search_lag
        issues = [
            {"id": i.id, "key": i.key, "fields": {"summary": i.summary, "status": {"name": i.status}}}
            for i in self.issues.values()
            if (not label or label.group(1) in i.labels)
            and (not project or project.group(1) == self.project)
            and i.created <= visible_before
        ]
        return Reply(200, {"issues": issues, "isLast": True})

    def get_issue(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        status = {"name": issue.status, "statusCategory": {"key": CATEGORIES[issue.status]}}
        fields = {"summary": issue.summary, "labels": issue.labels, "status": status}
        return Reply(200, {"id": issue.id, "key": issue.key, "fields": fields})

    def edit_issue(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        fields = (request.json() or {}).get("fields") or {}
        if "summary" in fields:
            summary = fields["summary"]
            if not isinstance(summary, str) or "\n" in summary or len(summary) >= 255:
                return _bad("summary", "Summary must be one line of less than 255 characters.")
            issue.summary = summary
        if "description" in fields:
            if not is_adf(fields["description"]):
                return _bad("description", "Operation value must be an Atlassian Document.")
            issue.description = fields["description"]
        for op in ((request.json() or {}).get("update") or {}).get("labels") or []:
            if "add" in op and op["add"] not in issue.labels:
                issue.labels.append(op["add"])
            if "remove" in op and op["remove"] in issue.labels:
                issue.labels.remove(op["remove"])
        return Reply(204)

    def add_comment(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        body = (request.json() or {}).get("body")
        if not is_adf(body):
            return _bad("comment", "Comment body must be an Atlassian Document.")
        comment = {"id": str(len(issue.comments) + 1), "body": body, "created": time.time()}
        issue.comments.append(comment)
        if self.on_comment is not None:
            self.on_comment(issue, adf_text(body))
        return Reply(201, comment)

    def list_comments(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        comments = list(issue.comments)
        if request.query.get("orderBy") == "-created":
            comments.reverse()
        start, size = int(request.query.get("startAt", 0)), int(request.query.get("maxResults", 50))
        page = comments[start : start + size]
        return Reply(200, {"startAt": start, "maxResults": size, "total": len(comments), "comments": page})

    def get_transitions(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        available = [
            {"id": tid, "name": name, "to": {"id": str(STATUSES.index(name) + 1), "name": name}}
            for tid, name in TRANSITIONS.items()
            if name != issue.status
        ]
        return Reply(200, {"transitions": available})

    def transition(self, request: FakeRequest, key: str) -> Reply:
        issue = self.issues.get(key)
        if issue is None:
            return _missing()
        tid = str(((request.json() or {}).get("transition") or {}).get("id"))
        if TRANSITIONS.get(tid) in (None, issue.status):
            return Reply(400, {"errorMessages": [f"Transition id '{tid}' is not valid for this issue."], "errors": {}})
        self._move(issue, TRANSITIONS[tid], {"accountId": self.account_id, "displayName": self.display_name})
        return Reply(204)

    routes = [
        ("GET", re.compile(r"/rest/api/3/myself"), myself),
        ("POST", re.compile(r"/rest/api/3/issue"), create_issue),
        ("POST", re.compile(r"/rest/api/3/search/jql"), search),
        ("GET", re.compile(r"/rest/api/3/issue/([\w-]+)"), get_issue),
        ("PUT", re.compile(r"/rest/api/3/issue/([\w-]+)"), edit_issue),
        ("POST", re.compile(r"/rest/api/3/issue/([\w-]+)/comment"), add_comment),
        ("GET", re.compile(r"/rest/api/3/issue/([\w-]+)/comment"), list_comments),
        ("GET", re.compile(r"/rest/api/3/issue/([\w-]+)/transitions"), get_transitions),
        ("POST", re.compile(r"/rest/api/3/issue/([\w-]+)/transitions"), transition),
    ]
