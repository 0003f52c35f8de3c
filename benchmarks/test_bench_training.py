"""Whole networks of `fastcnn.bench.CASES`: one training step (forward, cross-entropy loss,
backward, SGD step) and one inference, one pytest-benchmark group per case. fastcnn's
benchmarks skip while `fastcnn.nn` / `fastcnn.optim` are missing."""
import pytest

from fastcnn import bench

NET_CASES = [case for case in bench.CASES if case.kind == "net"]


@pytest.mark.parametrize("case", NET_CASES, ids=lambda case: case.name)
def test_network(run_case, case):
    run_case(case)
