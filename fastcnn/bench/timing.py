"""How a call is timed and its memory measured: settings, engines taking turns, tracemalloc.

Engines take turns in rounds (5; 2 with --quick), one block each per round, the order
rotating from round to round, so that drift (clock boost, heat, other load) touches every
engine alike. A block is a few untimed calls (warm-up, and time for the previous engine's idle
threads to stop spinning) and then timed calls, as many as the engine's time budget allows
(at most 20 per block). The figures are the medians of all timed calls.

"Peak extra memory" is the peak of Python's tracemalloc during one call, minus what was
traced when the call began: every NumPy array the call allocates (NumPy reports its data
buffers to tracemalloc), its outputs included, plus Python objects. Memory that C code takes
with plain ``malloc`` is not seen; torch allocates that way, so its memory is not reported.
"""
from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

__all__ = ["Settings", "timed", "peak_memory", "measure"]


@dataclass(frozen=True)
class Settings:
    """How to measure a case, per engine: `rounds` blocks, each a settle phase of untimed calls
    (at least one, for at least `settle_s`; plus `warmup_s` in the first round) and then up to
    `max_block` timed calls, as many as `budget_s` (the timed seconds per engine) allows."""
    rounds: int
    settle_s: float
    warmup_s: float
    budget_s: float
    max_block: int
    sgemm_n: int

    @classmethod
    def for_run(cls, quick: bool) -> "Settings":
        if quick:
            return cls(rounds=2, settle_s=0.05, warmup_s=0.0, budget_s=0.1, max_block=3,
                       sgemm_n=1024)
        return cls(rounds=5, settle_s=0.15, warmup_s=0.25, budget_s=2.0, max_block=20,
                   sgemm_n=2048)


def timed(fn) -> float:
    """Seconds of one call of fn; its result is dropped after the clock stops."""
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    del out
    return elapsed


def peak_memory(fn) -> int:
    """Peak bytes tracemalloc sees during one call, above what it traced when the call began."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        tracemalloc.stop()
    return peak - before


def measure(calls: dict, settings: Settings) -> dict:
    """Times (seconds) of every engine's call: name -> list of times.

    Engines take turns, one block each per round, the order rotating from round to round, so
    that drift touches them alike. A block starts with untimed calls: the engine before may
    leave its threads spinning for a while after its last call (OpenMP and OpenBLAS both spin
    before they sleep); with every core in use that costs the next engine's first calls
    milliseconds each.
    """
    names = list(calls)
    times = {name: [] for name in names}
    fastest = {}
    for r in range(settings.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = calls[name]
            t_end = time.perf_counter() + settings.settle_s + (settings.warmup_s if r == 0 else 0)
            t = timed(fn)
            while time.perf_counter() < t_end:
                t = min(t, timed(fn))
            fastest[name] = min(t, fastest.get(name, t))
            block = int(settings.budget_s / settings.rounds / max(fastest[name], 1e-9))
            for _ in range(min(settings.max_block, max(1, block))):
                times[name].append(timed(fn))
    return times
