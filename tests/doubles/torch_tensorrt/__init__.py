"""Test double of ``torch_tensorrt`` in the shape of one release, chosen by
``EVB_TRT_DOUBLE_VERSION`` (2.4 = JetPack 6.0, 2.8 = JetPack 6.2, 2.13 = current; default 2.4).

What each shape was checked against (pytorch/TensorRT, read at the tag):

- **2.4** (v2.4.0): ``dynamo/_compiler.py`` ``compile(..., debug, max_aux_streams,
  use_python_runtime)``, ``convert_module_to_trt_engine``; ``dynamo/conversion/_TRTInterpreter.py``:
  DETAILED profiling verbosity iff ``debug=True``; ``dynamo/runtime/_PythonTorchTensorRTModule.py``:
  ``engine`` is the deserialized ``ICudaEngine`` (no ``serialized_engine``), ``context``,
  ``input_names``/``output_names``, ``enable_profiling`` sets a profiler only if none is set;
  ``dynamo/runtime/_TorchTensorRTModule.py``: ``engine`` is an opaque C++ object; no Debugger, no
  cudagraphs mode (``runtime/__init__.py``).
- **2.8** (v2.8.0, the same through v2.12.0): ``debug`` only warns (DeprecationWarning);
  ``dynamo/debug/_Debugger.py`` ``Debugger(log_level, ..., save_engine_profile, profile_format=
  "perfetto", engine_builder_monitor, ...)``; ``_TRTInterpreter.py``: DETAILED iff the active
  debugger has ``save_engine_profile``; ``_compiler.py``: with ``save_engine_profile``,
  ``use_python_runtime=True`` and a format other than "cudagraph" raise ``ValueError("Profiling
  with TREX can only be enabled when using the C++ runtime. ...")``, the C++ runtime with
  "cudagraph" raises the converse; both runtime modules keep ``serialized_engine``;
  ``convert_exported_program_to_serialized_trt_engine``; ``runtime/_cudagraphs.py``
  ``set_cudagraphs_mode``/``get_cudagraphs_mode``.
- **2.13** (v2.13.0): ``PythonTorchTensorRTModule`` is gone; ``use_python_runtime`` is deprecated
  and ignored (DeprecationWarning); partitions are ``TorchTensorRTModule`` (``serialized_engine``,
  ``input_binding_names``/``output_binding_names``, engine run by the C++ runtime, profiler not
  reachable from Python); ``_TRTInterpreter.py``: DETAILED whenever a Debugger is active; the
  C++-runtime check of ``save_engine_profile`` as in 2.8 (this double has the C++ runtime).
- **All three**: ``dynamo/_compiler.py`` ``compile_module`` returns the graph unchanged (no
  TensorRT partition, a warning) when it has no supported op or fewer than ``min_block_size``;
  so a single module compiles to TensorRT only with ``min_block_size`` at most its op count.
"""

import os

_VERSIONS = {"2.4": "2.4.0", "2.8": "2.8.0", "2.13": "2.13.0"}
_chosen = os.environ.get("EVB_TRT_DOUBLE_VERSION") or "2.4"  # empty = unset
if _chosen not in _VERSIONS:
    raise ImportError(f"EVB_TRT_DOUBLE_VERSION={_chosen}: the double knows {', '.join(_VERSIONS)}")
__version__ = _VERSIONS[_chosen]
VERSION = tuple(int(p) for p in __version__.split(".")[:2])

from torch_tensorrt import dynamo, runtime  # noqa: E402

__all__ = ["dynamo", "runtime"]
