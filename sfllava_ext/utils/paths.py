"""Whether a path lies inside a folder (:func:`is_inside`), and opening a file only if
it does (:func:`open_inside`), for the places that must not reach outside one: the
service's media dir (ours and the vLLM plugin's), an embed run's output folder."""

from __future__ import annotations

import os
import stat

__all__ = ["NotARegularFileError", "OutsideRootError", "is_inside", "open_inside"]


class OutsideRootError(PermissionError):
    """A path that leads outside the folder it must stay in."""


class NotARegularFileError(OSError):
    """A path that names a FIFO, a device, a folder or a socket, not a regular file."""


def is_inside(real: str, root: str) -> bool:
    """Whether ``real`` is ``root`` or lies under it. Both are compared as given:
    resolve them (``os.path.realpath``) first where links matter. An empty ``real``
    (nothing known) is not inside."""
    return bool(real) and os.path.commonpath([real, root]) == root


def open_inside(path: str, root: str) -> int:
    """A read-only descriptor of ``path``, a regular file inside ``root`` (a real path).

    The path is checked, then opened without blocking (a FIFO cannot hang it), then
    what was opened is checked again (its ``/proc/self/fd`` link), so a link swapped
    in between the two is caught. The caller closes the descriptor.

    Raises:
        OutsideRootError: the path, or what was opened, lies outside ``root``.
        FileNotFoundError: no such file.
        NotARegularFileError: not a regular file.
        OSError: it cannot be read.
    """
    if not is_inside(os.path.realpath(path), root):
        raise OutsideRootError(f"{path} lies outside {root}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not is_inside(_opened_path(fd, path), root):
            raise OutsideRootError(f"{path} lies outside {root}")  # swapped after the check
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFileError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _opened_path(fd: int, path: str) -> str:
    """The real path of what ``fd`` opened: ``/proc/self/fd`` where there is one, else
    ``path`` resolved again, and only if it is still the same file."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = os.path.realpath(path)
        here, there = os.fstat(fd), os.stat(real)
        return real if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino) else ""
