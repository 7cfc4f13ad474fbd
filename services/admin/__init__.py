"""Operator commands: tail events, subscriptions, dead letters, replay, lag."""
