"""``torch_tensorrt.runtime`` double: the cudagraphs mode of ≥ 2.5 (``runtime/_cudagraphs.py``)."""

import torch_tensorrt

_CUDAGRAPHS = [False]

if torch_tensorrt.VERSION >= (2, 5):

    def set_cudagraphs_mode(mode: bool) -> None:
        _CUDAGRAPHS[0] = bool(mode)

    def get_cudagraphs_mode() -> bool:
        return _CUDAGRAPHS[0]
