"""Datasets and batching: mini-batches over arrays, the bundled UCI digits, readers for MNIST-style
IDX files and CIFAR-10 python batches already on disk, and per-image augmentation.

Everything here is plain NumPy and never touches the network. Images come back as
``(N, C, H, W)`` float arrays scaled to [0, 1] and labels as int64, ready for `fastcnn.nn`.
Randomness always comes from an ``rng`` argument (a ``np.random.Generator`` or an int seed),
never from NumPy's global state. No function modifies the arrays it is given.

Reading files is defensive: a file that is truncated, padded, of the wrong kind or inconsistent
with its partner raises ``ValueError`` naming the file and what is wrong, and a missing file raises
``FileNotFoundError`` naming the files that were looked for. CIFAR-10 python batches are pickles;
they are read by an unpickler that can build nothing but built-in containers and plain NumPy
arrays (see `_ArrayUnpickler`), so a crafted file cannot run code.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import pickletools
import zlib
from pathlib import Path

import numpy as np

from fastcnn._args import float_arrays
from fastcnn._files import check_regular, read_regular
from fastcnn._validate import choice, flag, float_dtype, generator, integer, real

__all__ = ["batches", "DataLoader", "load_digits", "read_idx", "load_mnist", "load_cifar10",
           "channel_stats", "normalize", "random_crop", "random_flip"]


# ---------------------------------------------------------------------------- argument checks

def _images(fname: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{fname} expects 4-D images (N, C, H, W), got shape {x.shape}")
    return x


def _scaled(pixels: np.ndarray, maximum: int, dtype: np.dtype) -> np.ndarray:
    """Integer pixels 0..maximum as floats in [0, 1]."""
    x = pixels.astype(dtype)
    x /= maximum
    return x


# ---------------------------------------------------------------------------------- batching

def _arrays(fname: str, x, y):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{fname}: x must have a sample axis, got a 0-d array")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(x):
            got = "a 0-d array" if y.ndim == 0 else f"{len(y)} samples"
            raise ValueError(f"{fname}: x and y must have the same number of samples, "
                             f"x has {len(x)}, y has {got}")
    return x, y


def _iterate(x, y, batch_size, order, drop_last):
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            index = slice(start, start + batch_size)
        else:
            index = order[start:start + batch_size]
        yield x[index] if y is None else (x[index], y[index])


def batches(x, y=None, batch_size=32, shuffle=False, rng=None, drop_last=False):
    """Split arrays into consecutive mini-batches along the first axis.

    Args:
        x: array of samples, first axis = sample.
        y: optional array of targets with the same number of samples, or None.
        batch_size: samples per batch, >= 1. The last batch may be smaller.
        shuffle: visit the samples in a random order drawn from ``rng``.
        rng: ``np.random.Generator``, int seed or None (fresh entropy). The same seed gives the
            same order; pass one Generator across epochs to get a new order each epoch.
        drop_last: leave out the last batch when it has fewer than ``batch_size`` samples.

    Returns:
        An iterator of ``(xb, yb)`` pairs, or of ``xb`` alone when ``y`` is None. Without shuffle
        the batches are views of ``x`` and ``y``; with shuffle they are copies.

    Example:
        >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
        >>> [yb.tolist() for _, yb in batches(x, y, batch_size=2)]
        [[0, 1], [2, 3], [4]]
        >>> [xb.shape for xb in batches(x, batch_size=2, drop_last=True)]
        [(2, 2), (2, 2)]
    """
    x, y = _arrays("batches", x, y)
    batch_size = integer("batches", "batch_size", batch_size, 1)
    shuffle = flag("batches", "shuffle", shuffle)
    drop_last = flag("batches", "drop_last", drop_last)
    rng = generator("batches", rng)
    order = rng.permutation(len(x)) if shuffle else None
    return _iterate(x, y, batch_size, order, drop_last)


class DataLoader:
    """A re-iterable source of mini-batches with a length, one pass per epoch.

    Each ``iter()`` is one epoch, as `batches` would give; with ``shuffle`` each epoch draws a
    new order from one Generator made at construction, so a seed fixes the whole sequence of
    epochs.

    Args:
        x, y, batch_size, shuffle, rng, drop_last: as for `batches`.

    Example:
        >>> loader = DataLoader(np.zeros((10, 1, 8, 8)), np.arange(10), batch_size=4, shuffle=True,
        ...                     rng=0)
        >>> len(loader), [len(yb) for _, yb in loader]
        (3, [4, 4, 2])
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, rng=None, drop_last=False):
        self.x, self.y = _arrays("DataLoader", x, y)
        self.batch_size = integer("DataLoader", "batch_size", batch_size, 1)
        self.shuffle = flag("DataLoader", "shuffle", shuffle)
        self.drop_last = flag("DataLoader", "drop_last", drop_last)
        self.rng = generator("DataLoader", rng)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.x)) if self.shuffle else None
        return _iterate(self.x, self.y, self.batch_size, order, self.drop_last)

    def __repr__(self) -> str:
        flags = "".join(f", {name}=True" for name in ("shuffle", "drop_last")
                        if getattr(self, name))
        return f"DataLoader(samples={len(self.x)}, batch_size={self.batch_size}{flags})"


# ---------------------------------------------------------------------------- bundled digits

_DIGITS = Path(__file__).with_name("datasets") / "digits.npz"


def load_digits(split="train", dtype=np.float32):
    """Load the bundled UCI handwritten digits: 1,797 8x8 grey images of the digits 0-9.

    The data ship with fastcnn (no download) under CC BY 4.0; credit E. Alpaydin and C. Kaynak,
    UCI Machine Learning Repository, https://doi.org/10.24432/C50P49 (see
    ``fastcnn/datasets/README.md``). The split is fixed and stratified, stored in the data file
    itself: 1,437 training and 360 test images, every class in both.

    Args:
        split: ``"train"`` (1,437 images), ``"test"`` (360) or ``"all"`` (1,797, original order).
        dtype: float32 (default) or float64 for the images.

    Returns:
        ``(x, y)``: images ``(N, 1, 8, 8)`` in [0, 1] (pixel counts 0..16 divided by 16) and
        int64 labels ``(N,)`` in 0..9, each split in the original file order.

    Example:
        >>> x, y = load_digits("test")
        >>> x.shape, x.dtype, y.shape, y.dtype
        ((360, 1, 8, 8), dtype('float32'), (360,), dtype('int64'))
    """
    split = choice("load_digits", "split", split, ("train", "test", "all"))
    dtype = float_dtype("load_digits", "dtype", dtype)
    with np.load(_DIGITS, allow_pickle=False) as f:
        images, labels, is_test = f["images"], f["labels"], f["is_test"]
    keep = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
    return _scaled(images[keep][:, None], 16, dtype), labels[keep].astype(np.int64)


# ----------------------------------------------------------------------------- IDX (MNIST)

# IDX magic number: two zero bytes, a type code, the number of dimensions; then one big-endian
# uint32 per dimension, then the data, big-endian, row-major.
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MAX_IDX_BYTES = 1 << 32  # the data of one IDX file read by `read_idx`, at most 4 GiB
_DEFLATE_RATIO = 1032  # deflate inflates one byte to at most this many
_CHUNK = 1 << 24


def _read_upto(f, size: int) -> bytes:
    """Read size bytes, or fewer at end of file, in chunks (never size bytes up front)."""
    chunks = []
    while size > 0:
        chunk = f.read(min(size, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _parse_idx(path, f, present) -> np.ndarray:
    """The array of an IDX stream f. present(header_bytes, data_bytes) raises unless the
    file can hold that much: checked before the data is read or inflated."""
    magic = _read_upto(f, 4)
    if len(magic) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(magic)} bytes, "
                         f"shorter than the 4-byte magic number")
    if magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES or magic[3] == 0:
        codes = ", ".join(f"0x{c:02X}" for c in _IDX_TYPES)
        raise ValueError(f"{path}: not an IDX file: bad magic number 0x{magic.hex().upper()}, "
                         f"expected 0x0000TTDD with type TT in {codes} and DD >= 1 dimensions")
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    header = _read_upto(f, 4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX file: the header needs {4 * ndim} bytes for "
                         f"{ndim} dimension sizes, found {len(header)}")
    shape = tuple(int.from_bytes(header[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_IDX_BYTES:
        raise ValueError(f"{path}: IDX header declares shape {shape} of {dtype.name}, "
                         f"{size:,} bytes: more than the {MAX_IDX_BYTES:,} read at most")
    present(4 + 4 * ndim, size, f"shape {shape} of {dtype.name}")
    out = np.empty(shape, dtype=dtype)
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < size:
        n = f.readinto(view[done:done + _CHUNK])
        if not n:
            raise ValueError(f"{path}: truncated IDX file: shape {shape} of {dtype.name} "
                             f"needs {size} data bytes, found {done}")
        done += n
    if f.read(1):
        raise ValueError(f"{path}: IDX file longer than its header says: shape {shape} of "
                         f"{dtype.name} is {size} data bytes, but more follow")
    return out.astype(dtype.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not, into a native-endian array.

    Gzip is recognised by its magic bytes, not by the file name.

    Args:
        path: file name (str or path-like).

    Returns:
        An array with the dtype and shape the header declares (uint8 for MNIST images and labels).

    Example:
        >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(os.fspath(path))
    check_regular(path, "IDX file")
    with open(path, "rb") as raw:
        on_disk = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == b"\x1f\x8b"
        if not compressed:
            raw.seek(0)

            def present(header, size, what):
                if header + size > on_disk:
                    raise ValueError(f"{path}: truncated IDX file: {what} needs {size} data "
                                     f"bytes, found {max(on_disk - header, 0)}")
            return _parse_idx(path, raw, present)
        # gzip's trailer ends with the inflated size mod 2**32, maybe followed by zero
        # padding (which gzip readers skip): known before inflating anything
        raw.seek(max(on_disk - 4096, 0))
        tail = raw.read()
        raw.seek(0)
        ends = range(max(len(tail.rstrip(b"\0")), 4), len(tail) + 1)
        trailers = {int.from_bytes(tail[e - 4:e], "little") for e in ends}

        def present(header, size, what):
            total = header + size
            if total > _DEFLATE_RATIO * on_disk or total % 2**32 not in trailers:
                raise ValueError(f"{path}: corrupt or truncated gzip data: the IDX header "
                                 f"declares {what} ({total} bytes in all), the gzip "
                                 f"trailer {min(trailers)} bytes (mod 2**32) in "
                                 f"{on_disk} compressed bytes")
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse_idx(path, f, present)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data: {e}") from None


def _find_file(fname: str, directory: Path, names: list) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{fname}: none of {', '.join(names)} found in {directory}")


_MNIST_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _mnist_names(stem: str) -> list:
    dotted = stem.replace("-idx", ".idx")  # some mirrors spell it train-images.idx3-ubyte
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def load_mnist(directory, split="train", dtype=np.float32):
    """Load MNIST or Fashion-MNIST from the IDX files in a directory; nothing is downloaded.

    Looks for the standard names ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``
    (split ``"train"``) or ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (``"test"``),
    each optionally gzipped (``.gz``) and also spelt ``train-images.idx3-ubyte``.

    Args:
        directory: folder holding the files.
        split: ``"train"`` or ``"test"``.
        dtype: float32 (default) or float64 for the images.

    Returns:
        ``(x, y)``: images ``(N, 1, H, W)`` (28x28 for MNIST) in [0, 1] (bytes divided by 255) and
        int64 labels ``(N,)`` in 0..9.

    Example:
        >>> x, y = load_mnist("~/data/fashion-mnist", "test")  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        ((10000, 1, 28, 28), (10000,))
    """
    split = choice("load_mnist", "split", split, ("train", "test"))
    dtype = float_dtype("load_mnist", "dtype", dtype)
    directory = Path(os.fspath(directory)).expanduser()
    image_stem, label_stem = _MNIST_STEMS[split]
    image_path = _find_file("load_mnist", directory, _mnist_names(image_stem))
    label_path = _find_file("load_mnist", directory, _mnist_names(label_stem))
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{image_path}: expected uint8 images of shape (N, H, W), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{label_path}: expected uint8 labels of shape (N,), "
                         f"got {labels.dtype} of shape {labels.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{label_path}: {len(labels)} labels, but {image_path} "
                         f"has {len(images)} images")
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{label_path}: labels must be in 0..9, found {labels.max()} "
                         f"at index {labels.argmax()}")
    return _scaled(images[:, None], 255, dtype), labels.astype(np.int64)


# ------------------------------------------------------------------------------- CIFAR-10

def _latin1_bytes(text, encoding):
    """Python 3 pickles bytes for protocol 2 as _codecs.encode(text, 'latin1'): allow just that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as encode(str, 'latin1')")
    return text.encode("latin-1")


_ndarray_token = object()  # stands in for numpy.ndarray: _reconstruct's argument, not callable
_reconstruct = np.empty(0).__reduce__()[0]  # NumPy's array rebuilder, whatever module holds it


def _array(subtype, shape, typecode):
    """NumPy pickles always rebuild an empty ndarray, then fill it from the state that follows."""
    if subtype is not _ndarray_token or shape != (0,):
        raise pickle.UnpicklingError("_reconstruct may only build an empty numpy.ndarray")
    return _reconstruct(np.ndarray, shape, typecode)


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build built-in containers, strings, numbers and plain NumPy arrays,
    and nothing else.

    Unpickling runs code only through globals, which every pickle names by module and attribute;
    ``find_class`` resolves exactly these five and refuses all others:

    - ``numpy.core.multiarray._reconstruct`` and its NumPy 2 spelling
      ``numpy._core.multiarray._reconstruct``: how NumPy pickles an array (protocols 0 to 4),
      allowed only to make an empty ``numpy.ndarray`` (its data then come from plain bytes);
    - ``numpy.ndarray``: a token accepted by ``_reconstruct`` above and nothing else;
    - ``numpy.dtype``: the array's element type (the loader checks afterwards it is uint8);
    - ``_codecs.encode``: how Python 3 writes ``bytes`` at protocol 2, allowed only as
      ``encode(str, 'latin1')``.
    """

    _GLOBALS = {
        ("numpy.core.multiarray", "_reconstruct"): _array,
        ("numpy._core.multiarray", "_reconstruct"): _array,
        ("numpy", "ndarray"): _ndarray_token,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module, name):
        try:
            return self._GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch may only hold plain "
                f"data and NumPy arrays") from None


MAX_CIFAR_BYTES = 1 << 28  # one CIFAR batch file read by `load_cifar10`, at most 256 MiB
_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}


def _check_pickle(blob: bytes, path) -> None:
    """Walk the opcodes without running them: the unpickler grows its memo table to the
    largest index a PUT names, so an 11-byte file naming index 2**26 would take a GiB.
    Memo indices may not pass the number of opcodes (MEMOIZE counts them one by one)."""
    opcodes, far = 0, None
    try:
        for opcode, arg, _ in pickletools.genops(blob):
            opcodes += 1
            if opcode.name in _MEMO_OPCODES and isinstance(arg, int) and arg > opcodes:
                far = arg
                break
    except Exception as e:  # genops found a malformed stream
        raise ValueError(f"{path}: not a readable CIFAR-10 batch: {type(e).__name__}: "
                         f"{str(e)[:200]}") from None
    if far is not None:
        raise ValueError(f"{path}: not a readable CIFAR-10 batch: the pickle stores at memo "
                         f"index {far} after {opcodes} opcodes")


def _read_cifar_batch(path: Path):
    blob = read_regular(path, MAX_CIFAR_BYTES, "CIFAR-10 batch")
    _check_pickle(blob, path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # any failure to parse means a corrupt or hostile file
        raise ValueError(f"{path}: not a readable CIFAR-10 batch: "
                         f"{type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a dict with 'data' and 'labels', "
                         f"got {type(batch).__name__}")
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}, found {sorted(map(str, batch))}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    labels = batch["labels"]
    if not isinstance(labels, (list, np.ndarray)) \
            or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise ValueError(f"{path}: 'labels' must be a list of ints")
    bad = next((v for v in labels if not 0 <= v <= 9), None)  # before int64 could overflow
    if bad is not None:
        raise ValueError(f"{path}: labels must be in 0..9, found {bad}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(labels)} labels for {len(data)} images")
    return data, labels


_CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def load_cifar10(directory, split="train", dtype=np.float32):
    """Load CIFAR-10 from the python batches of ``cifar-10-python.tar.gz``; nothing is downloaded.

    The batches are pickles, read with a restricted unpickler that refuses any global other than
    the few NumPy needs to rebuild a plain array, so a tampered file cannot run code.

    Args:
        directory: the extracted ``cifar-10-batches-py`` folder, or the folder that contains it.
        split: ``"train"`` (``data_batch_1`` .. ``data_batch_5``, 50,000 images) or ``"test"``
            (``test_batch``, 10,000 images).
        dtype: float32 (default) or float64 for the images.

    Returns:
        ``(x, y)``: images ``(N, 3, 32, 32)`` RGB in [0, 1] (bytes divided by 255) and int64
        labels ``(N,)`` in 0..9 (airplane, automobile, bird, cat, deer, dog, frog, horse, ship,
        truck).

    Example:
        >>> x, y = load_cifar10("~/data", "test")  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        ((10000, 3, 32, 32), (10000,))
    """
    split = choice("load_cifar10", "split", split, ("train", "test"))
    dtype = float_dtype("load_cifar10", "dtype", dtype)
    directory = Path(os.fspath(directory)).expanduser()
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = _CIFAR_FILES[split]
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"load_cifar10: {', '.join(missing)} not found in {directory} "
                                f"(split {split!r} needs {', '.join(names)})")
    parts = [_read_cifar_batch(directory / name) for name in names]
    data = np.concatenate([data for data, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return _scaled(data.reshape(-1, 3, 32, 32), 255, dtype), labels


# --------------------------------------------------------------- normalisation, augmentation

def channel_stats(x):
    """Mean and standard deviation of each channel over a set of images, for `normalize`.

    Compute them on the training images and apply them to every split.

    Args:
        x: images ``(N, C, H, W)``, float32 or float64 (ints are cast to float32).

    Returns:
        ``(mean, std)``, two arrays of shape ``(C,)`` in the dtype of ``x``, accumulated in
        float64. ``std`` is the population standard deviation.

    Example:
        >>> x, _ = load_digits()
        >>> mean, std = channel_stats(x)
        >>> mean.shape, std.shape
        ((1,), (1,))
    """
    (x,) = float_arrays("channel_stats", x=_images("channel_stats", x))
    if x.shape[0] == 0:
        raise ValueError(f"channel_stats needs at least one image, got shape {x.shape}")
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    std = x.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(x.dtype), std.astype(x.dtype)


def normalize(x, mean, std):
    """Return ``(x - mean) / std`` per channel, as a new array.

    Args:
        x: images ``(N, C, H, W)``, float32 or float64 (ints are cast to float32).
        mean: one number or ``C`` numbers.
        std: one number or ``C`` numbers, all > 0.

    Returns:
        A new array of the shape and float dtype of ``x``.

    Example:
        >>> x = np.ones((2, 3, 4, 4), np.float32)
        >>> normalize(x, mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])[0, :, 0, 0]
        array([2. , 1. , 0.5], dtype=float32)
    """
    (x,) = float_arrays("normalize", x=_images("normalize", x))
    C = x.shape[1]
    stats = {}
    for name, value in (("mean", mean), ("std", std)):
        v = np.asarray(value, dtype=x.dtype)
        if v.ndim == 0:
            v = np.full(C, v)
        if v.shape != (C,):
            raise ValueError(f"normalize: {name} must be one number or {C} numbers (one per "
                             f"channel), got shape {v.shape}")
        stats[name] = v.reshape(C, 1, 1)
    if not np.all(stats["std"] > 0):
        raise ValueError(f"normalize: std must be > 0 for every channel, "
                         f"got {stats['std'].ravel()}")
    return (x - stats["mean"]) / stats["std"]


def random_crop(x, padding, rng=None):
    """Pad each image with zeros on every side, then crop it back to its size at a random offset.

    Each image gets its own offset, uniform over the ``(2 * padding + 1) ** 2`` positions, so an
    image moves by up to ``padding`` pixels in each direction (the usual CIFAR augmentation with
    ``padding=4``).

    Args:
        x: images ``(N, C, H, W)`` of any dtype.
        padding: zero pixels added on each side, >= 0.
        rng: ``np.random.Generator``, int seed or None (fresh entropy). An int seed repeats the
            same offsets on every call; pass one Generator for a new draw each batch.

    Returns:
        A new array of the shape and dtype of ``x``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> random_crop(np.ones((8, 3, 32, 32), np.float32), padding=4, rng=rng).shape
        (8, 3, 32, 32)
    """
    x = _images("random_crop", x)
    padding = integer("random_crop", "padding", padding, 0)
    rng = generator("random_crop", rng)
    N, C, H, W = x.shape
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (H, W), axis=(2, 3))
    dy = rng.integers(0, 2 * p + 1, size=N)
    dx = rng.integers(0, 2 * p + 1, size=N)
    # windows is (N, C, 2p+1, 2p+1, H, W); picking one (dy, dx) per image gives (N, C, H, W)
    return windows[np.arange(N), :, dy, dx]


def random_flip(x, rng=None, p=0.5):
    """Mirror each image left to right with probability ``p``.

    Args:
        x: images ``(N, C, H, W)`` of any dtype.
        rng: ``np.random.Generator``, int seed or None (fresh entropy). An int seed repeats the
            same choices on every call; pass one Generator for a new draw each batch.
        p: probability of flipping each image, 0 <= p <= 1.

    Returns:
        A new array of the shape and dtype of ``x``.

    Example:
        >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
        >>> random_flip(x, rng=0, p=1.0)
        array([[[[3., 2., 1., 0.]]]])
    """
    x = _images("random_flip", x)
    p = real("random_flip", "p", p, 0, 1)
    rng = generator("random_flip", rng)
    flip = rng.random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip, ..., ::-1]
    return out
