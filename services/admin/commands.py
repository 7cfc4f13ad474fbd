"""The admin commands, each a small coroutine over a NATS connection (and the database for replay)."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from typing import Any, TextIO

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, NotFoundError

from shared import jetstream
from shared.events import MSG_ID_HEADER, REDRIVE_HEADER, STREAM, SUBJECT_PREFIX, decode_event
from shared.jetstream import ref_key, refs_bucket

REQUEST_TIMEOUT = 10.0


def progress(done: int, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
    """A plain progress bar: long operations show how far they got."""
    filled = width * done // max(total, 1)
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        out.write("\n")
    out.flush()


async def request(nc: Client, subject: str, body: dict[str, Any]) -> Any:
    reply = await nc.request(subject, msgspec.json.encode(body), timeout=REQUEST_TIMEOUT)
    headers = reply.headers or {}
    if headers.get("Nats-Service-Error-Code"):
        raise SystemExit(f"eventhandler: {headers.get('Nats-Service-Error', 'error')}")
    return msgspec.json.decode(reply.data)


def describe(msg: Msg) -> str:
    event = decode_event(msg.data)
    incident = event.data.incident
    extra = f" comment={event.data.comment!r}" if event.data.comment else ""
    return (
        f"{event.time.isoformat()} {event.type:<26} incident={incident.id} v{event.incidentversion} "
        f"status={incident.status} ack={incident.acknowledged} id={event.id}{extra}"
    )


async def tail(nc: Client, out: TextIO, *, history: bool, limit: int | None, idle_exit: float | None) -> int:
    """Print events as they are stored; `history` starts from the first stored event."""
    js = nc.jetstream()
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        await queue.put(msg)

    deliver = DeliverPolicy.ALL if history else DeliverPolicy.NEW
    sub = await js.subscribe(
        SUBJECT_PREFIX + ">", stream=STREAM, cb=on_msg, ordered_consumer=True, deliver_policy=deliver
    )
    shown = 0
    try:
        while limit is None or shown < limit:
            try:
                msg = await asyncio.wait_for(queue.get(), timeout=idle_exit)
            except TimeoutError:
                break
            out.write(describe(msg) + "\n")
            out.flush()
            shown += 1
    finally:
        await sub.unsubscribe()
    return shown


async def subscriptions(nc: Client, out: TextIO) -> dict[str, list[str]]:
    result: dict[str, list[str]] = await request(nc, jetstream.SUBSCRIPTIONS_GET_SUBJECT, {})
    for worker, events in sorted(result.items()):
        out.write(f"{worker:<16} {', '.join(events) or '(nothing)'}\n")
    return result


async def deadletters(nc: Client, out: TextIO, worker: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await request(nc, jetstream.DEADLETTERS_LIST_SUBJECT, {"worker": worker, "limit": 100, "after": after})
        if not page["items"]:
            break
        items += page["items"]
        after = page["items"][-1]["seq"]
    for item in items:
        event = item["event"]
        out.write(
            f"#{item['seq']:<6} {item['worker']:<10} {item['reason']:<15} deliveries={item['deliveries']} "
            f"{event.get('type')} incident={event.get('subject')} error={item['error']!r}\n"
        )
    if not items:
        out.write("no dead letters\n")
    return items


async def redrive(nc: Client, out: TextIO, *, seq: int | None, worker: str | None) -> int:
    if seq is not None:
        result = await request(nc, jetstream.DEADLETTERS_REDRIVE_SUBJECT, {"seq": seq})
        count = int(result["redriven"])
    else:
        waiting = await deadletters(nc, io.StringIO(), worker)
        count = 0
        for done, item in enumerate(waiting, start=1):
            result = await request(nc, jetstream.DEADLETTERS_REDRIVE_SUBJECT, {"seq": item["seq"]})
            count += int(result["redriven"])
            progress(done, len(waiting))
    out.write(f"re-drove {count} dead letters\n")
    return count


async def replay(nc: Client, out: TextIO, payloads: list[bytes], worker: str, *, reset: bool) -> int:
    """Publish an incident's stored events again for one worker only (others skip them by header)."""
    js = nc.jetstream()
    if reset and payloads:
        incident_id = decode_event(payloads[0]).incident_id
        try:
            kv = await js.key_value(refs_bucket(worker))
            await kv.purge(ref_key(incident_id))
        except (NotFoundError, KeyNotFoundError):
            pass
    stamp = int(time.time() * 1000)
    for done, raw in enumerate(payloads, start=1):
        event = decode_event(raw)
        headers = {MSG_ID_HEADER: f"{event.id}:replay:{worker}:{stamp}", REDRIVE_HEADER: worker}
        await js.publish(event.type, raw, stream=STREAM, headers=headers)
        progress(done, len(payloads))
    out.write(f"replayed {len(payloads)} events to {worker}\n")
    return len(payloads)


async def lag(nc: Client, out: TextIO) -> list[dict[str, Any]]:
    js = nc.jetstream()
    rows = []
    for info in await js.consumers_info(STREAM):
        rows.append(
            {
                "worker": info.name,
                "pending": info.num_pending or 0,
                "ack_pending": info.num_ack_pending or 0,
                "redelivered": info.num_redelivered or 0,
                "waiting_pulls": info.num_waiting or 0,
            }
        )
    out.write(f"{'worker':<16}{'pending':>10}{'ack_pending':>13}{'redelivered':>13}{'pulls':>7}\n")
    for row in sorted(rows, key=lambda r: str(r["worker"])):
        out.write(
            f"{row['worker']:<16}{row['pending']:>10}{row['ack_pending']:>13}{row['redelivered']:>13}"
            f"{row['waiting_pulls']:>7}\n"
        )
    return rows
