"""Ready-made networks."""
from __future__ import annotations

import numpy as np

from . import nn
from ._validate import generator, integer, pair

__all__ = ["default_cnn"]


def default_cnn(in_channels: int = 1, num_classes: int = 10, image_size=(8, 8), width: int = 32,
                rng=None) -> nn.Sequential:
    """The guide's network: conv -> ReLU -> pool, twice, then a fully connected layer.

    Two 3x3 convolutions (padding 1, so each keeps the image size) with `width` and
    2*`width` filters, each followed by ReLU and 2x2 max-pooling (halving the size), then one
    linear layer from the flattened activation maps to the class scores.

    Args:
        in_channels: image channels (1 for digits/MNIST, 3 for CIFAR-10).
        num_classes: number of class scores.
        image_size: (H, W) of the input images, each divisible by 4.
        width: filters in the first layer.
        rng: seed or numpy Generator for the initial weights.

    Example:
        >>> model = default_cnn(rng=0)
        >>> model(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 10)
    """
    h, w = pair("default_cnn", "image_size", image_size, 4)
    if h % 4 or w % 4:
        raise ValueError(f"default_cnn: image_size must be divisible by 4, got {(h, w)}")
    width = integer("default_cnn", "width", width, 1)
    rng = generator("default_cnn", rng)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 4) * (w // 4), num_classes, rng=rng),
    )
