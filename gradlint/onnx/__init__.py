"""ONNX models: load, convert to torch modules, lint with the same rules."""
