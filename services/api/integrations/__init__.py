"""Two-way sync: signed actions from Slack, Jira and Zendesk applied to incidents."""
