"""Layers, losses and containers for building and training CNNs on NumPy arrays.

Each layer has ``forward(x)`` (also ``layer(x)``) and ``backward(grad, input_grad=True)``,
which adds parameter gradients into ``Parameter.grad`` and returns the gradient with respect to
the input (None when input_grad is False and the layer skips it). ``use_backend("reference")``
runs the layers on the plain NumPy `fastcnn.reference` instead of the compiled kernels.
Names, arguments and ``state_dict`` keys follow ``torch.nn``.

Example:
    >>> import numpy as np
    >>> from fastcnn import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, rng=0), nn.ReLU(),
    ...                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10, rng=0))
    >>> loss_fn = nn.CrossEntropyLoss()
    >>> x, y = np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 2, 3])
    >>> loss = loss_fn(model(x), y)
    >>> grad_x = model.backward(loss_fn.backward())
    >>> grad_x.shape, model[0].weight.grad.shape
    ((4, 1, 8, 8), (8, 1, 3, 3))
"""
from . import init
from .activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .backend import get_backend, use_backend
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .container import Sequential
from .module import Module
from .parameter import Parameter
from .registry import from_config, register
from .normalization import BatchNorm2d
from .pooling import AvgPool2d, MaxPool2d
from .summary import ModelSummary, summary

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten", "Linear", "Dropout",
           "BatchNorm2d", "CrossEntropyLoss", "MSELoss", "init", "summary", "ModelSummary",
           "from_config", "register", "use_backend", "get_backend"]
