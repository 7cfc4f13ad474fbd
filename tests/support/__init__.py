"""Test helpers: real nats-server and MariaDB processes, polling with deadlines, free ports."""
