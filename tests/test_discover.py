"""Discovery: which paths become targets, and why a path cannot be linted, without ever raising,
blocking or reading without bound for one bad path."""

from __future__ import annotations

import os

import pytest

from gradlint.discover import Target, expand, may_define_model
from gradlint.sources import MAX_SOURCE_BYTES
from tests.conftest import never_blocks

MODEL = "import torch\nimport torch.nn as nn\n\ndef build_model():\n    return nn.Linear(4, 2)\n"
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")


def _model_file(directory, name: str = "net.py") -> str:
    path = directory / name
    path.write_text(MODEL)
    return str(path)


@posix_only
def test_a_scan_passes_over_fifos_and_devices_without_opening_them(tmp_path):
    good = _model_file(tmp_path)
    os.mkfifo(tmp_path / "m.py")  # open() would wait for a writer forever
    os.mkfifo(tmp_path / "m.onnx")
    os.symlink("/dev/zero", tmp_path / "zero.py")  # read() would never end
    with never_blocks():
        assert expand([str(tmp_path)]) == [Target(good)]


@posix_only
def test_a_fifo_or_device_named_explicitly_is_an_error_target(tmp_path):
    os.mkfifo(tmp_path / "m.py")
    os.mkfifo(tmp_path / "m.onnx")
    os.symlink("/dev/zero", tmp_path / "zero.py")
    fifo, fifo_onnx, zero = (str(tmp_path / name) for name in ("m.py", "m.onnx", "zero.py"))
    with never_blocks():
        assert expand([fifo, fifo_onnx, zero], skip_non_models=False) == [
            Target(fifo, error="not a regular file (a FIFO)"),
            Target(fifo_onnx, kind="onnx", error="not a regular file (a FIFO)"),
            Target(zero, error="not a regular file (a character device)"),
        ]
        # pre-commit names every staged file: they are judged as a scan judges them
        assert expand([fifo, zero], skip_non_models=True) == []


def test_a_py_file_over_the_size_cap_is_never_read(tmp_path):
    # It would define a model, but a file this large is generated data, not a model source.
    big = tmp_path / "big.py"
    big.write_text(MODEL + "#" * MAX_SOURCE_BYTES + "\n")
    good = _model_file(tmp_path)
    assert expand([str(tmp_path)]) == [Target(good)]
    assert expand([str(big)]) == [Target(str(big), error="larger than 4 MB: not a model source file")]


@posix_only
def test_symbolic_link_loops_are_reported_once_and_never_followed(tmp_path):
    os.symlink("b.py", tmp_path / "a.py")
    os.symlink("a.py", tmp_path / "b.py")
    os.symlink(".", tmp_path / "again")  # a directory loop: not followed (nor is any directory link)
    os.symlink("missing.py", tmp_path / "broken.py")
    good = _model_file(tmp_path)
    a, b, broken = (str(tmp_path / name) for name in ("a.py", "b.py", "broken.py"))
    assert expand([str(tmp_path)]) == [
        Target(a, error="symbolic link loop"),
        Target(b, error="symbolic link loop"),
        Target(broken, error="broken symbolic link (what it points to does not exist)"),
        Target(good),
    ]
    assert expand([a, a]) == [Target(a, error="symbolic link loop")]


def test_a_missing_path_is_an_error_target_whatever_its_suffix(tmp_path):
    missing = str(tmp_path / "nope")
    assert expand([missing, missing + ".py", missing + ".onnx", missing + "::build"]) == [
        Target(missing, error="no such file or directory"),
        Target(missing + ".py", error="no such file or directory"),
        Target(missing + ".onnx", kind="onnx", error="no such file or directory"),
        Target(missing, "build", error="no such file or directory"),
    ]
    assert expand(["pkg.module:build"]) == [Target("pkg.module:build", "build", "import")]


def test_the_model_check_recognises_base_lists_on_several_lines():
    assert may_define_model("import torch\nclass Net(\n    nn.Module,\n):\n    pass\n")
    assert may_define_model("import torch\nclass Net(torch.nn.Module):\n    pass\n")
    assert may_define_model("from torch import nn\nclass Net(nn.Module, Mixin):\n    pass\n")
    assert not may_define_model("import torch\nclass Net(pl.LightningModule):\n    pass\n")
    assert not may_define_model("import torch\nclass Config(ModuleConfig):\n    pass\n")
    assert not may_define_model("class Net(nn.Module):\n    pass\n")  # no torch


def test_the_model_check_is_linear_on_pathological_files():
    # Both took quadratic time before (33 s for 8,000 `class A(` lines): a regression would
    # make this test hang for many minutes rather than fail on a timing.
    assert not may_define_model("import torch\n" + "class A(\n" * 50_000)
    assert not may_define_model("\n" * 50_000 + "x = 1\n")
    assert not may_define_model("import torch\n" + "class A(" + " Module" * 50_000)

