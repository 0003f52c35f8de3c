"""The installed `fastcnn` command: train, evaluate, predict, info, and its error messages."""
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import fastcnn


def fastcnn_command():
    """The console script installed beside this Python (the installed package's entry point)."""
    script = pathlib.Path(sys.executable).with_name("fastcnn")
    found = str(script) if script.exists() else shutil.which("fastcnn")
    if not found:
        pytest.skip("the fastcnn command is not installed")
    return found


def run(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("FASTCNN_DEBUG", None)
    return subprocess.run([fastcnn_command(), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "digits.fcnn"
    proc = run("train", "--epochs", "2", "--quiet", "--output", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout and f"saved the model to {path}" in proc.stdout
    return path


def write_png(path, pixels):
    """A minimal 8-bit greyscale PNG writer (filter 0 on every row)."""
    h, w = pixels.shape

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row.tobytes() for row in pixels.astype(np.uint8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0,
                                                                          0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["evaluate", "--help"],
                                  ["predict", "--help"], ["info", "--help"]])
def test_help_everywhere(args):
    proc = run(*args)
    assert proc.returncode == 0 and "usage: fastcnn" in proc.stdout


def test_info_reports_version_and_build():
    proc = run("info")
    assert proc.returncode == 0
    assert fastcnn.__version__ in proc.stdout and "openmp" in proc.stdout


def test_train_evaluate_round_trip(model_file):
    proc = run("evaluate", str(model_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("digits test set: accuracy")


def test_predict_npy_and_png(model_file, tmp_path):
    x, y = fastcnn.data.load_digits("test")
    npy = tmp_path / "digit.npy"
    np.save(npy, x[0, 0])
    png = tmp_path / "digit.png"
    write_png(png, np.round(x[0, 0] * 255))
    proc = run("predict", str(model_file), str(npy), str(png), "--top", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{npy}: ") and lines[1].startswith(f"{png}: ")
    # the PNG holds the same digit (rounded to 8 bits): same top class
    assert lines[0].split(": ")[1].split(" ")[0] == lines[1].split(": ")[1].split(" ")[0]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "/nonexistent.fcnn"], "/nonexistent.fcnn: No such file"),
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--lr", "nan"], "expected a positive number"),
    (["train", "--data", "/nonexistent"], "--data must be 'digits' or a directory"),
    (["train", "--optimizer", "lbfgs"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_user_mistakes_are_one_line_and_non_zero(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_model_file_is_one_line(tmp_path, model_file):
    bad = tmp_path / "bad.fcnn"
    bad.write_bytes(model_file.read_bytes()[:100])
    proc = run("evaluate", str(bad))
    assert proc.returncode == 2 and "fastcnn: error:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_predict_wrong_image_size(model_file, tmp_path):
    npy = tmp_path / "big.npy"
    np.save(npy, np.zeros((28, 28), np.float32))
    proc = run("predict", str(model_file), str(npy))
    assert proc.returncode == 2 and "takes images of shape (1, 8, 8)" in proc.stderr


def test_predict_unknown_image_type(model_file, tmp_path):
    txt = tmp_path / "digit.txt"
    txt.write_text("1")
    proc = run("predict", str(model_file), str(txt))
    assert proc.returncode == 2 and "must be .png or .npy" in proc.stderr


def test_train_on_mnist_directory(tmp_path):
    """`--data DIR` with MNIST IDX files (tiny ones written here) trains and reports."""
    rng = np.random.default_rng(0)

    def idx(path, array):
        header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
        path.write_bytes(header + array.astype(np.uint8).tobytes())

    for split, n in (("train", 64), ("t10k", 16)):
        idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    proc = run("train", "--data", str(tmp_path), "--epochs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "MNIST" in proc.stdout and "16 images" in proc.stdout


def one_line_error(proc, message):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr, proc.stderr


def _mnist(folder, size=28):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for split, n in (("train", 32), ("t10k", 8)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, size, size))),
                            ("labels-idx1", rng.integers(0, 10, n))):
            header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(
                f">{array.ndim}I", *array.shape)
            (folder / f"{split}-{kind}-ubyte").write_bytes(header
                                                           + array.astype(np.uint8).tobytes())
    return folder


def test_hostile_and_mismatched_inputs_are_one_line_errors(model_file, tmp_path):
    png = tmp_path / "bad-ihdr.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 12) + b"IHDR" + bytes(12)
                    + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(12))))
    one_line_error(run("predict", str(model_file), str(png)), "must be one chunk of 13 bytes")
    one_line_error(run("visualize", str(model_file), "--image", str(png), "--out",
                       str(png)), "--out must be a directory, got the file")
    one_line_error(run("evaluate", str(model_file), "--data", str(_mnist(tmp_path / "m"))),
                   "does not fit the MNIST from")
    listed = tmp_path / "listed.fcnn"
    fastcnn.save(fastcnn.default_cnn(rng=0), listed, metadata=[1, 8, 8])
    one_line_error(run("predict", str(listed), str(png)), "metadata must be a JSON object")


def test_train_refuses_an_output_folder_that_does_not_exist_before_training(tmp_path):
    proc = run("train", "--epochs", "1", "--output", str(tmp_path / "nowhere" / "m.fcnn"))
    one_line_error(proc, "does not exist")
    assert "training the default CNN" not in proc.stdout


def test_a_model_saved_with_a_relative_data_path_evaluates_from_another_folder(tmp_path):
    data = _mnist(tmp_path / "data", size=12)
    work = tmp_path / "work"
    work.mkdir()
    proc = run("train", "--data", os.path.relpath(data, tmp_path), "--epochs", "1", "--quiet",
               "--output", "m.fcnn", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run("evaluate", str(tmp_path / "m.fcnn"), cwd=work)
    assert proc.returncode == 0 and "MNIST" in proc.stdout, proc.stderr


def test_a_full_disk_at_the_end_of_training_keeps_the_model(tmp_path, monkeypatch, capsys):
    from fastcnn import cli

    real = fastcnn.save
    target = str(tmp_path / "m.fcnn")

    def full_disk(model, path, metadata=None):
        if os.fspath(path) == target:
            raise OSError(28, "No space left on device", target)
        return real(model, path, metadata=metadata)
    monkeypatch.setattr(fastcnn, "save", full_disk)
    assert cli.main(["train", "--epochs", "1", "--quiet", "--output", target]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "saved in" in err
    rescue = err.strip().rsplit("saved in ", 1)[1].split(" instead")[0]
    try:
        assert fastcnn.load(rescue).__class__.__name__ == "Sequential"
    finally:
        os.unlink(rescue)


def test_importing_an_unbuilt_source_tree_says_what_to_do(tmp_path):
    import shutil

    tree = tmp_path / "checkout"
    shutil.copytree(pathlib.Path(fastcnn.__file__).parent, tree / "fastcnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (tree / "setup.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import fastcnn"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "this is the source tree" in proc.stderr and "build_ext --inplace" in proc.stderr
