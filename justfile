# Incident platform tasks. Run `just` to list them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Prefer the project's virtualenv when it exists, so `.venv/bin/just dev` works without activating it.
export PATH := justfile_directory() / ".venv/bin" + ":" + env_var("PATH")

default:
    @just --list

# Everything on embedded defaults: nats-server, SQLite, migrations, API, event handler, workers.
dev:
    python scripts/dev.py

# The API alone, against NATS_URL and DATABASE_URL.
run-api:
    python -m services.api

# The event handler alone.
run-eventhandler:
    python -m services.eventhandler

# One worker by name (jira, slack, zendesk, webhooks, or a plugin's name).
run-worker NAME:
    python -m services.workers {{NAME}}

# alembic upgrade head on DATABASE_URL.
migrate:
    python -m alembic upgrade head

# Static checks and the whole test suite (SQLite and MariaDB).
test *ARGS: lint
    python -m pytest {{ARGS}}

# ruff (with security rules, and the formatter's check) and mypy on all code.
lint:
    ruff check .
    ruff format --check .
    mypy services shared scripts tests

# The end-to-end benchmark (`just bench --quick` is the CI smoke run).
bench *ARGS:
    python -m scripts.bench {{ARGS}}

# Admin: print events as they are stored (`just tail --all` from the beginning).
tail *ARGS:
    python -m services.admin tail {{ARGS}}

# Admin: each worker's subscribed event types.
subscriptions:
    python -m services.admin subscriptions

# Admin: list dead letters (`just deadletters --worker jira`).
deadletters *ARGS:
    python -m services.admin deadletters {{ARGS}}

# Admin: re-drive dead letters (`just redrive --seq 3` or `just redrive --worker jira`).
redrive *ARGS:
    python -m services.admin redrive {{ARGS}}

# Admin: replay one incident's history to one worker (`--reset` if its outside object was lost).
replay INCIDENT WORKER *ARGS:
    python -m services.admin replay {{INCIDENT}} {{WORKER}} {{ARGS}}

# Admin: per-worker consumer lag.
lag:
    python -m services.admin lag

# Production on one machine: 3 nats-server nodes (R3, fsync before ack), 2 API replicas, 2 of each worker.
cluster:
    python scripts/cluster.py

# The chaos scenario at storm load (`just soak --minutes 3 --rate 15`, `--outage zendesk`, `--cluster`).
soak *ARGS:
    python scripts/soak.py {{ARGS}}

# The README's screenshots of the web console (docs/console-*.png), from a real stack in Debian's chromium.
screenshots:
    python -m tests.console.screenshots docs
