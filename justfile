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

# One worker by name (jira, slack, zendesk, or a plugin's name).
run-worker NAME:
    python -m services.workers {{NAME}}

# alembic upgrade head on DATABASE_URL.
migrate:
    python -m alembic upgrade head

# Static checks and the whole test suite (SQLite and MariaDB).
test *ARGS: lint
    python -m pytest {{ARGS}}

# ruff (with security rules) and mypy on all code.
lint:
    ruff check .
    mypy services shared scripts tests

# The end-to-end benchmark (`just bench --quick` is the CI smoke run).
bench *ARGS:
    python -m scripts.bench {{ARGS}}
