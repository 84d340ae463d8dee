"""`gradlint model.onnx` end to end: load errors, findings on nodes, training setup, unsupported ops."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradlint.cli import main
from gradlint.emit import FORMATS
from gradlint.errors import LoadError
from gradlint.losses import training_loss
from gradlint.onnx.convert import to_torch
from gradlint.onnx.load import load_onnx


def gradlint(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--isolated", *args])
    return result.exit_code, result.output


class Net(nn.Module):
    """fc1's N(0, 1) init is GL201's case: weight variance x fan_in = 64."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 4)
        self.act = nn.ReLU()
        nn.init.normal_(self.fc1.weight, std=1.0)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@pytest.fixture
def workdir(tmp_path, monkeypatch, export):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    os.replace(export(Net(), torch.randn(8, 64)), tmp_path / "net.onnx")
    return tmp_path


def test_findings_name_the_node_and_point_at_the_onnx_file(workdir):
    code, out = gradlint("--select", "GL201", "net.onnx")
    assert code == 1
    assert re.match(r"net.onnx:1:1: GL201 \[\w+\] /fc1/Gemm: weight variance x fan_in is ", out)
    assert "net.onnx: risk " in out
    assert "  assumed inputs: input_0 random, shaped as the graph declares; dynamic dimensions batch filled in " \
           "(batch 8; --batch-size, --input-shape)" in out


def test_unloadable_files_are_errors_and_the_others_are_still_linted(workdir):
    (workdir / "lfs.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    (workdir / "cut.onnx").write_bytes((workdir / "net.onnx").read_bytes()[:200])
    (workdir / "notes.onnx").write_text("not a model\n")
    code, out = gradlint("--select", "GL201", "lfs.onnx", "cut.onnx", "notes.onnx", "net.onnx")
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == "lfs.onnx: error: a Git LFS pointer, not the model: run `git lfs pull` to fetch the file"
    assert lines[1].startswith("cut.onnx: error: not an ONNX model (")
    assert lines[2].startswith("notes.onnx: error: not an ONNX model (")
    assert any(line.startswith("net.onnx:1:1: GL201 ") for line in lines)
    assert lines[-1].endswith("; 3 targets failed to load.")


def _mlp_file(path, width: int = 16) -> None:
    """A small healthy MLP regressor (He init), as a hand-built graph."""
    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(((width, width), (width, width), (width, 1))):
        w = (rng.standard_normal((fan_out, fan_in)) * np.sqrt(2 / fan_in)).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"fc{i}.weight"),
                    numpy_helper.from_array(np.zeros(fan_out, np.float32), f"fc{i}.bias")]
        nodes.append(helper.make_node("Gemm", [previous, f"fc{i}.weight", f"fc{i}.bias"], [f"z{i}"],
                                      name=f"/fc{i}/Gemm", transB=1))
        previous = f"z{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [previous], [f"h{i}"], name=f"/act_{i}/Relu"))
            previous = f"h{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["batch", 1])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_training_setup_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _mlp_file(tmp_path / "mlp.onnx")
    code, out = gradlint("--select", "GL602", "--optimizer", "SGD", "--lr", "5", "--loss", "mse", "--format", "json",
                         "mlp.onnx")
    report = json.loads(out)["models"][0]
    assert code == 1 and [f["code"] for f in report["findings"]] == ["GL602"]
    assert report["findings"][0]["message"].startswith("lr 5 x top Hessian eigenvalue")
    assert "loss: mean squared error against random targets (loss = mse)" in report["assumptions"]
    assert not any(a.startswith("optimizer:") for a in report["assumptions"])  # both given: nothing assumed

    code, out = gradlint("--select", "GL602", "--format", "json", "mlp.onnx")
    report = json.loads(out)["models"][0]
    assert code == 0 and report["findings"] == []
    assert any(a.startswith("optimizer: AdamW(lr=0.001) (default optimizer: an ONNX file holds no training setup; ")
               for a in report["assumptions"])


def test_training_setup_from_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    _mlp_file(tmp_path / "exports" / "mlp.onnx")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint.models."exports/*.onnx"]\noptimizer = "SGD"\nlr = 5.0\nloss = "mse"\ngradient-clip-val = 1.0\n')
    result = CliRunner().invoke(main, ["--select", "GL602", "--format", "json", "exports/mlp.onnx"])
    report = json.loads(result.output)["models"][0]
    # With clipping, GL602's excess is an info (benchmarks/severities.py): it does not fail the run.
    assert result.exit_code == 0 and [(f["code"], f["severity"]) for f in report["findings"]] == [("GL602", "info")]
    assert "gradient_clip_val=1 lets the loss jump" in report["findings"][0]["message"]
    assert "loss: mean squared error against random targets (loss = mse)" in report["assumptions"]

    (tmp_path / "pyproject.toml").write_text('[tool.gradlint.models."*.onnx"]\nloss = "hinge"\n')
    result = CliRunner().invoke(main, ["exports/mlp.onnx"])
    assert result.exit_code == 2
    assert "tool.gradlint.models.\"*.onnx\".loss: 'hinge' is not one of cross-entropy, mse" in result.output


def _unsupported_op_file(path) -> None:
    """An RNN with recurrent spectral radius 2 (GL701, a static rule) followed by a custom op."""
    hidden = 8
    recurrent = (2.0 * np.eye(hidden)).astype(np.float32)[None]
    weights = [numpy_helper.from_array(np.full((1, hidden, 4), 0.1, np.float32), "W"),
               numpy_helper.from_array(recurrent, "R")]
    nodes = [helper.make_node("RNN", ["x", "W", "R"], ["y"], name="/rnn/RNN", hidden_size=hidden),
             helper.make_node("Decode", ["y"], ["out"], name="/head/Decode", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [5, 1, 2, hidden])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, path)


def test_unsupported_op_is_named_and_static_rules_still_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _unsupported_op_file(tmp_path / "custom.onnx")
    code, out = gradlint("custom.onnx")
    assert code == 1
    assert re.search(r"^custom.onnx:1:1: GL701 \[\w+\] /rnn/RNN: weight_hh_l0 has spectral radius 2", out, re.M)
    note = ("static rules only: unsupported ONNX op(s): com.example.Decode (node /head/Decode); the model cannot "
            "run, so ")
    assert f"  assumed {note}" in out
    code, out = gradlint("--format", "json", "custom.onnx")
    assert any(a.startswith(note) for a in json.loads(out)["models"][0]["assumptions"])
    for output_format in FORMATS:  # every format says so
        code, out = gradlint("--format", output_format, "custom.onnx")
        assert note.replace("(", "").split(";")[0] in out.replace("(", ""), output_format


def test_external_data_is_read_once_straight_into_the_weights(tmp_path):
    _mlp_file(tmp_path / "inline.onnx")
    onnx.save(onnx.load(tmp_path / "inline.onnx"), tmp_path / "mlp.onnx", save_as_external_data=True,
              location="mlp.bin", size_threshold=0)
    proto = load_onnx(str(tmp_path / "mlp.onnx"))
    for tensor in proto.graph.initializer:  # never copied into the proto ...
        assert tensor.data_location == TensorProto.EXTERNAL and not tensor.raw_data
        assert dict((e.key, e.value) for e in tensor.external_data)["location"] == str(tmp_path / "mlp.bin")
    converted = to_torch(proto)  # ... but read from the file by the conversion
    inline = onnx.load(tmp_path / "inline.onnx").graph.initializer
    expected = {t.name: torch.tensor(numpy_helper.to_array(t)) for t in inline}
    for path, source in converted.param_sources.items():
        torch.testing.assert_close(converted.get_parameter(path).detach(), expected[source])

    with open(tmp_path / "mlp.bin", "r+b") as data:
        data.truncate(os.path.getsize(tmp_path / "mlp.bin") - 4)
    with pytest.raises(LoadError, match=r"^external data file 'mlp.bin' is truncated: tensor 'fc2.bias' needs bytes"):
        load_onnx(str(tmp_path / "mlp.onnx"))


def test_input_shape_and_batch_size(workdir):
    code, out = gradlint("--select", "GL201", "--format", "json", "--batch-size", "3", "net.onnx")
    assumptions = json.loads(out)["models"][0]["assumptions"]
    assert "(batch 3; --batch-size, --input-shape)" in assumptions[0]
    code, out = gradlint("--select", "GL201", "--format", "json", "--input-shape", "2,64", "net.onnx")
    assert json.loads(out)["models"][0]["assumptions"][0] == "inputs: input_0 random, of shape (2, 64) (input-shape)"


def test_chosen_loss():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss, note = training_loss(logits, None, None, kind="cross-entropy")
    assert note == "loss: cross-entropy against random labels (loss = cross-entropy)" and loss.requires_grad
    targets = torch.randint(0, 5, (2, 3))
    loss, note = training_loss(logits, targets, None, kind="cross-entropy")
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits.reshape(6, 5), targets.reshape(6)))
    assert note == "loss: cross-entropy against example_targets (loss = cross-entropy)"
    maps = torch.randn(2, 4, 3, 3)  # [batch, classes, height, width]
    assert training_loss(maps, None, None, kind="cross-entropy")[0].shape == ()
    loss, note = training_loss(logits, None, None, kind="mse")
    assert note == "loss: mean squared error against random targets (loss = mse)"
    with pytest.raises(LoadError, match=r"needs class logits, but the model output has shape \(4,\); use loss = mse"):
        training_loss(torch.randn(4), None, None, kind="cross-entropy")
