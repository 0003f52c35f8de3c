"""Training loop: `fit`, `evaluate`, `predict`, with progress, history and callbacks.

One training step is the guide's recipe: a forward pass gives class scores, the loss compares
them with the labels, the backward pass gives every weight's gradient, and the optimizer moves
each weight against its gradient, scaled by the learning rate. `fit` repeats that over shuffled
mini-batches for some epochs, measuring the held-out data after each one.

Training is deterministic for a fixed ``rng`` (and layer seeds) and thread count. Ctrl-C
during `fit` stops after the current step and returns the history so far; the model keeps the
weights of the last completed step.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from ._signals import held
from ._validate import generator, integer
from .data import DataLoader
from .nn import CrossEntropyLoss

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
           "ModelCheckpoint"]


class History:
    """Per-epoch metrics of a `fit` run.

    Attributes:
        history: dict of lists, one value per epoch: loss, accuracy, images_per_s, lr and,
            with validation data, val_loss and val_accuracy.
        epochs: number of completed epochs.
        interrupted: True when Ctrl-C stopped the run.
        stopped_early: True when a callback (e.g. EarlyStopping) ended it.
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.interrupted = False
        self.stopped_early = False

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def append(self, metrics: dict) -> None:
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, last={last})"


class Callback:
    """Base class: override any hook. `fit` stops when a hook sets ``self.stop = True``."""

    stop = False

    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, epoch: int, metrics: dict, model):
        pass

    def on_train_end(self, model):
        pass


def _improved(value, best, mode, min_delta):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode(monitor: str) -> str:
    return "max" if "accuracy" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when a metric has not improved for `patience` epochs.

    Args:
        monitor: a History key, e.g. 'val_loss' (minimised) or 'val_accuracy' (maximised).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        restore_best: put back the weights of the best epoch when stopping.
    """

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, restore_best=True):
        self.monitor, self.min_delta = monitor, min_delta
        self.patience = integer("EarlyStopping", "patience", patience, 0)
        self.restore_best = restore_best
        self.mode = _mode(monitor)

    def on_train_begin(self, model):
        self.best, self.best_state, self.wait, self.stop = None, None, 0, False

    def on_epoch_end(self, epoch, metrics, model):
        if self.monitor not in metrics:
            raise KeyError(f"EarlyStopping: no metric {self.monitor!r}; "
                           f"have {sorted(metrics)} (val_* needs validation_data)")
        value = metrics[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best:
                self.best_state = {k: v.copy() for k, v in model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stop = True

    def on_train_end(self, model):
        if self.stop and self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model (with `fastcnn.save`) after each epoch, or only when it improves.

    Args:
        path: file to write (replaced atomically each time).
        monitor: metric deciding "best" when save_best_only.
        save_best_only: save only when `monitor` improves.
        metadata: stored with the model (see `fastcnn.save`).
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, metadata=None):
        self.path, self.monitor, self.save_best_only = path, monitor, save_best_only
        self.metadata = metadata
        self.mode = _mode(monitor)
        self.best = None

    def on_epoch_end(self, epoch, metrics, model):
        from .io import save

        value = metrics.get(self.monitor)
        if not self.save_best_only or (value is not None
                                       and _improved(value, self.best, self.mode, 0.0)):
            self.best = value
            save(model, self.path, metadata=self.metadata)


class _Progress:
    """One status line per epoch: a bar on a terminal, a plain line otherwise."""

    def __init__(self, epochs, steps, stream, enabled):
        self.epochs, self.steps, self.stream, self.enabled = epochs, steps, stream, enabled
        self.tty = enabled and getattr(stream, "isatty", lambda: False)()

    def update(self, epoch, step, loss, acc, rate):
        if not self.tty:
            return
        width = 24
        done = int(width * step / self.steps)
        bar = "=" * done + "." * (width - done)
        self.stream.write(f"\repoch {epoch}/{self.epochs} [{bar}] loss {loss:.4f} "
                          f"acc {acc:.3f} {rate:,.0f} img/s")
        self.stream.flush()

    def end_epoch(self, epoch, metrics):
        if not self.enabled:
            return
        text = " ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                        if k not in ("images_per_s", "lr"))
        line = f"epoch {epoch}/{self.epochs} {text} ({metrics['images_per_s']:,.0f} img/s)"
        self.stream.write(f"\r{line}\033[K\n" if self.tty else f"{line}\n")
        self.stream.flush()


def _accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=1) == y)) if len(y) else float("nan")


def fit(model, x, y, *, optimizer, loss_fn=None, epochs=10, batch_size=32, rng=None,
        validation_data=None, scheduler=None, callbacks=(), augment=None, verbose=True,
        stream=None) -> History:
    """Train a classifier on arrays.

    Args:
        model: a `fastcnn.nn.Module` producing class scores (N, classes).
        x, y: training images (N, C, H, W) and integer labels (N,).
        optimizer: a `fastcnn.optim` optimizer over ``model.parameters()``.
        loss_fn: default `CrossEntropyLoss()`.
        epochs, batch_size: passes over the data and images per step.
        rng: shuffling (and augmentation) randomness: an int seed or a numpy Generator.
        validation_data: optional (x_val, y_val) measured after each epoch.
        scheduler: optional lr scheduler, stepped once per epoch.
        callbacks: e.g. `EarlyStopping`, `ModelCheckpoint`.
        augment: optional function (x_batch, rng) -> x_batch applied to each training batch.
        verbose: print progress to `stream` (default stderr).

    Returns:
        History, also when interrupted with Ctrl-C.

    Example:
        >>> import fastcnn
        >>> from fastcnn import nn, optim, data
        >>> x, y = data.load_digits("train")
        >>> model = fastcnn.default_cnn(rng=0)
        >>> h = fastcnn.fit(model, x, y, optimizer=optim.Adam(model.parameters(), lr=1e-2),
        ...                 epochs=1, rng=0, verbose=False)
        >>> h.epochs
        1
    """
    loss_fn = CrossEntropyLoss() if loss_fn is None else loss_fn
    epochs = integer("fit", "epochs", epochs, 0)
    batch_size = integer("fit", "batch_size", batch_size, 1)
    x = np.asarray(x)
    y = np.asarray(y)
    rng = generator("fit", rng)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, rng=rng)
    steps = math.ceil(len(x) / batch_size)
    progress = _Progress(epochs, steps, stream or sys.stderr, verbose)
    history = History()
    for cb in callbacks:
        cb.on_train_begin(model)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            start, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            for step, (xb, yb) in enumerate(loader, 1):
                if augment is not None:
                    xb = augment(xb, rng)
                with held():  # Ctrl-C lands between steps: buffers and weights agree
                    logits = model(xb)
                    loss = loss_fn(logits, yb)
                    optimizer.zero_grad()
                    model.backward(loss_fn.backward(), input_grad=False)  # images need none
                    optimizer.step()
                seen += len(yb)
                loss_sum += loss * len(yb)
                correct += int(np.sum(np.argmax(logits, axis=1) == yb))
                rate = seen / max(time.perf_counter() - start, 1e-9)
                progress.update(epoch, step, loss_sum / seen, correct / seen, rate)
            metrics = {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1),
                       "images_per_s": seen / max(time.perf_counter() - start, 1e-9),
                       "lr": optimizer.lr}
            if validation_data is not None:
                val = evaluate(model, *validation_data, loss_fn=loss_fn)
                metrics["val_loss"], metrics["val_accuracy"] = val["loss"], val["accuracy"]
            if scheduler is not None:
                scheduler.step()
            history.append(metrics)
            progress.end_epoch(epoch, metrics)
            for cb in callbacks:
                cb.on_epoch_end(epoch, metrics, model)
            if any(cb.stop for cb in callbacks):
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        if verbose:
            (stream or sys.stderr).write("\ninterrupted: keeping the weights of the last step\n")
    finally:
        model.eval()
    for cb in callbacks:
        cb.on_train_end(model)
    return history


def _logits(model, x, batch_size):
    model.eval()
    x = np.asarray(x)
    out = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.empty((0, 0))


def evaluate(model, x, y, loss_fn=None, batch_size=256) -> dict:
    """Mean loss and accuracy of a classifier on held-out data (in eval mode).

    Returns:
        {"loss": float, "accuracy": float}
    """
    loss_fn = CrossEntropyLoss() if loss_fn is None else loss_fn
    batch_size = integer("evaluate", "batch_size", batch_size, 1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"evaluate: x and y must have the same length, got {len(x)} and {len(y)}")
    logits = _logits(model, x, batch_size)
    if len(y) == 0:
        return {"loss": float("nan"), "accuracy": float("nan")}
    return {"loss": float(loss_fn(logits, y)), "accuracy": _accuracy(logits, y)}


def predict(model, x, batch_size=256) -> np.ndarray:
    """Class probabilities (softmax of the model's scores), shape (N, classes)."""
    batch_size = integer("predict", "batch_size", batch_size, 1)
    logits = _logits(model, x, batch_size).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)
