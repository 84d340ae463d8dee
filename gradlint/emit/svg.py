"""Charts as inline SVG text, for the HTML report (gradlint.emit.html).

Why a small module of our own rather than a plotting library: the report is one file that must
open offline, as a CI artifact or an attachment, with nothing fetched. A JavaScript charting
library (Plotly, Vega-Lite, Chart.js) would have to be inlined whole in every report, from a few
hundred kilobytes to several megabytes of script before the first point, and would draw nothing
where scripts are blocked (a strict Content-Security-Policy, a mail client's preview).
matplotlib writes self-contained SVG, but it would become a dependency of the command line and
an import of its own on every run, and it draws each glyph of each label as a path. The report
needs little: a log or linear axis, points, lines, bars, reference lines, and links from a layer
to the finding that names it. That is a few hundred lines here, no script, a few kilobytes per
chart, and text that the browser renders, searches and copies.

Every data point is one element of class `point` carrying `data-series` (the measurement's
name in the JSON) and `data-value`, so a test, or a reader's tool, can find each plotted
number; a value that was not finite is drawn as a cross at the top of the axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP = 70, 16, 38
LINK_ROW = 13  # the height of a row of finding links above the plot
LINK_WIDTH = 42  # the room one link ("GL201") takes on its row
MAX_X_LABELS = 40
LABEL_CHARS = 22  # longer axis labels are cut; the point's tooltip keeps the whole name


@dataclass(frozen=True)
class Series:
    key: str  # the measurement's name in the JSON: the points' data-series
    label: str  # the legend's text
    values: tuple[float | None, ...]  # one per x position; None: measured, not finite
    style: int = 0  # colour index (CSS classes s0, s1, ...)


@dataclass(frozen=True)
class Link:
    """A marked x position that links to what names it (a finding's anchor)."""

    index: int
    text: str
    href: str
    title: str


@dataclass(frozen=True)
class Level:
    """A horizontal reference line (the clipping threshold)."""

    value: float
    text: str


def line_chart(labels: Sequence[str], series: Sequence[Series], *, y_title: str, x_title: str = "",
               links: Sequence[Link] = (), levels: Sequence[Level] = (), rotate: bool = True,
               names: Sequence[str] | None = None) -> str:
    """Points joined by lines over categorical x positions (layers, steps), on a log axis when every
    finite value is positive. `names` are the points' tooltip names (default: the labels)."""
    finite = [v for s in series for v in s.values if v is not None] + [lv.value for lv in levels]
    axis = _Axis.fit(finite, log=bool(finite) and min(finite) > 0)
    frame = _Frame(labels, rotate, links)
    parts = [*frame.grid(axis, y_title, x_title), *frame.x_labels(), *frame.links(links)]
    for level in levels:
        y = frame.y(axis, level.value)
        parts.append(f'<line class="level" x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="level-text" x="{frame.right - 4}" y="{y - 4:.1f}" text-anchor="end">'
                     f'{escape(level.text)}</text>')
    for s in series:
        parts.append(_polyline(frame, axis, s))
        for i, value in enumerate(s.values):
            parts.append(_point(frame, axis, s, i, value, (names or labels)[i]))
    parts.append(_legend(series, frame.right))
    return frame.svg(parts)


def bar_chart(labels: Sequence[str], series: Sequence[Series], *, y_title: str, links: Sequence[Link] = ()) -> str:
    """Fractions (0 to 1) as bars, one bar per label from the first series that has a value there."""
    axis = _Axis(0.0, 1.0, log=False, ticks=(0.0, 0.25, 0.5, 0.75, 1.0), percent=True)
    frame = _Frame(labels, True, links)
    parts = [*frame.grid(axis, y_title, ""), *frame.x_labels(), *frame.links(links)]
    width = max(2.0, min(28.0, frame.step * 0.7))
    for s in series:
        for i, value in enumerate(s.values):
            if value is None:
                continue  # the measure does not apply to this activation
            x, y, bottom = frame.x(i), frame.y(axis, value), frame.y(axis, 0.0)
            parts.append(f'<rect class="point bar s{s.style}" data-series="{s.key}" data-index="{i}" '
                         f'data-value="{_number(value)}" x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                         f'height="{max(bottom - y, 0.5):.1f}"><title>{escape(labels[i])}: {s.label} '
                         f'{value:.1%}</title></rect>')
    parts.append(_legend(series, frame.right))
    return frame.svg(parts)


def margin_chart(value: float, bound: float, *, value_key: str, bound_key: str, value_text: str,
                 bound_text: str) -> str:
    """One number against its limit on a log line: the stable side of the limit green, the other
    red, the value a point on it (the top Hessian eigenvalue against the largest stable one)."""
    width, height, left, right = WIDTH, 130, 40, WIDTH - 40
    low = math.floor(math.log10(min(value, bound))) - 1
    high = math.ceil(math.log10(max(value, bound))) + 1

    def x(v: float) -> float:
        return left + (math.log10(v) - low) / (high - low) * (right - left)

    axis_y, xb, xv = 78, x(bound), x(value)
    parts = [f'<rect class="stable" x="{left}" y="{axis_y - 18}" width="{xb - left:.1f}" height="36"/>',
             f'<rect class="unstable" x="{xb:.1f}" y="{axis_y - 18}" width="{right - xb:.1f}" height="36"/>',
             f'<line class="axis" x1="{left}" x2="{right}" y1="{axis_y + 18}" y2="{axis_y + 18}"/>']
    if xb - left > 60:
        parts.append(f'<text class="region" x="{left + 6}" y="{axis_y - 6}">stable</text>')
    if right - xb > 60:
        parts.append(f'<text class="region" x="{right - 6}" y="{axis_y - 6}" text-anchor="end">unstable</text>')
    step = max(1, math.ceil((high - low) / 8))
    for decade in range(low, high + 1, step):
        tx = x(10.0 ** decade)
        parts.append(f'<line class="tick" x1="{tx:.1f}" x2="{tx:.1f}" y1="{axis_y + 18}" y2="{axis_y + 23}"/>'
                     f'<text class="tick-text" x="{tx:.1f}" y="{axis_y + 35}" text-anchor="middle">'
                     f'{_decade(decade)}</text>')
    parts.append(f'<line class="point bound" data-series="{bound_key}" data-value="{_number(bound)}" '
                 f'x1="{xb:.1f}" x2="{xb:.1f}" y1="{axis_y - 24}" y2="{axis_y + 18}"><title>{escape(bound_text)}'
                 f'</title></line><text class="label" x="{xb:.1f}" y="{axis_y - 28}" text-anchor="middle">'
                 f'{escape(bound_text)}</text>')
    anchor = "end" if xv > right - 120 else "start"
    parts.append(f'<circle class="point s0" data-series="{value_key}" data-value="{_number(value)}" '
                 f'cx="{xv:.1f}" cy="{axis_y}" r="6"><title>{escape(value_text)}</title></circle>'
                 f'<text class="label" x="{xv + (-10 if anchor == "end" else 10):.1f}" y="{axis_y + 5}" '
                 f'text-anchor="{anchor}">{escape(value_text)}</text>')
    return _svg(width, height, parts)


# -- axes and frame -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Axis:
    low: float  # in axis units: log10 of the value on a log axis
    high: float
    log: bool
    ticks: tuple[float, ...]
    percent: bool = False

    @classmethod
    def fit(cls, values: Sequence[float], log: bool) -> _Axis:
        if log:
            low = math.floor(math.log10(min(values)))
            high = math.ceil(math.log10(max(values)))
            if high == low:  # one decade or less: show the decades on either side
                low, high = low - 1, high + 1
            step = max(1, math.ceil((high - low) / 6))
            return cls(low, high, True, tuple(float(d) for d in range(low, high + 1, step)))
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        low, high = min(low, 0.0), max(high, 0.0)
        if high == low:
            high = low + 1.0
        step = _nice_step((high - low) / 5)
        low, high = math.floor(low / step) * step, math.ceil(high / step) * step
        return cls(low, high, False, tuple(low + k * step for k in range(round((high - low) / step) + 1)))

    def position(self, value: float) -> float:
        """0 at the bottom of the axis, 1 at the top; values off a log axis (<= 0) sit at 0."""
        if self.log:
            value = math.log10(value) if value > 0 else self.low
        return (value - self.low) / (self.high - self.low)

    def tick_text(self, tick: float) -> str:
        if self.percent:
            return f"{tick:.0%}"
        return _decade(round(tick)) if self.log else f"{tick:g}"


class _Frame:
    """The plot area for categorical x positions, with room below for the labels."""

    def __init__(self, labels: Sequence[str], rotate: bool, links: Sequence[Link] = ()) -> None:
        self.labels = [_cut(label) for label in labels]
        self.rotate = rotate
        longest = max((len(label) for label in self.labels), default=1)
        self.bottom_room = (int(longest * 5.2) + 34) if rotate else 40
        self.left, self.right = LEFT, WIDTH - RIGHT
        self.step = (self.right - self.left) / max(len(labels), 1)
        # Above the plot: the legend's row, then the finding links, stacked where they would overlap.
        self.link_rows = _rows([self.x(link.index) for link in links])
        self.top = TOP + LINK_ROW * max(self.link_rows, default=0)
        self.height = HEIGHT + (self.bottom_room - 40) + (self.top - TOP)
        self.bottom = self.height - self.bottom_room

    def x(self, index: int) -> float:
        return self.left + (index + 0.5) * self.step

    def y(self, axis: _Axis, value: float) -> float:
        return self.bottom - axis.position(value) * (self.bottom - self.top)

    def grid(self, axis: _Axis, y_title: str, x_title: str) -> list[str]:
        parts = [f'<rect class="frame" x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
                 f'height="{self.bottom - self.top}"/>']
        for tick in axis.ticks:
            y = self.bottom - (tick - axis.low) / (axis.high - axis.low) * (self.bottom - self.top)
            parts.append(f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                         f'<text class="tick-text" x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{axis.tick_text(tick)}</text>')
        middle = (self.top + self.bottom) / 2
        parts.append(f'<text class="axis-title" x="14" y="{middle:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 14 {middle:.1f})">{escape(y_title)}</text>')
        if x_title:
            parts.append(f'<text class="axis-title" x="{(self.left + self.right) / 2:.1f}" y="{self.height - 6}" '
                         f'text-anchor="middle">{escape(x_title)}</text>')
        return parts

    def x_labels(self) -> list[str]:
        every = max(1, math.ceil(len(self.labels) / MAX_X_LABELS))
        parts = []
        for i, label in enumerate(self.labels):
            if i % every:
                continue
            x, y = self.x(i), self.bottom + 14
            turn = f' transform="rotate(-40 {x:.1f} {y})"' if self.rotate else ""
            anchor = "end" if self.rotate else "middle"
            parts.append(f'<text class="tick-text" x="{x:.1f}" y="{y}" text-anchor="{anchor}"{turn}>'
                         f'{escape(label)}</text>')
        return parts

    def links(self, links: Sequence[Link]) -> list[str]:
        """A dashed line at each marked position, under a link named after the finding."""
        parts = []
        for link, row in zip(links, self.link_rows):
            x = self.x(link.index)
            parts.append(f'<a href="{escape(link.href)}" data-index="{link.index}"><line class="mark" '
                         f'x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.bottom}"/>'
                         f'<text class="link" x="{x:.1f}" y="{self.top - 6 - LINK_ROW * row}" text-anchor="middle">'
                         f'{escape(link.text)}<title>{escape(link.title)}</title></text></a>')
        return parts

    def svg(self, parts: list[str]) -> str:
        return _svg(WIDTH, self.height, parts)


def _svg(width: int, height: int, parts: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img">{"".join(parts)}</svg>')


def _rows(positions: Sequence[float]) -> list[int]:
    """For labels centred at `positions`, the lowest row each fits in beside those placed before."""
    taken: list[list[float]] = []
    rows = []
    for x in positions:
        row = next((r for r, placed in enumerate(taken) if all(abs(x - other) >= LINK_WIDTH for other in placed)),
                   len(taken))
        if row == len(taken):
            taken.append([])
        taken[row].append(x)
        rows.append(row)
    return rows


def _polyline(frame: _Frame, axis: _Axis, series: Series) -> str:
    """The series' line, broken where a value is missing (not finite)."""
    runs, current = [], []
    for i, value in enumerate(series.values):
        if value is None:
            runs.append(current)
            current = []
        else:
            current.append(f"{frame.x(i):.1f},{frame.y(axis, value):.1f}")
    runs.append(current)
    return "".join(f'<polyline class="line s{series.style}" points="{" ".join(run)}"/>' for run in runs if len(run) > 1)


def _point(frame: _Frame, axis: _Axis, series: Series, index: int, value: float | None, name: str) -> str:
    x = frame.x(index)
    common = f'data-series="{series.key}" data-index="{index}"'
    if value is None:  # a cross at the top (one row per series): the value overflowed or became NaN
        y, r = frame.top + 6 + 10 * series.style, 4
        return (f'<path class="point nonfinite" {common} data-value="nonfinite" '
                f'd="M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}M{x - r:.1f},{y + r:.1f}L{x + r:.1f},{y - r:.1f}">'
                f'<title>{escape(name)}: {series.label} not finite</title></path>')
    return (f'<circle class="point s{series.style}" {common} data-value="{_number(value)}" cx="{x:.1f}" '
            f'cy="{frame.y(axis, value):.1f}" r="3.5"><title>{escape(name)}: {series.label} {value:.4g}</title>'
            '</circle>')


def _legend(series: Sequence[Series], right: float) -> str:
    parts, x = [], right
    for s in reversed(series):
        text_width = 6.5 * len(s.label)
        x -= text_width
        parts.append(f'<text class="legend" x="{x:.1f}" y="14">{escape(s.label)}</text>'
                     f'<rect class="swatch s{s.style}" x="{x - 16:.1f}" y="5" width="11" height="11"/>')
        x -= 30
    return "".join(parts)


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _decade(power: int) -> str:
    """10^power as an axis reads it: 0.01, 0.1, 1, 10, 100, then 1e3, 1e-3."""
    if -2 <= power <= 2:
        return f"{10.0 ** power:g}"
    return f"1e{power}"


def _number(value: float) -> str:
    """A data-value: the digits the JSON gives the value (gradlint.measure.export.DIGITS)."""
    return f"{value:.6g}"


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else "…" + label[-(LABEL_CHARS - 1):]
