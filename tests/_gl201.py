"""Shared by the config, suppression, format and baseline tests: a model GL201 fires on (line 8,
the only rule that is stable while the others are written), its healthy twin, and the CLI run
in-process."""

from __future__ import annotations

import functools
import json
import textwrap

from click.testing import CliRunner

from gradlint.cli import main
from tests.conftest import risk_text

BROKEN = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 4)
            nn.init.normal_(self.fc1.weight, std=1.0)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))


    def build_model():
        return Net()


    def example_inputs():
        return (torch.randn(8, 64, generator=torch.Generator().manual_seed(0)),)
    """)
HEALTHY = BROKEN.replace("nn.init.normal_(self.fc1.weight, std=1.0)",
                         'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")')
FC1 = "        self.fc1 = nn.Linear(64, 64)"
FC2 = "        self.fc2 = nn.Linear(64, 4)"
ASSUMED = ("  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
           "  assumed loss: cross-entropy against random labels (no loss_fn)\n")


def run(*args: str, select: str | None = "GL201,GL901") -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `gradlint --select SELECT ARGS...` in the working directory."""
    result = CliRunner().invoke(main, [*(["--select", select] if select else []), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def with_comment(source: str, line: str, comment: str) -> str:
    assert line in source
    return source.replace(line, f"{line}  {comment}")


@functools.cache
def gl201() -> tuple[str, str]:
    """GL201's message for BROKEN and the risk text: they depend on the seeded init and the risk
    model, so they are read once (from json, in a folder of their own) and then checked exactly."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            with open("m.py", "w") as handle:
                handle.write(BROKEN)
            _, out, _ = run("--isolated", "--format", "json", "m.py", select="GL201")
        finally:
            os.chdir(cwd)
    model = json.loads(out)["models"][0]
    return model["findings"][0]["message"], risk_text(model)


def finding(path: str = "model.py") -> str:
    """The concise line GL201 prints for BROKEN written to `path`."""
    return f"{path}:8:20: GL201 [error] fc1: {gl201()[0]}\n"
