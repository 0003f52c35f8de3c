"""Shared test set-up: report which fastcnn is under test, and refuse the source tree in CI."""
import os
import pathlib

import pytest

import fastcnn

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
