"""The notebook view of what gradlint.check returns: the concise report as its text, the HTML
report's section as its HTML, to_dict() as the JSON's model, and plot() with and without matplotlib."""

from __future__ import annotations

import json
import sys

import pytest

import gradlint
from gradlint.emit import FORMATS, concise, html
from gradlint.notebook import MATPLOTLIB_MISSING, Report


def _deep_mlp():
    """Eight ReLU layers initialized at 0.5 std, far above He: the gradient explodes with depth."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    layers = []
    for _ in range(8):
        layer = nn.Linear(32, 32)
        nn.init.normal_(layer.weight, std=0.5)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 4)), torch.randn(16, 32)


@pytest.fixture(scope="module")
def report():
    model, inputs = _deep_mlp()
    return gradlint.check(model, inputs, select=["GL2", "GL5"])


def test_check_returns_a_report_that_prints_as_the_concise_format(report):
    assert isinstance(report, Report)
    # What `gradlint` prints for the model, less the summary line.
    assert str(report) == repr(report) == concise.render([report]).rstrip("\n").rsplit("\n", 1)[0]
    lines = str(report).splitlines()
    assert lines[0].startswith("<model>:1:1: GL201 [warning] 10: weight variance x fan_in is ")
    assert lines[-3].startswith("Sequential: risk ")
    assert lines[-2:] == ["  assumed optimizer: AdamW(lr=0.001) (no optimizer given)",
                          "  assumed loss: cross-entropy against random labels (no loss_fn)"]


def test_the_html_view_is_the_reports_section(report):
    page = html.render([report])
    section = html.section(report, 1)
    assert section in page and section in report._repr_html_()
    assert report._repr_html_().startswith('<div class="gradlint"><style>')
    assert 'data-series="layers.grad_norm"' in section


def test_to_dict_is_the_jsons_model(report):
    assert report.to_dict() == json.loads(FORMATS["json"]([report]))["models"][0]
    layers = report.to_dict()["measurements"]["layers"]
    assert layers["names"] == ["0", "2", "4", "6", "8", "10", "12", "14", "16"]
    assert layers["kinds"] == ["Linear"] * 9
    # The init is far above He: the backward signal grows towards the first layer.
    assert layers["grad_norm"][0] > 10 * layers["grad_norm"][-2]


def test_plot_draws_the_per_layer_figure(report):
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed (pip install matplotlib)")
    import matplotlib

    matplotlib.use("Agg")
    figure = report.plot()
    gradient, activation = figure.axes
    layers = report.measurements.layers
    assert list(gradient.lines[0].get_ydata()) == list(layers.grad_norm)
    assert list(activation.lines[0].get_ydata()) == list(layers.activation_rms)
    assert gradient.get_yscale() == activation.get_yscale() == "log"
    marked = [(index, f.code) for index, f in html.marked_layers(layers.names, report.findings)]
    assert marked and [text.get_text() for text in gradient.texts] == [code for _, code in marked]
    # One dashed line per marked layer on each axes, after the data line.
    assert [line.get_xdata()[0] for line in gradient.lines[1:]] == [index for index, _ in marked]
    assert [tick.get_text() for tick in activation.get_xticklabels()] == list(layers.names)


def test_plot_says_what_to_install_without_matplotlib(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError) as raised:
        report.plot()
    assert str(raised.value) == MATPLOTLIB_MISSING
    assert 'pip install "gradlint[plot]"' in MATPLOTLIB_MISSING


def test_plot_of_a_model_that_measured_no_gradient():
    model, inputs = _deep_mlp()
    static = gradlint.check(model, inputs, select=["GL201"])  # the forward pass only
    assert static.measurements.layers is None
    with pytest.raises(ValueError, match="nothing to plot, the per-layer gradient was not measured"):
        static.plot()
