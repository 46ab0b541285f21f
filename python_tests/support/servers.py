"""Starting `sfllava serve` for a test: a free local port, waiting for /health, and a
real server in this process (:func:`serve_in_thread`) for a model the test made."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

__all__ = ["free_port", "serve_in_thread", "wait_for_health"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(proc, base: str, timeout: float = 180) -> None:
    """Waits until ``base``/health answers 200; fails the test with the server's output
    when it exits or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            proc.kill()
            pytest.fail(f"the server did not start: {out[-3000:]}")
        time.sleep(0.5)


@contextmanager
def serve_in_thread(sf: Any, **limits: Any) -> Iterator[str]:
    """A real ``sfllava serve`` app for ``sf`` (``limits``: ServeConfig's fields) on a
    free local port, its HTTP server on a thread of this process and the model's worker
    on another; yields the base URL, and shuts both down at the end."""
    import uvicorn

    from sfllava_ext.serve import ServeConfig, create_app
    from sfllava_ext.serve.connections import server_config

    port = free_port()
    config = ServeConfig(port=port, **limits)
    server = uvicorn.Server(server_config(create_app(sf, config), config, "warning"))
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the in-process server did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=60)
