"""No memory growth over many kernel calls: 10,000 rounds of small forward and backward calls
(convolution and both poolings, float32 and float64, contiguous and not, cast dtypes) must not
grow the process's resident memory once warmed up. A leaked buffer or array per call would
show as megabytes."""
import gc
import os
import sys

import numpy as np
import pytest

import fastcnn.functional as F

ROUNDS = 10_000
WARMUP = 1_000
MAX_GROWTH = 4 << 20  # bytes: 0 measured; a leaked 300-byte array per round gives 4 MB


def _under_asan() -> bool:
    """ASan holds freed memory in a quarantine, so resident memory grows by design."""
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm"),
    pytest.mark.skipif(sys.platform.startswith("linux") and _under_asan(),
                       reason="AddressSanitizer's quarantine keeps freed memory resident"),
]


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _inputs(rng):
    out = []
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
        w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
        b = rng.standard_normal(4).astype(dtype)
        out.append((x, w, b))
    x, w, b = out[0]
    out.append((x[:, :, ::-1], np.asfortranarray(w), b))       # layouts that get copied
    out.append(((x * 4).astype(np.int16), w.astype(np.float16), None))  # cast dtypes
    return out


def _round(x, w, b):
    y = F.conv2d(x, w, b, padding=1, stride=(1, 2))
    F.conv2d_backward(y, x, w, padding=1, stride=(1, 2))
    p, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    F.max_pool2d_backward(p, idx, x.shape, 3, stride=2, padding=1)
    a = F.avg_pool2d(x, 2, ceil_mode=True)
    F.avg_pool2d_backward(a, x.shape, 2, ceil_mode=True)


def test_many_forward_backward_calls_do_not_grow_memory():
    cases = _inputs(np.random.default_rng(0))
    for i in range(WARMUP):
        _round(*cases[i % len(cases)])
    gc.collect()
    before = resident_bytes()
    for i in range(ROUNDS):
        _round(*cases[i % len(cases)])
    gc.collect()
    growth = resident_bytes() - before
    assert growth < MAX_GROWTH, f"resident memory grew by {growth / 2**20:.1f} MiB"
