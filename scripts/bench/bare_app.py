"""The bare-Litestar baseline: one POST route answering like the seed's create, under uvicorn (1 worker).

`python -m scripts.bench.bare_app PORT` serves it with the same uvicorn options as `python -m services.api`
(httptools and uvloop); `python -m scripts.bench.bare_app PORT h11` with `--http h11 --loop asyncio`, uvicorn's
pure-Python defaults when httptools and uvloop are absent.
"""

from __future__ import annotations

import sys

import msgspec
import uvicorn
from litestar import Litestar, post


class CreateIncident(msgspec.Struct):
    message: str


@post("/incident/", status_code=200, sync_to_thread=False)
def create_incident(data: CreateIncident) -> dict[str, str]:
    return {"status": "INCIDENT CREATED", "ID": "1"}


app = Litestar(route_handlers=[create_incident], debug=False)


def main() -> None:
    port = int(sys.argv[1])
    pure_python = sys.argv[2:] == ["h11"]
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        http="h11" if pure_python else "auto",
        loop="asyncio" if pure_python else "auto",
    )


if __name__ == "__main__":
    main()
