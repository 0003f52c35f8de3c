"""Files in and out, safely.

Reading: a path can name a FIFO, a device or a symlink to /dev/zero, and reading it would wait
or run forever. `read_regular` opens without blocking, refuses anything but a regular file, and
reads at most `limit` bytes, so what a reader allocates is bounded before it starts.

Writing: `write_atomic` writes a temporary file beside the target and renames it over the
target, so a reader never sees half a file, a crash leaves the old file whole, and a symlink
planted at the target is replaced, never followed. The new file gets the mode of the file it
replaces, or 0666 less the umask, as other tools do. SIGTERM or SIGHUP mid-write removes the
temporary file before the process ends; temporary files that dead processes left behind are
swept on the next write to that folder.
"""
from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
import time

from ._signals import unwinding

__all__ = ["read_regular", "check_regular", "write_atomic", "write_figure"]

_TEMP_PREFIX = ".fastcnn-"


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


def write_atomic(path, write, mode: str = "wb") -> None:
    """Create or replace the file at path with what write(f) writes to an open file f.

    Raises what opening the folder or writing raises (OSError: no such folder, read-only or
    full disk); the target is then untouched and no temporary file is left.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(21, "Is a directory", path)
    _sweep(directory)
    permissions = _permissions(path)
    with unwinding():
        fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", suffix=".tmp",
                                   dir=directory)
        try:
            with os.fdopen(fd, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, permissions)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    _sync_folder(directory)


def write_figure(fig, path, dpi) -> None:
    """Save a matplotlib figure with `write_atomic`, in the format its suffix names (png
    without one)."""
    suffix = os.path.splitext(os.fspath(path))[1][1:].lower()
    write_atomic(path, lambda f: fig.savefig(f, format=suffix or "png", dpi=dpi))


def _permissions(path) -> int:
    """The mode bits of the regular file being replaced, else 0o666 less the umask."""
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    except OSError:
        pass
    umask = os.umask(0o22)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def _sweep(directory: str, min_age: float = 60.0) -> None:
    """Remove temporary files of write_atomic whose process has ended."""
    for tmp in glob.glob(os.path.join(glob.escape(directory), f"{_TEMP_PREFIX}*-*.tmp")):
        pid = os.path.basename(tmp)[len(_TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if time.time() - os.lstat(tmp).st_mtime > min_age:
                os.unlink(tmp)


def _alive(pid: int) -> bool:
    """Whether process pid may be running (a number no process can have is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # past what a pid can be
        return False
    except OSError:  # exists, but another user's
        return True
    return True



def _sync_folder(directory: str) -> None:
    """Make the rename itself durable, where the system allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
