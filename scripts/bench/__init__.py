"""`just bench`: the end-to-end benchmark of the production-like system, with its baselines.

`python -m scripts.bench [--quick] [--duration S] [--concurrency N]` starts MariaDB, nats-server, the API
under uvicorn, the event handler and the jira, slack and zendesk workers (dry run) as separate processes,
measures the baselines and the pipeline, prints one table and writes JSON under `var/bench/`.
"""
