"""Fake outside systems (Jira, Slack, Zendesk) as real local HTTP servers, and an incident event feed."""
