"""fastcnn's cache of freed array buffers (csrc/memcache.c as a NumPy memory handler): reuse
of same-size blocks, zeroed calloc, the byte limit, arrays that outlive the scope, threads,
fork, and the layers and optimizers using it."""
import multiprocessing
import sys
import threading
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import nn, optim
from fastcnn._config import reuses_memory

BIG = 1 << 18  # float32 elements: 1 MiB, over the cache's 64 KiB minimum


@pytest.fixture(autouse=True)
def default_limit():
    """Each test starts with a 64 MiB limit (the sanitizer build's default is 0) and leaves
    the limit as it was."""
    before = fastcnn.memory_cache_info()["limit"]
    fastcnn.set_memory_cache_limit(64 << 20)
    yield
    fastcnn.set_memory_cache_limit(before)


def hits():
    return fastcnn.memory_cache_info()["hits"]


@reuses_memory
def cached(fn, *args):
    return fn(*args)


def test_a_freed_block_is_handed_back_for_the_same_size():
    a = cached(np.full, BIG, 7.0, np.float32)
    address = a.ctypes.data
    del a
    before = hits()
    b = cached(np.empty, BIG, np.float32)
    assert hits() == before + 1
    assert b.ctypes.data == address


def test_zeros_from_a_reused_dirty_block_are_zero():
    del_me = cached(np.full, BIG, np.nan, np.float32)
    del del_me
    before = hits()
    z = cached(np.zeros, BIG, np.float32)
    assert hits() == before + 1
    assert not z.any()


def test_small_requests_and_other_sizes_do_not_hit():
    a = cached(np.ones, BIG, np.float32)
    del a
    before = hits()
    b = cached(np.ones, BIG + 16, np.float32)       # another size
    c = cached(np.ones, 100, np.float32)            # under 64 KiB: plain malloc
    assert hits() == before
    assert b.sum() == BIG + 16 and c.sum() == 100


def test_limit_bounds_what_is_kept_and_zero_keeps_nothing():
    fastcnn.set_memory_cache_limit(3 << 20)
    arrays = [cached(np.ones, BIG, np.float32) for _ in range(8)]   # 8 MiB
    del arrays
    info = fastcnn.memory_cache_info()
    assert 0 < info["bytes"] <= 3 << 20
    fastcnn.set_memory_cache_limit(0)
    assert fastcnn.memory_cache_info()["bytes"] == 0
    a = cached(np.ones, BIG, np.float32)
    del a
    assert fastcnn.memory_cache_info()["blocks"] == 0


def test_arrays_outlive_the_scope_and_resize():
    a = cached(np.arange, BIG, None, 1, np.float64)
    assert np.asarray(a[-3:]).tolist() == [BIG - 3, BIG - 2, BIG - 1]
    a.resize(2 * BIG, refcheck=False)              # realloc through the handler
    assert a[BIG - 1] == BIG - 1 and not a[BIG:].any()
    b = a[::2].copy()                              # made outside: NumPy's own allocator
    del a
    assert b[1] == 2


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2 ** 63, ValueError),
                                        (1.5, TypeError), (True, TypeError), ("1", TypeError)])
def test_limit_rejects_bad_values(bad, error):
    with pytest.raises(error, match="nbytes"):
        fastcnn.set_memory_cache_limit(bad)


def test_threads_allocating_and_freeing_at_once_keep_their_data():
    errors = []

    @reuses_memory
    def churn(seed):
        for i in range(200):
            size = BIG + 1024 * (i % 4)
            a = np.full(size, seed, np.float32)
            b = np.zeros(size, np.float32)
            if a[-1] != seed or b.any():
                errors.append((seed, i))

    threads = [threading.Thread(target=churn, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _child(queue):
    a = cached(np.full, BIG, 3.0, np.float32)
    queue.put(float(a.sum()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork on this platform")
def test_a_forked_child_allocates_from_the_cache():
    a = cached(np.ones, BIG, np.float32)
    del a                                       # the parent's cache holds a block
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        p = ctx.Process(target=_child, args=(queue,))
        p.start()
    p.join(60)
    assert p.exitcode == 0
    assert queue.get(timeout=5) == 3.0 * BIG


def test_training_steps_reuse_buffers():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 16 * 16, 10, rng=0))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = np.random.default_rng(0).standard_normal((64, 1, 32, 32)).astype(np.float32)
    labels = np.arange(64) % 10

    def step():
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        return loss

    step()
    before = fastcnn.memory_cache_info()
    losses = [step() for _ in range(3)]
    after = fastcnn.memory_cache_info()
    assert after["hits"] - before["hits"] >= 3 * 4   # conv, relu, pool outputs and gradients
    assert after["misses"] - before["misses"] <= after["hits"] - before["hits"]
    assert losses[-1] < losses[0]


def test_numpy_outside_fastcnn_keeps_its_own_allocator():
    if not hasattr(np, "_core") or not hasattr(np._core.multiarray, "get_handler_name"):
        pytest.skip("NumPy without get_handler_name")
    name = np._core.multiarray.get_handler_name
    assert name(cached(np.ones, BIG)) == "fastcnn_block_cache"
    assert name(np.ones(BIG)) != "fastcnn_block_cache"
    model = nn.ReLU()
    assert name(model(np.ones(BIG, np.float32))) == "fastcnn_block_cache"
    assert name(np.ones(BIG)) != "fastcnn_block_cache"


if sys.platform.startswith("win"):
    pytestmark = pytest.mark.skip("the cache needs pthreads; Windows builds cache nothing")
