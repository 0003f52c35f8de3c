"""Benchmarks: fastcnn against plain NumPy and PyTorch, on this machine, in one run.

`fastcnn bench` (or ``python -m fastcnn.bench``) answers four questions at once:

* How much faster than plain NumPy? Every case also runs on `fastcnn.reference`, the honest
  best vectorised NumPy (im2col + one batched BLAS matmul per convolution).
* How close to PyTorch? When torch is importable, every case also runs on its CPU kernels.
* How close to the machine's limit? Convolutions report GFLOP/s, counting
  ``2 * N * K * P * Q * C/groups * R * S`` per pass (forward, backward-data and
  backward-weights alike), and its percentage of the sgemm peak: the median GFLOP/s of a large
  float32 ``numpy.matmul`` (2048^3; 1024^3 with --quick), timed in turns with the case's
  engines (``sgemm_gflops`` in the case's JSON; ``sgemm_peak_gflops``, measured once at the
  start, is what the other kinds of case are shown beside). Max-pooling moves memory rather
  than computing: it reports GB/s (the bytes it must read and write: input, output and int64
  indices) and their percentage of the machine's copy bandwidth, measured in the same run.
* How much memory? The peak extra memory of one call (see `timing`).

Modules, each with one job:

    cases      the case table CASES (plain data, shared with benchmarks/) and its inputs
    engines    fastcnn, the NumPy reference and PyTorch: a case -> a call ready to time
    timing     settings, engines taking turns in rounds, peak memory of one call
    machine    thread counts of every engine, machine facts, sgemm peak, copy bandwidth
    runner     a run: every case on every engine -> the report dict (--json writes it)
    report     the report as text tables, and as JSON
    chart      the speedup chart (--plot)
    cli        the command line
"""
from .cases import CASES, LENET5, VGG_CIFAR, Case, Conv, Net, Pool, make_inputs, select
from .chart import plot
from .cli import build_parser, main
from .engines import ENGINES, available_engines
from .machine import SameThreads, copy_bandwidth, machine_info, sgemm_peak
from .report import format_report, format_scaling
from .runner import run, run_case, run_scaling_case
from .timing import Settings

__all__ = ["Conv", "Pool", "Net", "Case", "CASES", "LENET5", "VGG_CIFAR", "select",
           "make_inputs", "ENGINES", "available_engines", "SameThreads", "sgemm_peak",
           "copy_bandwidth", "machine_info", "Settings", "run_case",
           "run_scaling_case", "run", "format_report", "format_scaling", "plot",
           "build_parser", "main"]
