"""Pictures of what a network learned and sees: filters, activation maps, training curves and
the confusion matrix.

The guide explains convolutional networks with pictures: first-layer filters that look like
edges and blobs, activation maps that are bright where a filter found its feature. These
functions draw the same pictures for your own model. Each returns a matplotlib ``Figure`` and,
given ``path``, also saves it (a PNG for a ``.png`` path) of ``figsize * dpi`` pixels.

matplotlib is an optional dependency (``pip install "fastcnn[viz]"``), imported only when a
plot is drawn. Figures are drawn with the Agg renderer and are not registered with
``pyplot``: nothing opens a window, the global backend is left alone, and a figure is freed as
soon as it is no longer referenced. `activation_maps` and `confusion_matrix` are plain NumPy
and work without matplotlib.

Example:
    >>> import fastcnn
    >>> from fastcnn import viz
    >>> model = fastcnn.default_cnn(rng=0)
    >>> x, y = fastcnn.data.load_digits("test")
    >>> fig = viz.plot_filters(model[0], "filters.png")          # 32 filters, 3x3
    >>> fig = viz.plot_activations(model, x[0], "activations.png")
    >>> [(name, maps.shape) for name, maps in viz.activation_maps(model, x[0])]
    [('0: Conv2d', (32, 8, 8)), ('2: MaxPool2d', (32, 4, 4)),
     ('3: Conv2d', (64, 4, 4)), ('5: MaxPool2d', (64, 2, 2))]
"""
from __future__ import annotations

import math

import numpy as np

from .nn import AvgPool2d, Conv2d, MaxPool2d, Module, Parameter, Sequential
from ._files import write_figure
from ._validate import integer, real

__all__ = ["plot_filters", "plot_activations", "plot_history", "plot_confusion_matrix",
           "activation_maps", "confusion_matrix"]

_MISSING = "fastcnn.viz needs matplotlib: pip install matplotlib"
_CELL = 1.0    # inches per filter or activation map
_TITLE = 0.6   # inches above the grid for the figure title


def _figure(width: float, height: float):
    """A new Figure on the Agg canvas, outside pyplot; ImportError without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_MISSING) from None
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _finish(fig, path, dpi):
    if path is not None:
        write_figure(fig, path, dpi)
    return fig


def _dpi(owner: str, dpi) -> float:
    return real(owner, "dpi", dpi, low=1)


def _hide_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------- filters

def _filter_weights(layer_or_array) -> np.ndarray:
    if isinstance(layer_or_array, Conv2d):
        w = layer_or_array.weight.data
    elif isinstance(layer_or_array, Parameter):
        w = layer_or_array.data
    elif isinstance(layer_or_array, Module):
        raise TypeError(f"plot_filters expects a Conv2d layer or a (K, C, R, S) array, got "
                        f"{type(layer_or_array).__name__}")
    else:
        w = np.asarray(layer_or_array)
    if w.dtype.kind not in "fiub":
        raise TypeError(f"plot_filters expects numeric weights, got dtype {w.dtype}")
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"plot_filters expects weights of shape (K, C, R, S) (filters, "
                         f"channels, height, width), got shape {w.shape}")
    return w.astype(np.float64)


def plot_filters(layer_or_array, path=None, *, channel=None, max_filters=64, ncols=8, dpi=100):
    """Draw a convolution layer's filters as a grid of small images.

    Filters over 3 channels are drawn in colour (each scaled to its own range, as the guide's
    pictures of first-layer filters are); others in grey on one shared scale, light for
    positive weights and dark for negative ones, so strong and weak filters can be compared.
    Filters over more than one (but not 3) channels show the mean over channels unless
    ``channel`` picks one.

    Args:
        layer_or_array: a `fastcnn.nn.Conv2d`, its ``weight`` Parameter, or an array
            (K, C, R, S).
        path: optional file to save the figure to (PNG for ``.png``).
        channel: draw this input channel only (an int in [0, C)).
        max_filters: draw at most this many filters (the first ones).
        ncols: filters per row.
        dpi: pixels per inch when saving.

    Returns:
        the matplotlib Figure: min(K, ncols) cells of 1 inch across (at least 4 inches) and
        one row of 1 inch per ``ncols`` filters plus 0.6 inch for the title.

    Example:
        >>> from fastcnn import nn, viz
        >>> fig = viz.plot_filters(nn.Conv2d(1, 16, 5, rng=0), "filters.png")
        >>> [round(v) for v in fig.get_size_inches() * 100]   # the PNG's pixels
        [800, 260]
    """
    w = _filter_weights(layer_or_array)
    max_filters = integer("plot_filters", "max_filters", max_filters, 1)
    ncols = integer("plot_filters", "ncols", ncols, 1)
    dpi = _dpi("plot_filters", dpi)
    K, C, R, S = w.shape
    shown = w[:max_filters]
    what = f"{'first ' + str(len(shown)) + ' of ' if K > len(shown) else ''}{K} filters, " \
           f"each {C}x{R}x{S}"
    if channel is not None:
        channel = integer("plot_filters", "channel", channel, 0)
        if channel >= C:
            raise ValueError(f"plot_filters: channel must be in [0, {C}) for filters with "
                             f"{C} channels, got {channel}")
        shown = shown[:, channel:channel + 1]
        what += f" (channel {channel})"
    elif C not in (1, 3):
        shown = shown.mean(axis=1, keepdims=True)
        what += f" (mean over the {C} channels)"
    colour = shown.shape[1] == 3
    if colour:
        low = shown.min(axis=(1, 2, 3), keepdims=True)
        span = np.ptp(shown, axis=(1, 2, 3), keepdims=True)
        images = ((shown - low) / np.where(span > 0, span, 1)).transpose(0, 2, 3, 1)
        note = "colour: each filter scaled to its own range"
    else:
        images = shown[:, 0]
        limit = float(np.abs(images).max()) or 1.0
        note = "light: positive weight, dark: negative"

    n = len(images)
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    width, height = max(cols * _CELL, 4.0), rows * _CELL + _TITLE
    fig = _figure(width, height)
    fig.suptitle(f"{what}\n{note}", fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - _TITLE / height,
                        wspace=0.1, hspace=0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        if colour:
            ax.imshow(images[k], interpolation="nearest")
        else:
            ax.imshow(images[k], cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(str(k), fontsize=7, pad=2)
        _hide_ticks(ax)
    return _finish(fig, path, dpi)


# ---------------------------------------------------------------------------- activation maps

def _layers(model, prefix=""):
    """(name, layer) for each layer of a Sequential, nested Sequentials flattened."""
    for name, layer in model._modules.items():
        full = f"{prefix}{name}"
        if isinstance(layer, Sequential):
            yield from _layers(layer, full + ".")
        else:
            yield full, layer


def activation_maps(model, image, layer_types=(Conv2d, MaxPool2d, AvgPool2d)) -> list:
    """Run one image through a model layer by layer and keep the activation maps.

    The model runs in evaluation mode (no dropout, BatchNorm with running statistics); its
    training flags are restored afterwards. Plain NumPy: no matplotlib needed.

    Args:
        model: an `fastcnn.nn.Sequential` (nested ones are flattened), or a single layer.
        image: one image, (C, H, W) or (1, C, H, W).
        layer_types: keep the outputs of layers of these classes (add ``nn.ReLU`` to see
            the maps after each non-linearity too).

    Returns:
        a list of ``(name, maps)``, one per kept layer in order: name is
        ``"<index>: <class>"`` (the index as in ``state_dict`` keys) and maps an array
        (channels, height, width) for that one image.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn, viz
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2))
        >>> [(name, maps.shape) for name, maps in viz.activation_maps(model, np.ones((1, 8, 8)))]
        [('0: Conv2d', (4, 6, 6)), ('2: MaxPool2d', (4, 3, 3))]
    """
    if isinstance(model, Sequential):
        layers = list(_layers(model))
    elif isinstance(model, Module) and not model._modules:
        layers = [("0", model)]
    else:
        raise TypeError(f"activation_maps expects an nn.Sequential (its layers run one by one) "
                        f"or a single layer, got {type(model).__name__}")
    if isinstance(layer_types, type):
        layer_types = (layer_types,)
    layer_types = tuple(layer_types)
    if not all(isinstance(t, type) and issubclass(t, Module) for t in layer_types):
        raise TypeError(f"activation_maps: layer_types must be Module classes, got "
                        f"{layer_types!r}")
    x = np.asarray(image)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"activation_maps expects a numeric image, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"activation_maps expects one image (C, H, W) or (1, C, H, W), got "
                         f"shape {np.shape(image)}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    maps = []
    try:
        for name, layer in layers:
            x = layer(x)
            if isinstance(layer, layer_types):
                if x.ndim != 4:
                    raise ValueError(f"activation_maps: layer {name} ({type(layer).__name__}) "
                                     f"gave shape {x.shape}, expected (1, C, H, W) maps")
                maps.append((f"{name}: {type(layer).__name__}", np.array(x[0])))
    finally:
        for m, training in modes:
            m.training = training
    return maps


def _show_image(ax, image: np.ndarray) -> None:
    """An input image (C, H, W): colour for 3 channels, else the first channel in grey."""
    if image.shape[0] == 3:
        low, span = image.min(), np.ptp(image)
        ax.imshow(((image - low) / (span or 1)).transpose(1, 2, 0), interpolation="nearest")
    else:
        ax.imshow(image[0], cmap="gray", interpolation="nearest")
    _hide_ticks(ax)


def _row_label(ax, name: str, shape: tuple) -> None:
    ax.set_ylabel(f"{name}\n{'x'.join(map(str, shape))}", rotation=0, ha="right",
                  va="center", fontsize=8)


def plot_activations(model, image, path=None, *, layer_types=(Conv2d, MaxPool2d, AvgPool2d),
                     max_maps=8, dpi=100):
    """Draw the activation maps of each conv and pooling layer for one image.

    The first row shows the image; each further row one layer's maps (the first ``max_maps``
    channels, so a conv layer's map k sits under filter k of `plot_filters`), on one colour
    scale per row: bright where the layer responds strongly.

    Args:
        model, image, layer_types: as for `activation_maps`.
        path: optional file to save the figure to.
        max_maps: maps drawn per layer.
        dpi: pixels per inch when saving.

    Returns:
        the matplotlib Figure: 1.3 + ``max_maps`` inches wide, 0.6 + 1 inch per row high.

    Example:
        >>> import fastcnn
        >>> from fastcnn import viz
        >>> x, y = fastcnn.data.load_digits("test")
        >>> fig = viz.plot_activations(fastcnn.default_cnn(rng=0), x[0], "maps.png")
        >>> [round(v) for v in fig.get_size_inches() * 100]   # 1 + 4 rows
        [930, 560]
    """
    max_maps = integer("plot_activations", "max_maps", max_maps, 1)
    dpi = _dpi("plot_activations", dpi)
    maps = activation_maps(model, image, layer_types)
    picture = np.asarray(image, dtype=np.float64).reshape(np.shape(image)[-3:])
    label_width = 1.3
    rows = 1 + len(maps)
    width, height = label_width + max_maps * _CELL, _TITLE + rows * _CELL
    fig = _figure(width, height)
    fig.suptitle("activation maps: bright where a filter found its feature", fontsize=10)
    fig.subplots_adjust(left=label_width / width, right=0.99, bottom=0.02,
                        top=1 - _TITLE / height, wspace=0.1, hspace=0.35)
    axes = fig.subplots(rows, max_maps, squeeze=False)
    _show_image(axes[0, 0], picture)
    _row_label(axes[0, 0], "input", picture.shape)
    for ax in axes[0, 1:]:
        ax.set_axis_off()
    for row, (name, layer_maps) in zip(axes[1:], maps):
        shown = layer_maps[:max_maps]
        low, high = float(shown.min()), float(shown.max())
        for k, ax in enumerate(row):
            if k >= len(shown):
                ax.set_axis_off()
                continue
            ax.imshow(shown[k], cmap="viridis", vmin=low, vmax=high if high > low else low + 1,
                      interpolation="nearest")
            ax.set_title(str(k), fontsize=7, pad=2)
            _hide_ticks(ax)
        _row_label(row[0], name, layer_maps.shape)
    return _finish(fig, path, dpi)


# ---------------------------------------------------------------------------- training curves

def _history_dict(history) -> dict:
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError(f"plot_history expects a fastcnn History or a dict of lists, got "
                        f"{type(history).__name__}")
    curves = {}
    for key, seq in values.items():
        try:
            curve = np.array(seq, dtype=np.float64)  # None (a stored NaN) becomes NaN
        except (TypeError, ValueError):
            raise TypeError(f"plot_history: {key!r} must be a list of numbers, got "
                            f"{seq!r}") from None
        if curve.ndim != 1:
            raise ValueError(f"plot_history: {key!r} must be one value per epoch (1-D), got "
                             f"shape {curve.shape}")
        curves[key] = curve
    return curves


def plot_history(history, path=None, *, dpi=100):
    """Draw the loss and accuracy per epoch of a training run, training and validation.

    Args:
        history: the `fastcnn.train.History` that `fastcnn.fit` returns, or its
            ``history`` dict of lists (loss, accuracy, val_loss, val_accuracy; other keys
            such as lr are ignored).
        path: optional file to save the figure to.
        dpi: pixels per inch when saving.

    Returns:
        the matplotlib Figure: one 5 x 3.8 inch panel for the losses and one for the
        accuracies (when the history has them).

    Example:
        >>> from fastcnn import viz
        >>> fig = viz.plot_history({"loss": [1.2, 0.5, 0.3], "val_loss": [1.0, 0.6, 0.4],
        ...                         "accuracy": [0.6, 0.85, 0.9]}, "history.png")
        >>> [ax.get_title() for ax in fig.axes]
        ['loss', 'accuracy']
    """
    dpi = _dpi("plot_history", dpi)
    curves = _history_dict(history)
    panels = [kind for kind in ("loss", "accuracy")
              if kind in curves or f"val_{kind}" in curves]
    if not panels:
        raise ValueError(f"plot_history: the history has no loss or accuracy values, got "
                         f"keys {sorted(curves)}")
    fig = _figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, kind in zip(axes, panels):
        for key, label, style in ((kind, "training", "-o"), (f"val_{kind}", "validation",
                                                               "--s")):
            if key in curves:
                epochs = np.arange(1, len(curves[key]) + 1)
                ax.plot(epochs, curves[key], style, markersize=4, label=label)
        ax.set_title(kind)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _finish(fig, path, dpi)


# ---------------------------------------------------------------------------- confusion matrix

def _labels(fname: str, name: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iub":
        raise TypeError(f"{fname}: {name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{fname}: {name} must be 1-D (one label per image), got shape "
                         f"{y.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"{fname}: {name} must be class labels >= 0, got {y.min()}")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=None) -> np.ndarray:
    """Count, for every true class, how often each class was predicted.

    Args:
        y_true: integer labels (N,).
        y_pred: predicted integer labels (N,), or class scores / probabilities (N, classes)
            whose largest entry is the prediction (what `fastcnn.predict` returns).
        num_classes: size of the matrix; default: the largest label + 1 (or the number of
            score columns).

    Returns:
        int64 array (num_classes, num_classes): entry [i, j] counts images of class i
        predicted as class j, so the diagonal holds the correct answers.

    Example:
        >>> from fastcnn import viz
        >>> viz.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2])
        array([[1, 0, 0],
               [0, 0, 1],
               [0, 0, 2]])
    """
    fname = "confusion_matrix"
    scores = np.asarray(y_pred)
    columns = None
    if scores.ndim == 2:
        if scores.dtype.kind not in "fiub":
            raise TypeError(f"{fname}: scores y_pred must be numeric, got dtype {scores.dtype}")
        columns = scores.shape[1]
        y_pred = np.argmax(scores, axis=1)
    y_true = _labels(fname, "y_true", y_true)
    y_pred = _labels(fname, "y_pred", y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{fname}: y_true and y_pred must have the same length, got "
                         f"{len(y_true)} and {len(y_pred)}")
    largest = max(int(y_true.max(initial=-1)), int(y_pred.max(initial=-1)))
    if num_classes is None:
        num_classes = max(largest + 1, columns or 0, 1)
    num_classes = integer(fname, "num_classes", num_classes, 1)
    if columns is not None and columns != num_classes:
        raise ValueError(f"{fname}: y_pred has scores for {columns} classes, expected "
                         f"num_classes={num_classes}")
    if largest >= num_classes:
        raise ValueError(f"{fname}: labels must be < num_classes={num_classes}, got "
                         f"{largest}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def plot_confusion_matrix(y_true, y_pred, classes=None, path=None, *, dpi=100):
    """Draw the confusion matrix: true classes down, predicted classes across, counts in
    the cells and the accuracy in the title.

    Args:
        y_true, y_pred: as for `confusion_matrix`.
        classes: names of the classes, one per class (default 0, 1, ...).
        path: optional file to save the figure to.
        dpi: pixels per inch when saving.

    Returns:
        the matplotlib Figure: s + 1 by s inches with s = max(4, 0.5 * classes + 1.5).

    Example:
        >>> from fastcnn import viz
        >>> fig = viz.plot_confusion_matrix([0, 1, 1], [0, 1, 0], classes=["cat", "dog"],
        ...                                 path="confusion.png")
        >>> fig.axes[0].get_title()
        'accuracy 0.667 (2 of 3)'
    """
    dpi = _dpi("plot_confusion_matrix", dpi)
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
            raise TypeError(f"plot_confusion_matrix: classes must be a sequence of names, got "
                            f"{type(classes).__name__}")
        classes = [str(c) for c in classes]
    counts = confusion_matrix(y_true, y_pred, None if classes is None else len(classes))
    n = len(counts)
    names = classes if classes is not None else [str(k) for k in range(n)]
    total, correct = int(counts.sum()), int(np.trace(counts))

    side = max(4.0, 0.5 * n + 1.5)
    fig = _figure(side + 1, side)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = correct / total if total else float("nan")
    ax.set_title(f"accuracy {accuracy:.3f} ({correct} of {total})")
    if n <= 30:
        dark = counts.max() / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > dark else "black")
    fig.tight_layout()
    return _finish(fig, path, dpi)
