"""The report as text: one table per kind of case (convolution, pooling, network), a header
of machine facts and limits, and a warning when other work shared the cores; and as JSON,
every figure of the run's report dict (`runner.run`)."""
from __future__ import annotations

import json

from .._files import write_atomic

__all__ = ["format_report", "format_scaling", "write_json"]


def _fmt_time(s) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-6:.3g} us"


def _fmt_mem(b) -> str:
    if b is None:
        return "-"
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b} B"


def _fmt_x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_rate(x) -> str:
    return "-" if x is None else f"{x:.3g}" if x < 1000 else f"{x:.0f}"


def _fmt_pct(gflops, peak) -> str:
    return "-" if gflops is None or not peak else f"{100 * gflops / peak:.1f}%"


def _engine(record, name, key):
    return record["engines"].get(name, {}).get(key)


_SECTIONS = {"conv": "Convolution layers (float32)", "pool": "Max-pooling (float32)",
             "net": "Whole networks (float32): training step = forward, loss, backward, SGD"}


_EXTRA_COLUMNS = {
    "pool": lambda report: [
        ("GB/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "gbytes_per_s")), ">"),
        ("% copy", lambda r: _fmt_pct(_engine(r, "fastcnn", "gbytes_per_s"),
                                      report["copy_gbytes_per_s"]), ">")],
    "net": lambda report: [
        ("img/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "images_per_s")), ">")],
}


def _table(cols, records) -> list[str]:
    rows = [[header for header, _, _ in cols]] + [[f(r) for _, f, _ in cols] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    return ["  ".join(f"{cell:{align}{w}}" for cell, (_, _, align), w
                      in zip(row, cols, widths)).rstrip() for row in rows]


def _load_warning(report: dict) -> list[str]:
    start, end = report["machine"]["load_average"], report["load_average_end"]
    if start is not None and end is not None and (start > 0.5 or end > report["threads"] + 0.5):
        return [f"WARNING: other work shared the cores (1-minute load average {start:.2f} "
                f"at the start, {end:.2f} at the end, of which this run's threads make "
                f"up to {report['threads']}): the figures are noisy."]
    return []


def format_scaling(report: dict) -> str:
    """The table `main --scaling` prints: one row per case."""
    m, n = report["machine"], report["threads"]
    lines = [f"fastcnn {m['fastcnn']} bench --scaling{' --quick' if report['quick'] else ''}"
             f" on {m['cpu_model']}: {m['usable_cpus']} usable CPUs, 1 thread against {n}, "
             f"kernels: {m['build_info'].get('simd')}",
             f"Times are medians; fastcnn on 1 and {n} threads and the sgemm (numpy.matmul "
             f"{report['sgemm_n']}^3 float32) on 1 and {n} take turns in the same rounds; "
             f"'x sgemm' = fastcnn's speedup / the sgemm's. Calls too small to gain from "
             f"more threads use fewer, as they do outside the bench."] + _load_warning(report)
    lines.append("")
    lines += _table([("case", lambda r: r["name"], "<"),
                     ("1 thread", lambda r: _fmt_time(r["one_thread_s"]), ">"),
                     (f"{n} threads", lambda r: _fmt_time(r["threads_s"]), ">"),
                     ("speedup", lambda r: _fmt_x(r["speedup"]), ">"),
                     ("sgemm speedup", lambda r: _fmt_x(r["sgemm_speedup"]), ">"),
                     ("x sgemm", lambda r: f"{r['speedup'] / r['sgemm_speedup']:.2f}", ">")],
                    report["cases"])
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """The tables `main` prints: one section per kind, one row per case."""
    if report.get("scaling"):
        return format_scaling(report)
    m, peak = report["machine"], report["sgemm_peak_gflops"]
    torch_note = (f"torch {m['torch']} ({m['torch_threads']} threads)" if m["torch"]
                  else f"torch: not available ({m['torch_unavailable']})")
    kernels = m["numpy_blas_kernels"]
    blas_kernels = f", OpenBLAS kernels {kernels}" if kernels else ""
    lines = [f"fastcnn {m['fastcnn']} bench{' --quick' if report['quick'] else ''} on "
             f"{m['cpu_model']}: {m['usable_cpus']} usable CPUs, {m['threads']} threads "
             f"(BLAS: {m['numpy_blas']}, {m['blas_threads'] or 'default'} threads)",
             f"numpy {m['numpy']}, {torch_note}, kernels: {m['build_info'].get('simd')} "
             f"(CPU: {m['build_info'].get('cpu_simd')}), openmp {m['build_info'].get('openmp')}",
             f"sgemm peak (numpy.matmul {report['sgemm_n']}^3 float32{blas_kernels}): "
             f"{peak:.1f} GFLOP/s at the start; '% sgemm' = fastcnn GFLOP/s / the same "
             "sgemm's GFLOP/s, timed in turns with each convolution case",
             f"copy bandwidth (64 MiB float32, {report['threads']} threads, read + written): "
             f"{report['copy_gbytes_per_s']:.1f} GB/s; '% copy' = fastcnn GB/s / copy "
             "bandwidth",
             "Times are medians; 'vs' = peer time / fastcnn time (>1: fastcnn faster); "
             "memory = peak extra NumPy allocations of one call (tracemalloc)."]
    lines += _load_warning(report)
    columns = [("case", lambda r: r["name"], "<"),
               ("fastcnn", lambda r: _fmt_time(_engine(r, "fastcnn", "median_s")), ">"),
               ("numpy ref", lambda r: _fmt_time(_engine(r, "reference", "median_s")), ">"),
               ("torch", lambda r: _fmt_time(_engine(r, "torch", "median_s")), ">"),
               ("vs ref", lambda r: _fmt_x(r["speedup_vs_reference"]), ">"),
               ("vs torch", lambda r: _fmt_x(r["speedup_vs_torch"]), ">"),
               ("GFLOP/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "gflops")), ">"),
               ("% sgemm", lambda r: _fmt_pct(_engine(r, "fastcnn", "gflops"),
                                              r.get("sgemm_gflops") or peak), ">"),
               ("mem fastcnn",
                lambda r: _fmt_mem(_engine(r, "fastcnn", "peak_memory_bytes")), ">"),
               ("mem ref",
                lambda r: _fmt_mem(_engine(r, "reference", "peak_memory_bytes")), ">")]
    for kind, title in _SECTIONS.items():
        records = [r for r in report["cases"] if r["kind"] == kind]
        if not records:
            continue
        cols = columns + _EXTRA_COLUMNS.get(kind, lambda report: [])(report)
        lines += ["", title] + _table(cols, records)
        skipped = {}
        for r in records:
            for name, result in r["engines"].items():
                if "skipped" in result:
                    skipped.setdefault((name, result["skipped"]), []).append(r["name"])
        for (name, why), names in skipped.items():
            lines.append(f"  {name} skipped on {', '.join(names)}: {why}")
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    """Write the report dict to path as indented JSON."""
    write_atomic(path, lambda f: json.dump(report, f, indent=1), mode="w")
