"""Test double of the ``tensorrt`` Python API: the parts this project calls.

An engine serves a recorded engine-inspector JSON; an execution context holds a profiler that
the partition module (``torch_tensorrt`` double) calls once per layer, in a burst after the
partition's work, as TensorRT does.
"""

from __future__ import annotations

import json

__version__ = "10.1.0"


class IProfiler:
    def __init__(self) -> None:
        pass

    def report_layer_time(self, layer_name: str, ms: float) -> None:  # pragma: no cover
        raise NotImplementedError


class Profiler(IProfiler):
    """TensorRT's default profiler prints each layer time."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        print(f"{layer_name}: {ms}ms")


class LayerInformationFormat:
    ONELINE = "ONELINE"
    JSON = "JSON"


class ProfilingVerbosity:
    LAYER_NAMES_ONLY = "LAYER_NAMES_ONLY"
    DETAILED = "DETAILED"


class IExecutionContext:
    def __init__(self) -> None:
        self.profiler = None


class IEngineInspector:
    def __init__(self, info: dict) -> None:
        self._info = info
        self.execution_context = None

    def get_engine_information(self, fmt) -> str:
        assert fmt == LayerInformationFormat.JSON
        return json.dumps(self._info)


class ICudaEngine:
    def __init__(self, info: dict) -> None:
        self._info = info

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext()

    def create_engine_inspector(self) -> IEngineInspector:
        return IEngineInspector(self._info)
