"""Jira Cloud worker: one issue per incident, labelled `incident-<id>`."""
