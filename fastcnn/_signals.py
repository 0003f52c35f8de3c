"""Blocks that must happen whole or not at all, and the signals that would cut them short.

`held` keeps signals waiting while its block runs and then delivers them as if they had
arrived just after it: an optimizer step updates every parameter and its state, or (Ctrl-C
before it began) none. Python runs signal handlers only in the main thread, between bytecodes,
so holding is needed there alone; elsewhere the block runs as is.
"""
from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["held"]


@contextlib.contextmanager
def held(signals=(signal.SIGINT,)):
    """Hold `signals` while the block runs; deliver each that came, once, when it ends (to the
    handler from before: KeyboardInterrupt for SIGINT by default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: dict = {}
    before = {}
    for signum in signals:
        handler = signal.getsignal(signum)
        if handler is None:  # set outside Python: it could not be put back
            continue
        before[signum] = handler
        signal.signal(signum, lambda s, frame: arrived.setdefault(s, frame))
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        for signum, frame in arrived.items():
            handler = before[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
