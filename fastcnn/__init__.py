"""fastcnn: convolutional networks on the CPU with NumPy alone.

Compiled, OpenMP-threaded kernels for convolution and pooling (`fastcnn.functional`), checked
against a plain NumPy reference with the same signatures (`fastcnn.reference`).
"""
__version__ = "0.1.0"

from ._config import build_info, get_num_threads, set_num_threads
from . import functional, reference

__all__ = ["build_info", "get_num_threads", "set_num_threads", "functional", "reference",
           "__version__"]
