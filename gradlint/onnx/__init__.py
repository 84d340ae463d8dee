"""ONNX models: load, convert to torch modules, lint with the same rules.

load.py reads and checks the file, convert.py turns the graph into a torch module (layers.py,
rnn.py and ops.py run the nodes; paths.py recovers the source model's module paths), inputs.py
invents example inputs, spec.py assembles the ModelSpec the engine lints.
"""

from gradlint.onnx.spec import load_onnx_spec

__all__ = ["load_onnx_spec"]
