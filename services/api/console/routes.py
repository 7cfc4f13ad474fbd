"""Routes of the console's files: a fixed set read from the package once, each with a security policy."""

from __future__ import annotations

from importlib import resources

from litestar import Response, Router, get
from litestar.datastructures import ResponseHeader

from services.api.web.errors import error_response

CONTENT_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "incident.js": "text/javascript",
    "list.js": "text/javascript",
    "live.js": "text/javascript",
    "render.js": "text/javascript",
    "ui.js": "text/javascript",
    "console.css": "text/css",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def load_files() -> dict[str, bytes]:
    static = resources.files("services.api.console").joinpath("static")
    return {name: static.joinpath(name).read_bytes() for name in CONTENT_TYPES}


def console_router(auth_required: bool) -> Router:
    """`/ui/` and its files are public (the page asks for a token itself); every API call still needs one."""
    files = load_files()
    config = {"auth": auth_required}

    def serve(name: str) -> Response[bytes]:
        return Response(files[name], media_type=CONTENT_TYPES[name])

    @get("/", sync_to_thread=False)
    def index() -> Response[bytes]:
        return serve("index.html")

    @get("/config.json", sync_to_thread=False)
    def settings() -> dict[str, bool]:
        return config

    @get("/{name:str}", sync_to_thread=False)
    def asset(name: str) -> Response[bytes]:
        if name not in files:
            return error_response(404, "no such file")
        return serve(name)

    return Router(
        path="/ui",
        route_handlers=[index, settings, asset],
        response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
        include_in_schema=False,
    )
