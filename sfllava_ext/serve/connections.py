"""The service's HTTP connections: uvicorn's h11 protocol with a deadline on every
request head, and the uvicorn settings the service runs with (:func:`server_config`).

uvicorn times out an idle keep-alive connection only after a response, and any byte
received cancels that timer; a connection that never completes a request head (a
slow-loris client, or one that sends nothing) would stay open for ever.
:class:`TimedH11Protocol` gives every request head ``--read-timeout-s`` from the
moment the connection opens or its previous response ends, then closes the
connection. Bodies have their own timeout (:mod:`.body`). :func:`until_disconnected`
tells a whole answer's job that its client left.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ServeConfig

__all__ = ["TimedH11Protocol", "server_config", "until_disconnected"]


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose request heads must arrive within
    ``head_timeout`` seconds (a class attribute :func:`server_config` sets)."""

    head_timeout: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_timer: asyncio.TimerHandle | None = None
        self.arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self.disarm_head_timer()  # a head arrived: the route reads the body

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_head_timer()
        super().connection_lost(exc)

    def arm_head_timer(self) -> None:
        self.disarm_head_timer()
        self.head_timer = self.loop.call_later(self.head_timeout, self.head_timed_out)

    def disarm_head_timer(self) -> None:
        timer = getattr(self, "head_timer", None)
        if timer is not None:
            timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            if not self.transport.is_closing():
                self.transport.close()


async def until_disconnected(request: Any, gone: Any) -> None:
    """Sets ``gone`` (a ``threading.Event``) when the client of ``request``, whose
    body was read, leaves; run it as a task beside the wait for a whole answer, so
    that a job whose client left is skipped or its generation stopped."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


def server_config(app: Any, config: ServeConfig, log_level: str = "info", **kw: Any):
    """uvicorn's settings for ``app`` under ``config``: its address, the timed
    protocol (a subclass made here, so that two services in one process keep their
    own timeout), keep-alive connections closed after 5 s idle, at most
    ``--max-connections`` open (uvicorn answers 503 past it)."""
    import uvicorn

    protocol = type("ServiceH11Protocol", (TimedH11Protocol,), {})
    protocol.head_timeout = config.read_timeout_s
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        http=protocol,
        timeout_keep_alive=5,
        limit_concurrency=config.max_connections,
        **kw,
    )
