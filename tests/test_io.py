"""fastcnn.save / fastcnn.load: round trip, atomicity, and every kind of bad file."""
import json
import os
import pickle
import signal
import struct

import numpy as np
import pytest

import fastcnn
from fastcnn import nn
from fastcnn.io import FORMAT_VERSION, MAGIC, FormatError, load, save


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * 4 * 4, 10, rng=rng),
    )


def trained_model():
    """A model whose BatchNorm buffers have moved away from their initial values."""
    model = small_model()
    x = np.random.default_rng(1).standard_normal((8, 1, 8, 8)).astype(np.float32)
    model.train()
    model(x)
    model.eval()
    return model, x


@pytest.fixture
def saved(tmp_path):
    model, x = trained_model()
    path = tmp_path / "model.fcnn"
    save(model, path, metadata={"input_shape": [1, 8, 8]})
    return model, x, path


def test_round_trip_is_bit_identical(saved):
    model, x, path = saved
    loaded, meta = load(path, with_metadata=True)
    assert meta == {"input_shape": [1, 8, 8]}
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert np.array_equal(a[key], b[key]), key
    assert np.array_equal(model(x), loaded(x))
    assert repr(model) == repr(loaded)


def test_round_trip_float64(tmp_path):
    model = small_model().astype(np.float64)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert all(p.data.dtype == np.float64 for p in loaded.parameters())


def test_top_level_names():
    assert fastcnn.save is save and fastcnn.load is load


def test_no_pickle_in_file(saved):
    blob = saved[2].read_bytes()
    assert blob.startswith(MAGIC)
    assert b"\x80\x04\x95" not in blob[:200]  # no pickle protocol-4 frame at the start


def test_save_replaces_existing_file_atomically(saved, tmp_path):
    model, _, path = saved
    before = path.read_bytes()
    save(small_model(seed=5), path)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["model.fcnn"]  # no temporary left


def test_failed_save_keeps_previous_file(saved, tmp_path, monkeypatch):
    _, _, path = saved
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        save(small_model(seed=5), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.fcnn"]


def test_kill_during_save_keeps_previous_file(saved, tmp_path):
    """A process killed mid-save (here: SIGKILL while writing) leaves the old file whole."""
    import subprocess
    import sys

    _, _, path = saved
    before = path.read_bytes()
    code = f"""
import os, signal, numpy as np
import fastcnn.io as io
from fastcnn import nn
real_fsync = os.fsync
def die(fd):
    os.kill(os.getpid(), signal.SIGKILL)
os.fsync = die
io.save(nn.Sequential(nn.Linear(100, 100)), {str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd="/")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == before
    assert load(path) is not None


def test_unserialisable_metadata_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save(small_model(), tmp_path / "m", metadata={"bad": object()})
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------ bad files

def rewrite(path, blob):
    path.write_bytes(blob)
    return path


def reseal(body: bytes) -> bytes:
    """Append a valid checksum, so a test reaches the checks behind it."""
    import hashlib

    return body + hashlib.sha256(body).digest()


def header_of(blob):
    _, _, size = struct.unpack_from("<8sIQ", blob)
    return json.loads(blob[20:20 + size]), blob[20 + size:-32]


def with_header(header, data=b"", version=FORMAT_VERSION):
    h = json.dumps(header).encode()
    return reseal(struct.pack("<8sIQ", MAGIC, version, len(h)) + h + data)


def test_every_truncated_prefix_is_refused(saved):
    _, _, path = saved
    blob = path.read_bytes()
    cut = path.with_name("cut")
    for n in list(range(0, 64)) + list(range(64, len(blob), max(1, len(blob) // 97))):
        rewrite(cut, blob[:n])
        with pytest.raises(FormatError):
            load(cut)


def test_every_bit_flip_in_a_sample_is_refused(saved):
    _, _, path = saved
    blob = bytearray(path.read_bytes())
    bad = path.with_name("flip")
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(blob), size=60, replace=False):
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(8))
        rewrite(bad, bytes(flipped))
        with pytest.raises(FormatError):
            load(bad)


def test_random_bytes_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    for size in (0, 10, 100, 10_000):
        path = rewrite(tmp_path / "r", rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        with pytest.raises(FormatError, match="not a fastcnn model"):
            load(path)


def test_wrong_magic(saved):
    _, _, path = saved
    blob = path.read_bytes()
    with pytest.raises(FormatError, match="magic"):
        load(rewrite(path, b"NOTFCNN\x00" + blob[8:]))


def test_future_version_names_both_versions(saved):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    with pytest.raises(FormatError, match=f"format {FORMAT_VERSION + 1}.*newer"):
        load(rewrite(path, with_header(header, data, version=FORMAT_VERSION + 1)))


def test_pickle_payload_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = rewrite(tmp_path / "evil.fcnn", pickle.dumps(Evil()))
    with pytest.raises(FormatError):
        load(path)
    assert not marker.exists()


def test_array_offset_out_of_range(saved):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    header["arrays"][0]["offset"] = len(data) + 1000
    with pytest.raises(FormatError, match="does not fit"):
        load(rewrite(path, with_header(header, data)))


def test_array_shape_size_mismatch(saved):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    header["arrays"][0]["shape"] = [1000, 1000]
    with pytest.raises(FormatError, match="does not fit"):
        load(rewrite(path, with_header(header, data)))


@pytest.mark.parametrize("field, value", [("dtype", "|O"), ("shape", [-1]), ("shape", "abc"),
                                          ("offset", -8), ("name", 3)])
def test_malformed_array_entry(saved, field, value):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    header["arrays"][0][field] = value
    with pytest.raises(FormatError, match="malformed"):
        load(rewrite(path, with_header(header, data)))


def test_unknown_layer_is_refused(saved):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    header["architecture"] = {"class": "os.system", "config": {"command": "true"}}
    with pytest.raises(FormatError, match="does not rebuild"):
        load(rewrite(path, with_header(header, data)))


def test_weights_that_do_not_match_the_architecture(saved):
    _, _, path = saved
    header, data = header_of(path.read_bytes())
    header["arrays"] = header["arrays"][1:]
    with pytest.raises(FormatError, match="does not rebuild"):
        load(rewrite(path, with_header(header, data)))


def test_header_that_is_not_json(tmp_path):
    body = struct.pack("<8sIQ", MAGIC, FORMAT_VERSION, 5) + b"{nope"
    with pytest.raises(FormatError, match="JSON"):
        load(rewrite(tmp_path / "m", reseal(body)))


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load("/nonexistent/model.fcnn")
