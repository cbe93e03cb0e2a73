"""Test double of ``torch_tensorrt`` (2.4, dynamo path): see ``tests/doubles/README.md``."""

from torch_tensorrt import dynamo

__version__ = "2.4.0"
__all__ = ["dynamo"]
