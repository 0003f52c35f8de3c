"""Hostile and broken input: each case gives the documented error or the correct result, and
never a crash, a hang or a runaway allocation.

What the other test modules already cover is not repeated here: bad hyper-parameters and
shape mismatches (test_errors.py), dtypes, byte orders, layouts and read-only inputs
(test_functional.py), corrupt model files (test_io.py). This module adds every wrong rank,
zero-size dimensions, sizes whose indices pass 32 bits (and 64), unaligned and zero-stride
views, NaN and infinities in every position, misuse of layers and optimizers, and model files
that try to exhaust memory.

Calls that could allocate tens of gigabytes run in a child process whose address space is
capped (under AddressSanitizer, whose shadow memory a cap would break, allocations above the
cap fail instead), so a regression fails the test rather than the machine.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastcnn.functional as F
import fastcnn.reference as R
from fastcnn import nn, optim
from fastcnn.io import FormatError, load, save
from harness import CHAIN_ATOL, CHAIN_RTOL, assert_close

NONFINITE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}
CHILD_TIMEOUT = 120
CAP = 2 << 30  # bytes the capped child may map beyond what it has after imports


def _under_asan() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


def assert_same_values(got, want, dtype=np.float64):
    """Same shape and dtype, NaN and infinities in the same places, finite values close."""
    assert_close(got, want, dtype, rtol=CHAIN_RTOL[dtype], atol=CHAIN_ATOL[dtype])


# ------------------------------------------------------------------------- every wrong rank

def _array_args():
    """Each array argument of each kernel, with the rank it needs and a valid call."""
    x = np.ones((2, 3, 6, 6), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    gy = np.ones((2, 4, 4, 4), np.float32)
    p, idx = F.max_pool2d(x, 2, return_indices=True)
    calls = {
        "conv2d": (lambda a: F.conv2d(a["x"], a["weight"], a["bias"]),
                   {"x": x, "weight": w, "bias": np.ones(4, np.float32)}),
        "conv2d_backward": (lambda a: F.conv2d_backward(a["grad_y"], a["x"], a["weight"]),
                            {"grad_y": gy, "x": x, "weight": w}),
        "max_pool2d": (lambda a: F.max_pool2d(a["x"], 2), {"x": x}),
        "max_pool2d_backward": (lambda a: F.max_pool2d_backward(a["grad_y"], a["indices"],
                                                                x.shape, 2),
                                {"grad_y": p, "indices": idx}),
        "avg_pool2d": (lambda a: F.avg_pool2d(a["x"], 2), {"x": x}),
        "avg_pool2d_backward": (lambda a: F.avg_pool2d_backward(a["grad_y"], x.shape, 2),
                                {"grad_y": p}),
    }
    for op, (call, arrays) in calls.items():
        for name in arrays:
            yield pytest.param(call, arrays, name, id=f"{op}-{name}")


def _with_rank(a, ndim):
    """a's elements as an ndim-D array: trailing axes merged, or axes of size 1 appended."""
    if ndim == 0:
        return a.flat[0]
    if ndim < a.ndim:
        return a.reshape(a.shape[:ndim - 1] + (-1,))
    return a.reshape(a.shape + (1,) * (ndim - a.ndim))


@pytest.mark.parametrize("call, arrays, name", list(_array_args()))
def test_every_wrong_rank_is_value_error(call, arrays, name):
    call(arrays)  # the valid call works, so each failure below is the rank's
    for ndim in sorted(set(range(7)) - {arrays[name].ndim}):
        with pytest.raises(ValueError):
            call({**arrays, name: _with_rank(arrays[name], ndim)})


# ------------------------------------------------------------------- unusual array objects

@pytest.mark.parametrize("value", [None, "abc", [[1, 2], [3]], {"a": 1}, object()],
                         ids=["None", "str", "ragged-list", "dict", "object"])
def test_non_array_input_is_type_or_value_error(value):
    with pytest.raises((TypeError, ValueError)):
        F.conv2d(value, np.ones((1, 1, 1, 1), np.float32))
    with pytest.raises((TypeError, ValueError)):
        F.max_pool2d(value, 1)


@pytest.mark.parametrize("dtype", [np.dtype([("a", "f4")]), np.dtype("m8[s]"),
                                   np.dtype("V4")], ids=["structured", "timedelta", "void"])
def test_structured_timedelta_and_void_dtypes_are_type_errors(dtype):
    x = np.zeros((1, 1, 4, 4), dtype)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d(x, np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        F.avg_pool2d(x, 2)


def test_nested_lists_compute_like_arrays():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), np.float32)
    np.testing.assert_array_equal(F.conv2d(x.tolist(), w.tolist()), F.conv2d(x, w))


def _unaligned(a):
    """a's values in C order at an odd byte address (the data pointer is not a multiple of
    the item size)."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _zero_strided(a):
    """A read-only view whose batch axis repeats one image (stride 0), like broadcast_to."""
    return np.broadcast_to(a[:1], a.shape)


@pytest.mark.parametrize("layout", [_unaligned, _zero_strided], ids=["unaligned", "zero-stride"])
def test_unaligned_and_zero_stride_inputs_give_the_contiguous_result(layout):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 3, 7, 6)).astype(np.float32),
              rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              rng.standard_normal((2, 4, 5, 4)).astype(np.float32)]
    y, idx = F.max_pool2d(arrays[0], 2, return_indices=True)
    lx, lw, lgy, ly, lidx = (layout(a) for a in (*arrays, y, idx))
    x, w, gy, y, idx = (np.array(a) for a in (lx, lw, lgy, ly, lidx))  # the same, plainly
    np.testing.assert_array_equal(F.conv2d(lx, lw), F.conv2d(x, w))
    for got, want in zip(F.conv2d_backward(lgy, lx, lw), F.conv2d_backward(gy, x, w)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(F.max_pool2d(lx, 2), y)
    np.testing.assert_array_equal(F.max_pool2d_backward(ly, lidx, x.shape, 2),
                                  F.max_pool2d_backward(y, idx, x.shape, 2))
    np.testing.assert_array_equal(F.avg_pool2d(lx, 3), F.avg_pool2d(x, 3))
    np.testing.assert_array_equal(F.avg_pool2d_backward(ly, x.shape, 2),
                                  F.avg_pool2d_backward(y, x.shape, 2))


# ----------------------------------------------------------------------- zero-size arrays

ZERO_CONV = {  # x shape, weight shape, padding: a zero in each place one can be
    "N=0": ((0, 2, 5, 5), (3, 2, 3, 3), 0),
    "C=0": ((2, 0, 5, 5), (3, 0, 3, 3), 0),
    "H=0-padded": ((2, 2, 0, 5), (3, 2, 1, 3), 1),
    "W=0-padded": ((2, 2, 5, 0), (3, 2, 3, 1), 1),
    "H=W=0-padded": ((1, 2, 0, 0), (3, 2, 1, 1), (1, 2)),
    "huge-plane-N=0": ((0, 1, 70000, 70000), (1, 1, 3, 3), 0),
}


@pytest.mark.parametrize("case", ZERO_CONV)
def test_conv2d_with_zero_sizes_matches_reference(case):
    x_shape, w_shape, padding = ZERO_CONV[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape) if np.prod(x_shape) else np.empty(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = F.conv2d(x, w, b, padding=padding)
    assert_same_values(y, R.conv2d(x, w, b, padding=padding))
    for got, want in zip(F.conv2d_backward(np.ones_like(y), x, w, padding=padding),
                         R.conv2d_backward(np.ones_like(y), x, w, padding=padding)):
        assert_same_values(got, want)


ZERO_POOL = {"N=0": (0, 2, 4, 4), "C=0": (2, 0, 4, 4), "huge-plane-C=0": (1, 0, 70000, 70000)}


@pytest.mark.parametrize("case", ZERO_POOL)
def test_pooling_with_zero_sizes_gives_empty_results(case):
    x = np.empty(ZERO_POOL[case])
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert y.shape == x.shape[:2] + (x.shape[2] // 2, x.shape[3] // 2)
    assert idx.dtype == np.int64 and idx.shape == y.shape
    assert F.max_pool2d_backward(y, idx, x.shape, 2).shape == x.shape
    assert F.avg_pool2d(x, 2).shape == y.shape
    assert F.avg_pool2d_backward(y, x.shape, 2).shape == x.shape


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pooling_an_empty_plane_is_value_error(pool):
    with pytest.raises(ValueError, match="output size"):
        pool(np.empty((1, 1, 0, 4)), 1)


# ------------------------------------------------------------ huge sizes, in a capped child

CAPPED_CHILD = """
import os, resource, sys
import numpy as np
from numpy.lib.stride_tricks import as_strided
import fastcnn
import fastcnn.functional as F
import fastcnn.reference as R
fastcnn.set_num_threads(1)
cap = int(sys.argv[1])
if cap:
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + cap, mapped + cap))
x4 = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
w1 = np.full((1, 1, 1, 1), 2, np.float32)
w3 = np.ones((1, 1, 3, 3), np.float32)
g1 = np.ones((1, 1, 1, 1), np.float32)
i1 = np.zeros((1, 1, 1, 1), np.int64)
def view(shape):  # a read-only float32 view of one element repeated: no memory behind it
    return as_strided(np.ones(1, np.float32), shape, (0,) * len(shape), writeable=False)
try:
    exec(sys.argv[2])
except Exception as e:
    print(type(e).__name__, str(e)[:200])
else:
    print("ok")
"""

TOO_BIG = ("MemoryError", "ValueError")  # numpy: cannot allocate / more than it can address

# Files that claim or inflate to more than the cap: the readers must refuse them from their
# headers (3 GiB of zeros, streamed through zlib in 64 MiB pieces so the child can write them).
_BOMB = """
import gzip, os, struct, tempfile, zlib
def zeros(write, n=3 << 30, piece=64 << 20):
    for _ in range(n // piece):
        write(bytes(piece))
def png_bomb(path):
    z = zlib.compressobj(1); parts = []
    zeros(lambda b: parts.append(z.compress(b))); parts.append(z.flush())
    data = b"".join(parts)
    def chunk(kind, d):
        return struct.pack(">I", len(d)) + kind + d + struct.pack(">I", zlib.crc32(kind + d))
    open(path, "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8,
        0, 0, 0, 0)) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
def idx_bomb(path):
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"\\0\\0\\x08\\x01" + struct.pack(">I", 2**32 - 1)); zeros(f.write)
d = tempfile.mkdtemp()
"""

HUGE = {
    "png-inflating-to-3-GiB": (_BOMB + "png_bomb(d + '/b.png')\n"
                               "from fastcnn._png import read_png; read_png(d + '/b.png')",
                               ("ValueError",)),
    "idx-gzip-inflating-to-3-GiB": (_BOMB + "idx_bomb(d + '/b-idx1-ubyte.gz')\n"
                                    "fastcnn.data.read_idx(d + '/b-idx1-ubyte.gz')",
                                    ("ValueError",)),
    "cifar-pickle-memo-at-2**30": (
        "import tempfile; p = tempfile.mktemp()\n"
        "open(p, 'wb').write(b'\\x80\\x02Nr' + (2**30).to_bytes(4, 'little') + b'.')\n"
        "from fastcnn.data import _read_cifar_batch; _read_cifar_batch(p)", ("ValueError",)),
    # 70000 x 70000 = 4.9e9 elements per plane: indices pass 32 bits, copies need ~20 GB
    "conv2d-zero-stride-view-70000x70000": ("F.conv2d(view((1, 1, 70000, 70000)), w3)",
                                            TOO_BIG),
    "max_pool2d-zero-stride-view-70000x70000": ("F.max_pool2d(view((1, 1, 70000, 70000)), 2)",
                                                TOO_BIG),
    "avg_pool2d-zero-stride-view-70000x70000": ("F.avg_pool2d(view((1, 1, 70000, 70000)), 2)",
                                                TOO_BIG),
    "conv2d_backward-zero-stride-views": (
        "F.conv2d_backward(view((1, 1, 69998, 69998)), view((1, 1, 70000, 70000)), w3)",
        TOO_BIG),
    "conv2d-output-of-4.9e9-from-one-pixel": ("F.conv2d(x4[..., :1, :1], w1, padding=35000)",
                                              TOO_BIG),
    "max_pool2d_backward-into-70000x70000": (
        "F.max_pool2d_backward(g1, i1, (1, 1, 70000, 70000), 70000)", TOO_BIG),
    "avg_pool2d_backward-into-70000x70000": (
        "F.avg_pool2d_backward(g1, (1, 1, 70000, 70000), 70000)", TOO_BIG),
    # sizes whose 64-bit indices would overflow: refused before any allocation
    "conv2d-padding-2**31-both-axes": ("F.conv2d(x4, w1, padding=2**31)", ("ValueError",)),
    "conv2d-padded-input-past-2**60": (
        "F.conv2d(np.ones((16384, 1, 1, 1), np.float32), w1, padding=2**24, stride=2**24)",
        ("ValueError",)),
    "conv2d-padding-2**64": ("F.conv2d(x4, w1, padding=2**64)", ("ValueError",)),
    "max_pool2d_backward-input_shape-2**62": (
        "F.max_pool2d_backward(g1, i1, (1, 1, 2**62, 2**62), 2**62)", ("ValueError",)),
    "max_pool2d_backward-input_shape-2**70": (
        "F.max_pool2d_backward(g1, i1, (1, 1, 2**70, 1), (2**70, 1))", ("ValueError",)),
    "max_pool2d-dilated-window-past-2**60": (
        "F.max_pool2d(x4, 2, stride=2**62, dilation=2**61, ceil_mode=True)", ("ValueError",)),
    # hyper-parameters past 32 and 64 bits that leave a valid call: the correct result
    "conv2d-stride-2**64-one-output": (
        "assert (F.conv2d(x4, w3, stride=2**64) == R.conv2d(x4, w3)[..., :1, :1]).all()",
        ("ok",)),
    "conv2d-column-stride-2**31-no-8GB-buffer": (
        "assert (F.conv2d(x4, w3, stride=(1, 2**31)) == R.conv2d(x4, w3)[..., :1]).all()",
        ("ok",)),
    "conv2d_backward-stride-2**63": (
        "got = F.conv2d_backward(g1, x4, w3, stride=2**63)\n"
        "want = R.conv2d_backward(g1, x4, w3, stride=4)\n"
        "assert all((a == b).all() for a, b in zip(got, want))", ("ok",)),
    "conv2d-dilation-2**64-one-tap": (
        "assert (F.conv2d(x4, w1, dilation=2**64) == 2 * x4).all()", ("ok",)),
    "max_pool2d-stride-2**100-one-window": (
        "assert (F.max_pool2d(x4, 2, stride=2**100) == 5).all()", ("ok",)),
    "avg_pool2d-stride-2**100-one-window": (
        "assert (F.avg_pool2d(x4, 2, stride=2**100) == 2.5).all()", ("ok",)),
    "max_pool2d-kernel-2**31-rows-is-a-column-max": (
        "y = F.max_pool2d(x4, (2**31 + 1, 1), stride=1, padding=(2**30, 0))\n"
        "assert (y == [12, 13, 14, 15]).all()", ("ok",)),
    "max_pool2d-kernel-2**31-dilation-2-ceil-mode": (
        "assert (F.max_pool2d(x4[..., :1, :1], (2**31, 1), stride=(2**31, 1), "
        "padding=(2**30, 0), dilation=(2, 1), ceil_mode=True) == 0).all()", ("ok",)),
    "avg_pool2d-kernel-2**31-rows-is-a-column-mean": (
        "y = F.avg_pool2d(x4, (2**31 + 1, 1), stride=1, padding=(2**30, 0), "
        "count_include_pad=False)\n"
        "assert (y == [6, 7, 8, 9]).all()", ("ok",)),
    "max_pool2d-padded-plane-past-2**60": (
        "F.max_pool2d(x4, 2**31 + 1, stride=1, padding=2**30)", ("ValueError",)),
}


def run_capped(code: str, timeout=CHILD_TIMEOUT) -> str:
    """Run code in a fresh interpreter with its address space capped; return its verdict:
    'ok', or the name of the exception it raised, then the message."""
    env = dict(os.environ)
    cap = CAP
    if _under_asan():  # ASan maps terabytes of shadow memory: cap single allocations instead
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + f":max_allocation_size_mb="
                               f"{CAP >> 20}:allocator_may_return_null=1").lstrip(":")
        cap = 0
    proc = subprocess.run([sys.executable, "-c", CAPPED_CHILD, str(cap), code], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd="/")
    assert proc.returncode == 0, f"the child crashed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps memory with setrlimit")
@pytest.mark.parametrize("case", HUGE)
def test_huge_sizes_give_a_clean_error_or_the_correct_result(case):
    code, verdicts = HUGE[case]
    verdict = run_capped(code)
    assert verdict.split()[0] in verdicts, verdict


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps memory with setrlimit")
def test_max_pool2d_with_a_huge_kernel_finishes():
    """Kernel columns that only ever fall in the padding cost nothing."""
    code = ("y = F.max_pool2d(x4, (1, 2**36 + 1), stride=1, padding=(0, 2**35))\n"
            "assert (y == [[3], [7], [11], [15]]).all()")
    assert run_capped(code, timeout=10) == "ok"


# ------------------------------------------------------- NaN and infinities in every place

def _conv_arrays(dtype):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 2, 5, 6)).astype(dtype),
            "weight": rng.standard_normal((3, 2, 3, 3)).astype(dtype),
            "bias": rng.standard_normal(3).astype(dtype),
            "grad_y": rng.standard_normal((2, 3, 5, 3)).astype(dtype)}


CONV = {"padding": 1, "stride": (1, 2)}


def _with_value_at_each_place(arrays, name, value):
    """Copies of arrays with one element of arrays[name] set to value, for each element."""
    for i in range(arrays[name].size):
        a = dict(arrays)
        a[name] = arrays[name].copy()
        a[name].flat[i] = value
        yield a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", NONFINITE)
@pytest.mark.parametrize("name", ["x", "weight", "bias"])
def test_conv2d_nonfinite_in_every_place_matches_reference(name, value, dtype):
    for a in _with_value_at_each_place(_conv_arrays(dtype), name, NONFINITE[value]):
        with np.errstate(invalid="ignore"):
            want = R.conv2d(a["x"], a["weight"], a["bias"], **CONV)
        assert_same_values(F.conv2d(a["x"], a["weight"], a["bias"], **CONV), want, dtype)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", NONFINITE)
@pytest.mark.parametrize("name", ["grad_y", "x", "weight"])
@pytest.mark.parametrize("out", ["grad_x", "grad_weight", "grad_bias"])
def test_conv2d_backward_nonfinite_in_every_place_matches_reference(name, out, value, dtype):
    which = ["grad_x", "grad_weight", "grad_bias"].index(out)
    for a in _with_value_at_each_place(_conv_arrays(dtype), name, NONFINITE[value]):
        with np.errstate(invalid="ignore"):
            want = R.conv2d_backward(a["grad_y"], a["x"], a["weight"], **CONV)[which]
        got = F.conv2d_backward(a["grad_y"], a["x"], a["weight"], **CONV)[which]
        assert_same_values(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", NONFINITE)
@pytest.mark.parametrize("r", range(3))
def test_conv2d_nonfinite_weight_still_meets_the_padding(r, value, dtype):
    """Rows wide enough for tiles of their own (960 columns: a multiple of every tile width,
    so no tile runs across rows), where the forward kernel skips the taps that read padding
    alone: a non-finite weight must still meet the padding's zeros (0 * inf is NaN, as in the
    reference). The data gradient of such weights is the reference's (see conv2d_backward)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 4, 960)).astype(dtype)
    gy = rng.standard_normal((1, 3, 4, 960)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    w[1, 1, r, 2] = NONFINITE[value]
    with np.errstate(invalid="ignore"):
        want_y = R.conv2d(x, w, padding=1)
        want_gx = R.conv2d_backward(gy, x, w, padding=1)[0]
    assert_same_values(F.conv2d(x, w, padding=1), want_y, dtype)
    assert_same_values(F.conv2d_backward(gy, x, w, padding=1)[0], want_gx, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 8], ids=["rows-per-task", "whole-copy"])
def test_conv2d_left_padding_past_every_window_is_not_written_past_its_row(K, dtype):
    """One output column (its stride then counts as 1) with a left padding far wider than the
    rows the windows reach: the padded rows are 1 element long and hold none of x. Padding
    them once wrote the left padding's 200 zeros regardless, past the buffers' ends (found
    by valgrind; the sanitizer run of this suite catches it)."""
    x = np.ones((1, 1, 1, 1), dtype)
    w = np.ones((K, 1, 1, 1), dtype)
    kw = {"padding": (0, 200), "stride": (1, 1000)}
    assert_same_values(F.conv2d(x, w, **kw), R.conv2d(x, w, **kw), dtype)
    gy = np.ones((1, K, 1, 1), dtype)
    for got, want in zip(F.conv2d_backward(gy, x, w, **kw), R.conv2d_backward(gy, x, w, **kw)):
        assert_same_values(got, want, dtype)


@pytest.mark.parametrize("value", NONFINITE)
def test_pooling_gradients_carry_nonfinite_grad_y_like_reference(value):
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    kw = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    y, idx = F.max_pool2d(x, **kw, return_indices=True)
    for i in range(y.size):
        gy = np.ones_like(y)
        gy.flat[i] = NONFINITE[value]
        assert_same_values(F.max_pool2d_backward(gy, idx, x.shape, **kw),
                           R.max_pool2d_backward(gy, idx, x.shape, **kw))
        assert_same_values(F.avg_pool2d_backward(gy, x.shape, **kw),
                           R.avg_pool2d_backward(gy, x.shape, **kw))


# ---------------------------------------------------------------------- layers, misused

X = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)

LAYERS = {
    "Conv2d": lambda: nn.Conv2d(3, 2, 3, padding=1),
    "MaxPool2d": lambda: nn.MaxPool2d(2),
    "AvgPool2d": lambda: nn.AvgPool2d(2),
    "ReLU": nn.ReLU,
    "LeakyReLU": lambda: nn.LeakyReLU(0.1),
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "Softmax": lambda: nn.Softmax(1),
    "Flatten": nn.Flatten,
    "Dropout": lambda: nn.Dropout(0.5, rng=0),
    "BatchNorm2d": lambda: nn.BatchNorm2d(3),
    "Linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(48, 5)),
    "Sequential": lambda: fastcnn_default(),
}


def fastcnn_default():
    from fastcnn import default_cnn
    return default_cnn(3, 5, (4, 4), width=2, rng=0)


@pytest.mark.parametrize("layer", LAYERS)
def test_backward_before_forward_is_runtime_error(layer):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        LAYERS[layer]().backward(np.ones((2, 3, 4, 4), np.float32))


BAD_GRADS = {  # from the right gradient shape: a wrong one
    "one-more-column": lambda s: s[:-1] + (s[-1] + 1,),
    "size-1": lambda s: (1,),
    "no-batch-axis": lambda s: s[1:],
    "extra-axis": lambda s: s + (1,),  # same elements: may also pass as the right shape
}

def _grad_cases():
    for layer in LAYERS:
        for bad in BAD_GRADS:
            yield pytest.param(layer, bad, id=f"{layer}-{bad}")


@pytest.mark.parametrize("layer, bad", list(_grad_cases()))
def test_backward_with_a_wrong_gradient_shape_is_value_error(layer, bad):
    """ValueError, or (for a gradient holding the right elements in another shape) the
    gradient that the right shape gives."""
    module = LAYERS[layer]()
    y = module(X)
    grad = np.random.default_rng(1).standard_normal(BAD_GRADS[bad](y.shape)).astype(np.float32)
    if grad.size != y.size:
        with pytest.raises(ValueError):
            module.backward(grad)
        return
    try:
        got = module.backward(grad)
    except ValueError:
        return
    module.zero_grad()
    module(X)
    np.testing.assert_array_equal(got, module.backward(grad.reshape(y.shape)))


# ------------------------------------------------------------- optimizers given NaN or inf

OPTIMIZERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.1),
    "SGD-nesterov-decay": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                              weight_decay=0.01),
    "Adam": lambda p: optim.Adam(p, lr=0.01, weight_decay=0.01),
    "AdamW": lambda p: optim.AdamW(p, lr=0.01),
}


def _steps(make, bad_value, steps=3):
    """Parameters after a few steps whose gradient holds bad_value at one entry."""
    rng = np.random.default_rng(0)
    p = nn.Parameter(rng.standard_normal((3, 4)))
    opt = make([p])
    for _ in range(steps):
        p.grad = rng.standard_normal(p.shape)
        p.grad[1, 2] = bad_value
        opt.step()
    return p.data


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("make", OPTIMIZERS)
def test_optimizer_nonfinite_gradient_spoils_only_its_entry(make, value):
    """Documented: NaN and infinities propagate (as in PyTorch), entry by entry."""
    got = _steps(OPTIMIZERS[make], NONFINITE[value])
    clean = _steps(OPTIMIZERS[make], 0.0)
    assert not np.isfinite(got[1, 2])
    mask = np.ones(got.shape, bool)
    mask[1, 2] = False
    np.testing.assert_array_equal(got[mask], clean[mask])


TORCH_OPTIMIZERS = {
    "SGD": ("SGD", {"lr": 0.1}),
    "SGD-nesterov-decay": ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                                   "weight_decay": 0.01}),
    "Adam": ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    "AdamW": ("AdamW", {"lr": 0.01}),
}


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("make", OPTIMIZERS)
def test_optimizer_nonfinite_gradient_gives_pytorchs_result(make, value):
    torch = pytest.importorskip("torch")
    name, kwargs = TORCH_OPTIMIZERS[make]
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    opt = getattr(torch.optim, name)([p], **kwargs)
    for _ in range(3):
        grad = rng.standard_normal((3, 4))
        grad[1, 2] = NONFINITE[value]
        p.grad = torch.from_numpy(grad)
        opt.step()
    assert_same_values(_steps(OPTIMIZERS[make], NONFINITE[value]), p.detach().numpy())


# ------------------------------------------------------------ model files that attack memory

def _model_file(path, architecture: str, arrays=()):
    """A well-formed model file (valid checksum) with the given architecture (JSON text)
    and arrays."""
    import hashlib

    from fastcnn.io import FORMAT_VERSION, MAGIC

    entries, data = [], b""
    for name, a in arrays:
        entries.append({"name": name, "dtype": "<f4", "shape": list(a.shape),
                        "offset": len(data), "nbytes": a.nbytes})
        data += a.astype("<f4").tobytes()
    header = (f'{{"format": {FORMAT_VERSION}, "architecture": {architecture}, "dtype": '
              f'"float32", "arrays": {json.dumps(entries)}, "metadata": {{}}}}').encode()
    body = struct.pack("<8sIQ", MAGIC, FORMAT_VERSION, len(header)) + header + data
    path.write_bytes(body + hashlib.sha256(body).digest())
    return path


def test_model_file_fixture_writes_loadable_files(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3))
    path = _model_file(tmp_path / "m", json.dumps(model.get_config()),
                       [(k, v) for k, v in model.state_dict().items()])
    assert repr(load(path)) == repr(model)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps memory with setrlimit")
def test_file_naming_giant_layers_is_refused_without_allocating_them(tmp_path):
    arch = nn.Sequential(nn.Linear(2, 3)).get_config()
    linear = arch["config"]["layers"][0]["config"]
    linear["in_features"] = linear["out_features"] = 50_000  # 10 GB of float32
    path = _model_file(tmp_path / "giant", json.dumps(arch))
    assert path.stat().st_size < 1000
    verdict = run_capped(f"from fastcnn import load; load({str(path)!r})")
    assert verdict.split()[0] == "FormatError", verdict


@pytest.mark.parametrize("depth", [900, 100_000])
def test_deeply_nested_architecture_is_format_error_or_loads(tmp_path, depth):
    """JSON nested past the recursion limit is refused; below it, the model loads."""
    arch = ('{"class": "Sequential", "config": {"layers": [' * depth
            + '{"class": "ReLU", "config": {}}' + "]}}" * depth)
    path = _model_file(tmp_path / "deep", arch)
    try:
        model = load(path)
    except FormatError:
        return
    assert isinstance(model, nn.Sequential)


def test_saving_a_model_with_nonfinite_weights_round_trips(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3))
    model[0].weight.data[0] = [np.nan, np.inf]
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    np.testing.assert_array_equal(loaded[0].weight.data, model[0].weight.data)
