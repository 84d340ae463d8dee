"""Helpers for the ONNX tests: export torch models with the TorchScript exporter into tmp_path.

torch.onnx.export(dynamo=True), the default since torch 2.9, needs onnxscript, which gradlint
does not depend on; the TorchScript exporter (dynamo=False) is deprecated but still ships.
"""

from __future__ import annotations

import warnings

import pytest
import torch


@pytest.fixture(scope="session")
def export(tmp_path_factory):
    """export(model, *inputs, name=..., dynamic_batch=True, **kwargs) -> path of a new .onnx file.

    The first dimension of every input is dynamic ("batch") unless dynamic_batch=False.
    """
    directory = tmp_path_factory.mktemp("onnx")
    counter = iter(range(1_000_000))

    def run(model, *inputs, name=None, dynamic_batch=True, **kwargs):
        path = directory / f"{name or 'model'}_{next(counter)}.onnx"
        input_names = [f"input_{i}" for i in range(len(inputs))]
        if dynamic_batch:
            kwargs.setdefault("dynamic_axes", {n: {0: "batch"} for n in input_names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
            torch.onnx.export(model, inputs, str(path), dynamo=False, input_names=input_names, **kwargs)
        return str(path)

    return run

