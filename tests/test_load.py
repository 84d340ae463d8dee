"""Loading: every form of PATH, every model convention, and every bad input the issue lists.

Bad input must give a one-line error naming the file and the cause, exit code 2, no traceback
(unless --verbose), while the other files of the run are still linted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from tests.conftest import never_blocks, no_evidence_risk

HEALTHY = """
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def example_inputs():
    return (torch.randn(4, 4, generator=torch.Generator().manual_seed(0)),)
"""


def write(directory, name: str, source: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path)


def run(*args: str):
    result = CliRunner().invoke(main, ["--select", "GL201", *args])
    return result.exit_code, result.output


def test_file_directory_and_factory_forms(tmp_path):
    write(tmp_path, "models/a.py", HEALTHY)
    write(tmp_path, "models/sub/b.py", HEALTHY + "\nmake_net = build_model\n")
    write(tmp_path, "models/notes.py", "def helper():\n    return 1\n")  # no model: skipped by the scan
    write(tmp_path, "models/other.py", "import torch\ndef make_net():\n    pass\n")  # no convention name
    code, out = run("--format", "json", str(tmp_path / "models"))
    assert code == 0, out
    import json

    targets = [m["target"] for m in json.loads(out)["models"]]
    assert targets == [str(tmp_path / "models/a.py") + "::build_model",
                       str(tmp_path / "models/sub/b.py") + "::build_model"]
    code, out = run("--format", "json", str(tmp_path / "models/sub/b.py") + "::make_net")
    assert code == 0 and "b.py::make_net" in out


def test_import_string_form(tmp_path, monkeypatch):
    write(tmp_path, "mypkg/__init__.py", "")
    write(tmp_path, "mypkg/nets.py", HEALTHY)
    monkeypatch.chdir(tmp_path)
    code, out = run("mypkg.nets:build_model")
    assert code == 0, out
    assert f"mypkg.nets:build_model: {no_evidence_risk('GL201')}" in out


@pytest.mark.parametrize("source,expected_target", [
    ("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 2))\n", "::model"),
    ("import torch.nn as nn\nclass Small(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n        return self.fc(x)\n"
     "class Big(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.a = Small()\n        self.b = nn.Linear(2, 2)\n    def forward(self, x):\n"
     "        return self.b(self.a(x))\n", "::Big"),
])
def test_model_conventions(tmp_path, source, expected_target):
    path = write(tmp_path, "m.py", source)
    code, out = run(path)
    assert code == 0, out
    assert f"m.py{expected_target}: risk" in out


BAD = {
    "syntax.py": ("import torch\ndef build_model(:\n", "syntax error at line 2"),
    "missing.py": ("import torch\nimport not_a_real_package_xyz\n", "import failed: ModuleNotFoundError: "
                   "No module named 'not_a_real_package_xyz'"),
    "raises.py": ("import torch\ndef build_model():\n    raise ValueError('bad width')\n",
                  "build_model() raised ValueError: bad width"),
    "forward.py": ("import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n"
                   "        super().__init__()\n        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n"
                   "        raise RuntimeError('shape mismatch')\ndef build_model():\n    return M()\n",
                   "forward raised RuntimeError: shape mismatch"),
    "intout.py": ("import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n"
                  "        super().__init__()\n        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n"
                  "        return self.fc(x).argmax(-1)\ndef build_model():\n    return M()\n",
                  "the model output is an integer tensor (torch.int64)"),
    "noparams.py": ("import torch\nimport torch.nn as nn\ndef build_model():\n    return nn.ReLU()\n",
                    "build_model gave a model with no parameters: nothing to train"),
    "notmodule.py": ("import torch\ndef build_model():\n    return 42\n", "build_model gave int, not a torch.nn.Module"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_error_and_others_still_linted(tmp_path, name):
    source, cause = BAD[name]
    bad = write(tmp_path, name, source)
    good = write(tmp_path, "good.py", HEALTHY)
    code, out = run(bad, good)
    assert code == 2
    assert f"{bad}: error: {cause}" in out
    assert "Traceback" not in out
    assert f"{good}::build_model: {no_evidence_risk('GL201')}" in out  # the other file was still linted
    assert out.count("error:") == 1


def test_verbose_shows_the_traceback(tmp_path):
    bad = write(tmp_path, "raises.py", BAD["raises.py"][0])
    result = subprocess.run([sys.executable, "-m", "gradlint", "--verbose", bad], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: bad width" in result.stderr


def test_structured_outputs_pick_logits_or_loss(tmp_path):
    source = """
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            return {"logits": self.fc(x), "hidden": x}

    class T(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            return self.fc(x), x

    def build_model():
        return M()

    def build_tuple():
        return T()
    """
    path = write(tmp_path, "outs.py", source)
    for target in (path, path + "::build_tuple"):
        code, out = run("--format", "json", target)
        assert code == 0, out
        assert "loss: cross-entropy against random labels (no loss_fn)" in out


@pytest.mark.parametrize("first_layer,shape", [
    ("nn.Linear(5, 2)", "(8, 5)"),
    ("nn.Conv2d(3, 4, 3)", "(8, 3, 32, 32)"),
    ("nn.Conv1d(2, 4, 3)", "(8, 2, 32)"),
    ("nn.Embedding(50, 4)", "(8, 16)"),
    ("nn.LSTM(6, 4, batch_first=True)", "(8, 16, 6)"),
    ("nn.GRU(6, 4)", "(16, 8, 6)"),
])
def test_inputs_inferred_from_first_layer(tmp_path, first_layer, shape):
    source = f"""
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = {first_layer}

        def forward(self, x):
            out = self.first(x)
            return (out[0] if isinstance(out, tuple) else out).float().mean(dim=-1)

    def build_model():
        return M()
    """
    code, out = run(write(tmp_path, "m.py", source))
    assert code == 0, out
    assert f"random batch of shape {shape} inferred from the first layer first" in out


def test_input_inference_failure_says_what_to_add(tmp_path):
    source = """
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
        def forward(self, x):
            return x * self.scale

    def build_model():
        return M()
    """
    path = write(tmp_path, "m.py", source)
    code, out = run(path)
    assert code == 2
    assert "define example_inputs() or pass --input-shape" in out
    code, out = run("--input-shape", "4,3", path)
    assert code == 0, out
    assert "random normal of shape (4, 3) (--input-shape)" in out


@pytest.mark.parametrize("returned", [
    "opt",
    "[opt]",
    "{'optimizer': opt, 'lr_scheduler': sched}",
    "([opt], [sched])",
])
def test_configure_optimizers_accepts_lightning_shapes(tmp_path, returned):
    source = HEALTHY + f"""
def configure_optimizers(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    return {returned}
"""
    from gradlint.discover import Target
    from gradlint.load import load_target

    spec = load_target(Target(write(tmp_path, "m.py", source)))
    assert spec.optimizer.describe() == "SGD(lr=0.05, momentum=0.9)"
    assert not any(a.startswith("optimizer:") for a in spec.assumptions)


SHAPES = "return an optimizer, a list, a dict with 'optimizer', or (optimizers, schedulers)"


def load_error(tmp_path, source: str, overrides=None) -> str:
    from gradlint.discover import Target
    from gradlint.errors import LoadError
    from gradlint.load import load_target
    from gradlint.overrides import Overrides

    with pytest.raises(LoadError) as error:
        load_target(Target(write(tmp_path, "m.py", source)), overrides or Overrides())
    return str(error.value)


@pytest.mark.parametrize("returned,message", [
    # Lightning trains with no optimizer at all after None; gradlint used to check AdamW instead.
    ("None", f"configure_optimizers() returned None: {SHAPES}"),
    ("{'lr_scheduler': None}", f"configure_optimizers() returned a dict without 'optimizer': {SHAPES}"),
    ("[]", f"configure_optimizers() returned an empty list: {SHAPES}"),
    ("([], [])", f"configure_optimizers() returned an empty list: {SHAPES}"),
    ("torch.optim.SGD([{'params': []}], lr=0.1)",
     "configure_optimizers() returned SGD over no parameters: build it over model.parameters()"),
])
def test_configure_optimizers_without_parameters_is_an_error(tmp_path, returned, message):
    source = HEALTHY + f"\ndef configure_optimizers(model):\n    return {returned}\n"
    assert load_error(tmp_path, source) == message


@pytest.mark.parametrize("body,message", [
    # torch's constructors reject a negative lr, but not one written into param_groups afterwards,
    ("opt = torch.optim.SGD(model.parameters(), lr=0.1)\n    opt.param_groups[0]['lr'] = -0.1\n    return opt",
     "configure_optimizers() returned SGD with lr = -0.1: a learning rate must be a finite number >= 0"),
    # nor SGD's NaN,
    ("return torch.optim.SGD(model.parameters(), lr=float('nan'))",
     "configure_optimizers() returned SGD with lr = nan: a learning rate must be a finite number >= 0"),
    # nor anyone's inf,
    ("return torch.optim.Adam(model.parameters(), lr=float('inf'))",
     "configure_optimizers() returned Adam with lr = inf: a learning rate must be a finite number >= 0"),
    ("return torch.optim.SGD([{'params': model[0].parameters(), 'lr': 0.0},\n"
     "                        {'params': model[2].parameters(), 'lr': float('inf')}], lr=0.1)",
     "configure_optimizers() returned SGD with lr = inf in param group 1: "
     "a learning rate must be a finite number >= 0"),
    # nor a schedule that reaches inf.
    ("opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
     "    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: float('inf') if step > 3 else 1.0)\n"
     "    return {'optimizer': opt, 'lr_scheduler': {'scheduler': sched, 'interval': 'step'}}",
     "configure_optimizers()'s LambdaLR sets lr = inf at step 4: a learning rate must be a finite number >= 0"),
])
def test_configure_optimizers_lr_must_be_finite_and_not_negative(tmp_path, body, message):
    source = HEALTHY + f"\ndef configure_optimizers(model):\n    {body}\n"
    assert load_error(tmp_path, source) == message


@pytest.mark.parametrize("lr,shown", [(float("nan"), "nan"), (-1.0, "-1"), (float("inf"), "inf")])
def test_lr_override_must_be_finite_and_not_negative(tmp_path, lr, shown):
    from gradlint.overrides import Overrides

    message = f"--lr {shown}: a learning rate must be a finite number >= 0"
    assert load_error(tmp_path, HEALTHY, Overrides(lr=lr)) == message
    assert load_error(tmp_path, HEALTHY, Overrides(lr=lr, optimizer="SGD")) == message


@pytest.mark.parametrize("value,shown", [("-1", "-1"), ("-0.5", "-0.5"), ("float('nan')", "nan"),
                                         ("float('inf')", "inf"), ("True", "True")])
def test_gradient_clip_val_must_be_a_positive_finite_number(tmp_path, value, shown):
    message = f"gradient_clip_val = {shown} in the model file: must be a positive finite number"
    assert load_error(tmp_path, HEALTHY + f"\ngradient_clip_val = {value}\n") == message


def test_gradient_clip_val_zero_or_none_means_no_clipping_as_in_lightning(tmp_path):
    from gradlint.discover import Target
    from gradlint.load import load_target
    from gradlint.overrides import Overrides

    for value in ("0", "0.0", "None"):
        path = write(tmp_path, f"clip_{value.replace('.', '_')}.py", HEALTHY + f"\ngradient_clip_val = {value}\n")
        assert load_target(Target(path)).gradient_clip_val is None
    # The config's value (an override) is checked the same way.
    message = "gradient_clip_val = nan in the config: must be a positive finite number"
    assert load_error(tmp_path, HEALTHY, Overrides(gradient_clip_val=float("nan"))) == message


def test_cli_overrides_lr_and_optimizer(tmp_path):
    from gradlint.discover import Target
    from gradlint.load import load_target
    from gradlint.overrides import Overrides

    path = write(tmp_path, "m.py", HEALTHY + "\ngradient_clip_val = 0.5\n")
    spec = load_target(Target(path), Overrides(lr=0.3))
    assert spec.optimizer.describe() == "AdamW(lr=0.3)" and spec.gradient_clip_val == 0.5
    spec = load_target(Target(path), Overrides(optimizer="sgd", lr=0.2))
    assert spec.optimizer.describe() == "SGD(lr=0.2)"
    code, out = run("--optimizer", "Nope", path)
    assert code == 2 and "unknown optimizer 'Nope'" in out


@pytest.mark.parametrize("name", ["nope.py", "nope"])
def test_a_missing_path_is_an_error_and_the_others_are_still_linted(tmp_path, name):
    missing = str(tmp_path / name)
    good = write(tmp_path, "good.py", HEALTHY)
    code, out = run(missing, good)
    assert code == 2
    assert f"{missing}: error: no such file or directory" in out
    assert f"{good}::build_model: {no_evidence_risk('GL201')}" in out


# Files Python cannot read as source: the cause, not "syntax error at line None".
LATIN1_MODEL = b"import torch\nimport torch.nn as nn\n# caf\xe9\ndef build_model():\n    return nn.Linear(4, 2)\n"
UNREADABLE = {
    "latin1.py": (LATIN1_MODEL, "cannot decode as UTF-8 (byte 0xe9 at line 3) and no PEP 263 coding line"),
    "binary.py": (bytes(range(256)),
                  "not Python source: source code cannot contain null bytes (a binary or UTF-16 file?)"),
    "utf16.py": (HEALTHY.encode("utf-16"), "not Python source: a UTF-16 file (Python reads UTF-8, or the encoding a "
                                           "PEP 263 coding line names)"),
    "utf16le.py": (HEALTHY.encode("utf-16-le"),
                   "not Python source: source code cannot contain null bytes (a binary or UTF-16 file?)"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_a_file_python_cannot_read_is_a_one_line_error(tmp_path, name):
    data, cause = UNREADABLE[name]
    bad = tmp_path / name
    bad.write_bytes(data)
    good = write(tmp_path, "good.py", HEALTHY)
    code, out = run(str(bad), good)
    assert code == 2
    assert f"{bad}: error: {cause}" in out
    assert "Traceback" not in out and out.count("error:") == 1
    assert f"{good}::build_model: {no_evidence_risk('GL201')}" in out


def test_a_scan_reads_latin1_files_by_their_coding_line(tmp_path):
    declared = tmp_path / "models/declared.py"
    declared.parent.mkdir()
    declared.write_bytes(b"# -*- coding: latin-1 -*-\n" + HEALTHY.encode() + b"# caf\xe9\n")
    undeclared = tmp_path / "models/undeclared.py"
    undeclared.write_bytes(LATIN1_MODEL)
    code, out = run(str(tmp_path / "models"))
    assert code == 2
    assert f"{declared}::build_model: {no_evidence_risk('GL201')}" in out
    assert f"{undeclared}: error: {UNREADABLE['latin1.py'][1]}" in out
    assert "Traceback" not in out


def test_an_import_string_python_cannot_read_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "binmod.py").write_bytes(b"\x00" + HEALTHY.encode())
    # In a string, not a comment: CPython did not check the bytes of comments until gh-63161 (2025).
    (tmp_path / "latinmod.py").write_bytes(b"import torch\nimport torch.nn as nn\ns = 'caf\xe9'\n")
    monkeypatch.chdir(tmp_path)
    code, out = run("binmod:build_model", "latinmod:build_model")
    assert code == 2
    assert f"binmod:build_model: error: {UNREADABLE['binary.py'][1]}" in out
    assert f"latinmod:build_model: error: latinmod.py: {UNREADABLE['latin1.py'][1]}" in out  # the file named


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_a_fifo_or_device_named_explicitly_is_a_one_line_error(tmp_path):
    fifo, zero = tmp_path / "fifo.py", tmp_path / "zero.py"
    os.mkfifo(fifo)  # open() would wait for a writer forever
    os.symlink("/dev/zero", zero)  # read() would never end
    good = write(tmp_path, "good.py", HEALTHY)
    with never_blocks():
        code, out = run(str(fifo), str(zero), good)
    assert code == 2
    assert f"{fifo}: error: not a regular file (a FIFO)" in out
    assert f"{zero}: error: not a regular file (a character device)" in out
    assert f"{good}::build_model: {no_evidence_risk('GL201')}" in out


def test_file_without_model_does_not_import_torch(tmp_path):
    path = write(tmp_path, "utils.py", "def normalize(x):\n    return x\n")
    code = ("import sys\nfrom gradlint.cli import main\n"
            "try:\n    main([%r, '--skip-non-models'])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
            "print('torch imported:', 'torch' in sys.modules)\n") % path
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "exit 0" in result.stdout
    assert "torch imported: False" in result.stdout


def test_nothing_is_written_next_to_the_model(tmp_path):
    write(tmp_path, "m.py", HEALTHY)
    before = sorted(os.listdir(tmp_path))
    run(str(tmp_path / "m.py"))
    assert sorted(os.listdir(tmp_path)) == before  # no __pycache__


def test_same_input_same_output(tmp_path):
    path = write(tmp_path, "m.py", HEALTHY)
    assert run("--format", "json", path) == run("--format", "json", path)


def test_class_location_names_user_classes_and_not_library_ones(tmp_path):
    import torch.nn as nn

    from gradlint.load import import_file
    from gradlint.locations import class_location

    path = write(tmp_path, "blocks.py", """
        import torch.nn as nn


        class Block(nn.Module):
            pass
        """)
    location = class_location(import_file(path).Block())
    assert (os.path.basename(location.path), location.line, location.col) == ("blocks.py", 5, 1)
    assert class_location(nn.Linear(2, 2)) is None  # torch's own classes point nowhere
    assert class_location(int) is None  # a built-in class has no source file


def test_a_model_inside_torch_compile_is_linted_eagerly(tmp_path):
    # Compiled code does not run the trace's hooks (dynamo rejects them): gradlint lints the module
    # the torch.compile wrapper holds, and says so. A subprocess, as compiling imports torch._dynamo.
    path = write(tmp_path, "compiled.py", """
        import torch
        import torch.nn as nn

        def build_model():
            wide = nn.Linear(64, 64)
            nn.init.normal_(wide.weight, std=1.0)
            return torch.compile(nn.Sequential(wide, nn.ReLU(), nn.Linear(64, 2)), backend="eager")

        def example_inputs():
            return (torch.randn(8, 64, generator=torch.Generator().manual_seed(0)),)
    """)
    result = subprocess.run([sys.executable, "-m", "gradlint", "--select", "GL201", "--format", "full",
                             os.path.basename(path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    # The finding names the layer as the user built it (module 0, not _orig_mod.0), on its line.
    assert result.stdout.startswith("GL201 [error] init-scale-too-large: weight variance x fan_in is 65.2")
    assert "  --> compiled.py:6:12\n" in result.stdout and "  = module: 0\n" in result.stdout
    assert "  assumed model: the module inside torch.compile, run eagerly\n" in result.stdout
