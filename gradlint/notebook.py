"""What `gradlint.check` returns: the model's report, made readable where people call it from, a
notebook or a REPL. Printed, it is the concise text report; a notebook shows the HTML report's
section (plots included); `plot()` draws the per-layer figure with matplotlib, an optional extra
(`pip install "gradlint[plot]"`) that linting never imports."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from gradlint.emit import concise, html
from gradlint.findings import ModelReport

MATPLOTLIB_MISSING = ("Report.plot() draws with matplotlib, which is not installed: "
                      'pip install "gradlint[plot]" (or pip install matplotlib)')


class Report(ModelReport):
    """A ModelReport with a notebook view: `str()`/`repr()` give the concise report, Jupyter
    shows `_repr_html_()`, `to_dict()` is what `--format json` writes for the model, and
    `plot()` draws the gradient and activation per weighted layer."""

    @classmethod
    def of(cls, report: ModelReport) -> Report:
        return cls(**{f.name: getattr(report, f.name) for f in fields(ModelReport)})

    def __str__(self) -> str:
        return concise.render_model(self).rstrip("\n")

    # The dataclass repr is a dump of every field (evidence, passes, measurements): in a notebook
    # or a REPL the report is what people want to read.
    __repr__ = __str__

    def _repr_html_(self) -> str:
        return html.fragment(self)

    def plot(self) -> Any:
        """The per-layer figure: ||dL/dh|| and the activation RMS of each weighted layer in forward
        order (log scale), with the layers that findings name marked. Returns the matplotlib
        Figure. Raises ImportError without matplotlib, ValueError when the run did not measure
        the per-layer gradient (the model did not run, or no probe rule was selected)."""
        layers = self.measurements.layers if self.measurements is not None else None
        if layers is None:  # said before asking for matplotlib: installing it would not help
            raise ValueError(f"{self.target}: nothing to plot, the per-layer gradient was not measured "
                             "(it needs the model to run with a GL5 probe rule selected)")
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(MATPLOTLIB_MISSING) from None
        figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(max(6.0, 0.25 * len(layers.names)), 6))
        positions = range(len(layers.names))
        for axes, values, label, colour in ((top, layers.grad_norm, "||dL/dh||", "#0969da"),
                                            (bottom, layers.activation_rms, "RMS of h", "#bf8700")):
            axes.plot(positions, values, marker="o", markersize=3, color=colour)
            axes.set_yscale("log")
            axes.set_ylabel(label)
            axes.grid(True, which="major", alpha=0.3)
        stacked: dict[int, int] = {}  # findings already marked at a position: their codes stack up
        for index, finding in html.marked_layers(layers.names, self.findings):
            for axes in (top, bottom):
                axes.axvline(index, color="#cf222e", linestyle="--", linewidth=0.8)
            row = stacked[index] = stacked.get(index, -1) + 1
            top.annotate(finding.code, (index, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 2 + 9 * row),
                         textcoords="offset points", ha="center", va="bottom", color="#cf222e", fontsize=8)
        bottom.set_xticks(list(positions), layers.names, rotation=60, ha="right", fontsize=7)
        risk = "no risk" if self.risk is None else f"risk {self.risk:.2f} ({self.level})"
        figure.suptitle(f"{self.target}: {risk}", fontsize=10)
        figure.tight_layout()
        return figure
