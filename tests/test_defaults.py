"""Defaults gradlint assumes, and the messages around them, on models written here: findings
about gradlint's own optimizer, a trend with depth made by one layer, a first optimizer step
whose size overflows float32."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main


def write(directory, name: str, source: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path)


def lint_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["--format", "json", *args])
    return result.exit_code, json.loads(result.output)


def model_report(path: str, *args: str) -> dict:
    code, document = lint_json(*args, path)
    (report,) = document["models"]
    assert "error" not in report, report
    return report


# -- where optimizer findings point, and messages ----------------------------------------------------
def test_default_optimizer_findings_point_at_the_factory_and_say_it_is_assumed(tmp_path):
    # A model of a library class (nn.Sequential here, a Hugging Face model in practice) has no class
    # line in the file: findings about gradlint's AdamW used to point at line 1, the imports.
    source = """
    import torch
    import torch.nn as nn

    def build_model():
        torch.manual_seed(0)
        layers = [nn.Linear(32, 32), nn.Tanh()] * 1 + [nn.Linear(32, 10)]
        model = nn.Sequential(*layers)
        with torch.no_grad():
            model[0].weight.mul_(1e-3)
        return model

    def example_inputs():
        return torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    """
    report = model_report(write(tmp_path, "tiny.py", source), "--select", "GL603", "--lr", "1")
    (finding,) = report["findings"]
    assert finding["message"].endswith("; the optimizer is assumed (no configure_optimizers)")
    assert (finding["line"], finding["col"]) == (5, 1)  # def build_model():
    module_level = """
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))
    with torch.no_grad():
        model[0].weight.mul_(1e-3)

    def example_inputs():
        return torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    """
    report = model_report(write(tmp_path, "level.py", module_level), "--select", "GL603", "--lr", "1")
    (finding,) = report["findings"]
    assert (finding["line"], finding["col"]) == (6, 1)  # model = nn.Sequential(...)


def test_first_step_that_overflows_is_reported_in_numbers(tmp_path):
    # lr 1e37 moves every weight by ~1e37: each value is a finite float32, their norm is not.
    source = """
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(256, 256)
            self.fc2 = nn.Linear(256, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    def build_model():
        torch.manual_seed(0)
        return Net()

    def example_inputs():
        return torch.randn(16, 256, generator=torch.Generator().manual_seed(0))

    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=1e37)
    """
    report = model_report(write(tmp_path, "huge.py", source), "--select", "GL601,GL603")
    messages = {f["code"]: f["message"] for f in report["findings"]}
    assert "inf" not in messages["GL601"] and "nan" not in messages["GL601"]
    ratio = float(messages["GL601"].split(" by ")[1].split("x its norm")[0])
    assert 1e38 < ratio < 1e40, messages["GL601"]
    assert "%" not in messages["GL603"] and "to nan instead of the" in messages["GL603"]
    assert messages["GL603"].endswith("decrease its gradient predicts: the step is so large that the loss overflows")


def deep_linear(count: int, scale: float) -> str:
    # Orthogonal linear layers pass the gradient back unchanged, except the one scaled, next to last.
    return f"""
    import torch
    import torch.nn as nn

    def build_model():
        torch.manual_seed(0)
        layers = [nn.Linear(16, 16, bias=False) for _ in range({count})]
        for layer in layers:
            nn.init.orthogonal_(layer.weight)
        with torch.no_grad():
            layers[{count - 2}].weight.mul_({scale})
        return nn.Sequential(*layers)

    def example_inputs():
        return torch.randn(16, 16, generator=torch.Generator().manual_seed(0))

    def example_targets():
        return torch.randn(16, 16, generator=torch.Generator().manual_seed(1))
    """


@pytest.mark.parametrize("code,count,scale,expected", [
    ("GL502", 60, 300.0, "||dL/dh|| at 0 is 300x that at 59, over 60 weighted layers but not steadily (the fitted "
                         "growth per layer, chi_hat = 1.04, is ~1): the largest step is back through 58 (3e+02x)"),
    ("GL503", 200, 1e-5, "||dL/dh|| at 0 is 1.0e-5x that at 199, over 200 weighted layers but not steadily (the "
                         "fitted decay per layer, chi_hat = 0.993, is ~1): the largest drop is back through 198 "
                         "(1e-05x)"),
])
def test_gradient_trend_of_one_layer_is_not_a_factor_per_layer(tmp_path, code, count, scale, expected):
    # One layer makes the whole gain: "grows 1x per layer" (the fitted factor, rounded) said nothing.
    report = model_report(write(tmp_path, "deep.py", deep_linear(count, scale)), "--select", code)
    (finding,) = report["findings"]
    assert finding["message"] == expected
