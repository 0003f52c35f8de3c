"""The registry of layer classes by name, and `from_config`, which rebuilds a model from the
JSON-serialisable description `Module.get_config` gives (no pickle)."""
from __future__ import annotations

from .parameter import element_budget

__all__ = ["register", "from_config"]

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a layer (or loss) buildable by `from_config` under its name.

    Registering the same class again (e.g. a re-run notebook cell) replaces it; a different
    class under a taken name is a ValueError.
    """
    name = cls.__name__
    old = _REGISTRY.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                   cls.__qualname__):
        raise ValueError(f"register: the name {name!r} is already taken by "
                         f"{old.__module__}.{old.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def from_config(config: dict, max_elements: int | None = None):
    """Rebuild a module (or loss) from its ``get_config()`` dict. Weights are fresh: load them
    with ``load_state_dict``. Unknown class names are a ValueError, and so is a model whose
    parameters and buffers would hold more than `max_elements` elements (checked before
    they are allocated).

    Example:
        >>> from fastcnn import nn
        >>> nn.from_config({"class": "Linear", "config": {"in_features": 4, "out_features": 2}})
        Linear(in_features=4, out_features=2)
    """
    if max_elements is not None:
        with element_budget(max_elements):
            return from_config(config)
    if not isinstance(config, dict) or set(config) != {"class", "config"}:
        raise ValueError(f"from_config expects a dict with keys 'class' and 'config', "
                         f"got {config!r}")
    cls = _REGISTRY.get(config["class"])
    if cls is None:
        raise ValueError(f"from_config: unknown class {config['class']!r}, expected one of "
                         f"{sorted(_REGISTRY)}")
    if not isinstance(config["config"], dict):
        raise ValueError(f"from_config: 'config' of {config['class']} must be a dict, got "
                         f"{config['config']!r}")
    return cls.from_arguments(config["config"])
