"""Save and load models: one file with the architecture and the weights, no pickle.

File layout (all integers little-endian)::

    magic        8 bytes  b"FASTCNN\\x00"
    version      uint32   FORMAT_VERSION
    header_size  uint64   length of the JSON header
    header       JSON     {"architecture": ..., "dtype": ..., "arrays": [...], "metadata": ...}
    data         bytes    the arrays, raw little-endian, each at its recorded offset
    checksum     32 bytes SHA-256 of everything before it

Loading checks the size, magic, version, checksum and every array entry before it builds
anything, so a truncated, corrupted, foreign or future-version file raises `FormatError` (a
ValueError) and nothing in the file is ever executed: the architecture is plain JSON mapped to
known layer classes. Saving writes a temporary file beside the target, syncs it and renames it
over the target, so a crash or a full disk mid-save leaves the previous file intact.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct

import numpy as np

from ._files import read_regular, write_atomic

__all__ = ["save", "load", "FormatError", "FORMAT_VERSION", "MAX_FILE_BYTES",
           "MAX_ACTIVATION_ELEMENTS"]

MAGIC = b"FASTCNN\x00"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")  # magic, version, header size
_DIGEST = 32
_ALIGN = 64
_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i8": np.int64}
_MAX_HEADER = 64 << 20
MAX_FILE_BYTES = 1 << 34  # a model file read by `load` holds at most 16 GiB
MAX_ACTIVATION_ELEMENTS = 1 << 28  # values one layer may give for one image of input_shape


class FormatError(ValueError):
    """A file that is not a complete, intact fastcnn model file of a version this reads."""


def _array_entries(state: dict):
    entries, blobs, offset = [], [], 0
    for name, value in state.items():
        a = np.asarray(value)
        code = a.dtype.newbyteorder("<").str
        if code not in _DTYPES:
            raise TypeError(f"save: array {name!r} has dtype {a.dtype}; "
                            f"only float32, float64 and int64 are stored")
        raw = np.ascontiguousarray(a, dtype=code).tobytes()
        offset += -offset % _ALIGN
        entries.append({"name": name, "dtype": code, "shape": list(a.shape),
                        "offset": offset, "nbytes": len(raw)})
        blobs.append((offset, raw))
        offset += len(raw)
    data = bytearray(offset)
    for start, raw in blobs:
        data[start:start + len(raw)] = raw
    return entries, bytes(data)


def save(model, path, metadata: dict | None = None) -> None:
    """Write a model's architecture and weights to one file, atomically.

    Args:
        model: a `fastcnn.nn.Module` built from fastcnn's layers.
        path: file to write; an existing file is replaced only once the new one is complete.
        metadata: optional JSON-serialisable dict stored beside the model (e.g. input shape,
            class names); `load(path, with_metadata=True)` returns it.

    Example:
        >>> import fastcnn, fastcnn.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> fastcnn.save(model, "tiny.fcnn")
        >>> fastcnn.load("tiny.fcnn")
        Sequential(
          (0): Flatten()
          (1): Linear(in_features=4, out_features=2)
        )
    """
    state = model.state_dict()
    entries, data = _array_entries(state)
    dtypes = {np.dtype(p.data.dtype).name for p in model.parameters()}
    header = {
        "format": FORMAT_VERSION,
        "architecture": model.get_config(),
        "dtype": dtypes.pop() if len(dtypes) == 1 else "float32",
        "arrays": entries,
        "metadata": metadata if metadata is not None else {},
    }
    try:
        header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(f"save: metadata must be JSON-serialisable: {e}") from None
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes + data
    blob = body + hashlib.sha256(body).digest()

    write_atomic(path, lambda f: f.write(blob))


def _parse(blob: bytes, path: str):
    """The checked header and data section of a model file's bytes."""
    if len(blob) < _PREFIX.size + _DIGEST:
        raise FormatError(f"{path}: not a fastcnn model file (only {len(blob)} bytes)")
    magic, version, header_size = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise FormatError(f"{path}: not a fastcnn model file (magic {magic!r}, "
                          f"expected {MAGIC!r})")
    if version > FORMAT_VERSION:
        raise FormatError(f"{path}: written in model format {version} by a newer fastcnn; "
                          f"this version reads format {FORMAT_VERSION} (upgrade fastcnn)")
    if version < 1:
        raise FormatError(f"{path}: unknown model format version {version}")
    if hashlib.sha256(blob[:-_DIGEST]).digest() != blob[-_DIGEST:]:
        raise FormatError(f"{path}: checksum mismatch: the file is truncated or corrupted")
    end = _PREFIX.size + header_size
    if header_size > _MAX_HEADER or end > len(blob) - _DIGEST:
        raise FormatError(f"{path}: header size {header_size} runs past the end of the file")
    try:
        header = json.loads(blob[_PREFIX.size:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise FormatError(f"{path}: header lacks the 'arrays' list")
    return header, memoryview(blob)[end:len(blob) - _DIGEST]


def _arrays(header: dict, data: memoryview, path: str) -> dict:
    """name -> read-only view of the data section, for each entry: names unique, every entry
    inside the data, and all of them together no more bytes than the data holds (a file that
    lists one stored array many times is refused, not copied many times)."""
    state, claimed = {}, 0
    for i, e in enumerate(header["arrays"]):
        try:
            name, code, shape = e["name"], e["dtype"], e["shape"]
            offset, nbytes = e["offset"], e["nbytes"]
            ok = (isinstance(name, str) and code in _DTYPES and isinstance(shape, list)
                  and all(type(d) is int and d >= 0 for d in shape)
                  and type(offset) is int and type(nbytes) is int and offset >= 0)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise FormatError(f"{path}: array entry {i} is malformed: {e!r}")
        itemsize = np.dtype(code).itemsize
        if nbytes != int(np.prod(shape, dtype=object)) * itemsize or offset + nbytes > len(data):
            raise FormatError(f"{path}: array {name!r} of shape {shape} ({nbytes} bytes at "
                              f"offset {offset}) does not fit the {len(data)}-byte data section")
        claimed += nbytes
        if name in state or claimed > len(data):
            raise FormatError(f"{path}: array {name!r} is listed twice or the arrays claim more "
                              f"than the {len(data)}-byte data section holds")
        state[name] = np.frombuffer(data, dtype=code, count=nbytes // itemsize,
                                    offset=offset).reshape(shape)
    return state


def load(path, with_metadata: bool = False):
    """Read a model written by `save`.

    Args:
        path: the model file.
        with_metadata: also return the metadata dict given to `save`.

    Returns:
        the model (in eval mode, with the saved dtype), or (model, metadata).

    Raises:
        FormatError (a ValueError): the file is truncated, corrupted, not a fastcnn model, or
            from a newer format version; its layers or weights don't match.
        FileNotFoundError: no such file.
        ValueError: the path is not a regular file (a FIFO, a device) or holds more than
            MAX_FILE_BYTES.
    """
    from .nn import from_config

    path = os.fspath(path)
    header, data = _parse(read_regular(path, MAX_FILE_BYTES, "model file"), path)
    state = _arrays(header, data, path)
    metadata = header.get("metadata", {})
    try:
        # the layers may hold no more elements than the file stores: a small file naming huge
        # layers is refused before they are allocated
        stored = sum(a.size for a in state.values())
        model = from_config(header.get("architecture"), max_elements=stored)
        if header.get("dtype") == "float64":
            model.astype(np.float64)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise FormatError(f"{path}: the stored model does not rebuild: {e}") from None
    if isinstance(metadata, dict):
        _check_activations(model, metadata.get("input_shape"), path)
    model.eval()
    return (model, metadata) if with_metadata else model


def _check_activations(model, input_shape, path) -> None:
    """With a stored input shape (a list of sizes, the batch left out), each layer's output
    for one such input must stay within MAX_ACTIVATION_ELEMENTS: a few bytes of architecture
    (a padding of 8000) must not make the first prediction allocate gigabytes. Metadata is
    the user's: a shape the model does not take is not checked, and not an error here."""
    if not (isinstance(input_shape, list) and input_shape
            and all(type(d) is int and d >= 1 for d in input_shape)):
        return
    try:
        _bounded_shape(model, (1, *input_shape), "", path)
    except FormatError:
        raise
    except (NotImplementedError, ValueError):  # a layer of the user's own, or another input
        return


def _bounded_shape(module, shape: tuple, name: str, path) -> tuple:
    """module.output_shape(shape), checking each layer of a Sequential on the way."""
    from .nn import Sequential

    if isinstance(module, Sequential):
        for child_name, child in module._modules.items():
            shape = _bounded_shape(child, shape, f"{name}.{child_name}" if name else child_name,
                                   path)
        return shape
    shape = module.output_shape(shape)
    if math.prod(shape) > MAX_ACTIVATION_ELEMENTS:
        raise FormatError(f"{path}: layer {name or type(module).__name__} would give "
                          f"{math.prod(shape):,} values for one input of the stored "
                          f"input_shape, more than the {MAX_ACTIVATION_ELEMENTS:,} allowed")
    return shape
