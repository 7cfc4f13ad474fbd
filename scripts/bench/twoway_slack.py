"""A fake Slack Web API in its own process for the two-way phase: it logs, as JSON lines, when each root
message is posted and each chat.update arrives, so that the benchmark reads times without sharing its GIL.

`python -m scripts.bench.twoway_slack LOG`: its first line is `{"op": "ready", "port": ...}`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-bench-token"  # noqa: S105 (the fake's own)
CHANNEL = "C0BENCH"


class LoggingSlack(FakeSlack):
    def __init__(self, log: IO[str]) -> None:
        super().__init__(token=TOKEN, channel=CHANNEL)
        self.log = log
        self.log_lock = threading.Lock()

    def _write(self, **line: object) -> None:
        with self.log_lock:
            self.log.write(json.dumps({"t": time.time(), **line}) + "\n")
            self.log.flush()

    def logged_post(self, request: FakeRequest) -> Reply:
        reply = self.post_message(request)
        body = request.json() or {}
        incident = ((body.get("metadata") or {}).get("event_payload") or {}).get("incident_id")
        if incident is not None and "thread_ts" not in body:
            self._write(op="post", incident=int(incident), text=body.get("text", ""))
        return reply

    def logged_update(self, request: FakeRequest) -> Reply:
        reply = self.update(request)
        body = request.json() or {}
        message = self._find(body.get("ts"))
        incident = ((message.metadata or {}).get("event_payload") or {}).get("incident_id") if message else None
        if incident is not None:
            self._write(op="update", incident=int(incident), text=body.get("text", ""))
        return reply

    routes = [
        ("POST", re.compile(r"/chat\.postMessage"), logged_post),
        ("POST", re.compile(r"/chat\.update"), logged_update),
        ("GET", re.compile(r"/conversations\.history"), FakeSlack.history),
        ("GET", re.compile(r"/conversations\.replies"), FakeSlack.replies_of),
    ]


def main() -> None:
    log_path = Path(sys.argv[1])
    with log_path.open("a") as log:
        fake = LoggingSlack(log)
        fake.start()
        fake._write(op="ready", port=fake.port)
        stop = threading.Event()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            fake.stop()


if __name__ == "__main__":
    main()
