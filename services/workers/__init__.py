"""Workers: copy incident events from JetStream into Jira, Slack and Zendesk."""
