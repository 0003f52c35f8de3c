"""The command line of `fastcnn bench` (also ``python -m fastcnn.bench``): options, checks,
a progress bar on stderr, then the run, the tables, and the JSON and the chart when asked."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .._config import get_num_threads
from .._validate import integer, option
from .cases import select
from .chart import plot
from .report import format_report, write_json
from .runner import run

__all__ = ["Progress", "build_parser", "main"]


class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, one line per step
    otherwise (CI logs)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def show(self, done: int, label: str) -> None:
        filled = self.width * done // max(self.total, 1)
        elapsed = time.perf_counter() - self.t0
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{elapsed:5.0f}s  {label}")
        if self.tty:
            self.stream.write("\r" + line[:119].ljust(119))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
            self.stream.flush()


_positive_int = option(int, integer, "a positive integer", minimum=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastcnn bench",
        description="Time fastcnn against the plain NumPy reference (and PyTorch when "
                    "installed) on this machine: medians, speedups, GFLOP/s against the "
                    "measured sgemm peak, and peak memory.")
    parser.add_argument("--quick", action="store_true",
                        help="batch sizes / 8 and few repeats: a smoke run of seconds")
    parser.add_argument("--json", metavar="PATH",
                        help="write every figure and the machine info to PATH as JSON")
    parser.add_argument("--plot", metavar="PATH.png",
                        help="save a bar chart of the speedups (needs matplotlib)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="threads for every engine (default: fastcnn.get_num_threads(), "
                             f"now {get_num_threads()})")
    parser.add_argument("--filter", action="append", metavar="NAME",
                        help="only cases whose name contains NAME (repeatable)")
    parser.add_argument("--scaling", action="store_true",
                        help="thread scaling instead: fastcnn on 1 thread and on --threads "
                             "(at least 2), in turns, beside the sgemm's own scaling")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def _check_output_path(parser, option: str, path: str | None) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option} {path}: folder {folder} does not exist")


def main(argv=None) -> int:
    """`fastcnn bench`: run the benchmarks, print the tables, optionally save JSON and a plot."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cases = select(args.filter)
    if args.list:
        for case in cases:
            print(f"{case.name:34} {case.spec.describe()}")
        return 0
    if not cases:
        parser.error(f"--filter {' '.join(args.filter)} matches no case; --list shows them")
    _check_output_path(parser, "--json", args.json)
    _check_output_path(parser, "--plot", args.plot)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib")
    threads = args.threads or get_num_threads()
    if args.scaling and threads < 2:
        parser.error(f"--scaling compares 1 thread with more: --threads must be at least 2, "
                     f"got {threads}")
    if args.scaling and args.plot:
        parser.error("--plot draws speedups against the peers, which --scaling does not time")
    report = run(cases, threads, args.quick, Progress(len(cases)), scaling=args.scaling)
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
