"""Convolution (forward, backward-data, backward-weights) and max-pooling (forward, backward)
layers of `fastcnn.bench.CASES`, one pytest-benchmark group per case."""
import pytest

from fastcnn import bench

KERNEL_CASES = [case for case in bench.CASES if case.kind in ("conv", "pool")]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=lambda case: case.name)
def test_kernel(run_case, case):
    run_case(case)
