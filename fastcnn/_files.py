"""Reading files that may be hostile: regular files only, never more than a stated limit.

A path can name a FIFO, a device or a symlink to /dev/zero: reading it would wait or run
forever. `read_regular` opens without blocking, refuses anything but a regular file, and reads
at most `limit` bytes, so what a reader allocates is bounded before it starts.
"""
from __future__ import annotations

import os
import stat

__all__ = ["read_regular", "check_regular"]


def read_regular(path, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file at path; ValueError if it is not one or holds more than
    limit bytes (OSError for a path that cannot be opened)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ValueError(f"{path}: a {what} must be a regular file, got {_kind(info.st_mode)}")
    with os.fdopen(fd, "rb") as f:
        # read(n) allocates n bytes first: ask for what the file holds, not for the limit
        blob = f.read(min(info.st_size, limit) + 1)
    if len(blob) > limit:
        raise ValueError(f"{path}: the {what} is larger than the {limit:,} bytes read at most")
    return blob


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def check_regular(path, what: str = "file") -> None:
    """ValueError unless path (links followed) is a regular file: for readers that open it
    themselves (np.load with mmap_mode), which would wait on a FIFO."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: a {what} must be a regular file, got {_kind(mode)}")
