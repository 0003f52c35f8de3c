"""Containers: modules that own the routing between their children."""
from __future__ import annotations

from .._validate import flag
from .module import Module
from .registry import from_config, register

__all__ = ["Sequential"]


@register
class Sequential(Module):
    """A chain of modules: forward runs them in order, backward in reverse.

    Args:
        *layers: modules, named "0", "1", ... in ``state_dict``.

    Shape:
        input: whatever the first layer takes; output: whatever the last layer gives.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(),
        ...                       nn.Linear(4 * 6 * 6, 10, rng=0))
        >>> model(np.zeros((2, 1, 8, 8))).shape
        (2, 10)
    """

    def __init__(self, *layers):
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module):
        """Add a module at the end; returns self."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layers must be Modules, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self._modules.values():
            shape = layer.output_shape(shape)
        return shape

    def forward(self, x):
        x = self._input(x)
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad, input_grad=True):
        """Back-propagate grad through the layers, last to first; return the gradient with
        respect to the input.

        input_grad=False: the caller does not need that gradient (a training loop's input is
        data), and None is returned. The layers before the first one with parameters are then
        skipped (they only pass gradients on), and that one is asked not to compute its input
        gradient. For a convolution first this saves a pass as costly as its forward.
        """
        input_grad = flag(f"{type(self).__name__}.backward", "input_grad", input_grad)
        layers = list(self._modules.values())
        first = 0
        if not input_grad:
            first = next((i for i, layer in enumerate(layers)
                          if next(iter(layer.parameters()), None) is not None), len(layers))
        for i in range(len(layers) - 1, first - 1, -1):
            if i == first and not input_grad:
                layers[i].backward(grad, input_grad=False)
                return None
            grad = layers[i].backward(grad)
        return grad if input_grad else None

    def arguments(self) -> dict:
        return {"layers": [layer.get_config() for layer in self._modules.values()]}

    @classmethod
    def from_arguments(cls, arguments: dict):
        if set(arguments) != {"layers"} or not isinstance(arguments["layers"], list):
            raise ValueError(f"Sequential config must be {{'layers': [...]}}, got {arguments!r}")
        return cls(*(from_config(c) for c in arguments["layers"]))
