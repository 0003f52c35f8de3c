"""A PNG reader in NumPy, so `fastcnn predict` reads images with NumPy alone.

It reads every non-interlaced PNG: grey, grey + alpha, RGB, RGBA and palette images at every
bit depth the format allows (1, 2, 4, 8, 16). Hostile files are part of its job: it reads a
regular file of at most MAX_FILE_BYTES, checks every chunk's CRC, refuses images of more than
MAX_SIDE pixels a side or MAX_PIXELS in all (or of another size than the caller needs) from the
header, before inflating anything, and inflates at most the bytes the header declares.

Unfiltering is vectorised along anti-diagonals: a byte depends on its left, upper and
upper-left neighbours only, so all pixels with the same x + y are independent, and a band of
rows takes its height + width NumPy steps, whatever filters its rows use.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from ._files import read_regular

__all__ = ["read_png", "MAX_FILE_BYTES", "MAX_PIXELS", "MAX_SIDE"]

MAX_FILE_BYTES = 1 << 28
MAX_PIXELS = 1 << 22
MAX_SIDE = 1 << 13

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_COLOURS = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}


def read_png(path, size=None) -> np.ndarray:
    """The pixels of a PNG as (H, W, channels): uint8, or uint16 for 16-bit images.

    Grey below 8 bits is scaled to 0-255; a palette image gives RGB, or RGBA when it has
    transparency; alpha is kept as the last channel.

    Args:
        path: the file.
        size: (height, width) the caller can use: any other size is refused from the header.

    Raises:
        ValueError: not a PNG, damaged, too large, of another size, or interlaced (with what
            to convert it to).
    """
    blob = read_regular(path, MAX_FILE_BYTES, "PNG image")
    if blob[:8] != _SIGNATURE:
        raise ValueError(f"{path}: not a PNG file")
    header, palette, alpha, idat = None, None, None, []
    for kind, data in _chunks(blob, path):
        if header is None and kind != b"IHDR":
            raise ValueError(f"{path}: the PNG does not start with its IHDR header chunk")
        if kind == b"IHDR":
            if header is not None or len(data) != 13:
                raise ValueError(f"{path}: the PNG header (IHDR) must be one chunk of 13 bytes, "
                                 f"got {len(data)} bytes")
            header = _header(struct.unpack(">IIBBBBB", data), size, path)
        elif kind == b"PLTE":
            palette = data
        elif kind == b"tRNS":
            alpha = data
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ValueError(f"{path}: PNG without a header or image data")
    width, height, depth, colour = header
    samples = _SAMPLES[colour]
    stride = (width * samples * depth + 7) // 8
    raw = _inflate(idat, height * (stride + 1), path)
    rows = _unfilter(raw, height, stride, max(1, samples * depth // 8), path)
    pixels = _samples(rows, width, samples, depth)
    if colour == 3:
        return _from_palette(pixels[..., 0], palette, alpha, path)
    if colour == 0 and depth < 8:
        return (pixels * (255 // (2 ** depth - 1))).astype(np.uint8)
    return pixels


def _chunks(blob: bytes, path):
    """(type, data) of each chunk, its length and CRC checked."""
    pos = 8
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise ValueError(f"{path}: truncated PNG (a chunk header is cut off)")
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        end = pos + 8 + length
        if end + 4 > len(blob):
            raise ValueError(f"{path}: truncated PNG chunk {kind!r}: {length} bytes declared, "
                             f"{max(len(blob) - pos - 12, 0)} present")
        data = blob[pos + 8:end]
        (crc,) = struct.unpack(">I", blob[end:end + 4])
        if zlib.crc32(kind + data) != crc:
            raise ValueError(f"{path}: PNG chunk {kind!r} fails its CRC check: the file is "
                             f"damaged")
        yield kind, data
        pos = end + 4


def _header(fields, size, path):
    width, height, depth, colour, compression, filtering, interlace = fields
    if colour not in _DEPTHS or depth not in _DEPTHS[colour]:
        raise ValueError(f"{path}: bit depth {depth} with colour type {colour} is not a valid "
                         f"PNG")
    if compression or filtering:
        raise ValueError(f"{path}: unknown PNG compression ({compression}) or filter method "
                         f"({filtering})")
    if interlace:
        raise ValueError(f"{path}: interlaced (Adam7) PNGs are not read: save the image "
                         f"again without interlacing (Pillow's Image.save does by default)")
    if size is not None and (height, width) != tuple(size):
        raise ValueError(f"{path}: the image is {width}x{height} pixels (width x height), "
                         f"the model takes {size[1]}x{size[0]}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise ValueError(f"{path}: a {width}x{height} image is outside what is read: 1 to "
                         f"{MAX_SIDE} pixels a side, {MAX_PIXELS:,} in all")
    return width, height, depth, colour


def _inflate(chunks, size: int, path) -> bytes:
    """The image data, inflated a chunk at a time and never past `size` bytes."""
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for chunk in chunks:
            out += inflater.decompress(chunk, size + 1 - len(out))
            if len(out) > size or inflater.unconsumed_tail:
                raise ValueError(f"{path}: the image data inflates to more than the {size} "
                                 f"bytes its header declares")
    except zlib.error as e:
        raise ValueError(f"{path}: corrupt PNG image data ({e})") from None
    if len(out) != size:
        raise ValueError(f"{path}: image data has {len(out)} bytes, expected {size}")
    return bytes(out)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, path) -> np.ndarray:
    """The filtered rows (each led by its filter type) decoded: uint8 (height, stride).

    Bytes go in units of bpp (a pixel's bytes, at least 1), and unit (y, x) depends on units
    (y, x-1), (y-1, x) and (y-1, x-1) alone. Rows are decoded in bands; within one, the units
    of an anti-diagonal x + y = d are decoded together, each with its row's predictor, from
    a sheared copy where every diagonal is a column (plain slices, no gathers)."""
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    kinds = rows[:, 0]
    if (kinds > 4).any():
        y = int(np.argmax(kinds > 4))
        raise ValueError(f"{path}: bad PNG filter type {kinds[y]} in row {y}")
    X = stride // bpp
    filtered = rows[:, 1:].reshape(height, X, bpp)
    out = np.empty((height, X, bpp), np.uint8)
    band = min(height, max(256, X))  # a band's sheared copies hold band * (band + X) units
    previous = np.zeros((X, bpp), np.uint8)
    for top in range(0, height, band):
        B = min(band, height - top)
        out[top:top + B] = _unfilter_band(filtered[top:top + B], kinds[top:top + B], previous)
        previous = out[top + B - 1]
    return out.reshape(height, stride)


def _sheared(t: np.ndarray, col: int, row: int, shape: tuple) -> np.ndarray:
    """A view v of t (columns, rows, bpp) with v[y, x] = t[col + x + y, row + y]."""
    s0, s1, s2 = t.strides
    return np.lib.stride_tricks.as_strided(t[col:, row:], shape, (s0 + s1, s0, s2))


def _unfilter_band(filtered: np.ndarray, kinds: np.ndarray, previous: np.ndarray):
    """Decode B filtered rows (B, X, bpp) that follow the decoded row `previous` (X, bpp).

    The band is kept sheared and transposed, so that an anti-diagonal is one contiguous run:
    unit (y, x) at S[x + y + 2, y + 1], row -1 (previous) at S[x + 1, 0]. Diagonal d's left
    neighbours, upper neighbours and upper-left ones are then S[d + 1] and S[d] one row up,
    and reads past the edges meet zeros."""
    B, X, bpp = filtered.shape
    S = np.zeros((B + X + 1, B + 1, bpp), np.int16)
    S[1:X + 1, 0] = previous
    F = np.zeros((B + X, B, bpp), np.int16)
    _sheared(F, 0, 0, (B, X, bpp))[...] = filtered
    kind = kinds.astype(np.intp)[:, None]
    paeth_rows = bool((kinds == 4).any())
    for d in range(B + X - 1):
        y0, y1 = max(0, d - X + 1), min(B - 1, d) + 1
        a, b, c = S[d + 1, y0 + 1:y1 + 1], S[d + 1, y0:y1], S[d, y0:y1]
        paeth = 0
        if paeth_rows:  # p = a + b - c: |p - a| = |b - c|, |p - b| = |a - c|, |p - c| = the sum
            bc, ac = b - c, a - c
            pa, pb, pc = np.abs(bc), np.abs(ac), np.abs(bc + ac)
            paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        predicted = np.choose(kind[y0:y1], (0, a, b, (a + b) >> 1, paeth))
        S[d + 2, y0 + 1:y1 + 1] = (F[d, y0:y1] + predicted) & 0xFF
    return _sheared(S, 2, 1, (B, X, bpp))


def _samples(rows: np.ndarray, width: int, samples: int, depth: int) -> np.ndarray:
    """(H, width, samples) sample values from the unfiltered rows."""
    height = rows.shape[0]
    if depth == 16:
        return rows.view(">u2").astype(np.uint16).reshape(height, width, samples)
    if depth == 8:
        return rows.reshape(height, width, samples)
    bits = np.unpackbits(rows, axis=1)[:, :width * samples * depth]
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    values = (bits.reshape(height, width * samples, depth) * weights).sum(axis=2)
    return values.astype(np.uint8).reshape(height, width, samples)


def _from_palette(index: np.ndarray, palette, alpha, path) -> np.ndarray:
    if palette is None or len(palette) % 3 or not 0 < len(palette) <= 768:
        raise ValueError(f"{path}: a palette PNG needs a PLTE chunk of 1 to 256 RGB entries")
    colours = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    if int(index.max()) >= len(colours):
        raise ValueError(f"{path}: a pixel names palette entry {int(index.max())}, but the "
                         f"palette has {len(colours)}")
    if alpha is not None:
        opacity = np.full(len(colours), 255, np.uint8)
        opacity[:min(len(alpha), len(colours))] = np.frombuffer(alpha, np.uint8)[:len(colours)]
        colours = np.concatenate([colours, opacity[:, None]], axis=1)
    return colours[index]
