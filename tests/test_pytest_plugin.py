"""The pytest plugin (entry point pytest11) and gradlint.testing, run through pytester."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
# pytester runs the inner session in this process, then drops the modules that session imported.
# Import torch and gradlint's modules before any pytester exists, so they are kept: torch cannot
# be imported a second time in one process.
import torch  # noqa: F401

import gradlint.api  # noqa: F401
import gradlint.emit.full  # noqa: F401
import gradlint.testing  # noqa: F401
from gradlint.registry import all_rules

all_rules()
pytest_plugins = ["pytester"]

MODELS = textwrap.dedent("""\
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self, std=None):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 4)
            if std is None:
                nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
            else:
                nn.init.normal_(self.fc1.weight, std=std)

        def forward(self, x):
            return self.fc2(self.fc1(x).relu())
    """)


def test_importing_the_plugin_costs_nothing():
    code = ("import sys, gradlint.pytest_plugin, gradlint.testing; "
            "print([m for m in ('torch', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(gl_models_plugin=MODELS)
    pytester.syspathinsert()
    return pytester


def test_fixture(suite):
    suite.makepyfile(test_models=textwrap.dedent("""\
        import pytest
        import torch
        from gl_models_plugin import Net

        X = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))


        def test_check_returns_the_report(gradlint):
            report = gradlint.check(Net(std=1.0), X, select=["GL201"])
            assert [(f.code, f.module) for f in report.findings] == [("GL201", "fc1")]
            assert report.level in {"low", "medium", "high"}


        def test_healthy_model_is_trainable(gradlint):
            report = gradlint.assert_trainable(Net(), X, select=["GL201"])
            assert report.findings == ()


        def test_exploding_model_is_not(gradlint):
            gradlint.assert_trainable(Net(std=1.0), X, select=["GL201"])


        @pytest.mark.gradlint(select=["GL201"], fail_on="warning")
        def test_marker_sets_the_defaults(gradlint):
            assert gradlint.check(Net(std=0.5), X).findings[0].severity.value == "warning"
            with pytest.raises(AssertionError):
                gradlint.assert_trainable(Net(std=0.5), X)
            gradlint.assert_trainable(Net(std=0.5), X, fail_on="error")
        """))
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*def test_exploding_model_is_not(gradlint):",
        ">       gradlint.assert_trainable(Net(std=1.0), X, select=[[]\"GL201\"[]])",
        "E       AssertionError: GL201 [[]error[]] init-scale-too-large: weight variance x fan_in is *",
        "E         --> gl_models_plugin.py:4:1",
        "E         |",
        "E       4 | class Net(nn.Module):",
        "E         | ^",
        "E         = module: fc1",
        "E         help: initialize at the critical scale",
        "E       gl_models_plugin.py::Net: risk *; causes: GL201 init-scale-too-large",
        "E         assumed optimizer: AdamW(lr=0.001) (no optimizer given)",
        "E         assumed loss: *",
        "E         cost: * forward, * backward pass(es)",
        "E       Found 1 finding in 1 model (1 error).",
    ])
    assert "pytest_plugin.py" not in result.stdout.str() and "testing.py" not in result.stdout.str()
    assert "PytestUnknownMarkWarning" not in result.stdout.str()


def test_plugin_can_be_disabled(suite):
    suite.makepyfile(test_off="def test_needs_the_fixture(gradlint):\n    pass\n")
    result = suite.runpytest("-p", "no:gradlint", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'gradlint' not found*"])


def test_assert_trainable_message_is_the_full_report(tmp_path, monkeypatch):
    import torch

    from gradlint import check
    from gradlint.emit import full
    from gradlint.testing import assert_trainable

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(MODELS, str(tmp_path / "net.py"), "exec"), namespace)
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError) as failure:
        assert_trainable(namespace["Net"](std=1.0), x, select=["GL201"])
    assert str(failure.value) == full.render([check(namespace["Net"](std=1.0), x, select=["GL201"])]).rstrip("\n")
    assert assert_trainable(namespace["Net"](std=1.0), x, select=["GL201"], severity={"GL201": "warning"}).findings
    with pytest.raises(ValueError, match="unknown severity 'fatal'"):
        assert_trainable(namespace["Net"](), x, fail_on="fatal")
