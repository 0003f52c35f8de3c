"""Fuzzing with hypothesis: bytes and mutated model files into `fastcnn.load`, and random
argument combinations into every `fastcnn.functional` entry point.

* `load` may return a model or raise `FormatError`; nothing else.
* A kernel may raise ValueError or TypeError, exactly when the NumPy reference (which shares
  the argument checks) raises the same; otherwise both return arrays of the same shapes and
  dtypes, and, for finite inputs, the same numbers within rounding.

CI runs a fixed, modest number of examples (derandomized, so a run is reproducible). For a
long local run: FASTCNN_FUZZ_EXAMPLES=20000 pytest tests/robustness/test_fuzz.py (then each run
draws new examples). Inputs that ever failed are pinned below with @example as regression cases.

Integer hyper-parameters come from a small range or from huge values (2**61 and above): the
first give small arrays, the second must be refused or make no difference. Values in between
can ask for legitimately enormous outputs; test_hostile.py tries those in a memory-capped
process.
"""
import hashlib
import json
import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import fastcnn.functional as F
import fastcnn.reference as R
from fastcnn import nn, save
from fastcnn.io import FORMAT_VERSION, MAGIC, FormatError, load
from harness import assert_close

EXAMPLES = int(os.environ.get("FASTCNN_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="FASTCNN_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------------------ model files


def _valid_file() -> bytes:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(8, 3, rng=0))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.fcnn")
        save(model, path, metadata={"input_shape": [1, 4, 4], "classes": ["a", "b", "c"]})
        with open(path, "rb") as f:
            return f.read()


VALID = _valid_file()
_PREFIX = struct.Struct("<8sIQ")


def reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def split(blob: bytes):
    """(header dict, data bytes) of a well-formed file."""
    _, _, size = _PREFIX.unpack_from(blob)
    return json.loads(blob[_PREFIX.size:_PREFIX.size + size]), blob[_PREFIX.size + size:-32]


def join(header_text: str, data: bytes, version=FORMAT_VERSION) -> bytes:
    raw = header_text.encode("utf-8", "surrogatepass")
    return reseal(_PREFIX.pack(MAGIC, version, len(raw)) + raw + data)


def _load_verdict(path, blob: bytes):
    """Load blob from path: a model, or FormatError; anything else fails the test."""
    path.write_bytes(blob)
    try:
        model = load(path)
    except FormatError as e:
        event(f"FormatError: {str(e).split(': ')[1][:30]}")
        return None
    event("loaded")
    repr(model)
    model.state_dict()
    return model


SMALL_INTS = st.integers(-2, 40)
HUGE_INTS = st.sampled_from([2**61, 2**62, 2**63 - 1, 2**63, 2**64, 2**100, -(2**63)])
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), SMALL_INTS, HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["Sequential", "Conv2d", "Linear", "ReLU", "BatchNorm2d", "MaxPool2d",
                     "Flatten", "Dropout", "<f4", "<f8", "<i8", "|O", "float64", "same"]))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _paths(node, prefix=()):
    """Every place in a JSON tree (as key paths), the root included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


def _replaced(tree, path, value):
    if not path:
        return value
    tree = json.loads(json.dumps(tree))
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


@FUZZ
@given(blob=st.one_of(st.binary(max_size=600), st.binary(max_size=300).map(lambda b: MAGIC + b),
                      st.binary(max_size=300).map(lambda b: reseal(MAGIC + b))))
@example(blob=b"")
@example(blob=VALID[:-1])
def test_load_random_bytes(tmp_path, blob):
    assert _load_verdict(tmp_path / "m", blob) is None


MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(VALID) - 1), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, len(VALID) - 1), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, len(VALID))),
    st.tuples(st.just("insert"), st.integers(0, len(VALID)), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, len(VALID)), st.integers(1, 64)),
), min_size=1, max_size=4)


def _mutate(blob: bytes, mutations) -> bytes:
    b = bytearray(blob)
    for op, *args in mutations:
        if op == "flip" and args[0] < len(b):
            b[args[0]] ^= 1 << args[1]
        elif op == "set" and args[0] < len(b):
            b[args[0]] = args[1]
        elif op == "truncate":
            del b[args[0]:]
        elif op == "insert":
            b[args[0]:args[0]] = args[1]
        elif op == "delete":
            del b[args[0]:args[0] + args[1]]
    return bytes(b)


@FUZZ
@given(mutations=MUTATIONS, resealed=st.booleans())
def test_load_mutated_file(tmp_path, mutations, resealed):
    """Byte-level damage; resealed (checksum recomputed) to reach the checks behind it."""
    blob = _mutate(VALID, mutations)
    if resealed and len(blob) >= 32:
        blob = reseal(blob[:-32])
    _load_verdict(tmp_path / "m", blob)


@FUZZ
@given(data=st.data(), version=st.sampled_from([FORMAT_VERSION, 0, FORMAT_VERSION + 1]))
@example(data=None, version=FORMAT_VERSION).via("the valid file loads")
def test_load_file_with_mutated_header(tmp_path, data, version):
    """One value anywhere in the JSON header replaced, the file otherwise well-formed."""
    header, blob_data = split(VALID)
    if data is not None:
        paths = list(_paths(header))
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="path index")]
        header = _replaced(header, path, data.draw(JSON_VALUES, label="value"))
    model = _load_verdict(tmp_path / "m", join(json.dumps(header), blob_data, version))
    if data is None:
        assert model is not None


@FUZZ
@given(values=st.lists(st.floats(width=32), min_size=1, max_size=16), offset=st.integers(0, 200))
def test_load_file_with_any_weights(tmp_path, values, offset):
    """Any float32 bit patterns (NaN, inf, denormals) in the data section load unchanged."""
    header, blob_data = split(VALID)
    data = bytearray(blob_data)
    raw = np.asarray(values, "<f4").tobytes()
    start = min(offset * 4, len(data) - len(raw))
    data[start:start + len(raw)] = raw
    model = _load_verdict(tmp_path / "m", join(json.dumps(header), bytes(data)))
    assert model is not None


# ---------------------------------------------------------------------- functional kernels

DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int64", "bool", ">f4", ">f8",
          "complex64", "object", "<U1"]


def _layout(a, how):
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "reversed" and a.ndim:
        return a[..., ::-1].copy()[..., ::-1]
    if how == "read-only":
        a = a.copy()
        a.setflags(write=False)
        return a
    if how == "unaligned" and a.dtype.kind in "biuf" and a.size:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        out = np.frombuffer(buf.data, a.dtype, a.size, 1).reshape(a.shape)
        out[...] = a
        return out
    return a


@st.composite
def arrays(draw, shape=None, dtype=None, ndim=4):
    """An array of the given (else small random) shape and dtype (else any), with values
    normal, small integers (ties) or with NaN/inf, in a plain or unusual layout."""
    if shape is None:
        shape = tuple(draw(st.integers(0, 5)) for _ in range(ndim))
    if dtype is None or not isinstance(dtype, str):
        dtype = draw(dtype if dtype is not None else st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(shape)
    kind = draw(st.sampled_from(["normal", "normal", "ties", "nonfinite"]))
    if kind == "ties":
        values = np.round(values)
    elif kind == "nonfinite" and values.size:
        values[rng.random(shape) < 0.2] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        a = values.astype(dtype) if np.dtype(dtype).kind not in "iub" \
            else np.nan_to_num(values, posinf=3, neginf=-3).astype(dtype)
    return _layout(a, draw(st.sampled_from(["plain"] * 4 + ["fortran", "reversed",
                                                             "read-only", "unaligned"])))


HYPER_INTS = st.one_of(SMALL_INTS.filter(lambda v: v <= 4), HUGE_INTS)
WILD = st.one_of(  # any hyper-parameter a caller might pass
    HYPER_INTS, st.tuples(HYPER_INTS, HYPER_INTS), st.lists(HYPER_INTS, max_size=3),
    st.none(), st.booleans(),
    st.sampled_from([1.0, 2.5, "2", "same", "valid", float("nan"), np.int64(2), np.uint8(1)]))
SANE_DTYPES = ["float32", "float64", "float16", "int8", "bool", ">f4", ">f8"]


def _sometimes_wild(draw, sane, wild=WILD):
    """Mostly a sane value; one time in eight a wild one."""
    return draw(wild) if draw(st.integers(0, 7)) == 0 else draw(sane)


def _pair(low, high):
    return st.one_of(st.integers(low, high), st.tuples(st.integers(low, high),
                                                       st.integers(low, high)))


def _shape_of(f, *args, **kwargs):
    """The shape of the reference's result (its first, for tuples), or None if it refuses."""
    try:
        with np.errstate(all="ignore"):
            out = f(*args, **kwargs)
    except (ValueError, TypeError):
        return None
    return (out[0] if isinstance(out, tuple) else out).shape


def _conv_call(draw, op):
    g = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(SANE_DTYPES))
    x = draw(arrays(shape=(draw(st.integers(0, 3)), g * draw(st.integers(0, 2)),
                           draw(st.integers(0, 8)), draw(st.integers(0, 8))), dtype=dtype))
    w = draw(arrays(shape=(g * draw(st.integers(1, 3)), x.shape[1] // g, draw(st.integers(1, 3)),
                           draw(st.integers(1, 3))), dtype=dtype))
    kwargs = {"stride": _sometimes_wild(draw, _pair(1, 3)),
              "padding": _sometimes_wild(draw, st.one_of(_pair(0, 2),
                                                         st.sampled_from(["same", "valid"]))),
              "dilation": _sometimes_wild(draw, _pair(1, 3)),
              "groups": _sometimes_wild(draw, st.just(g))}
    if op == "conv2d":
        bias = draw(st.one_of(st.none(), arrays(shape=(w.shape[0],), dtype=dtype)))
        return {"args": (x, w, bias), "kwargs": kwargs}
    shape = _shape_of(R.conv2d, x, w, **kwargs) or draw(st.tuples(*[st.integers(0, 4)] * 4))
    return {"args": (draw(arrays(shape=shape, dtype=dtype)), x, w), "kwargs": kwargs}


def _pool_call(draw, op):
    k = draw(_pair(1, 4))
    kk = (k, k) if isinstance(k, int) else k
    kwargs = {"kernel_size": _sometimes_wild(draw, st.just(k)),
              "stride": _sometimes_wild(draw, st.one_of(st.none(), _pair(1, 3))),
              "padding": _sometimes_wild(draw, st.tuples(st.integers(0, kk[0] // 2),
                                                         st.integers(0, kk[1] // 2))),
              "ceil_mode": _sometimes_wild(draw, st.booleans())}
    if op.startswith("max"):
        kwargs["dilation"] = _sometimes_wild(draw, _pair(1, 2))
    else:
        kwargs["count_include_pad"] = _sometimes_wild(draw, st.booleans())
    dtype = draw(st.sampled_from(SANE_DTYPES))
    x = draw(arrays(shape=tuple(draw(st.integers(0, 3)) for _ in range(2))
                    + tuple(draw(st.integers(1, 9)) for _ in range(2)), dtype=dtype))
    if op == "max_pool2d":
        kwargs["return_indices"] = _sometimes_wild(draw, st.booleans())
    if op in ("max_pool2d", "avg_pool2d"):
        return {"args": (x,), "kwargs": kwargs}
    forward = {k: v for k, v in kwargs.items() if k != "count_include_pad"}
    shape = _shape_of(R.max_pool2d, x, **forward) or draw(st.tuples(*[st.integers(0, 4)] * 4))
    gy = draw(arrays(shape=shape, dtype=dtype))
    input_shape = _sometimes_wild(draw, st.just(x.shape), st.one_of(
        WILD, st.tuples(*[st.integers(0, 6)] * 4), st.tuples(*[HYPER_INTS] * 4)))
    if op == "avg_pool2d_backward":
        return {"args": (gy, input_shape), "kwargs": kwargs}
    try:
        with np.errstate(all="ignore"):
            indices = R.max_pool2d(x, **{**forward, "return_indices": True})[1]
    except (ValueError, TypeError):
        indices = np.zeros(shape, np.int64)
    if draw(st.integers(0, 7)) == 0:  # damaged: out of range, wrong dtype or shape
        indices = draw(st.one_of(
            st.just(indices + draw(st.sampled_from([-1, 1, x.shape[2] * x.shape[3]]))),
            st.just(indices.astype(draw(st.sampled_from(["int8", "uint64", "float64"])))),
            arrays(dtype="int64")))
    return {"args": (gy, indices, input_shape), "kwargs": kwargs}


@st.composite
def calls(draw):
    """An entry point and its arguments: mostly a well-formed call (castable dtypes, odd
    layouts, zero sizes, NaN and infinities), sometimes wild hyper-parameters or arrays."""
    op = draw(st.sampled_from(["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
                               "avg_pool2d", "avg_pool2d_backward"]))
    a = _conv_call(draw, op) if op.startswith("conv") else _pool_call(draw, op)
    if draw(st.integers(0, 7)) == 0:  # one array argument replaced by anything
        args = list(a["args"])
        args[draw(st.integers(0, len(args) - 1))] = draw(st.one_of(
            arrays(ndim=draw(st.integers(0, 6)), dtype=st.sampled_from(DTYPES)), WILD))
        a["args"] = tuple(args)
    return op, a


def _call(module, op, a):
    return getattr(module, op)(*a["args"], **a["kwargs"])


def _absolute(a):
    """The same call on absolute values: the magnitude of each result element's terms."""
    def absolute(v):
        return np.abs(v) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
    return {"args": tuple(absolute(v) for v in a["args"]),
            "kwargs": a["kwargs"]}


def _finite(a):
    return all(np.isfinite(v).all() for v in a["args"]
               if isinstance(v, np.ndarray) and v.dtype.kind in "fc")


_ONE = np.ones((1, 1, 1, 1), np.float32)
_CONV_KW = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}


@FUZZ
@given(call=calls())
# found by this test on the debug build: an empty plane with padding (conv.pyx took the address
# of element 0 of an empty array)
@example(call=("conv2d", {"args": (np.empty((1, 1, 0, 0), np.float32), _ONE, None),
                          "kwargs": _CONV_KW}))
# found while writing test_hostile.py: None as the input (AttributeError), an unaligned input
# (misaligned loads, caught by UBSan), a huge stride (an 8 GB buffer for a 4x4 input)
@example(call=("max_pool2d", {"args": (None,), "kwargs": {"kernel_size": 1}}))
@example(call=("conv2d", {"args": (np.frombuffer(bytes(65), np.float32, 16, 1).reshape(
    1, 1, 4, 4), _ONE, None), "kwargs": _CONV_KW}))
@example(call=("conv2d", {"args": (np.ones((1, 1, 4, 4), np.float32), _ONE, None),
                          "kwargs": {**_CONV_KW, "stride": (1, 2**31)}}))
# found by a 20,000-example run: a 2**63 dilation of a one-tap window (OverflowError)
@example(call=("max_pool2d", {"args": (np.empty((0, 0, 1, 1), np.float32),), "kwargs": {
    "kernel_size": 1, "stride": None, "padding": 0, "ceil_mode": False, "dilation": 2**63,
    "return_indices": False}}))
def test_kernel_entry_points_with_random_arguments(call):
    op, a = call
    try:
        with np.errstate(all="ignore"):
            want = _call(R, op, a)
    except (ValueError, TypeError) as e:
        event(f"{op}: {type(e).__name__}")
        with pytest.raises(type(e)):
            _call(F, op, a)
        return
    event(f"{op}: result")
    got = _call(F, op, a)
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    assert [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]
    if not _finite(a):
        return
    with np.errstate(all="ignore"):
        magnitude = _call(R, op, _absolute(a))
    magnitude = magnitude if isinstance(magnitude, tuple) else (magnitude,)
    for g, w, m in zip(got, want, magnitude):
        if g.dtype.kind != "f":
            np.testing.assert_array_equal(g, w)
            continue
        assert_close(g, w, g.dtype.type, magnitude=m, err_msg=op)
