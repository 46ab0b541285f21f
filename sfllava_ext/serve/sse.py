"""Streamed answers as server-sent events: what the model's worker reports while it
generates (typed :data:`Event` s, carried to the request's event loop by
:class:`EventQueue`) and the ``text/event-stream`` body made of them
(:func:`chat_events`), OpenAI's chunks and its closing ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from . import protocol
from .errors import ApiError

__all__ = [
    "DONE",
    "Event",
    "EventQueue",
    "Failed",
    "Finished",
    "Piece",
    "Started",
    "chat_events",
    "encode",
]

DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Started:
    """The job passed its checks (the video decoded, the prompt fits): text follows."""


@dataclass(frozen=True)
class Piece:
    """Text as it is generated."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The generation ended: why, and the tokens it counted."""

    finish_reason: str
    usage: dict[str, int]


@dataclass(frozen=True)
class Failed:
    """The job failed: before :class:`Started`, the request's error status; after it,
    an error event in the stream, as OpenAI sends one."""

    error: ApiError


Event = Started | Piece | Finished | Failed


class EventQueue:
    """Events from the model's worker thread to the request's event loop. Make it on
    the loop; :meth:`put` from any thread."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def get(self) -> Event:
        return await self._queue.get()


def encode(data: dict[str, Any]) -> str:
    """One server-sent event holding ``data`` as JSON."""
    return f"data: {json.dumps(data)}\n\n"


async def chat_events(
    events: EventQueue, cid: str, model: str, include_usage: bool, cancel: threading.Event
) -> AsyncIterator[str]:
    """The body of a streamed chat completion, after :class:`Started`: the role chunk,
    a chunk per :class:`Piece`, the finishing chunk (and with ``include_usage`` the usage
    chunk) and ``[DONE]``; or an error event and ``[DONE]``. ``cancel`` is set when the
    body ends, the client's leaving included, which stops the generation."""
    try:
        yield encode(protocol.chunk(cid, model, {"role": "assistant", "content": ""}))
        while True:
            event = await events.get()
            if isinstance(event, Piece):
                yield encode(protocol.chunk(cid, model, {"content": event.text}))
            elif isinstance(event, Finished):
                yield encode(protocol.chunk(cid, model, {}, finish=event.finish_reason))
                if include_usage:
                    yield encode(protocol.chunk(cid, model, {}, usage=event.usage, choices=False))
                yield DONE
                return
            elif isinstance(event, Failed):  # after the first piece: in the stream, then [DONE]
                yield encode(event.error.body())
                yield DONE
                return
    finally:
        cancel.set()  # the client left (or the stream ended): stop generating
