"""fastcnn._blas: Linear's matmuls on one OpenBLAS thread (split over Python threads when
big), the user's setting restored."""
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_matmul_split_over_threads_equals_numpy(two_blas_threads, dtype, parts):
    rng = np.random.default_rng(parts)
    a = rng.standard_normal((67, 300)).astype(dtype)
    b = rng.standard_normal((300, 211)).astype(dtype)
    for x, y in [(a, b), (a[:, ::2], b[::2]), (b.T, a.T), (np.asfortranarray(a), b)]:
        want = x @ y
        got = _blas.matmul(x, y, parts)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-10)
    assert _blas.threads() == 2


def test_linear_splits_only_products_worth_the_threads(monkeypatch):
    import fastcnn
    import fastcnn.functional as F
    parts = []
    monkeypatch.setattr(_blas, "matmul", lambda a, b, n: parts.append(n) or a @ b)
    small, big = np.ones((8, 4)), np.ones((64, 1 << 11))
    F.linear(small, np.ones((3, 4)))
    F.linear(big, np.ones((2048, 1 << 11), np.float64))
    assert parts == [1, fastcnn.get_num_threads()]
