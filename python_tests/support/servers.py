"""Starting `sfllava serve` for a test: a free local port, and waiting for /health."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

__all__ = ["free_port", "wait_for_health"]


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
