"""A run: every case on every engine, beside the machine's limits, as the report dict.

All engines run on the same thread count (`SameThreads`). A convolution case times the sgemm
in turns with its engines, so that its '% sgemm' compares rates measured at the same time.
``scaling=True`` times each case on fastcnn alone instead, on one thread and on `threads`,
with the sgemm on one and on as many beside it (`run_scaling_case`).
"""
from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from typing import Callable

from .._config import set_num_threads
from .cases import Case, make_inputs
from .engines import available_engines, import_torch
from .machine import (SameThreads, blas_threads, copy_bandwidth, load_average, machine_info,
                      sgemm_call, sgemm_peak)
from .timing import Settings, measure, peak_memory

__all__ = ["run", "run_case", "run_scaling_case"]

_SGEMM = "sgemm"  # run_case's name for the sgemm turns (not an engine)


def run_case(case: Case, engines: dict, settings: Settings, sgemm=None) -> dict:
    """Measure one case on every engine; the JSON record of the case. For a convolution,
    sgemm (an n x n x n numpy.matmul, n = settings.sgemm_n) takes its turns in the same
    rounds, so that the case's '% sgemm' compares rates measured at the same time: a VM's
    speed drifts within minutes, and one peak measured at the start would not hold."""
    inputs = make_inputs(case)
    record = {"name": case.name, "kind": case.kind, "op": case.op,
              "spec": dataclasses.asdict(case.spec), "describe": case.spec.describe(),
              "batch": case.batch, "flops": case.flops, "bytes_moved": case.bytes_moved,
              "engines": {}, "sgemm_gflops": None}
    calls, skipped = {}, {}
    for name, engine in engines.items():
        why = engine.unsupported(case)
        if why:
            skipped[name] = why
        else:
            calls[name] = engine.prepare(case, inputs)
    if sgemm is not None and case.kind == "conv" and calls:
        calls[_SGEMM] = sgemm
    gc.collect()
    times = measure(calls, settings) if calls else {}
    if _SGEMM in times:
        record["sgemm_gflops"] = (2 * settings.sgemm_n ** 3
                                  / statistics.median(times.pop(_SGEMM)) / 1e9)
    for name, ts in times.items():
        median = statistics.median(ts)
        result = {"median_s": median, "min_s": min(ts), "times_s": ts,
                  "gflops": case.flops / median / 1e9 if case.flops else None,
                  "gbytes_per_s": (case.bytes_moved / median / 1e9 if case.bytes_moved
                                   else None),
                  "images_per_s": case.batch / median if case.kind == "net" else None,
                  "peak_memory_bytes": (peak_memory(calls[name]) if engines[name].traced
                                        else None)}
        record["engines"][name] = result
    for name, why in skipped.items():
        record["engines"][name] = {"skipped": why}
    fast = record["engines"].get("fastcnn", {}).get("median_s")
    for peer in ("reference", "torch"):
        other = record["engines"].get(peer, {}).get("median_s")
        record[f"speedup_vs_{peer}"] = other / fast if fast and other else None
    return record


def _on_threads(n: int, fn, blas: bool = False) -> Callable[[], object]:
    """fn run with fastcnn's kernels (and, with blas, NumPy's OpenBLAS) on n threads."""
    def call():
        set_num_threads(n)
        if blas:
            blas_threads(n)
        return fn()
    return call


def run_scaling_case(case: Case, engines: dict, settings: Settings, threads: int,
                     sgemm) -> dict:
    """Thread scaling of one case: fastcnn on 1 thread and on `threads`, and the sgemm on 1
    and on `threads` beside it (the machine's own scaling), all four taking turns in the same
    rounds (`measure`): timed one thread count per run, the machine's drift between the
    runs would show as scaling."""
    inputs = make_inputs(case)
    fastcnn = engines["fastcnn"].prepare(case, inputs)
    calls = {"fastcnn_1": _on_threads(1, fastcnn), "fastcnn_n": _on_threads(threads, fastcnn),
             "sgemm_1": _on_threads(1, sgemm, blas=True),
             "sgemm_n": _on_threads(threads, sgemm, blas=True)}
    gc.collect()
    try:
        times = measure(calls, settings)
    finally:
        set_num_threads(threads)
        blas_threads(threads)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return {"name": case.name, "kind": case.kind, "op": case.op,
            "spec": dataclasses.asdict(case.spec), "describe": case.spec.describe(),
            "batch": case.batch, "flops": case.flops, "threads": threads,
            "times_s": times, "one_thread_s": median["fastcnn_1"],
            "threads_s": median["fastcnn_n"],
            "speedup": median["fastcnn_1"] / median["fastcnn_n"],
            "sgemm_speedup": median["sgemm_1"] / median["sgemm_n"]}


def run(cases: list[Case], threads: int, quick: bool = False, progress=None,
        scaling: bool = False) -> dict:
    """Measure the cases (their quick shapes when quick) and return the report dict that
    --json writes: keys date, elapsed_s, quick, scaling, threads, settings, machine, sgemm_n,
    sgemm_peak_gflops, copy_gbytes_per_s, cases, load_average_end. With scaling, each case
    is `run_scaling_case`'s record (fastcnn on 1 thread and on `threads`) instead of
    `run_case`'s. progress: None, or an object with show(done, label) and close()."""
    if scaling and threads < 2:
        raise ValueError(f"scaling compares 1 thread with more: threads must be at least 2, "
                         f"got {threads}")
    t0 = time.perf_counter()
    torch, torch_missing = import_torch()
    engines = available_engines()
    settings = Settings.for_run(quick)
    with SameThreads(threads, torch):
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "elapsed_s": None,
                  "quick": quick, "scaling": scaling, "threads": threads,
                  "settings": dataclasses.asdict(settings),
                  "machine": machine_info(threads, torch, torch_missing)}
        if progress:
            progress.show(0, "sgemm peak")
        report["sgemm_n"] = settings.sgemm_n
        sgemm = sgemm_call(settings.sgemm_n)
        report["sgemm_peak_gflops"] = sgemm_peak(settings.sgemm_n, call=sgemm)
        report["copy_gbytes_per_s"] = copy_bandwidth(threads)
        report["cases"] = []
        for i, case in enumerate(cases):
            if progress:
                progress.show(i, case.name)
            case = case.quick() if quick else case
            report["cases"].append(run_scaling_case(case, engines, settings, threads, sgemm)
                                   if scaling else run_case(case, engines, settings, sgemm))
        if progress:
            progress.show(len(cases), "done")
            progress.close()
    report["elapsed_s"] = time.perf_counter() - t0
    report["load_average_end"] = load_average()
    return report
