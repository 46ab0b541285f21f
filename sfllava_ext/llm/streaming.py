"""Text as it is generated: ``generate()`` runs on a worker thread and hands each new
token to a streamer, which decodes and queues the text that became final; the caller
iterates over the pieces. Closing the iterator early stops the generation.

The pieces joined are exactly the text that the non-streaming call returns (decoded
without special tokens, leading and trailing white space stripped): white space is held
back until text follows it, and a piece is emitted only once the decoded text stops
ending in an incomplete character.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["StopOn", "TextPieces", "TextStream", "stream_generation"]

_DONE = object()


class TextPieces:
    """A ``generate()`` streamer that turns new token ids into text pieces.

    ``decode(ids) -> str`` decodes a list of ids (the caller makes it thread-safe).
    ``put`` receives the prompt ids first (empty with ``inputs_embeds``), then each new
    token; ``end`` flushes. Pieces go to ``emit``.
    """

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[str], None]):
        self.decode = decode
        self.emit = emit
        self.ids: list[int] = []
        self.sent = ""  # text emitted so far (already stripped on the left)
        self.first = True

    def put(self, value: torch.Tensor) -> None:
        if self.first:  # the prompt
            self.first = False
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.decode(self.ids).lstrip()
        if not final:
            if text.endswith("\ufffd"):  # a character whose bytes are not all there yet
                return
            text = text.rstrip()  # white space waits for the text after it
        else:
            text = text.rstrip()
        if text.startswith(self.sent) and len(text) > len(self.sent):
            piece, self.sent = text[len(self.sent) :], text
            self.emit(piece)


class StopOn:
    """A stopping criterion that ends ``generate()`` once ``event`` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TextStream:
    """The text pieces of one generation, as an iterator (see :func:`stream_generation`).

    The generation starts at once on a worker thread. ``token_ids`` holds the new
    token ids generated so far (all of them once the iteration has ended). ``close()``,
    or dropping the stream, stops the generation; ``close()`` also waits for it.
    """

    def __init__(
        self,
        run: Callable[[Any, threading.Event], Any],
        decode: Callable[[list[int]], str],
    ):
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._failure: list[BaseException] = []
        self._streamer = TextPieces(decode, self._queue.put)
        self._done = False
        # the worker holds the queue and the event, never the stream itself, so that a
        # stream nobody holds any more is collected, and its finalizer stops the work
        self._worker = threading.Thread(
            target=_work,
            args=(run, self._streamer, self._stop, self._queue, self._failure),
            name="sfllava-stream",
            daemon=True,
        )
        weakref.finalize(self, self._stop.set)
        self._worker.start()

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        piece = self._queue.get()
        if piece is _DONE:
            self._done = True
            self._worker.join()
            if self._failure:
                raise self._failure[0]
            raise StopIteration
        return piece

    def close(self) -> None:
        """Stops the generation and waits for it."""
        self._stop.set()
        self._worker.join()
        self._done = True

    @property
    def token_ids(self) -> list[int]:
        return list(self._streamer.ids)


def _work(run, streamer, stop: threading.Event, pieces: queue.Queue, failure: list) -> None:
    try:
        run(streamer, stop)
    except BaseException as exc:  # handed to the consumer
        failure.append(exc)
    finally:
        pieces.put(_DONE)


def stream_generation(
    run: Callable[[Any, threading.Event], Any], decode: Callable[[list[int]], str]
) -> TextStream:
    """Starts ``run(streamer, stop)`` (a ``generate()`` call that hands every token to
    ``streamer`` and ends once the event ``stop`` is set) on a worker thread and returns
    the :class:`TextStream` of its text pieces. An exception in the worker is raised by
    the iteration."""
    return TextStream(run, decode)
