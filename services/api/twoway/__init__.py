"""Two-way sync: responders act on incidents from Slack, Jira and Zendesk."""
