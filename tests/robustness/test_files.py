"""Files in and out under attack and accident: model files that would make `load` or the first
prediction allocate far more than they hold, special files that never end, and writes that
must keep modes, refuse planted links and leave nothing behind when the process is killed.
"""
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastcnn
from fastcnn import nn
from fastcnn._files import write_atomic
from fastcnn.io import MAGIC, FORMAT_VERSION, FormatError, load, save
from harness import traced_peak


def _reseal(header: dict, data: bytes) -> bytes:
    import hashlib

    h = json.dumps(header).encode()
    body = struct.pack("<8sIQ", MAGIC, FORMAT_VERSION, len(h)) + h + data
    return body + hashlib.sha256(body).digest()


def _parts(path):
    blob = path.read_bytes()
    _, _, size = struct.unpack_from("<8sIQ", blob)
    return json.loads(blob[20:20 + size]), blob[20 + size:-32]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.fcnn"
    save(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                       nn.Linear(2 * 8 * 8, 3, rng=1)), path, metadata={"input_shape": [1, 8, 8]})
    return path


def test_an_array_listed_many_times_is_refused_without_copies(tiny, tmp_path):
    header, data = _parts(tiny)
    first = header["arrays"][0]
    header["arrays"] = [dict(first, name=f"copy{i}") for i in range(5000)]
    forged = tmp_path / "many.fcnn"
    forged.write_bytes(_reseal(header, data))
    def refused():
        with pytest.raises(FormatError, match="claim more than the"):
            load(forged)
    assert traced_peak(refused) < 16 << 20


def test_a_duplicate_array_name_is_refused(tiny, tmp_path):
    header, data = _parts(tiny)
    header["arrays"].append(dict(header["arrays"][0]))
    forged = tmp_path / "twice.fcnn"
    forged.write_bytes(_reseal(header, data))
    with pytest.raises(FormatError, match="listed twice"):
        load(forged)


def test_a_huge_padding_is_refused_before_anything_runs(tiny, tmp_path):
    header, data = _parts(tiny)
    header["architecture"]["config"]["layers"][0]["config"]["padding"] = [8000, 8000]
    forged = tmp_path / "padded.fcnn"
    forged.write_bytes(_reseal(header, data))
    with pytest.raises(FormatError, match="layer 0 would give 512,384,072 values for one "
                                          "input of the stored input_shape"):
        load(forged)


@pytest.mark.parametrize("metadata", [{"input_shape": [784]}, {"input_shape": [28, 28]},
                                      {"input_shape": "any"}, [1, 2], "text"])
def test_metadata_the_model_does_not_use_loads_as_saved(tmp_path, metadata):
    """Metadata is the user's: a shape the model does not take is not checked."""
    path = tmp_path / "free.fcnn"
    save(nn.Sequential(nn.Linear(784, 10, rng=0)), path, metadata=metadata)
    assert load(path, with_metadata=True)[1] == metadata


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_model_path_that_never_ends_is_refused(tmp_path):
    link = tmp_path / "zero.fcnn"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="must be a regular file, got a character device"):
        load(link)
    fifo = tmp_path / "fifo.fcnn"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="got a FIFO"):
        load(fifo)


def test_every_layer_predicts_its_output_shape():
    layers = [nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
              nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 4, (1, 3), groups=2, rng=1),
              nn.AvgPool2d(2, padding=1), nn.LeakyReLU(), nn.Dropout(0.5), nn.Flatten(),
              nn.Linear(4 * 2 * 1, 5, rng=2), nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=1)]
    shape = (2, 3, 9, 11)
    x = np.zeros(shape, np.float32)
    for layer in layers:
        x = layer(x)
        shape = layer.output_shape(shape)
        assert shape == x.shape, layer
    assert nn.Sequential(*layers).output_shape((2, 3, 9, 11)) == x.shape


# ------------------------------------------------------------------------------- writes

def test_replacing_a_file_keeps_its_mode_and_a_new_file_follows_the_umask(tmp_path):
    target = tmp_path / "model.fcnn"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    save(nn.Linear(2, 2, rng=0), target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    umask = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.fcnn"
        save(nn.Linear(2, 2, rng=0), fresh)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640


def test_a_planted_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "out.fcnn"
    link.symlink_to(victim)
    save(nn.Linear(2, 2, rng=0), link)
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and load(link).in_features == 2


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"before")

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, fail)
    assert target.read_bytes() == b"before"
    assert os.listdir(tmp_path) == ["t.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_mid_save_leaves_no_temporary_file(tmp_path, signum):
    code = textwrap.dedent(f"""
        import sys, time
        from fastcnn._files import write_atomic

        def slow(f):
            f.write(b"x" * (1 << 20))
            print("writing", flush=True)
            time.sleep(30)
        write_atomic(sys.argv[1], slow)
    """)
    target = tmp_path / "big.bin"
    child = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                             text=True, cwd="/")  # "-c" puts the folder first on sys.path
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signum)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signum
    assert os.listdir(tmp_path) == []


def test_a_temporary_name_no_process_can_have_is_swept_not_an_error(tmp_path):
    stray = tmp_path / ".fastcnn-4294967296999-x.tmp"
    stray.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    save(nn.Linear(2, 2, rng=0), tmp_path / "m.fcnn")
    assert os.listdir(tmp_path) == ["m.fcnn"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_sigterm_handler_that_returns_lets_the_write_finish(tmp_path):
    """A service's own SIGTERM handler (set a flag, stop later) runs as usual mid-write."""
    got = []
    before = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    try:
        def write(f):
            f.write(b"whole")
            os.kill(os.getpid(), signal.SIGTERM)
        write_atomic(tmp_path / "f.bin", write)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert got == [signal.SIGTERM] and (tmp_path / "f.bin").read_bytes() == b"whole"


def test_temporary_files_of_dead_processes_are_swept(tmp_path):
    try:  # above the largest pid the system hands out: never alive, never reused
        with open("/proc/sys/kernel/pid_max") as f:
            dead = int(f.read()) + 1
    except OSError:
        dead = 2**22 + 1
    stale = tmp_path / f".fastcnn-{dead}-abc.tmp"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    mine = tmp_path / f".fastcnn-{os.getpid()}-def.tmp"  # this process is alive: kept
    mine.write_bytes(b"y")
    os.utime(mine, (old, old))
    save(nn.Linear(2, 2, rng=0), tmp_path / "m.fcnn")
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, "m.fcnn"])


def test_backward_refuses_a_gradient_of_another_shape():
    bn = nn.BatchNorm2d(3)
    bn(np.ones((4, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"gradient of the output's shape \(4, 3, 5, 5\)"):
        bn.backward(np.ones((1, 3, 1, 1)))
    linear = nn.Linear(3, 4, rng=0)
    linear(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"gradient of the output's shape \(3, 4\)"):
        linear.backward(np.ones((4, 3)))
    flatten = nn.Flatten()
    flatten(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"gradient of the output's shape \(2, 12\)"):
        flatten.backward(np.ones((12, 2)))


# --------------------------------------------------------------------------- data sets

def test_an_idx_gzip_bomb_is_refused_before_inflating(tmp_path):
    """The header declares 1 GiB; the 64 KiB gzip stream inflates to 64 MiB of zeros."""
    import gzip

    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1 << 30)
                                   + bytes(64 << 20)))

    def read():
        with pytest.raises(ValueError, match="corrupt or truncated gzip data: the IDX header"):
            fastcnn.data.read_idx(path)
    assert traced_peak(read) < 4 << 20


def _cifar_batch(tmp_path, blob):
    folder = tmp_path / "cifar"
    folder.mkdir(exist_ok=True)
    (folder / "test_batch").write_bytes(blob)
    return folder


def test_a_gzip_stream_with_zero_padding_reads(tmp_path):
    import gzip

    idx = b"\x00\x00\x08\x01" + struct.pack(">I", 248) + bytes(range(248))  # 256 bytes
    path = tmp_path / "padded-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx) + bytes(8))
    np.testing.assert_array_equal(fastcnn.data.read_idx(path), np.arange(248, dtype=np.uint8))


def test_a_pickle_memoising_far_away_is_refused_before_unpickling(tmp_path):
    blob = b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 26) + b"."  # LONG_BINPUT 2**26
    folder = _cifar_batch(tmp_path, blob)
    peak = traced_peak(lambda: pytest.raises(ValueError, fastcnn.data.load_cifar10, folder,
                                              "test"))
    assert peak < 1 << 20
    with pytest.raises(ValueError, match="stores at memo index 67108864 after 3 opcodes"):
        fastcnn.data.load_cifar10(folder, "test")


def test_a_cifar_label_past_int64_is_a_value_error(tmp_path):
    import pickle

    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [2 ** 100]}
    folder = _cifar_batch(tmp_path, pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="labels must be in 0..9, found 1267650600228"):
        fastcnn.data.load_cifar10(folder, "test")


def test_a_deeply_nested_pickle_is_a_value_error(tmp_path):
    depth = 200_000
    blob = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    folder = _cifar_batch(tmp_path, blob)
    with pytest.raises(ValueError, match="expected a dict"):
        fastcnn.data.load_cifar10(folder, "test")
