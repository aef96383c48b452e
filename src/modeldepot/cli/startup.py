"""How ``serve`` learns why the app did not start, to report it as one line.

The service graph is opened in the app's lifespan, inside uvicorn. When it raises an error
of our tree (another process holds the data, an unusable models directory, ...) starlette
hands uvicorn the formatted traceback, which it logs before exiting with its own code. A
user needs one line saying what to do, and the exit code of ``EXIT_CODES``: this wrapper
keeps the error, tells uvicorn the start failed without the traceback, and lets the
command report it. Any other exception keeps its traceback.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldepot.errors import DepotError


class StartupErrors:
    """ASGI wrapper: ``error`` is the ``DepotError`` the app's start-up raised, if any."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.error: DepotError | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent once we know what failed
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except DepotError as exc:
            if not held:
                raise
            self.error = exc
            await send({"type": "lifespan.startup.failed", "message": ""})
        except BaseException:
            for message in held:
                await send(message)
            raise
