"""fastcnn's PNG reader: every colour type, bit depth and row filter, against images written
here (with the filters chosen row by row) and by Pillow where it is installed; and hostile
files: bombs, lying headers, bad CRCs, special files, each refused with a bounded cost."""
import os
import struct
import zlib

import numpy as np
import pytest

from fastcnn import _png
from fastcnn._png import read_png
from harness import traced_peak


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter(rows, bpp, kinds):
    """Rows of bytes filtered with the PNG filter of each row (the encoder's side)."""
    out, prev = [], [0] * len(rows[0])
    for row, kind in zip(rows, kinds):
        line = []
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
            line.append((v - pred) & 0xFF)
        out.append(bytes([kind] + line))
        prev = list(row)
    return b"".join(out)


def write_png(path, raw_rows, width, height, depth, colour, kinds=None, extra=b"",
              interlace=0, compress=zlib.compress):
    """A PNG of the given byte rows (already packed), each row with its filter type."""
    bpp = max(1, {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] * depth // 8)
    kinds = kinds if kinds is not None else [y % 5 for y in range(height)]
    data = _filter([list(r) for r in raw_rows], bpp, kinds)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra
                     + _chunk(b"IDAT", compress(data)) + _chunk(b"IEND", b""))


def _pack(values, depth):
    """Rows of sample values packed at `depth` bits (big-endian for 16)."""
    if depth == 16:
        return [r.astype(">u2").tobytes() for r in values]
    if depth == 8:
        return [r.astype(np.uint8).tobytes() for r in values]
    bits = ((values[..., None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(len(values), -1)
    return [np.packbits(r.astype(np.uint8)).tobytes() for r in bits]


@pytest.mark.parametrize("colour, depth", [(c, d) for c, ds in _png._DEPTHS.items()
                                           for d in ds if c != 3])
@pytest.mark.parametrize("width, height", [(1, 1), (7, 5), (13, 11)])
def test_every_colour_type_depth_and_filter_reads_back(tmp_path, colour, depth, width, height):
    samples = _png._SAMPLES[colour]
    rng = np.random.default_rng(width * 100 + depth)
    values = rng.integers(0, 2 ** depth, (height, width * samples))
    path = tmp_path / "x.png"
    write_png(path, _pack(values, depth), width, height, depth, colour)
    got = read_png(path)
    want = values.reshape(height, width, samples)
    if colour == 0 and depth < 8:
        want = want * (255 // (2 ** depth - 1))
    assert got.dtype == (np.uint16 if depth == 16 else np.uint8)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
@pytest.mark.parametrize("transparency", [False, True])
def test_palette_images_give_their_colours(tmp_path, depth, transparency):
    rng = np.random.default_rng(depth)
    entries = 2 ** depth
    palette = rng.integers(0, 256, (entries, 3), dtype=np.uint8)
    index = rng.integers(0, entries, (6, 9))
    extra = _chunk(b"PLTE", palette.tobytes())
    want = palette[index]
    if transparency:
        alpha = rng.integers(0, 256, entries // 2 + 1, dtype=np.uint8)
        extra += _chunk(b"tRNS", alpha.tobytes())
        opacity = np.full(entries, 255, np.uint8)
        opacity[:len(alpha)] = alpha[:entries]
        want = np.concatenate([want, opacity[index][..., None]], axis=2)
    path = tmp_path / "p.png"
    write_png(path, _pack(index, depth), 9, 6, depth, 3, extra=extra)
    np.testing.assert_array_equal(read_png(path), want)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_images_pillow_writes_read_back(tmp_path, mode):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (23, 31, 4), dtype=np.uint8)
    image = Image.fromarray(base, "RGBA").convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)  # mode I;16
    path = tmp_path / "pil.png"
    image.save(path)
    want = np.asarray(image.convert("RGBA") if mode == "P" else image)
    got = read_png(path)
    if mode == "P" and got.shape[2] == 3:
        want = want[..., :3]
    if mode == "1":
        want = want.astype(np.uint8) * 255
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_a_large_paeth_image_decodes_in_height_plus_width_steps(tmp_path):
    """Paeth rows used to be decoded one byte at a time in Python."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, (600, 700 * 3))
    path = tmp_path / "big.png"
    write_png(path, _pack(values, 8), 700, 600, 8, 2, kinds=[4] * 600)
    np.testing.assert_array_equal(read_png(path), values.reshape(600, 700, 3))


# ------------------------------------------------------------------------------- hostile

def _grey(path, width, height, **kw):
    write_png(path, [bytes(width)] * height, width, height, 8, 0, kinds=[0] * height, **kw)


def test_a_deflate_bomb_stops_at_the_size_its_header_declares(tmp_path):
    """An 8x8 header over image data that inflates to 256 MiB."""
    path = tmp_path / "bomb.png"
    bomb = zlib.compressobj(9)
    data = bomb.compress(bytes(1 << 28)) + bomb.flush()
    header = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))
    errors = []

    def read():
        try:
            read_png(path)
        except ValueError as e:
            errors.append(str(e))
    assert traced_peak(read) < 4 << 20
    assert "inflates to more than the 72 bytes its header declares" in errors[0]


@pytest.mark.parametrize("width, height, message", [
    (16384, 16384, "outside what is read"), (1 << 13, 1 << 13, "outside what is read"),
    (0, 5, "outside what is read"), (1, 1 << 20, "outside what is read"),
])
def test_sizes_past_the_limits_are_refused_from_the_header(tmp_path, width, height, message):
    path = tmp_path / "huge.png"
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(bytes(1000))) + _chunk(b"IEND", b""))
    with pytest.raises(ValueError, match=message):
        read_png(path)


def test_a_size_the_caller_cannot_use_is_refused_before_inflating(tmp_path):
    path = tmp_path / "wrong.png"
    _grey(path, 30, 20)
    with pytest.raises(ValueError, match="the image is 30x20 pixels .* the model takes 8x8"):
        read_png(path, size=(8, 8))
    assert read_png(path, size=(20, 30)).shape == (20, 30, 1)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "fails its CRC check"),
    (lambda b: b[:-20], "truncated"),
    (lambda b: b[:8] + _chunk(b"IHDR", b"\0" * 12) + b[33:], "13 bytes"),
    (lambda b: b[:8] + b[33:], "does not start with its IHDR"),
    (lambda b: b"GIF89a" + b[6:], "not a PNG"),
])
def test_damaged_files_are_refused_with_a_message(tmp_path, damage, message):
    path = tmp_path / "d.png"
    _grey(path, 5, 4)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        read_png(path)


def test_interlaced_images_say_what_to_convert_to(tmp_path):
    path = tmp_path / "i.png"
    _grey(path, 4, 4, interlace=1)
    with pytest.raises(ValueError, match="without interlacing"):
        read_png(path)


def test_palette_index_past_the_palette_is_refused(tmp_path):
    path = tmp_path / "p.png"
    extra = _chunk(b"PLTE", bytes(6))  # two entries
    write_png(path, [bytes([0, 1, 5])], 3, 1, 8, 3, extra=extra)
    with pytest.raises(ValueError, match="palette entry 5, but the palette has 2"):
        read_png(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_special_files_are_refused_without_reading_them(tmp_path):
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="must be a regular file, got a character device"):
        read_png(link)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="got a FIFO"):
        read_png(fifo)
    with pytest.raises(ValueError, match="got a directory"):
        read_png(tmp_path)
