"""Blocks that must happen whole or not at all, and the signals that would cut them short.

`held` keeps signals waiting while its block runs and then delivers them as if they had
arrived just after it: an optimizer step updates every parameter and its state, or (Ctrl-C
before it began) none. `unwinding` turns signals that would end the process on the spot
(SIGTERM, SIGHUP) into an exception for the length of its block, so that the block's
cleanup runs (a half-written file is removed), then delivers them as before. Python runs signal handlers only in the main thread, between bytecodes,
so holding is needed there alone; elsewhere the block runs as is.
"""
from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["held", "unwinding", "Terminated"]


@contextlib.contextmanager
def held(signals=(signal.SIGINT,)):
    """Hold `signals` while the block runs; deliver each that came, once, when it ends (to the
    handler from before: KeyboardInterrupt for SIGINT by default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: dict = {}
    before = {}
    try:
        for signum in signals:
            handler = signal.getsignal(signum)
            if handler is None:  # set outside Python: it could not be put back
                continue
            before[signum] = handler
            signal.signal(signum, lambda s, frame: arrived.setdefault(s, frame))
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _deliver(list(arrived.items()), before)


def _deliver(arrived: list, handlers: dict) -> None:
    """Hand each (signal, frame) to its handler from before, every one even if one raises."""
    if not arrived:
        return
    (signum, frame), rest = arrived[0], arrived[1:]
    try:
        handler = handlers[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)
    finally:
        _deliver(rest, handlers)


class Terminated(BaseException):
    """A signal that ends the process arrived inside an `unwinding` block."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


_ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def unwinding(signals=_ENDING):
    """Raise `Terminated` in the block when one of `signals` arrives while its default action
    (ending the process) is in force, so `finally` clauses run; when the block has unwound,
    raise the signal again, and the process ends as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}

    def stop(signum, frame):
        raise Terminated(signum)

    try:
        for signum in signals:
            # only the default action ends the process mid-block; a Python handler runs as
            # usual (if it raises, the block's cleanup runs; if it returns, the block goes on)
            if signal.getsignal(signum) == signal.SIG_DFL:
                before[signum] = signal.SIG_DFL
                signal.signal(signum, stop)
        yield
    except Terminated as e:
        arrived = e.signum
    else:
        arrived = None
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if arrived is not None:
        signal.raise_signal(arrived)
