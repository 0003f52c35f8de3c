"""fastcnn._blas: Linear's matmuls on one OpenBLAS thread, the user's setting restored."""
import threading

import numpy as np
import pytest

from fastcnn import _blas, nn

pytestmark = pytest.mark.skipif(_blas.threads() is None, reason="NumPy's BLAS is not OpenBLAS")


@pytest.fixture
def two_blas_threads():
    before = _blas.threads()
    _blas.threads(2)
    yield
    _blas.threads(before)


def test_one_thread_inside_and_restored_after(two_blas_threads):
    with _blas.one_thread():
        assert _blas.threads() == 1
        with _blas.one_thread():
            assert _blas.threads() == 1
        assert _blas.threads() == 1
    assert _blas.threads() == 2


def test_restored_after_an_exception(two_blas_threads):
    with pytest.raises(ZeroDivisionError):
        with _blas.one_thread():
            1 / 0
    assert _blas.threads() == 2


def test_linear_leaves_the_users_setting(two_blas_threads):
    layer = nn.Linear(8, 3, rng=0)
    x = np.ones((4, 8), np.float32)
    layer.backward(np.ones_like(layer(x)))
    assert _blas.threads() == 2


def test_overlapping_blocks_from_two_threads_restore_once(two_blas_threads):
    inside, leave = threading.Barrier(2), threading.Event()

    def worker():
        with _blas.one_thread():
            inside.wait()
            leave.wait()

    t = threading.Thread(target=worker)
    t.start()
    with _blas.one_thread():
        inside.wait()
    assert _blas.threads() == 1      # the worker's block is still open
    leave.set()
    t.join()
    assert _blas.threads() == 2
