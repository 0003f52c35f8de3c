"""Shared test set-up: report which fastcnn is under test, and refuse the source tree in CI;
the fixtures that set thread counts, pick the convolution kernels, and give the oracle that
`fastcnn.functional` is checked against."""
import os
import pathlib

import pytest

import fastcnn
import fastcnn.functional as F
import fastcnn.reference as R
from harness import TorchOracle

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    return [f"fastcnn {fastcnn.__version__} from {pathlib.Path(fastcnn.__file__).parent}",
            f"build_info: {fastcnn.build_info()}"]


def pytest_configure(config):
    if os.environ.get("FASTCNN_REQUIRE_INSTALLED") == "1":
        where = pathlib.Path(fastcnn.__file__).resolve()
        if ROOT in where.parents:
            pytest.exit(f"testing the source tree ({where}), not the installed package", 2)


@pytest.fixture
def threads():
    """Set fastcnn's thread count for one test and restore it afterwards."""
    before = fastcnn.get_num_threads()
    yield fastcnn.set_num_threads
    fastcnn.set_num_threads(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def num_threads(request, threads, monkeypatch):
    """Run the test on 1 and on 2 threads. The test shapes are small, and fastcnn.functional
    keeps a call with little work on one thread: with 2, every call takes both, so that the
    split between threads is tested."""
    threads(request.param)
    if request.param > 1:
        monkeypatch.setattr(F, "_CONV_MACS_PER_THREAD", 1)
        monkeypatch.setattr(F, "_POOL_ELEMENTS_PER_THREAD", 1)
    return request.param


# ------------------------------------------------------------------- convolution kernel choices
#
# Each runs the test once per choice; without them the shape picks one.

@pytest.fixture(params=["rows", "channels"])
def wgrad_kernel(request):
    """The weight-gradient kernel (grouped convolutions always take "rows"), as the
    `algorithm` argument of fastcnn.functional's convolutions."""
    return {"wgrad": request.param}


@pytest.fixture(params=["whole", "per_task"])
def prepare(request):
    """How the convolution tasks get their padded input (the weight gradient's channels-last
    kernel always takes "whole", or reads an unpadded x itself), as `algorithm`."""
    return {"prepare": request.param}


@pytest.fixture(params=["positions", "rows", "channels"])
def tiles(request):
    """The forward / data-gradient tile: along output positions, the same with row tiles for
    one output channel where the taps allow, or along output channels, as `algorithm`."""
    return {"tiles": request.param}


# ---------------------------------------------------------------------------------- oracles

@pytest.fixture(params=["reference", "torch"])
def oracle(request):
    """What fastcnn.functional is checked against, with fastcnn.reference's signatures: the
    NumPy reference itself, or torch.nn.functional through an adapter (skipped without
    torch), on one thread (its thread pool costs milliseconds per tiny call)."""
    if request.param == "reference":
        yield R
        return
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TorchOracle(torch)
    torch.set_num_threads(before)
