"""Request-level guards for the whole ASGI app: a body size cap and the asking client's address.

Why a cap in front of everything: FastAPI parses a JSON body in full before any route sees it,
so without a limit one 50 MB request ties up a worker and its memory. The cap is checked on
the declared Content-Length (refused before reading) and on the bytes actually received
(chunked bodies), answering 413 either way. Gradio's upload route gets the upload limit,
other Gradio routes (event payloads, where the canvas carries small PNG data URIs) 8 MiB, and
everything else (JSON APIs, logins) 1 MiB.

Why a context variable for the client: Gradio calls a login `auth` function with the user
name and password only, yet the wrong-password limiter keys on (name, address). The middleware
puts the address of the connection (uvicorn already applied trusted proxy headers) where the
login check can read it.
"""
from __future__ import annotations

import contextvars
import json

from starlette.exceptions import HTTPException

from ui.uploads import MAX_BYTES

CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("tiger_client_address", default="")

MAX_BODY_BYTES = 1024 * 1024                  # JSON APIs, logins
MAX_EVENT_BODY_BYTES = 8 * 1024 * 1024         # Gradio events: the canvas value carries PNG data URIs
MAX_UPLOAD_BODY_BYTES = MAX_BYTES + 1024 * 1024  # one upload at the upload limit plus multipart framing
UPLOAD_SUFFIX = "/gradio_api/upload"


class BodyTooLarge(HTTPException):
    """Raised inside the app's receive() when a body grows past the cap.

    An HTTPException, so that the exception middleware of whichever app is reading the body
    (the FastAPI app or the mounted Gradio app) answers 413 itself.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


def body_limit_for(path: str) -> int:
    """The byte limit for a request path: uploads, other Gradio routes, everything else."""
    if path.rstrip("/").endswith(UPLOAD_SUFFIX):
        return MAX_UPLOAD_BODY_BYTES
    return MAX_EVENT_BODY_BYTES if "/gradio_api/" in path else MAX_BODY_BYTES


class RequestGuard:
    """ASGI middleware: sets CLIENT_ADDRESS and answers 413 to bodies over `body_limit_for`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        CLIENT_ADDRESS.set(client[0] if client else "")
        limit = body_limit_for(scope.get("path", ""))
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _reject(send, limit)
                return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, limit)


def _message(limit: int) -> str:
    return f"request body too large: the limit here is {limit // 1024} KiB"


async def _reject(send, limit: int) -> None:
    body = json.dumps({"error": _message(limit), "kind": "BodyTooLarge"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
