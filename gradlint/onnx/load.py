"""Read an ONNX file into a checked, shape-inferred ModelProto, or fail with a one-line LoadError.

The file is parsed once without its external data; the checker (path form, which finds
external files next to the model and works past protobuf's 2 GB limit) and shape inference
run on that small proto. External tensors are never read into the proto: their `location`
is made absolute and checked against the file's size here, and the converter reads each one,
once, straight into the torch tensor that holds it (tensors.to_tensor). Reading them into the
proto first would keep two copies of every weight alive during conversion, make shape
inference serialize every weight, and fail outright for models over 2 GB.
"""

from __future__ import annotations

import os

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from gradlint.errors import LoadError
from gradlint.onnx.tensors import external_data, nbytes
from gradlint.sources import file_problem

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def load_onnx(path: str) -> onnx.ModelProto:
    _check_file(path)
    model = _parse(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    _check_external_inside(model, base_dir)
    _check_external_files(model, base_dir)
    try:
        onnx.checker.check_model(path)
    except Exception as error:  # ValidationError, or a C++ error the checker did not wrap
        raise LoadError(f"invalid ONNX model: {_first_line(error)}") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as error:  # InferenceError, or a C++ error surfacing as RuntimeError
        raise LoadError(f"ONNX shape inference failed: {_first_line(error)}") from None
    _locate_external_data(model, base_dir)
    return model


def _check_file(path: str) -> None:
    problem = file_problem(path)  # a FIFO would block the read below; a device never ends
    if problem is not None:
        raise LoadError(problem)
    with open(path, "rb") as file:
        head = file.read(len(LFS_POINTER))
    if not head:
        raise LoadError("empty file (0 bytes), not an ONNX model")
    if head == LFS_POINTER:
        raise LoadError("a Git LFS pointer, not the model: run `git lfs pull` to fetch the file")


def _parse(path: str) -> onnx.ModelProto:
    try:
        model = onnx.load(path, load_external_data=False)
    except DecodeError as error:
        cause = _first_line(error)
        raise LoadError(f"not an ONNX model (protobuf parse failed: {cause}); truncated or another format?") from None
    except Exception as error:
        raise LoadError(f"not an ONNX model ({type(error).__name__}: {_first_line(error)})") from None
    # Protobuf parses some garbage, and files cut at a field boundary, into a mostly empty message.
    if not model.ir_version or not model.HasField("graph"):
        missing = "ir_version" if not model.ir_version else "graph"
        raise LoadError(f"not an ONNX model (no {missing}; truncated or another format?)")
    return model


def _check_external_inside(model: onnx.ModelProto, base_dir: str) -> None:
    """Refuse external data that resolves outside the model's folder, before anything reads it:
    a model file must not make gradlint read (and report statistics of) other files. The
    checker refuses such paths too, but not in every onnx release gradlint accepts (symbolic
    links were only refused in 1.21), so gradlint does not rely on it. Real paths: `..`, an
    absolute location and a symbolic link anywhere along the path are all resolved."""
    folder = os.path.realpath(base_dir)
    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        if "\0" in location:
            raise LoadError(f"external data for tensor {_printable(tensor.name)} has a location that is no path: "
                            f"{location!r}")
        if not _inside(folder, os.path.realpath(os.path.join(base_dir, location))):
            raise LoadError(f"external data for tensor {_printable(tensor.name)} points outside the model's "
                            f"folder: {_printable(location, quote=False)}")


def _inside(folder: str, path: str) -> bool:
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # on another drive (Windows)
        return False


def _printable(text: str, quote: bool = True) -> str:
    """Text from the model file, kept on one line: quoted as it is, or repr'd when it holds
    control characters (a newline in a tensor name must not split the error line)."""
    if not text.isprintable():
        return repr(text)
    return f"'{text}'" if quote else text


def _check_external_files(model: onnx.ModelProto, base_dir: str) -> None:
    """Name a missing external data file before the checker reports it as 'not regular file'."""
    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        if not os.path.isfile(os.path.join(base_dir, location)):
            raise LoadError(f"external data file '{location}' (tensor '{tensor.name}') not found next to the model")


def _locate_external_data(model: onnx.ModelProto, base_dir: str) -> None:
    """Point every external tensor at its file's absolute path, after checking the file holds it."""
    sizes: dict[str, int] = {}
    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        location, offset, length = external_data(tensor)
        path = os.path.join(base_dir, location)
        if path not in sizes:
            sizes[path] = os.path.getsize(path)
        try:
            needed = nbytes(tensor)
        except TypeError as error:
            raise LoadError(f"external tensor '{tensor.name}': {error}") from None
        if length is not None and length < needed:
            raise LoadError(f"external tensor '{tensor.name}' declares {length} bytes but its shape needs {needed}")
        if offset + needed > sizes[path]:
            raise LoadError(f"external data file '{location}' is truncated: tensor '{tensor.name}' needs bytes "
                            f"{offset}..{offset + needed}, the file has {sizes[path]}")
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = os.path.abspath(path)


def _tensors(graph: onnx.GraphProto):
    """Initializers and tensor attributes, in subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                yield from _tensors(subgraph)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
