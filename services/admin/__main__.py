"""`python -m services.admin COMMAND`: operate the platform from a terminal (NATS_URL and credentials from env)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import sqlalchemy as sa

from services.admin import commands
from shared.logging import configure_logging
from shared.natsconn import NatsSettings, connect


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="incidents-admin", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    tail = sub.add_parser("tail", help="print events as they are stored")
    tail.add_argument("--all", action="store_true", help="start from the first stored event")
    tail.add_argument("--limit", type=int, help="stop after this many events")
    tail.add_argument("--idle-exit", type=float, help="stop after this many seconds without an event")
    sub.add_parser("subscriptions", help="show each worker's subscribed event types")
    dl = sub.add_parser("deadletters", help="list dead-lettered events")
    dl.add_argument("--worker")
    rd = sub.add_parser("redrive", help="put dead letters back to their worker")
    group = rd.add_mutually_exclusive_group(required=True)
    group.add_argument("--seq", type=int, help="one dead letter, by its sequence")
    group.add_argument("--worker", help="all dead letters of this worker")
    rp = sub.add_parser("replay", help="replay one incident's history (from the database) to one worker")
    rp.add_argument("incident_id", type=int)
    rp.add_argument("worker")
    rp.add_argument("--reset", action="store_true", help="forget the worker's record first (outside object lost)")
    sub.add_parser("lag", help="per-worker consumer lag")
    return root


async def incident_payloads(database_url: str, incident_id: int) -> list[bytes]:
    from services.api.storage.db import Db
    from services.api.storage.tables import incident_events

    db = Db(database_url)
    await db.connect()
    try:
        rows = await db.database.fetch_all(
            sa.select(incident_events.c.payload)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.version)
        )
        return [str(r[0]).encode() for r in rows]
    finally:
        await db.disconnect()


async def run(args: argparse.Namespace) -> int:
    nc = await connect(NatsSettings.from_env(os.environ), "incidents-admin", inbox="admin")
    out = sys.stdout
    try:
        if args.command == "tail":
            await commands.tail(nc, out, history=args.all, limit=args.limit, idle_exit=args.idle_exit)
        elif args.command == "subscriptions":
            await commands.subscriptions(nc, out)
        elif args.command == "deadletters":
            await commands.deadletters(nc, out, args.worker)
        elif args.command == "redrive":
            await commands.redrive(nc, out, seq=args.seq, worker=args.worker)
        elif args.command == "replay":
            url = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./var/incidents.db")
            payloads = await incident_payloads(url, args.incident_id)
            if not payloads:
                print(f"incident {args.incident_id} has no events", file=sys.stderr)
                return 1
            await commands.replay(nc, out, payloads, args.worker, reset=args.reset)
        elif args.command == "lag":
            await commands.lag(nc, out)
    finally:
        await nc.drain()
    return 0


def main() -> None:
    args = parser().parse_args()
    configure_logging("admin", json=False, level="WARNING")  # logs to stderr; stdout is the output
    try:
        sys.exit(asyncio.run(run(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
