"""The test side of the fault hook (:mod:`sfllava_ext.utils.faults`): what to break,
where. The rules travel in the environment, so that they reach spawned decode workers,
Ray actors and servers run as subprocesses:

    SFLLAVA_FAULT_HOOK=support.faults:hook
    SFLLAVA_TEST_FAULTS={"markers": "/tmp/x", "embed.decode": {"b.mp4": "kill"}, ...}

A rule is keyed by the point, then by the file name of the context's ``source`` (or
``"*"`` for any): ``kill`` (SIGKILL, every time), ``kill-once`` (the first time only: a
marker file ``died-on-<name>`` is left in ``markers``), ``hold`` (wait until the file
``release`` appears in ``markers``, at most 120 s).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

__all__ = ["CONFIG", "HOOK", "environment", "hook", "release"]

HOOK = "support.faults:hook"
CONFIG = "SFLLAVA_TEST_FAULTS"


def environment(markers: str | os.PathLike, **points: dict[str, str]) -> dict[str, str]:
    """The environment variables that install :func:`hook` with these rules, e.g.
    ``environment(tmp, **{"embed.decode": {"b.mp4": "kill"}})``."""
    from sfllava_ext.utils.faults import ENV

    rules = {"markers": os.fspath(markers), **points}
    return {ENV: HOOK, CONFIG: json.dumps(rules)}


def release(markers: str | os.PathLike) -> None:
    """Lets the jobs that a ``hold`` rule holds go on."""
    with open(os.path.join(os.fspath(markers), "release"), "w"):
        pass


def hook(point: str, **context: Any) -> None:
    rules = json.loads(os.environ.get(CONFIG) or "{}")
    markers = rules.get("markers", "")
    video = context.get("video")
    name = os.path.basename(str(getattr(video, "source", context.get("source", ""))))
    here = rules.get(point) or {}
    action = here.get(name, here.get("*"))
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "kill-once":
        marker = os.path.join(markers, f"died-on-{name}")
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
    elif action == "hold":
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(markers, "release")):
            if time.monotonic() > deadline:
                raise TimeoutError("a held job was never released")
            time.sleep(0.02)
