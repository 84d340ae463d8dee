"""One HTML page for reading a run: per model its verdict, plots of what the run measured, and each
finding with its source excerpt and fix, in the order of the text report.

The page is self-contained: the style is inline, the plots are inline SVG drawn by
gradlint.emit.svg, and there is no script and no link outside the page, so it opens offline and
as a CI artifact. The plots read `ModelReport.measurements` (gradlint.measure.export), the same
numbers `--format json` writes; a plot whose measurement the run did not take is left out and
named. Findings that name a plotted layer are marked on its x position, linked to the finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from gradlint.emit import svg
from gradlint.emit.full import render_finding
from gradlint.emit.summary import baseline_line, summary_line
from gradlint.findings import Finding, ModelReport

# Findings linked from a plot by what they measure, when their module is not one of its x labels
# (a lookahead finding points at the optimizer, a saturation finding at the layer before the
# activation). Codes of other packages are linked by their module only.
RELATED = {
    "activations": ("GL301", "GL302", "GL303"),
    "residual": ("GL103",),
    "lookahead": ("GL604",),
    "curvature": ("GL602",),
}
MAX_STREAMS = 6  # residual streams drawn; a network with more stages rarely shows anything new after
BATCHES = {"repeated": "the example batch, repeated", "resampled": "rows resampled from the example batch"}

STYLE = """
.gradlint{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:980px}
.gradlint h1{font-size:1.6em;margin:.2em 0}.gradlint h2{font-size:1.3em;margin:0 0 .2em}
.gradlint h3{font-size:1.05em;margin:.2em 0}.gradlint a{color:#0b5cad}
.gradlint section.model{border:1px solid #d0d7de;border-radius:8px;padding:14px 18px;margin:18px 0}
.gradlint .path,.gradlint .muted{color:#59636e}
.gradlint .risk{display:inline-block;font-weight:600;border-radius:12px;padding:1px 10px;margin:4px 0}
.gradlint .level-high{background:#ffebe9;color:#a40e26}.gradlint .level-medium{background:#fff8c5;color:#7d4e00}
.gradlint .level-low{background:#dafbe1;color:#116329}.gradlint .level-none{background:#eaeef2;color:#424a53}
.gradlint dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
.gradlint dt{font-weight:600}.gradlint dd{margin:0}.gradlint dd ul{margin:0;padding-left:1.1em}
.gradlint table{border-collapse:collapse}.gradlint th,.gradlint td{border-bottom:1px solid #d0d7de;
padding:3px 10px;text-align:left}
.gradlint figure{margin:14px 0}.gradlint figcaption{font-weight:600;margin-bottom:4px}
.gradlint figcaption .muted{font-weight:400}
.gradlint svg.chart{max-width:100%;height:auto;font:11px system-ui,sans-serif}
.gradlint .frame{fill:#fff;stroke:#afb8c1}.gradlint .grid{stroke:#eaeef2}.gradlint .axis{stroke:#59636e}
.gradlint .tick{stroke:#59636e}.gradlint .tick-text,.gradlint .legend{fill:#424a53}
.gradlint .axis-title{fill:#1f2328;font-weight:600}.gradlint .label{fill:#1f2328;font-weight:600}
.gradlint polyline.line{fill:none;stroke-width:1.6}.gradlint .mark{stroke:#cf222e;stroke-dasharray:3 3}
.gradlint .link{fill:#cf222e;font-weight:600;cursor:pointer}
.gradlint .level{stroke:#8250df;stroke-dasharray:6 3}.gradlint .level-text{fill:#8250df}
.gradlint .nonfinite{stroke:#cf222e;stroke-width:2.2}
.gradlint .stable{fill:#dafbe1}.gradlint .unstable{fill:#ffebe9}.gradlint .bound{stroke:#1f2328;stroke-width:2}
.gradlint .region{fill:#59636e;font-style:italic}
.gradlint .s0{fill:#0969da;stroke:#0969da}.gradlint .s1{fill:#bf8700;stroke:#bf8700}
.gradlint .s2{fill:#8250df;stroke:#8250df}.gradlint .s3{fill:#1a7f37;stroke:#1a7f37}
.gradlint .s4{fill:#cf222e;stroke:#cf222e}.gradlint .s5{fill:#57606a;stroke:#57606a}
.gradlint circle.point,.gradlint rect.swatch,.gradlint rect.bar{stroke:none}
.gradlint article.finding{border-left:4px solid #afb8c1;padding:2px 12px;margin:12px 0}
.gradlint article.sev-error{border-color:#cf222e}.gradlint article.sev-warning{border-color:#bf8700}
.gradlint article.sev-info{border-color:#0969da}
.gradlint .code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.gradlint .sev{font-size:.85em;text-transform:uppercase;letter-spacing:.04em}
.gradlint pre{background:#f6f8fa;border-radius:6px;padding:8px 10px;overflow-x:auto;margin:6px 0;
font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
.gradlint .error{color:#a40e26;font-weight:600}
"""


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    """The page: a header with the run's summary, an index of the models when there are several,
    then one section per model. `quiet`, which trims what a terminal shows, leaves a page whole."""
    models = [r for r in reports if r.skipped is None]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>gradlint report: {escape(_title(models))}</title>", f"<style>{STYLE}</style></head>",
             '<body class="gradlint">', "<h1>gradlint report</h1>",
             f'<p class="summary">{escape(summary_line(reports))}</p>']
    if baseline is not None:
        parts.append(f'<p class="muted">{escape(baseline_line(baseline))}</p>')
    if len(models) > 1:
        parts.append(_index(models))
    parts += [section(report, number) for number, report in enumerate(models, start=1)]
    skipped = [r for r in reports if r.skipped is not None]
    if skipped:
        items = "".join(f"<li><code>{escape(r.path)}</code>: {escape(r.skipped)}</li>" for r in skipped)
        parts.append(f'<h2>Files without a model, skipped</h2><ul class="skipped">{items}</ul>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def fragment(report: ModelReport) -> str:
    """One model's section with the style it needs, for a notebook cell (Jupyter's _repr_html_)."""
    return f'<div class="gradlint"><style>{STYLE}</style>{section(report, 1)}</div>'


def section(report: ModelReport, number: int) -> str:
    """One model: its verdict, plots and findings, under the anchor `model-NUMBER`."""
    anchor = f"model-{number}"
    anchors = {id(f): f"{anchor}-finding-{k}" for k, f in enumerate(report.findings, start=1)}
    parts = [f'<section class="model" id="{anchor}">',
             f'<h2><a href="#{anchor}">{escape(report.target)}</a></h2>',
             f'<p class="path">{escape(report.path)}</p>']
    if report.error is not None:
        parts.append(f'<p class="error">error: {escape(report.error)}</p>')
    if report.linted:
        parts.append(_verdict(report, anchors))
        parts += _plots(report, anchor, anchors)
        if report.findings:
            parts.append(f"<h3>Findings ({len(report.findings)})</h3>")
        parts += [_finding(f, anchors[id(f)]) for f in report.findings]
    parts.append("</section>")
    return "\n".join(parts)


# -- the verdict ------------------------------------------------------------------------------
def _verdict(report: ModelReport, anchors: dict[int, str]) -> str:
    if report.risk is None:
        badge = '<span class="risk level-none">no risk</span>'
    else:
        badge = f'<span class="risk level-{report.level}">risk {report.risk:.2f} ({report.level})</span>'
    rows = []
    if report.risk is None or report.incomplete:
        rows.append(("Risk incomplete" if report.risk is not None else "Why no risk",
                     _list(escape(gap) for gap in report.incomplete)))
    if report.causes:
        rows.append(("Top causes", _list(_cause(cause, report.findings, anchors) for cause in report.causes)))
    if report.suggestion is not None:  # as the text formats print it, less the row's title
        rows.append(("Suggested lr", escape(report.suggestion.line().removeprefix("suggested lr: "))))
    if report.assumptions:
        rows.append(("Assumed", _list(escape(a) for a in report.assumptions)))
    if report.error is None:
        passes = report.passes
        rows.append(("Cost", f"{passes.get('forward', 0)} forward, {passes.get('backward', 0)} backward pass(es)"))
    body = "".join(f"<dt>{title}</dt><dd>{value}</dd>" for title, value in rows)
    return f'<div class="verdict">{badge}<dl>{body}</dl></div>'


def _cause(cause: str, findings: Sequence[Finding], anchors: dict[int, str]) -> str:
    """`GL602 lr-exceeds-curvature-bound`, linked to the first finding of that rule."""
    code = cause.split(" ", 1)[0]
    first = next((f for f in findings if f.code == code), None)
    return f'<a href="#{anchors[id(first)]}">{escape(cause)}</a>' if first is not None else escape(cause)


def _list(items) -> str:
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


# -- the plots --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Figure:
    kind: str
    title: str
    note: str
    charts: tuple[str, ...]
    related: tuple[str, ...] = ()  # links to findings about what the figure shows


def _plots(report: ModelReport, anchor: str, anchors: dict[int, str]) -> list[str]:
    measured = report.measurements
    if measured is None and report.risk is None:
        return []  # the model did not run: nothing was measured, and the error or "no risk" says why
    figures, missing = [], []
    if measured is not None and measured.layers is not None:
        figures.append(_layers_figure(measured.layers, report.findings, anchors))
    else:
        missing.append("per-layer gradient (needs the probe's backward pass: a GL5 rule selected)")
    if measured is not None and measured.residual_streams:
        figures.append(_residual_figure(measured.residual_streams))
    if measured is not None and measured.activations is not None:
        figures.append(_activations_figure(measured.activations))
    if measured is not None and measured.lookahead:
        figures.append(_lookahead_figure(measured.lookahead))
    else:
        missing.append("lookahead (GL604 takes it; not selected, skipped for size, or lr 0)")
    if measured is not None and measured.curvature is not None:
        figures.append(_curvature_figure(measured.curvature))
    else:
        missing.append("curvature (GL602 measures the top Hessian eigenvalue for SGD and ASGD)")
    parts = [_figure(figure, anchor, report.findings, anchors) for figure in figures]
    if missing:
        parts.append(f'<p class="muted">Not measured on this run: {escape("; ".join(missing))}.</p>')
    return parts


def _figure(figure: _Figure, anchor: str, findings: Sequence[Finding], anchors: dict[int, str]) -> str:
    codes = RELATED.get(figure.kind, ())
    related = [f'<a href="#{anchors[id(f)]}">{f.code}</a>' for f in findings if f.code in codes]
    links = f' <span class="muted">findings: {", ".join(related)}</span>' if related else ""
    return (f'<figure class="plot" id="{anchor}-{figure.kind}" data-kind="{figure.kind}">'
            f'<figcaption>{escape(figure.title)}{links}</figcaption>{"".join(figure.charts)}'
            f'<p class="muted">{figure.note}</p></figure>')


def marked_layers(names: Sequence[str], findings: Sequence[Finding]) -> list[tuple[int, Finding]]:
    """(x position, finding) for each finding that names a plotted layer, or a block holding
    layers: marked at its first layer. The notebook's plot() marks the same positions."""
    marked = []
    for finding in findings:
        if not finding.module:
            continue
        index = next((i for i, name in enumerate(names)
                      if name == finding.module or name.startswith(finding.module + ".")), None)
        if index is not None:
            marked.append((index, finding))
    return marked


def _marks(names: Sequence[str], findings: Sequence[Finding], anchors: dict[int, str]) -> list[svg.Link]:
    return [svg.Link(index, f.code, f"#{anchors[id(f)]}", f"{f.code} {f.name}: {f.message}")
            for index, f in marked_layers(names, findings)]


def _layers_figure(layers, findings: Sequence[Finding], anchors: dict[int, str]) -> _Figure:
    links = _marks(layers.names, findings, anchors)
    gradient = svg.line_chart(layers.names, [svg.Series("layers.grad_norm", "||dL/dh||", layers.grad_norm, 0)],
                              y_title="||dL/dh||", links=links)
    activation = svg.line_chart(layers.names, [svg.Series("layers.activation_rms", "activation RMS",
                                                          layers.activation_rms, 1)],
                                y_title="RMS of h", links=links)
    note = ("The backward signal dL/dh at the output h of each weighted layer (its L2 norm over the batch) and "
            "the RMS of h, from the probe's forward and backward pass at initialization, layers in forward "
            "order. A gradient that rises steadily towards the first layers explodes with depth.")
    return _Figure("layers", f"Per layer: gradient and activation ({len(layers.names)} weighted layers)", note,
                   (gradient, activation))


def _residual_figure(streams) -> _Figure:
    shown = streams[:MAX_STREAMS]
    length = max(len(s.mean_square) for s in shown)
    labels = ["in"] + [str(k) for k in range(1, length)]
    series = [svg.Series(f"residual_streams[{i}].mean_square", f"from {s.start}", s.mean_square, i % 6)
              for i, s in enumerate(shown)]
    names = [f"{shown[0].start} (input)", *shown[0].blocks] if len(shown) == 1 else None
    chart = svg.line_chart(labels, series, y_title="mean square of x", x_title="after block", rotate=False,
                           names=names)
    more = f" The first {MAX_STREAMS} of {len(streams)} streams are drawn." if len(streams) > MAX_STREAMS else ""
    note = ("The mean square of the residual stream x where it enters its first block and after each block's "
            "add x + f(x). Unnormalized branches added at full scale make it grow geometrically." + more)
    return _Figure("residual", f"Residual stream ({len(streams)} stream{'' if len(streams) == 1 else 's'})",
                   escape(note), (chart,))


def _activations_figure(activations) -> _Figure:
    series = []
    if any(v is not None for v in activations.saturated_fraction):
        series.append(svg.Series("activations.saturated_fraction", "saturated", activations.saturated_fraction, 2))
    if any(v is not None for v in activations.dead_fraction):
        series.append(svg.Series("activations.dead_fraction", "dead units", activations.dead_fraction, 3))
    chart = svg.bar_chart(activations.names, series, y_title="fraction")
    note = ("Per activation call, in forward order: for tanh, sigmoid and the like the fraction of outputs in "
            "the flat tails (|tanh| >= 0.99, sigmoid outside (0.01, 0.99)), which pass almost no gradient; for "
            "ReLU-like ones the fraction of units that are zero for the whole batch.")
    return _Figure("activations", f"Activations: saturated and dead units ({len(activations.names)} calls)",
                   escape(note), (chart,))


def _lookahead_figure(curves) -> _Figure:
    steps = max(len(c.losses) for c in curves)
    labels = [str(k) for k in range(1, steps + 1)]
    loss = svg.line_chart(labels, [svg.Series(f"lookahead[{i}].losses", c.batches, c.losses, i)
                                   for i, c in enumerate(curves)], y_title="loss", x_title="step", rotate=False)
    clip = curves[0].clip
    levels = [svg.Level(clip, f"clipped above {clip:g}")] if clip else []
    grad = svg.line_chart(labels, [svg.Series(f"lookahead[{i}].grad_norms", c.batches, c.grad_norms, i)
                                   for i, c in enumerate(curves)], y_title="gradient norm", x_title="step",
                          rotate=False, levels=levels)
    runs = "; ".join(f"{c.batches}: {BATCHES.get(c.batches, c.batches)}, {len(c.losses)} of "
                     f"{c.planned_steps} step{'' if c.planned_steps == 1 else 's'}"
                     + (f" (cut from {c.asked_steps} by the FLOP budget)" if c.planned_steps < c.asked_steps else "")
                     for c in curves)
    clipping = (f" Gradients were clipped at a global norm of {clip:g} (gradient_clip_val) before each step; "
                "the norms drawn are before clipping." if clip else " No gradient clipping.")
    note = (f"Real optimizer steps on a copy of the model ({runs}). The loss should fall; a cross marks a value "
            f"that was not finite, where the run stopped.{clipping}")
    return _Figure("lookahead", "Lookahead: loss and gradient norm per step", escape(note), (loss, grad))


def _curvature_figure(curvature) -> _Figure:
    value, limit = curvature.top_eigenvalue, curvature.max_stable_eigenvalue
    chart = svg.margin_chart(value, limit, value_key="curvature.top_eigenvalue",
                             bound_key="curvature.max_stable_eigenvalue", value_text=f"λ = {value:.3g}",
                             bound_text=f"{curvature.bound:.3g}/lr = {limit:.3g}")
    verdict = (f"{curvature.ratio:.3g}x the bound: the error along the top curvature direction grows every step"
               if curvature.ratio > 1 else f"{1 / curvature.ratio:.3g}x below the bound")
    note = (f"The top eigenvalue lambda of the loss Hessian at initialization (Lanczos, {curvature.iterations} "
            f"iterations) against the largest eigenvalue {curvature.optimizer} is stable on, "
            f"{curvature.bound:.3g}/lr: lr x lambda = {curvature.lr * value:.3g} is {verdict}.")
    return _Figure("curvature", "Curvature: top Hessian eigenvalue against the stability bound", escape(note),
                   (chart,))


# -- findings and the index -------------------------------------------------------------------
def _finding(finding: Finding, anchor: str) -> str:
    """Its code, severity, name and message, then what --format full prints below that line:
    where it points, the source line, the module and the fix."""
    severity = finding.severity.value
    details = "\n".join(render_finding(finding)[1:])
    return (f'<article class="finding sev-{severity}" id="{anchor}"><h3><a class="code" href="#{anchor}">'
            f'{finding.code}</a> <span class="sev">{severity}</span> {escape(finding.name)}</h3>'
            f'<p class="message">{escape(finding.message)}</p><pre>{escape(details)}</pre></article>')


def _index(models: Sequence[ModelReport]) -> str:
    rows = []
    for number, report in enumerate(models, start=1):
        if report.risk is not None:
            risk, level = f"{report.risk:.2f}", report.level or ""
        else:
            risk, level = ("error" if report.error is not None else "none"), ""
        rows.append(f'<tr><td><code>{escape(report.path)}</code></td><td><a href="#model-{number}">'
                    f'{escape(report.target)}</a></td><td>{risk}</td><td>{escape(level)}</td>'
                    f'<td>{len(report.findings)}</td></tr>')
    return ('<table class="index"><thead><tr><th>file</th><th>model</th><th>risk</th><th>level</th>'
            f'<th>findings</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _title(models: Sequence[ModelReport]) -> str:
    if len(models) == 1:
        return models[0].target
    return f"{len(models)} models"
