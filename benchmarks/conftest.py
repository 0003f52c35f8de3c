"""pytest-benchmark suites over `fastcnn.bench.CASES`, the case table of `fastcnn bench`.

Each case is one benchmark group (``benchmark.group = case name``) holding one benchmark per
engine: fastcnn, the NumPy reference (`fastcnn.reference`) and PyTorch (skipped when torch is
not installed), all on ``fastcnn.get_num_threads()`` threads.

    pytest benchmarks/ --benchmark-autosave      # measure and save this commit's figures
    pytest benchmarks/ --benchmark-compare       # measure and compare with the last saved run
    pytest benchmarks/ --benchmark-disable       # smoke run: every benchmark called once

Benchmarks are not tests: ``pytest`` alone collects tests/ only.

Shapes: the full table, except with --benchmark-disable, where nothing is measured and every
case runs on its quick shapes (``Case.quick()``: batch size divided by 8) so the smoke run of
the whole directory takes well under two minutes. FASTCNN_BENCH_QUICK=1 (or 0) forces the quick
(or the full) shapes either way.
"""
import os

import pytest

import fastcnn
from fastcnn import bench


@pytest.fixture(scope="session")
def quick(request) -> bool:
    forced = os.environ.get("FASTCNN_BENCH_QUICK")
    if forced is not None:
        return forced == "1"
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def engines():
    """The engines this Python can run, all on fastcnn's thread count for the session."""
    available = bench.available_engines()
    torch = available["torch"].torch if "torch" in available else None
    with bench.SameThreads(fastcnn.get_num_threads(), torch):
        yield available


@pytest.fixture(params=["fastcnn", "reference", "torch"])
def engine(request, engines):
    if request.param not in engines:
        pytest.skip("PyTorch is not installed")
    return engines[request.param]


@pytest.fixture
def run_case(benchmark, engine, quick):
    """Benchmark one case on the engine: run_case(case)."""
    def run(case):
        sized = case.quick() if quick else case
        why = engine.unsupported(sized)
        if why:
            pytest.skip(why)
        call = engine.prepare(sized, bench.make_inputs(sized))
        benchmark.group = case.name
        benchmark.extra_info.update(shape=sized.spec.describe(), flops=sized.flops)
        benchmark(call)
    return run
