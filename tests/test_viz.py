"""fastcnn.viz: the pictures are written as valid PNGs of the figure's size, the NumPy parts
(activation maps, confusion matrix) give the right numbers, and without matplotlib the plots
fail with one clear ImportError; plus the `fastcnn visualize` command."""
import importlib.util
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import cli, nn, viz
from fastcnn._png import read_png
from fastcnn.train import History

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed")

MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                      "matplotlib.backends.backend_agg")


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the whole file decodes."""
    blob = pathlib.Path(path).read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR"
    width, height = struct.unpack(">II", blob[16:24])
    assert read_png(path).shape[:2] == (height, width)
    return width, height


def digit():
    x, _ = fastcnn.data.load_digits("test")
    return x[0]


# ---------------------------------------------------------------------------- plot_filters

@needs_matplotlib
def test_plot_filters_writes_png_of_figure_size(tmp_path):
    fig = viz.plot_filters(nn.Conv2d(1, 16, 5, rng=0), tmp_path / "f.png")
    assert png_size(tmp_path / "f.png") == (800, 260)   # 8 x 1 in, 2 x 1 in + 0.6 in title
    assert len([ax for ax in fig.axes if ax.images]) == 16


@needs_matplotlib
def test_plot_filters_dpi_scales_pixels(tmp_path):
    viz.plot_filters(nn.Conv2d(1, 16, 5, rng=0), tmp_path / "f.png", dpi=50)
    assert png_size(tmp_path / "f.png") == (400, 130)


@needs_matplotlib
def test_plot_filters_without_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = viz.plot_filters(np.ones((2, 1, 3, 3)))
    assert fig.axes and not list(tmp_path.iterdir())


@needs_matplotlib
def test_plot_filters_three_channels_in_colour():
    fig = viz.plot_filters(nn.Conv2d(3, 4, 5, rng=0))
    pixels = fig.axes[0].images[0].get_array()
    assert pixels.shape == (5, 5, 3) and pixels.min() == 0 and pixels.max() == 1


@needs_matplotlib
def test_plot_filters_channel_picks_one_input_channel():
    w = np.random.default_rng(0).standard_normal((2, 4, 3, 3))
    fig = viz.plot_filters(w, channel=1)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), w[1, 1])


@needs_matplotlib
def test_plot_filters_other_channel_counts_show_the_mean():
    w = np.random.default_rng(0).standard_normal((2, 4, 3, 3))
    fig = viz.plot_filters(w)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), w[0].mean(axis=0))


@needs_matplotlib
def test_plot_filters_draws_at_most_max_filters():
    fig = viz.plot_filters(np.ones((100, 1, 3, 3)), max_filters=10)
    assert len([ax for ax in fig.axes if ax.images]) == 10
    assert "first 10 of 100 filters" in fig._suptitle.get_text()


@pytest.mark.parametrize("bad, error, message", [
    (nn.ReLU(), TypeError, "expects a Conv2d layer or a (K, C, R, S) array, got ReLU"),
    (np.zeros((3, 3)), ValueError, "(K, C, R, S)"),
    (np.zeros((0, 1, 3, 3)), ValueError, "got shape (0, 1, 3, 3)"),
    (np.array([["a"]]), TypeError, "numeric weights"),
])
def test_plot_filters_rejects_bad_weights(bad, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        viz.plot_filters(bad)


def test_plot_filters_rejects_channel_out_of_range():
    with pytest.raises(ValueError, match=r"channel must be in \[0, 2\).*got 2"):
        viz.plot_filters(np.zeros((1, 2, 3, 3)), channel=2)


# ---------------------------------------------------------------------------- activation maps

def test_activation_maps_of_default_cnn():
    maps = viz.activation_maps(fastcnn.default_cnn(rng=0), digit())
    assert [(name, a.shape) for name, a in maps] == [
        ("0: Conv2d", (32, 8, 8)), ("2: MaxPool2d", (32, 4, 4)),
        ("3: Conv2d", (64, 4, 4)), ("5: MaxPool2d", (64, 2, 2))]


def test_activation_maps_are_the_layer_outputs():
    model = fastcnn.default_cnn(rng=0)
    x = digit()
    maps = dict(viz.activation_maps(model, x[None]))   # (1, C, H, W) works too
    first = model[0](x[None])[0]
    np.testing.assert_array_equal(maps["0: Conv2d"], first)
    np.testing.assert_array_equal(maps["2: MaxPool2d"], model[2](model[1](first[None]))[0])


def test_activation_maps_layer_types_adds_relu():
    maps = viz.activation_maps(fastcnn.default_cnn(rng=0), digit(),
                               layer_types=(nn.Conv2d, nn.ReLU))
    assert [name for name, _ in maps] == ["0: Conv2d", "1: ReLU", "3: Conv2d", "4: ReLU"]
    assert maps[1][1].min() >= 0


def test_activation_maps_flattens_nested_sequentials():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()), nn.MaxPool2d(2))
    assert [name for name, _ in viz.activation_maps(model, np.ones((1, 6, 6)))] == [
        "0.0: Conv2d", "1: MaxPool2d"]


def test_activation_maps_run_in_eval_mode_and_restore_it():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Dropout(0.5))
    model.train()
    maps = viz.activation_maps(model, np.ones((1, 6, 6)), layer_types=nn.Dropout)
    np.testing.assert_array_equal(maps[0][1], model[0](np.ones((1, 1, 6, 6)))[0])
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("image", [np.ones((8, 8)), np.ones((2, 1, 8, 8))])
def test_activation_maps_want_one_image(image):
    with pytest.raises(ValueError, match=r"one image \(C, H, W\) or \(1, C, H, W\), got shape"):
        viz.activation_maps(fastcnn.default_cnn(rng=0), image)


def test_activation_maps_reject_models_that_are_not_sequential():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.ReLU(), nn.ReLU()

    with pytest.raises(TypeError, match="expects an nn.Sequential.*got Two"):
        viz.activation_maps(Two(), np.ones((1, 4, 4)))


def test_activation_maps_wrong_channels_name_the_layer():
    with pytest.raises(ValueError, match=r"expects input \(N, 1, H, W\)"):
        viz.activation_maps(fastcnn.default_cnn(rng=0), np.ones((3, 8, 8)))


@needs_matplotlib
def test_plot_activations_writes_png_of_figure_size(tmp_path):
    fig = viz.plot_activations(fastcnn.default_cnn(rng=0), digit(), tmp_path / "a.png")
    assert png_size(tmp_path / "a.png") == (930, 560)   # 1.3 + 8 maps; title + 5 rows
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["input\n1x8x8", "0: Conv2d\n32x8x8", "2: MaxPool2d\n32x4x4",
                      "3: Conv2d\n64x4x4", "5: MaxPool2d\n64x2x2"]


@needs_matplotlib
def test_plot_activations_colour_input(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 2, 3, rng=0), nn.AvgPool2d(2))
    fig = viz.plot_activations(model, np.random.default_rng(0).random((3, 8, 8)),
                               tmp_path / "a.png", max_maps=2)
    assert png_size(tmp_path / "a.png") == (330, 360)
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


# ---------------------------------------------------------------------------- history

def history(**curves):
    h = History()
    for values in zip(*curves.values()):
        h.append(dict(zip(curves, values)))
    return h


@needs_matplotlib
def test_plot_history_loss_and_accuracy_panels(tmp_path):
    h = history(loss=[1.0, 0.5, 0.3], accuracy=[0.6, 0.8, 0.9], lr=[1e-3] * 3,
                val_loss=[1.1, 0.7, 0.5], val_accuracy=[0.5, 0.7, 0.8])
    fig = viz.plot_history(h, tmp_path / "h.png")
    assert png_size(tmp_path / "h.png") == (1000, 380)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]


@needs_matplotlib
def test_plot_history_loss_only_from_dict_with_gaps(tmp_path):
    fig = viz.plot_history({"loss": [1.0, None, 0.3]}, tmp_path / "h.png")  # None: a NaN
    assert png_size(tmp_path / "h.png") == (500, 380)
    assert np.isnan(fig.axes[0].lines[0].get_ydata()[1])


@pytest.mark.parametrize("bad, error, message", [
    ({"lr": [0.1]}, ValueError, r"no loss or accuracy values, got keys \['lr'\]"),
    ({"loss": ["x"]}, TypeError, "'loss' must be a list of numbers"),
    ({"loss": [[1, 2]]}, ValueError, r"one value per epoch \(1-D\)"),
    ([1.0, 0.5], TypeError, "History or a dict of lists, got list"),
])
def test_plot_history_rejects_bad_histories(bad, error, message):
    with pytest.raises(error, match=message):
        viz.plot_history(bad)


# ---------------------------------------------------------------------------- confusion matrix

def test_confusion_matrix_counts():
    cm = viz.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert cm.dtype == np.int64


def test_confusion_matrix_from_scores_and_num_classes():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
    np.testing.assert_array_equal(viz.confusion_matrix([0, 2], scores),
                                  [[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    assert viz.confusion_matrix([0], [0], num_classes=4).shape == (4, 4)


def test_confusion_matrix_of_a_trained_model_sums_to_the_test_set():
    x, y = fastcnn.data.load_digits("test")
    cm = viz.confusion_matrix(y, fastcnn.predict(fastcnn.default_cnn(rng=0), x))
    assert cm.shape == (10, 10) and cm.sum() == len(y)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(y, minlength=10))


@pytest.mark.parametrize("args, error, message", [
    (([0.0, 1.0], [0, 1]), TypeError, "y_true must hold integer class labels, got dtype "
                                      "float64"),
    (([0, 1], [0]), ValueError, "same length, got 2 and 1"),
    (([0, 3], [0, 1], 3), ValueError, "labels must be < num_classes=3, got 3"),
    (([0, -1], [0, 1]), ValueError, "y_true must be class labels >= 0, got -1"),
    (([[0]], [0]), ValueError, r"y_true must be 1-D .* got shape \(1, 1\)"),
    (([0], np.zeros((1, 3)), 2), ValueError, "scores for 3 classes, expected num_classes=2"),
    (([0], [0], 0), ValueError, "num_classes must be >= 1, got 0"),
])
def test_confusion_matrix_rejects_bad_labels(args, error, message):
    with pytest.raises(error, match=message):
        viz.confusion_matrix(*args)


@needs_matplotlib
def test_plot_confusion_matrix_writes_png_of_figure_size(tmp_path):
    y = np.arange(10).repeat(3)
    fig = viz.plot_confusion_matrix(y, np.roll(y, 1), path=tmp_path / "c.png")
    assert png_size(tmp_path / "c.png") == (750, 650)   # s = 0.5 * 10 + 1.5
    assert fig.axes[0].get_title() == "accuracy 0.667 (20 of 30)"   # one of 3 per class moved


@needs_matplotlib
def test_plot_confusion_matrix_class_names():
    fig = viz.plot_confusion_matrix([0, 1], [1, 1], classes=["cat", "dog", "bird"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cat", "dog", "bird"]
    with pytest.raises(ValueError, match="labels must be < num_classes=2"):
        viz.plot_confusion_matrix([0, 2], [0, 1], classes=["cat", "dog"])
    with pytest.raises(TypeError, match="classes must be a sequence of names, got str"):
        viz.plot_confusion_matrix([0], [0], classes="cat")


# ---------------------------------------------------------------------------- no matplotlib

@pytest.fixture
def without_matplotlib(monkeypatch):
    for name in MATPLOTLIB_MODULES:
        monkeypatch.setitem(sys.modules, name, None)   # `import` of it raises ImportError


@pytest.mark.parametrize("plot", [
    lambda: viz.plot_filters(np.ones((1, 1, 3, 3))),
    lambda: viz.plot_activations(fastcnn.default_cnn(rng=0), np.ones((1, 8, 8))),
    lambda: viz.plot_history({"loss": [1.0]}),
    lambda: viz.plot_confusion_matrix([0], [0]),
], ids=["filters", "activations", "history", "confusion"])
def test_plots_without_matplotlib_say_how_to_install_it(without_matplotlib, plot):
    with pytest.raises(ImportError, match=r"^fastcnn.viz needs matplotlib: pip install "
                                          r"matplotlib$"):
        plot()


def test_numpy_parts_work_without_matplotlib(without_matplotlib):
    assert viz.confusion_matrix([1], [1]).tolist() == [[0, 0], [0, 1]]
    assert len(viz.activation_maps(fastcnn.default_cnn(rng=0), np.ones((1, 8, 8)))) == 4


def test_visualize_command_without_matplotlib_is_one_line(without_matplotlib, tmp_path,
                                                          capsys):
    model, image = saved_model(tmp_path)
    status = cli.main(["visualize", str(model), "--image", str(image),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "fastcnn: error: fastcnn.viz needs matplotlib: pip install matplotlib\n"


# ---------------------------------------------------------------------------- fastcnn visualize

def fastcnn_command():
    """The console script installed beside this Python (as in test_cli.py)."""
    script = pathlib.Path(sys.executable).with_name("fastcnn")
    found = str(script) if script.exists() else shutil.which("fastcnn")
    if not found:
        pytest.skip("the fastcnn command is not installed")
    return found


def run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("FASTCNN_DEBUG", None)
    return subprocess.run([fastcnn_command(), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def saved_model(tmp_path, **metadata):
    """An untrained default CNN saved as `fastcnn train` saves it, and a digit as .npy."""
    path, image = tmp_path / "digits.fcnn", tmp_path / "digit.npy"
    fastcnn.save(fastcnn.default_cnn(rng=0), path, metadata={"input_shape": [1, 8, 8],
                                                             **metadata})
    np.save(image, digit()[0])
    return path, image


@needs_matplotlib
def test_visualize_writes_every_picture(tmp_path):
    model, image = saved_model(tmp_path, dataset="digits",
                               history={"loss": [1.0, 0.5], "accuracy": [0.7, 0.9]})
    out = tmp_path / "pictures"
    proc = run("visualize", str(model), "--image", str(image), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    sizes = {"filters.png": (800, 460), "activations.png": (930, 560),
             "history.png": (1000, 380), "confusion.png": (750, 650)}
    assert sorted(p.name for p in out.iterdir()) == sorted(sizes)
    for name, size in sizes.items():
        assert png_size(out / name) == size, name
        assert f"{out / name}: " in proc.stdout


@needs_matplotlib
def test_visualize_skips_what_the_model_file_lacks(tmp_path):
    model, image = saved_model(tmp_path)
    out = tmp_path / "pictures"
    proc = run("visualize", str(model), "--image", str(image), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["activations.png", "filters.png"]


def test_visualize_wrong_image_size_is_one_line(tmp_path):
    model, _ = saved_model(tmp_path)
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((28, 28), np.float32))
    proc = run("visualize", str(model), "--image", str(big), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "takes images of shape (1, 8, 8)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_visualize_needs_image_and_out():
    proc = run("visualize", "model.fcnn")
    assert proc.returncode == 2 and "--image" in proc.stderr
