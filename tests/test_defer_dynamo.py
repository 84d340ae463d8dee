"""The CLI's stand-in for torch._dynamo: optimizers run without importing it, and anything that
really needs dynamo gets the real module. Each check runs in a fresh interpreter, since the point
is what a process imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

REAL_DYNAMO = "torch._dynamo.convert_frame"  # imported by torch._dynamo itself, never by the stand-in


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


TRAIN_A_STEP = """
    import torch
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    model(torch.ones(2, 3)).pow(2).mean().backward()
    optimizer.step()
"""


def test_an_optimizer_step_imports_dynamo_without_the_stand_in():
    # The cost the stand-in removes: if torch stops importing dynamo here, the stand-in can go.
    out = run_python("import sys\n" + textwrap.dedent(TRAIN_A_STEP) + f"print({REAL_DYNAMO!r} in sys.modules)")
    assert out == "True"


def test_with_the_stand_in_an_optimizer_step_does_not_import_dynamo():
    out = run_python("import sys\nfrom gradlint import defer_dynamo\ndefer_dynamo.install()\n"
                     + textwrap.dedent(TRAIN_A_STEP)
                     + f"print({REAL_DYNAMO!r} in sys.modules, defer_dynamo.installed())")
    assert out == "False True"


def test_install_imports_nothing_and_keeps_a_dynamo_already_imported():
    out = run_python(f"""
        import sys
        from gradlint import defer_dynamo
        defer_dynamo.install()
        print('torch' in sys.modules, defer_dynamo.installed())
        import torch._dynamo
        del sys.modules['torch._dynamo']
        import importlib; real = importlib.import_module('torch._dynamo')
        defer_dynamo.install()
        print(sys.modules['torch._dynamo'] is real, defer_dynamo.installed())
    """)
    assert out == "False True\nTrue False"


def test_any_other_use_of_dynamo_loads_the_real_module_and_rewraps_the_optimizer():
    out = run_python(f"""
        import sys
        from gradlint import defer_dynamo
        defer_dynamo.install()
        import torch
        optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        optimizer.zero_grad()
        zero_grad = torch.optim.Optimizer.zero_grad.__wrapped__
        eager = getattr(zero_grad, '__dynamo_disable', None) is zero_grad
        config = torch._dynamo.config  # a real use: the stand-in hands over
        loaded = {REAL_DYNAMO!r} in sys.modules and not defer_dynamo.installed()
        rewrapped = not hasattr(zero_grad, '__dynamo_disable')
        optimizer.zero_grad()
        wrapped_by_dynamo = getattr(zero_grad, '__dynamo_disable') is not zero_grad
        print(eager, loaded, rewrapped, wrapped_by_dynamo)
    """)
    assert out == "True True True True"


@pytest.mark.parametrize("first", ["compile", "submodule"])
def test_compiling_after_the_stand_in_works(first):
    trigger = ("torch.compile(lambda x: x * 2, backend='eager')(torch.ones(2))" if first == "compile"
               else "import torch._dynamo.config")
    out = run_python(f"""
        from gradlint import defer_dynamo
        defer_dynamo.install()
        import torch
        torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1).zero_grad()
        {trigger}
        print(torch.compile(lambda x: x + 1, backend='eager')(torch.zeros(2)).tolist())
    """)
    assert out == "[1.0, 1.0]"
