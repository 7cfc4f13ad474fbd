"""Integration tests of the workers: a real nats-server and fake vendor HTTP servers."""
