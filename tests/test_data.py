"""Tests for fastcnn.data: batching, the bundled digits, IDX and CIFAR-10 readers, augmentation.

Every file read here is written by the test itself into tmp_path; nothing is downloaded.
"""
import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest

from fastcnn import data


def readonly(a):
    """A read-only copy: any attempt to modify it in place raises."""
    a = np.array(a)
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------------------------- batching

def test_batches_sizes_keep_last_partial_batch():
    x, y = np.zeros((10, 3)), np.arange(10)
    assert [len(yb) for _, yb in data.batches(x, y, batch_size=4)] == [4, 4, 2]


def test_batches_drop_last_drops_partial_batch():
    x, y = np.zeros((10, 3)), np.arange(10)
    assert [len(yb) for _, yb in data.batches(x, y, batch_size=4, drop_last=True)] == [4, 4]


def test_batches_drop_last_keeps_exact_multiple():
    sizes = [len(xb) for xb in data.batches(np.zeros(8), batch_size=4, drop_last=True)]
    assert sizes == [4, 4]


def test_batches_without_y_yields_arrays():
    out = list(data.batches(np.arange(5), batch_size=2))
    assert [b.tolist() for b in out] == [[0, 1], [2, 3], [4]]


def test_batches_unshuffled_are_ordered_views():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    for i, (xb, yb) in enumerate(data.batches(x, y, batch_size=3)):
        assert np.shares_memory(xb, x)
        np.testing.assert_array_equal(yb, np.arange(3 * i, min(3 * i + 3, 10)))


def test_batches_empty_input_yields_nothing():
    assert list(data.batches(np.zeros((0, 3)), np.zeros(0), batch_size=4)) == []


def test_batches_shuffle_visits_every_sample_once_and_keeps_pairs():
    x, y = np.arange(103) * 10, np.arange(103)
    seen = []
    for xb, yb in data.batches(x, y, batch_size=8, shuffle=True, rng=1):
        np.testing.assert_array_equal(xb, yb * 10)
        seen.extend(yb.tolist())
    assert sorted(seen) == list(range(103))
    assert seen != list(range(103))


def test_batches_shuffle_same_seed_same_order():
    x = np.arange(50)
    a = np.concatenate(list(data.batches(x, batch_size=7, shuffle=True, rng=3)))
    b = np.concatenate(list(data.batches(x, batch_size=7, shuffle=True, rng=3)))
    c = np.concatenate(list(data.batches(x, batch_size=7, shuffle=True,
                                         rng=np.random.default_rng(3))))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_batches_shuffle_leaves_global_random_state_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    list(data.batches(np.arange(50), batch_size=7, shuffle=True, rng=0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_batches_rejects_non_positive_batch_size(batch_size):
    with pytest.raises(ValueError, match=rf"batch_size must be >= 1, got {batch_size}"):
        data.batches(np.zeros(4), batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [2.5, True, "4"])
def test_batches_rejects_non_int_batch_size(batch_size):
    with pytest.raises(TypeError, match="batch_size must be an int"):
        data.batches(np.zeros(4), batch_size=batch_size)


def test_batches_rejects_length_mismatch_at_call_time():
    with pytest.raises(ValueError, match="x has 5, y has 4 samples"):
        data.batches(np.zeros((5, 2)), np.zeros(4), batch_size=2)


def test_batches_rejects_legacy_random_state():
    with pytest.raises(TypeError, match="batches: rng must be a numpy.random.Generator, an int seed or None"):
        data.batches(np.zeros(4), shuffle=True, rng=np.random.RandomState(0))


def test_dataloader_len_matches_iteration():
    for drop_last in (False, True):
        loader = data.DataLoader(np.zeros(10), np.arange(10), batch_size=4, drop_last=drop_last)
        assert len(loader) == len(list(loader)) == (2 if drop_last else 3)


def test_dataloader_new_order_each_epoch_reproducible_from_seed():
    def epochs(seed):
        loader = data.DataLoader(np.arange(30), batch_size=30, shuffle=True, rng=seed)
        return [next(iter(loader)).tolist() for _ in range(3)]

    first = epochs(5)
    assert first == epochs(5)
    assert first[0] != first[1]
    assert all(sorted(e) == list(range(30)) for e in first)


def test_dataloader_validates_like_batches():
    with pytest.raises(ValueError, match="x has 3, y has 2 samples"):
        data.DataLoader(np.zeros(3), np.zeros(2))


# ------------------------------------------------------------------------------------ digits

DIGITS_IMAGES_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
DIGITS_TEST_PER_CLASS = [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]


def test_digits_shapes_and_dtypes():
    for split, n in (("train", 1437), ("test", 360), ("all", 1797)):
        x, y = data.load_digits(split)
        assert x.shape == (n, 1, 8, 8) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64


def test_digits_pixels_scaled_to_unit_interval():
    x, y = data.load_digits("all")
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.round(x * 16))
    assert set(np.unique(y)) == set(range(10))


def test_digits_content_matches_bundled_source():
    x, _ = data.load_digits("all")
    pixels = (x * 16).astype(np.uint8)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == DIGITS_IMAGES_SHA256


def test_digits_split_is_stratified_with_fixed_sizes():
    _, y_train = data.load_digits("train")
    _, y_test = data.load_digits("test")
    assert np.bincount(y_test, minlength=10).tolist() == DIGITS_TEST_PER_CLASS
    assert np.all(np.bincount(y_train, minlength=10) > 100)


def test_digits_train_and_test_partition_all():
    def rows(split):
        x, y = data.load_digits(split)
        flat = np.concatenate([(x.reshape(len(x), 64) * 16).astype(np.uint8),
                               y[:, None].astype(np.uint8)], axis=1)
        return sorted(map(bytes, flat))

    assert sorted(rows("train") + rows("test")) == rows("all")


def test_digits_deterministic_and_float64_on_request():
    x1, y1 = data.load_digits("test")
    x2, y2 = data.load_digits("test", dtype=np.float64)
    assert x2.dtype == np.float64
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_digits_rejects_unknown_split():
    with pytest.raises(ValueError,
                       match=r"split must be one of \('train', 'test', 'all'\), got 'val'"):
        data.load_digits("val")


# --------------------------------------------------------------------------------------- IDX

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}


def idx_bytes(a):
    a = np.asarray(a)
    header = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path, payload, gz=False):
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = data.read_idx(write(tmp_path / "a.idx", idx_bytes(a), gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_read_idx_bad_magic(tmp_path):
    path = write(tmp_path / "bad", b"\x08\x03\x00\x00" + bytes(12))
    with pytest.raises(ValueError, match=r"bad.*not an IDX file: bad magic number 0x08030000"):
        data.read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = write(tmp_path / "bad", b"\x00\x00\x07\x01" + struct.pack(">I", 0))
    with pytest.raises(ValueError, match="bad magic number 0x00000701"):
        data.read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = write(tmp_path / "short", b"\x00\x00\x08\x03" + struct.pack(">I", 5))
    with pytest.raises(ValueError, match=r"short: truncated IDX file: the header needs 12 bytes"):
        data.read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_data(tmp_path, gz):
    payload = idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-7]
    path = write(tmp_path / "trunc", payload, gz)
    message = (r"trunc: corrupt or truncated gzip data: the IDX header declares shape "
               r"\(4, 5, 5\) of uint8 \(116 bytes in all\), the gzip trailer 109 bytes" if gz else
               r"trunc: truncated IDX file: shape \(4, 5, 5\) of uint8 needs 100 data bytes, "
               r"found 93")
    with pytest.raises(ValueError, match=message):  # before reading (or inflating) the data
        data.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="longer than its header says"):
        data.read_idx(path)


def test_read_idx_huge_claimed_shape_is_refused_not_memory_error(tmp_path):
    path = write(tmp_path / "huge", b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 2**31))
    with pytest.raises(ValueError, match="bytes: more than the 4,294,967,296 read at most"):
        data.read_idx(path)
    path = write(tmp_path / "big", b"\x00\x00\x08\x01" + struct.pack(">I", 2**30))
    with pytest.raises(ValueError, match="truncated IDX file: .* needs 1073741824 data bytes, "
                                         "found 0"):
        data.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = write(tmp_path / "cut.gz", compressed[:len(compressed) // 2])
    with pytest.raises(ValueError, match=r"cut.gz: corrupt or truncated gzip data"):
        data.read_idx(path)


def write_mnist(directory, split, images, labels, gz=False, dotted=False):
    prefix = "train" if split == "train" else "t10k"
    sep = "." if dotted else "-"
    suffix = ".gz" if gz else ""
    write(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", idx_bytes(images), gz)
    write(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", idx_bytes(labels), gz)


def mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (True, True)])
def test_load_mnist_round_trip(tmp_path, gz, dotted):
    images, labels = mnist_like(7)
    write_mnist(tmp_path, "test", images, labels, gz=gz, dotted=dotted)
    x, y = data.load_mnist(tmp_path, "test")
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_reads_the_requested_split(tmp_path):
    write_mnist(tmp_path, "train", *mnist_like(5, seed=1))
    write_mnist(tmp_path, "test", *mnist_like(3, seed=2))
    assert len(data.load_mnist(tmp_path, "train")[0]) == 5
    assert len(data.load_mnist(tmp_path, "test")[0]) == 3


def test_load_mnist_missing_file_names_expected_files(tmp_path):
    images, _ = mnist_like(2)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images))
    with pytest.raises(FileNotFoundError,
                       match="none of train-labels-idx1-ubyte, train-labels-idx1-ubyte.gz"):
        data.load_mnist(tmp_path, "train")


def test_load_mnist_count_mismatch(tmp_path):
    images, labels = mnist_like(6)
    write_mnist(tmp_path, "train", images, labels[:5])
    with pytest.raises(ValueError, match=r"5 labels, but .*train-images-idx3-ubyte has 6 images"):
        data.load_mnist(tmp_path, "train")


def test_load_mnist_label_out_of_range(tmp_path):
    images, labels = mnist_like(6)
    labels[4] = 10
    write_mnist(tmp_path, "train", images, labels)
    with pytest.raises(ValueError, match=r"labels must be in 0..9, found 10 at index 4"):
        data.load_mnist(tmp_path, "train")


def test_load_mnist_images_with_wrong_rank(tmp_path):
    _, labels = mnist_like(6)
    write_mnist(tmp_path, "train", labels, labels)
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, H, W\)"):
        data.load_mnist(tmp_path, "train")


# ---------------------------------------------------------------------------------- CIFAR-10

def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            rng.integers(0, 10, n).tolist())


def write_cifar_batch(path, images, labels, protocol=2):
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": images,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def write_cifar(root, split, sizes=(3, 2, 4, 1, 2), protocol=2):
    directory = root / "cifar-10-batches-py"
    directory.mkdir(exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [cifar_batch(n, seed) for seed, n in enumerate(sizes[:len(names)])]
    for name, (images, labels) in zip(names, parts):
        write_cifar_batch(directory / name, images, labels, protocol)
    return (np.concatenate([images for images, _ in parts]),
            np.concatenate([labels for _, labels in parts]))


def py2_cifar_pickle(images, labels):
    """A batch as the original files were written: Python 2 cPickle, protocol 2, NumPy 1.x.
    Strings are BINSTRING opcodes (bytes under encoding='bytes') and the array names
    numpy.core.multiarray._reconstruct, which Python 3 pickle never emits."""
    def s(b):
        return b"T" + struct.pack("<i", len(b)) + b

    def i(v):
        return b"J" + struct.pack("<i", v)

    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85"
             + s(b"b") + b"\x87R" + b"(" + i(1) + i(images.shape[0]) + i(images.shape[1])
             + b"\x86" + dtype + b"\x89" + s(images.tobytes()) + b"tb")
    label_list = b"](" + b"".join(i(v) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + array + s(b"labels") + label_list + b"u."


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_load_cifar10_train_round_trip(tmp_path, protocol):
    images, labels = write_cifar(tmp_path, "train", protocol=protocol)
    x, y = data.load_cifar10(tmp_path, "train")
    assert x.shape == (12, 3, 32, 32) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x.reshape(12, 3072) * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_load_cifar10_test_split_from_batches_directory(tmp_path):
    images, labels = write_cifar(tmp_path, "test")
    x, y = data.load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    np.testing.assert_allclose(x.reshape(len(x), 3072) * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_load_cifar10_reads_python2_batch(tmp_path):
    images, labels = cifar_batch(3, seed=9)
    (tmp_path / "test_batch").write_bytes(py2_cifar_pickle(images, labels))
    x, y = data.load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8).reshape(3, 3072), images)
    assert y.tolist() == labels


def test_load_cifar10_channels_are_rgb_planes(tmp_path):
    images = np.zeros((1, 3072), np.uint8)
    images[0, 1024:2048] = 255  # the green plane
    write_cifar_batch(tmp_path / "test_batch", images, [0])
    x, _ = data.load_cifar10(tmp_path, "test")
    assert x[0, 1].min() == 1.0 and x[0, 0].max() == 0.0 and x[0, 2].max() == 0.0


def test_load_cifar10_missing_batch_is_named(tmp_path):
    write_cifar(tmp_path, "train")
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3 not found"):
        data.load_cifar10(tmp_path, "train")


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_load_cifar10_refuses_pickle_that_runs_a_command(tmp_path):
    marker = tmp_path / "pwned"
    payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
               b"x": _RunsShell(f"touch {marker}")}
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: not a readable CIFAR-10 batch: Unpickling"
                                         r"Error: refusing to load global (posix|nt)\.system"):
        data.load_cifar10(tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_cifar10_refuses_builtins(tmp_path, protocol):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evaluates()}, f, protocol=protocol)
    with pytest.raises(ValueError, match=r"refusing to load global (builtins|__builtin__)\.eval"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_refuses_calling_ndarray_directly(tmp_path):
    # numpy.ndarray(shape) would hand back uninitialised memory; it is only a token for
    # _reconstruct, so calling it fails
    (tmp_path / "test_batch").write_bytes(b"\x80\x02cnumpy\nndarray\nK\x01\x85R.")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_refuses_reconstruct_with_preallocated_shape(tmp_path):
    (tmp_path / "test_batch").write_bytes(
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x00\x00\x40\x85U\x01b\x87R.")
    with pytest.raises(ValueError, match="_reconstruct may only build an empty numpy.ndarray"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_truncated_pickle(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", *cifar_batch(2, seed=0))
    raw = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10 batch"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_wrong_data_shape(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 1024), np.uint8), [0, 1])
    with pytest.raises(ValueError, match=r"'data' must be a uint8 array of shape \(N, 3072\), "
                                         r"got uint8 array of shape \(2, 1024\)"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_label_count_mismatch(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", np.zeros((3, 3072), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="test_batch: 2 labels for 3 images"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_label_out_of_range(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0, 12])
    with pytest.raises(ValueError, match=r"labels must be in 0..9, found 12"):
        data.load_cifar10(tmp_path, "test")


def test_load_cifar10_missing_key(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8)}, f, protocol=2)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['labels'\]"):
        data.load_cifar10(tmp_path, "test")


# ------------------------------------------------------------------ normalisation, augmentation

def images(n=6, c=3, h=5, w=7, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def test_normalize_per_channel():
    x = readonly(images())
    mean, std = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 2.0])
    out = data.normalize(x, mean, std)
    expected = (x - mean[:, None, None]) / std[:, None, None]
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_normalize_with_channel_stats_standardizes():
    x = readonly(images(n=20))
    out = data.normalize(x, *data.channel_stats(x))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, rtol=1e-4)


def test_normalize_rejects_wrong_number_of_channels():
    with pytest.raises(ValueError, match=r"mean must be one number or 3 numbers.*got shape \(2,\)"):
        data.normalize(images(), [0.1, 0.2], 1.0)


def test_normalize_rejects_non_positive_std():
    with pytest.raises(ValueError, match="std must be > 0"):
        data.normalize(images(), 0.0, [1.0, 0.0, 1.0])


def test_normalize_rejects_non_4d():
    with pytest.raises(ValueError, match=r"expects 4-D images \(N, C, H, W\), got shape \(3, 4\)"):
        data.normalize(np.zeros((3, 4), np.float32), 0.0, 1.0)


def test_random_crop_shape_dtype_and_no_mutation():
    x = readonly(images())
    out = data.random_crop(x, padding=2, rng=0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not np.shares_memory(out, x)


def test_random_crop_is_a_shift_of_the_zero_padded_image():
    x = readonly(images(n=40))
    p = 2
    out = data.random_crop(x, padding=p, rng=np.random.default_rng(4))
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    offsets = set()
    for n in range(len(x)):
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if np.array_equal(out[n], padded[n, :, dy:dy + 5, dx:dx + 7])]
        assert matches, f"image {n} is not a crop of its padded self"
        offsets.update(matches)
    assert len(offsets) > 5


def test_random_crop_deterministic_with_seed():
    x = images()
    np.testing.assert_array_equal(data.random_crop(x, 3, rng=7), data.random_crop(x, 3, rng=7))


def test_random_crop_zero_padding_is_identity():
    x = images()
    np.testing.assert_array_equal(data.random_crop(x, 0, rng=0), x)


def test_random_crop_rejects_negative_padding():
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        data.random_crop(images(), -1, rng=0)


def test_random_flip_flips_each_image_or_leaves_it():
    x = readonly(images(n=64))
    out = data.random_flip(x, rng=np.random.default_rng(2))
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped | kept)
    assert 10 < flipped.sum() < 54


def test_random_flip_probability_extremes():
    x = readonly(images())
    np.testing.assert_array_equal(data.random_flip(x, rng=0, p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(data.random_flip(x, rng=0, p=0.0), x)


def test_random_flip_deterministic_with_seed():
    x = images(n=32)
    np.testing.assert_array_equal(data.random_flip(x, rng=11), data.random_flip(x, rng=11))


def test_random_flip_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        data.random_flip(images(), rng=0, p=1.5)
