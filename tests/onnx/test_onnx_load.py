"""load_onnx: one-line LoadErrors for files that are not (complete) ONNX models; external data."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradlint.errors import LoadError
from gradlint.onnx.convert import example_inputs, to_torch
from gradlint.onnx.inputs import DYNAMIC_BATCH, DYNAMIC_OTHER
from gradlint.onnx.load import load_onnx


def _linear_model() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "weight")
    bias = numpy_helper.from_array(np.ones(3, dtype=np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "weight", "bias"], ["h"], name="fc", transB=1),
         helper.make_node("Tanh", ["h"], ["y"], name="act")],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(_linear_model(), path)
    return path


def _load_error(path) -> str:
    with pytest.raises(LoadError) as info:
        load_onnx(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_checks_and_infers_shapes(model_file):
    model = load_onnx(str(model_file))
    assert [v.name for v in model.graph.value_info] == ["h"]  # shape inference ran


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
    )
    assert "git lfs pull" in _load_error(path) and "LFS pointer" in _load_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"")
    assert _load_error(path) == "empty file (0 bytes), not an ONNX model"


def test_truncated_file(tmp_path, model_file):
    data = model_file.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert _load_error(path).startswith("not an ONNX model (")


def test_random_bytes(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    assert _load_error(path).startswith("not an ONNX model (")


def test_text_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("def build_model():\n    return None\n")
    assert _load_error(path).startswith("not an ONNX model (")


def test_missing_file(tmp_path):
    assert _load_error(tmp_path / "absent.onnx") == "no such file or directory"


def test_invalid_model(tmp_path):
    model = _linear_model()
    model.graph.node[1].input[0] = "undefined"  # a node reading a value nothing produces
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    assert _load_error(path).startswith("invalid ONNX model: ")


def _save_external(model: onnx.ModelProto, directory) -> str:
    path = directory / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    return str(path)


def test_external_data(tmp_path):
    path = _save_external(_linear_model(), tmp_path)
    assert os.path.exists(tmp_path / "weights.bin")
    model = load_onnx(path)
    converted = to_torch(model)
    x = torch.randn(2, 4)
    expected = torch.tanh(x @ (torch.arange(12.0).reshape(3, 4) / 10).T + 1)
    torch.testing.assert_close(converted(x), expected)


def test_missing_external_data_file(tmp_path):
    path = _save_external(_linear_model(), tmp_path)
    os.remove(tmp_path / "weights.bin")
    message = _load_error(path)
    assert "weights.bin" in message and "not found" in message


# -- external data must stay inside the model's folder -------------------------------------------
# The checker of older onnx releases lets these through (and none before 1.21 refuses symbolic
# links), after which the converter would read the file the location leads to: gradlint checks
# itself, before anything is read.

def _relocate(path: str, location: str) -> None:
    """Point every external tensor of the saved model at `location`, as a crafted file would."""
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    with open(path, "wb") as file:
        file.write(model.SerializeToString())


@pytest.fixture
def outside(tmp_path):
    """A model folder, and a file outside it that holds valid weights (so only containment stops them)."""
    folder = tmp_path / "model"
    folder.mkdir()
    path = _save_external(_linear_model(), folder)
    (tmp_path / "secret").mkdir()
    os.rename(folder / "weights.bin", tmp_path / "secret" / "secret.bin")
    return path, folder, tmp_path / "secret"


def test_external_data_through_a_symlinked_file_outside_the_folder(outside):
    path, folder, secret = outside
    os.symlink(secret / "secret.bin", folder / "weights.bin")
    assert _load_error(path) == "external data for tensor 'weight' points outside the model's folder: weights.bin"


def test_external_data_through_a_symlinked_folder_outside(outside):
    path, folder, secret = outside
    os.symlink(secret, folder / "data")
    _relocate(path, "data/secret.bin")
    assert _load_error(path) == \
        "external data for tensor 'weight' points outside the model's folder: data/secret.bin"


def test_external_data_location_with_dot_dot(outside):
    path, folder, secret = outside
    _relocate(path, "../secret/secret.bin")
    assert _load_error(path) == \
        "external data for tensor 'weight' points outside the model's folder: ../secret/secret.bin"


def test_external_data_location_that_is_absolute(outside):
    path, folder, secret = outside
    _relocate(path, str(secret / "secret.bin"))
    assert _load_error(path) == \
        f"external data for tensor 'weight' points outside the model's folder: {secret / 'secret.bin'}"


def test_external_data_in_a_subfolder_of_a_symlinked_model_folder_still_loads(tmp_path):
    # A guard against refusing too much: the model's folder is reached through a symbolic link
    # (its real path is compared, not the link's), and the weights lie in a subfolder of it.
    real = tmp_path / "real"
    real.mkdir()
    path = _save_external(_linear_model(), real)
    (real / "data").mkdir()
    os.rename(real / "weights.bin", real / "data" / "w.bin")
    _relocate(path, "data/w.bin")
    os.symlink(real, tmp_path / "link")
    converted = to_torch(load_onnx(str(tmp_path / "link" / "model.onnx")))
    x = torch.randn(2, 4)
    torch.testing.assert_close(converted(x), torch.tanh(x @ (torch.arange(12.0).reshape(3, 4) / 10).T + 1))


def test_a_fifo_named_as_a_model_is_not_opened(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    assert _load_error(fifo) == "not a regular file (a FIFO)"


def test_example_inputs_fill_dynamic_dimensions():
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"]),
         helper.make_node("Cast", ["ids2"], ["ids2_long"], to=TensorProto.INT64),
         helper.make_node("Gather", ["table", "ids2_long"], ["e2"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("ids2", TensorProto.INT32, [None, 3]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, "len"]),
         helper.make_tensor_value_info("other", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.zeros((5, 2), np.float32), "table")],
    )
    ids, ids2, x, other, mask = example_inputs(helper.make_model(graph))
    assert ids.shape == (DYNAMIC_BATCH, DYNAMIC_OTHER) and ids.dtype == torch.int64
    assert ids2.shape == (DYNAMIC_BATCH, 3) and ids2.dtype == torch.int32
    assert x.shape == (4, DYNAMIC_OTHER) and x.dtype == torch.float32
    assert int(ids.max()) < 5 and int(ids2.max()) < 5 and int(ids.min()) >= 0  # rows of the embedding table
    assert other.shape == (DYNAMIC_BATCH,) and int(other.max()) < 10
    assert bool((mask == 1).all())


def test_example_inputs_agree_on_named_dimensions():
    """Sequence-first attention: the batch is dim 1 of x but dim 0 of the padding mask."""
    graph = helper.make_graph(
        [], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "b", 4]),
         helper.make_tensor_value_info("key_padding_mask", TensorProto.BOOL, ["b", "seq"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
    )
    x, mask = example_inputs(helper.make_model(graph))
    assert x.shape == (DYNAMIC_OTHER, DYNAMIC_BATCH, 4) and mask.shape == (DYNAMIC_BATCH, DYNAMIC_OTHER)
    assert not mask.any()  # bool masks: nothing masked out
