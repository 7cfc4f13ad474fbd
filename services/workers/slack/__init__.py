"""Slack worker: one message per incident, with its later events as thread replies."""
