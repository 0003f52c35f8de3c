"""fastcnn: convolutional networks on the CPU with NumPy alone.

Compiled, OpenMP-threaded kernels for convolution and pooling (`fastcnn.functional`), checked
against a plain NumPy reference with the same signatures (`fastcnn.reference`); layers, losses
and optimizers in the style of PyTorch (`fastcnn.nn`, `fastcnn.optim`); a training loop
(`fit`, `evaluate`, `predict`), datasets (`fastcnn.data`), pickle-free `save` / `load`, and
pictures of filters, activation maps and training (`fastcnn.viz`, with matplotlib).
"""
from ._version import __version__
from ._config import (build_info, get_num_threads, memory_cache_info, set_memory_cache_limit,
                      set_num_threads)
from . import data, functional, nn, optim, reference, viz  # viz imports matplotlib lazily
from .io import load, save
from .models import default_cnn
from .train import EarlyStopping, ModelCheckpoint, evaluate, fit, predict

__all__ = ["build_info", "get_num_threads", "set_num_threads", "memory_cache_info",
           "set_memory_cache_limit", "functional", "reference",
           "nn", "optim", "data", "save", "load", "default_cnn", "fit", "evaluate", "predict",
           "EarlyStopping", "ModelCheckpoint", "viz", "__version__"]
