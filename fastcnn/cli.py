"""The `fastcnn` command: train, evaluate, predict, visualize, bench, info.

User mistakes (a missing file, a bad option, a corrupt model) print one line,
``fastcnn: error: ...``, and exit with status 2; nothing prints a traceback for them
(set FASTCNN_DEBUG=1 to see one).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

from ._validate import integer, option, real

__all__ = ["main"]

DEFAULTS = {"epochs": 20, "batch_size": 32, "lr": 3e-3, "optimizer": "adam", "seed": 0}


class UserError(Exception):
    """A mistake in the command line or the files it names."""


def _load_dataset(spec: str):
    """(x_train, y_train, x_test, y_test, description) for 'digits' or a directory."""
    from . import data

    if spec == "digits":
        return (*data.load_digits("train"), *data.load_digits("test"), "digits")
    if not os.path.isdir(spec):
        raise UserError(f"--data must be 'digits' or a directory with MNIST IDX files or "
                        f"CIFAR-10 python batches, got {spec!r}")
    for directory in (spec, os.path.join(spec, "cifar-10-batches-py")):
        if os.path.exists(os.path.join(directory, "data_batch_1")):
            return (*data.load_cifar10(directory, "train"), *data.load_cifar10(directory, "test"),
                    f"CIFAR-10 from {directory}")
    return (*data.load_mnist(spec, "train"), *data.load_mnist(spec, "test"), f"MNIST from {spec}")


def _optimizer(name, params, lr):
    from . import optim

    table = {"sgd": lambda: optim.SGD(params, lr=lr, momentum=0.9),
             "adam": lambda: optim.Adam(params, lr=lr),
             "adamw": lambda: optim.AdamW(params, lr=lr)}
    return table[name]()


def _check_writable(path) -> None:
    """Refuse, before hours of training, an --output that cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"--output must name a file, got the directory {path}")
    if not os.path.isdir(folder):
        raise UserError(f"--output {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--output {path}: the folder {folder} is not writable")


def cmd_train(args) -> int:
    from . import evaluate, fit, optim, save
    from .models import default_cnn

    if args.output:
        _check_writable(args.output)
    x, y, x_test, y_test, name = _load_dataset(args.data)
    n, c, h, w = x.shape
    classes = int(max(y.max(), y_test.max())) + 1
    model = default_cnn(c, classes, (h, w), rng=args.seed)
    optimizer = _optimizer(args.optimizer, model.parameters(), args.lr)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"training the default CNN on {name}: {n} train / {len(x_test)} test images "
          f"{c}x{h}x{w}, {classes} classes, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.optimizer} lr {args.lr} (cosine decay)")
    start = time.perf_counter()
    history = fit(model, x, y, optimizer=optimizer, epochs=args.epochs,
                  batch_size=args.batch_size, rng=args.seed, scheduler=scheduler,
                  verbose=not args.quiet)
    seconds = time.perf_counter() - start
    result = evaluate(model, x_test, y_test)
    stopped = " (interrupted)" if history.interrupted else ""
    print(f"trained {history.epochs} epochs in {seconds:.1f} s{stopped}")
    print(f"test accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f}, "
          f"{len(x_test)} images)")
    if args.output:
        curves = {key: [v if math.isfinite(v) else None for v in values]  # JSON has no NaN
                  for key, values in history.history.items()}
        dataset = args.data if args.data == "digits" else os.path.abspath(args.data)
        metadata = {"input_shape": [c, h, w], "classes": classes, "dataset": dataset,
                    "history": curves}
        try:
            save(model, args.output, metadata=metadata)
        except OSError as e:  # the disk filled or went read-only while training
            fd, rescue = tempfile.mkstemp(prefix="fastcnn-model-", suffix=".fcnn")
            os.close(fd)
            try:
                save(model, rescue, metadata=metadata)
            except BaseException:
                os.unlink(rescue)
                raise
            raise UserError(f"could not write {args.output} ({e.strerror or e}); the trained "
                            f"model is saved in {rescue} instead") from None
        print(f"saved the model to {args.output}")
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate

    model, meta = _load(args.model)
    spec = args.data or meta.get("dataset", "digits")
    _, _, x_test, y_test, name = _load_dataset(spec)
    _check_fits(args.model, model, meta, x_test, y_test, name)
    result = evaluate(model, x_test, y_test)
    print(f"{name} test set: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"({len(x_test)} images)")
    return 0


def _check_fits(path, model, meta, x, y, name) -> None:
    """A model and a data set that do not go together say so, not as a layer's shape error."""
    stored = tuple(meta.get("input_shape") or ())
    try:
        scores = model.output_shape((1, *x.shape[1:]))
    except NotImplementedError:
        return
    except ValueError:
        scores = None
    if scores is None or (stored and stored != x.shape[1:]):
        takes = f"images of shape {stored}" if stored else "other images"
        raise UserError(f"{path} does not fit the {name} data set: the model takes {takes}, "
                        f"the data set's are {x.shape[1:]}")
    if len(y) and int(y.max()) >= scores[-1]:
        raise UserError(f"{path} does not fit the {name} data set: the model tells "
                        f"{scores[-1]} classes apart, the data set has labels up to "
                        f"{int(y.max())}")


def _read_image(path, shape):
    """One image as float32 (C, H, W) for a model taking `shape`."""
    c, h, w = shape
    if path.lower().endswith(".npy"):
        from ._files import check_regular

        check_regular(path, ".npy image")
        # mapped, not read: a header declaring a huge array costs nothing until the shape,
        # checked below, says it is the model's
        a = np.load(path, mmap_mode="r", allow_pickle=False)
        if a.shape == (h, w) and c == 1:
            a = a[None]
    elif path.lower().endswith(".png"):
        from ._png import read_png

        pixels = read_png(path, size=(h, w))
        pixels = pixels.astype(np.float32) / np.iinfo(pixels.dtype).max
        if pixels.shape[2] in (2, 4):
            pixels = pixels[..., :-1]  # drop alpha
        if c == 1 and pixels.shape[2] == 3:
            pixels = pixels.mean(axis=2, keepdims=True)
        elif c == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        a = pixels.transpose(2, 0, 1)
    else:
        raise UserError(f"{path}: images must be .png or .npy files")
    if a.shape != (c, h, w):
        raise UserError(f"{path}: the model takes images of shape {(c, h, w)} "
                        f"(channels, height, width), got {a.shape}")
    if a.dtype.kind not in "biuf":
        raise UserError(f"{path}: an image must hold numbers, got dtype {a.dtype}")
    return np.array(a, dtype=np.float32)


def _load(path):
    """A saved model and its metadata, which must be a JSON object (save writes one)."""
    from . import load

    model, meta = load(path, with_metadata=True)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: the model's metadata must be a JSON object, got "
                        f"{type(meta).__name__}")
    return model, meta


def _input_shape(path, meta) -> tuple:
    """The (C, H, W) images a saved model takes, from its metadata."""
    shape = meta.get("input_shape")
    if not shape:
        raise UserError(f"{path}: no input shape stored with the model "
                        f"(save it with metadata={{'input_shape': [C, H, W]}})")
    return tuple(shape)


def cmd_predict(args) -> int:
    from . import predict

    model, meta = _load(args.model)
    shape = _input_shape(args.model, meta)
    batch = np.stack([_read_image(p, shape) for p in args.images])
    probs = predict(model, batch)
    for path, p in zip(args.images, probs):
        top = np.argsort(p)[::-1][: args.top]
        guesses = ", ".join(f"{k} ({p[k]:.3f})" for k in top)
        print(f"{path}: {guesses}")
    return 0


def cmd_visualize(args) -> int:
    from . import predict, viz
    from .nn import Conv2d

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out must be a directory, got the file {args.out}")
    model, meta = _load(args.model)
    image = _read_image(args.image, _input_shape(args.model, meta))
    conv = next((m for m in model.modules() if isinstance(m, Conv2d)), None)
    pictures = []  # (file name, what it shows, function drawing it to a path)
    if conv is not None:
        pictures.append(("filters.png", f"the filters of the first conv layer, {conv!r}",
                         lambda path: viz.plot_filters(conv, path)))
    pictures.append(("activations.png", f"the activation maps of {args.image}",
                     lambda path: viz.plot_activations(model, image, path)))
    if meta.get("history"):
        pictures.append(("history.png", "loss and accuracy per epoch",
                         lambda path: viz.plot_history(meta["history"], path)))
    spec = args.data or meta.get("dataset")
    if spec:
        _, _, x_test, y_test, name = _load_dataset(spec)
        pictures.append(("confusion.png", f"the confusion matrix on the {name} test set",
                         lambda path: viz.plot_confusion_matrix(y_test, predict(model, x_test),
                                                                path=path)))
    os.makedirs(args.out, exist_ok=True)
    for name, what, draw in pictures:
        path = os.path.join(args.out, name)
        try:
            draw(path)
        except ImportError as e:  # matplotlib is missing: one line, like any user error
            raise UserError(str(e)) from None
        print(f"{path}: {what}")
    return 0


def cmd_info(args) -> int:
    import fastcnn

    info = fastcnn.build_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:12} {value}")
    return 0


def cmd_bench(args, rest) -> int:
    from . import bench

    return bench.main(rest)


_positive_int = option(int, integer, "a positive integer", minimum=1)
_positive_float = option(float, real, "a positive number", low=0.0, high=math.inf,
                         low_open=True, high_open=True)


def _parser():
    p = argparse.ArgumentParser(prog="fastcnn", description="Train, evaluate and run "
                                "convolutional networks on the CPU.")
    p.add_argument("--threads", type=_positive_int, help="kernel threads (default: all cores "
                   "or OMP_NUM_THREADS)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train the default CNN and print its test accuracy",
                       description="Train the default CNN (conv-ReLU-pool twice, then linear) "
                       "and print its accuracy on the held-out test set.")
    t.add_argument("--data", default="digits", help="'digits' (bundled, default) or a "
                   "directory of MNIST IDX files or CIFAR-10 python batches")
    t.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"])
    t.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"])
    t.add_argument("--lr", type=_positive_float, default=DEFAULTS["lr"], help="learning rate")
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"],
                   default=DEFAULTS["optimizer"])
    t.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    t.add_argument("--output", "-o", help="save the trained model to this file")
    t.add_argument("--quiet", "-q", action="store_true", help="no per-epoch progress")
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy of a saved model on a test set")
    e.add_argument("model", help="a file written by `fastcnn train --output`")
    e.add_argument("--data", help="dataset (default: the one it was trained on)")
    e.set_defaults(run=cmd_evaluate)

    r = sub.add_parser("predict", help="classify images with a saved model")
    r.add_argument("model", help="a file written by `fastcnn train --output`")
    r.add_argument("images", nargs="+", help=".png or .npy files (npy: (H, W) or (C, H, W) "
                   "floats, scaled like the training data)")
    r.add_argument("--top", type=_positive_int, default=3, help="classes to show per image")
    r.set_defaults(run=cmd_predict)

    v = sub.add_parser("visualize", help="draw a saved model's filters and activation maps "
                       "(needs matplotlib)", description="Write PNGs of the first conv "
                       "layer's filters, the activation maps of one image and, when the model "
                       "file has them, the training curves and the test-set confusion matrix.")
    v.add_argument("model", help="a file written by `fastcnn train --output`")
    v.add_argument("--image", required=True, help="a .png or .npy image the model takes")
    v.add_argument("--out", required=True, help="directory for the PNGs (created if needed)")
    v.add_argument("--data", help="dataset for the confusion matrix (default: the one it was "
                   "trained on, if recorded)")
    v.set_defaults(run=cmd_visualize)

    b = sub.add_parser("bench", help="benchmark the kernels against NumPy and PyTorch",
                       add_help=False)
    b.set_defaults(run=None)

    i = sub.add_parser("info", help="version, build and thread facts")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=cmd_info)
    return p


def main(argv=None) -> int:
    """Run the `fastcnn` command with `argv` (default sys.argv[1:]); returns the exit status."""
    import fastcnn
    from .io import FormatError

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.threads:
            fastcnn.set_num_threads(args.threads)
        if args.command == "bench":
            return cmd_bench(args, rest)
        return args.run(args)
    except (UserError, FormatError, OSError, ValueError, TypeError, OverflowError,
            RecursionError, MemoryError) as e:
        if os.environ.get("FASTCNN_DEBUG") == "1":
            raise
        message = str(e) if not isinstance(e, OSError) or not e.filename else \
            f"{e.filename}: {e.strerror}"
        if isinstance(e, MemoryError):
            message = "out of memory"
        print(f"fastcnn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastcnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
